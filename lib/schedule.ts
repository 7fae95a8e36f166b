import { ArnFormat, Duration, Stack, TimeZone, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

export interface ArchiveScheduleProps {
  /** The state machine started on schedule, with input `{}` (archive every configured table). */
  readonly stateMachine: sfn.IStateMachine;
  /**
   * When runs start: `cron(...)` (six fields) or `rate(N unit)`, as the config's `aws.schedule.expression`.
   * @default 'cron(0 3 * * ? *)' - daily at 03:00 in `timeZone`
   */
  readonly expression?: string;
  /**
   * IANA time zone the expression is read in; Scheduler follows its daylight saving time.
   * @default 'UTC'
   */
  readonly timeZone?: string;
  /**
   * Whether the schedule starts runs.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * How often Scheduler retries a failed StartExecution call before giving the event to the dead-letter queue.
   * @default 8
   */
  readonly retryAttempts?: number;
  /**
   * How long Scheduler keeps retrying (1 minute to 1 day).
   * @default Duration.hours(2)
   */
  readonly maxEventAge?: Duration;
}

/**
 * The trigger: an EventBridge Scheduler schedule (cron or rate, in any IANA time zone) that starts the run with
 * input `{}`, with retries, and a dead-letter queue (SSE, TLS-only, 14 days) that holds any invocation that could
 * not start an execution. The schedule's role may start only that state machine and send only to that queue.
 */
export class ArchiveSchedule extends Construct {
  public readonly schedule: scheduler.Schedule;
  /** The role Scheduler assumes to start the execution (and to dead-letter what it cannot start). */
  public readonly role: iam.Role;
  public readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ArchiveScheduleProps) {
    super(scope, id);
    const stack = Stack.of(this);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the schedule target.',
    });

    // Our own role instead of the one the target would create at stack level: it lives in this construct, and
    // only schedules of this account's default group may assume it (confused-deputy protection).
    this.role = new iam.Role(this, 'Role', {
      description: 'audit-archiver: EventBridge Scheduler starts the archive run',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: {
            'aws:SourceAccount': stack.account,
            'aws:SourceArn': stack.formatArn({
              service: 'scheduler',
              resource: 'schedule-group',
              resourceName: 'default',
              arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
            }),
          },
        },
      }),
    });

    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'audit-archiver: starts the archive run',
      schedule: scheduler.ScheduleExpression.expression(
        props.expression ?? 'cron(0 3 * * ? *)',
        TimeZone.of(props.timeZone ?? 'UTC'),
      ),
      enabled: props.enabled ?? true,
      // The target grants the role states:StartExecution on the state machine and sqs:SendMessage on the queue.
      target: new targets.StepFunctionsStartExecution(props.stateMachine, {
        role: this.role,
        input: scheduler.ScheduleTargetInput.fromObject({}),
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: props.retryAttempts ?? 8,
        maxEventAge: props.maxEventAge ?? Duration.hours(2),
      }),
    });
  }
}
