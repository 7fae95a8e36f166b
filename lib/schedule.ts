import { Duration, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

export interface ArchiveScheduleProps {
  /** The state machine started on schedule, with input `{}` (archive every configured table). */
  readonly stateMachine: sfn.IStateMachine;
  /**
   * When runs start (UTC).
   * @default events.Schedule.expression('cron(0 3 * * ? *)') - daily at 03:00 UTC
   */
  readonly schedule?: events.Schedule;
  /**
   * Whether the rule is enabled.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * How often EventBridge retries a failed StartExecution call before giving the event to the dead-letter queue.
   * @default 8
   */
  readonly retryAttempts?: number;
  /**
   * How long EventBridge keeps retrying.
   * @default Duration.hours(2)
   */
  readonly maxEventAge?: Duration;
}

/**
 * The daily trigger: an EventBridge rule that starts the run with input `{}`, with retries, and a dead-letter queue
 * (SSE, TLS-only, 14 days) that holds any schedule event that could not start an execution.
 */
export class ArchiveSchedule extends Construct {
  public readonly rule: events.Rule;
  public readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ArchiveScheduleProps) {
    super(scope, id);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the schedule rule target.',
    });

    this.rule = new events.Rule(this, 'Rule', {
      description: 'audit-archiver: starts the archive run',
      schedule: props.schedule ?? events.Schedule.expression('cron(0 3 * * ? *)'),
      enabled: props.enabled ?? true,
    });
    this.rule.addTarget(
      new targets.SfnStateMachine(props.stateMachine, {
        input: events.RuleTargetInput.fromObject({}),
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: props.retryAttempts ?? 8,
        maxEventAge: props.maxEventAge ?? Duration.hours(2),
      }),
    );
  }
}
