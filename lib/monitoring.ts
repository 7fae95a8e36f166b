import { ArnFormat, Duration, Lazy, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  METRICS_NAMESPACE,
  type MetricName,
  SERVICE_NAME,
} from '../lambdas/shared/telemetry/metric-names.js';

/** 5-minute periods a retried condition (throttling) must last before it alarms. */
const SUSTAINED_PERIODS = 3;
/** UTC days on end with a batch withdrawn because its rows changed before a withdrawal is worth a page. */
const ROWS_CHANGED_DAYS = 3;
/** CloudWatch evaluates an alarm with one-hour periods over seven days at most (Period x EvaluationPeriods). */
const MAX_NO_SUCCESS_HOURS = 168;

export interface ArchiveMonitoringProps {
  /** The parent state machine (`archive`): the run the schedule starts. */
  readonly archiveStateMachine: sfn.IStateMachine;
  /** The child state machine (`archiveTable`): one execution per table. */
  readonly archiveTableStateMachine: sfn.IStateMachine;
  /**
   * The console restore state machine.
   * @default - no restore alarms
   */
  readonly restoreStateMachine?: sfn.IStateMachine;
  /**
   * The deployment's name in the custom metrics (`deployment` dimension): the lock table's name, which the functions
   * read from LOCK_TABLE_NAME. Every stack in an account shares the metrics' namespace and service.
   */
  readonly deployment: string;
  /** The step functions by name (e.g. `export`); each gets an Errors and a Throttles alarm named after it. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /**
   * Email addresses subscribed to the alarm topic.
   * @default - no subscriptions
   */
  readonly emails?: readonly string[];
  /**
   * Hours without a successful parent execution after which the no-successful-run alarm fires (1 to 168).
   * @default 26
   */
  readonly noSuccessfulRunHours?: number;
  /**
   * Whether runs are expected to start on schedule. When false, the no-successful-run alarm is created with its
   * actions disabled, so a stack whose runs are started by hand does not page every day.
   * @default true
   */
  readonly scheduledRunsExpected?: boolean;
  /**
   * Prefix of every alarm name (followed by "-"); the topic and key policies admit these alarms by their names.
   * @default - the stack name
   */
  readonly alarmNamePrefix?: string;
  /**
   * Where the runbook is (an https URL of `docs/runbook.md`, e.g. in your fork or wiki): each alarm's description
   * ends with `Runbook: <runbookUrl>#<its entry>`.
   * @default - the path `docs/runbook.md` of the audit-archiver repository
   */
  readonly runbookUrl?: string;
}

/** What a topic policy can allow or deny on a topic: the actions of SNS's default topic policy. */
const TOPIC_ACTIONS = [
  'sns:AddPermission',
  'sns:DeleteTopic',
  'sns:GetTopicAttributes',
  'sns:ListSubscriptionsByTopic',
  'sns:Publish',
  'sns:RemovePermission',
  'sns:SetTopicAttributes',
  'sns:Subscribe',
] as const;

/** The runbook's path in the repository, where `runbookUrl` is not given. */
const RUNBOOK_PATH = 'docs/runbook.md';

/**
 * What operators watch: an SNS topic (customer-managed KMS key with rotation, TLS-only, email subscriptions) that
 * only this stack's CloudWatch alarms may publish to; alarms on failed and aborted executions, on
 * function errors and throttles, on verification failures and on "no successful run in N hours"; and a dashboard
 * of the archiver's custom metrics (totals and per table), step durations and execution outcomes.
 */
export class ArchiveMonitoring extends Construct {
  /** Encrypts the topic; CloudWatch may use it for this construct's alarms only. */
  public readonly topicKey: kms.Key;
  /** Where every alarm sends its ALARM state. */
  public readonly topic: sns.Topic;
  /** Every alarm, by construct id. */
  public readonly alarms: Readonly<Record<string, cloudwatch.Alarm>>;
  /** Fires when no run of this deployment (dry runs aside) has succeeded for `noSuccessfulRunHours`. */
  public readonly noSuccessfulRunAlarm: cloudwatch.Alarm;
  public readonly dashboard: cloudwatch.Dashboard;
  /** Prefix of every alarm name, followed by "-". */
  public readonly alarmNamePrefix: string;
  /** The `deployment` dimension of this stack's custom metrics. */
  private readonly deployment: string;

  constructor(scope: Construct, id: string, props: ArchiveMonitoringProps) {
    super(scope, id);
    this.deployment = props.deployment;
    const stack = Stack.of(this);
    const hours = props.noSuccessfulRunHours ?? 26;
    if (!Number.isInteger(hours) || hours < 1 || hours > MAX_NO_SUCCESS_HOURS) {
      throw new Error(
        `${this.node.path}: noSuccessfulRunHours must be an integer from 1 to ${MAX_NO_SUCCESS_HOURS}`,
      );
    }
    this.alarmNamePrefix = props.alarmNamePrefix ?? stack.stackName;

    // CloudWatch publishes to an encrypted topic only if the key lets it; AWS-managed SNS keys cannot. Both the key
    // and the topic admit the CloudWatch service only on behalf of this stack's alarms, each named: a prefix pattern
    // would admit an alarm anyone allowed PutMetricAlarm creates under a name that matches, with a description of
    // their own. Named, not referenced, since the key's policy cannot depend on alarms that depend on the topic.
    const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
    const alarmArns: string[] = [];
    const fromOurAlarms = {
      StringEquals: { 'aws:SourceAccount': stack.account },
      ArnEquals: { 'aws:SourceArn': Lazy.list({ produce: () => alarmArns }) },
    };
    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'audit-archiver: encrypts the alarm topic',
      enableKeyRotation: true,
      // It only ever encrypts notifications in transit: nothing to read back once the topic is gone.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    this.topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublishToTheTopic',
        principals: [cloudWatch],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: fromOurAlarms,
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'audit-archiver alarms',
      masterKey: this.topicKey,
    });
    // Every topic action, not only Publish as `enforceSSL` denies: a subscription or an attribute set over plain HTTP
    // is refused too. Listed, as the topic's default policy lists them.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyRequestsWithoutTls',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [...TOPIC_ACTIONS],
        resources: [this.topic.topicArn],
        conditions: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
    // A topic policy replaces SNS's default policy, so the alarms' publishing must be allowed explicitly.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [cloudWatch],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: fromOurAlarms,
      }),
    );
    for (const email of props.emails ?? []) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }

    const alarms: Record<string, cloudwatch.Alarm> = {};
    const runbook = props.runbookUrl ?? RUNBOOK_PATH;
    const alarm = (
      alarmId: string,
      metric: cloudwatch.IMetric,
      description: string,
      options: Partial<cloudwatch.AlarmProps> = {},
      runbookEntry = alarmId,
    ): cloudwatch.Alarm => {
      const alarmName = `${this.alarmNamePrefix}-${alarmId}`;
      alarmArns.push(
        stack.formatArn({
          service: 'cloudwatch',
          resource: 'alarm',
          resourceName: alarmName,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      );
      const created = new cloudwatch.Alarm(this, alarmId, {
        alarmName,
        alarmDescription: `audit-archiver: ${description}. Runbook: ${runbook}#${runbookEntry.toLowerCase()}`,
        metric,
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        // No data means nothing happened: no failure, no error.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        ...options,
      });
      created.addAlarmAction(new actions.SnsAction(this.topic));
      alarms[alarmId] = created;
      return created;
    };
    const sum = { statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) };
    const parent = props.archiveStateMachine;
    const child = props.archiveTableStateMachine;

    // No alarm on ExecutionsTimedOut: the state machines set no execution timeout (each Task has its own, and a run's
    // batches are bounded by maxBatchesPerRun), so only Step Functions' one-year limit could time one out; a run that
    // does not end is NoSuccessfulRun.
    alarm('ArchiveExecutionsFailed', parent.metricFailed(sum), 'an archive run (parent execution) failed');
    alarm(
      'ArchiveExecutionsAborted',
      parent.metricAborted(sum),
      'an archive run (parent execution) was aborted',
    );
    alarm(
      'ArchiveTableExecutionsFailed',
      child.metricFailed(sum),
      'archiving a table (child execution) failed',
    );
    if (props.restoreStateMachine) {
      const restore = props.restoreStateMachine;
      alarm(
        'RestoreExecutionsFailed',
        restore.metricFailed(sum),
        'a console restore failed or was incomplete',
      );
    }
    // No alarm on a function's Errors: the state machines invoke every function and retry its transient errors
    // (ReplicaLagError, DatabaseUnavailableError, …) up to 20 times, so one error is routine; an error that matters
    // fails its execution, and the execution alarms above fire. Throttling is retried too: only throttling in three
    // consecutive 5-minute periods (reserved concurrency too low for the load) is worth a page.
    for (const [name, fn] of Object.entries(props.functions)) {
      const title = name.charAt(0).toUpperCase() + name.slice(1);
      alarm(
        `${title}FunctionThrottles`,
        fn.metricThrottles(sum),
        `the ${name} function was throttled for 15 minutes on end`,
        { evaluationPeriods: SUSTAINED_PERIODS, datapointsToAlarm: SUSTAINED_PERIODS },
        'FunctionThrottles',
      );
    }
    alarm(
      'VerificationFailures',
      this.metric('VerificationFailures'),
      'an archive failed verification (it was withdrawn, no rows were deleted)',
    );
    // One withdrawn batch is routine (the application touched an old row between export and delete), and a table
    // fails only when three or more batches of its budget were all withdrawn. A budget of one or two batches never
    // fails that way, and a larger one can lose most of its batches without failing: withdrawals on three days
    // running mean the application keeps changing rows the retention calls old.
    alarm(
      'RowsChanged',
      this.metric('RowsChanged', { period: Duration.days(1) }),
      `batches were withdrawn because their rows changed on ${ROWS_CHANGED_DAYS} days running`,
      { evaluationPeriods: ROWS_CHANGED_DAYS, datapointsToAlarm: ROWS_CHANGED_DAYS },
    );

    // "No successful run in the last N hours". A period is at most one day, and a day-long period would not slide
    // by the hour, so: Sum of RunsSucceeded per hour, and alarm when all N of the last N hourly datapoints are below 1
    // (N-of-N). Not the parent's ExecutionsSucceeded: a dry run succeeds too, having archived nothing, and one a day
    // would keep the alarm quiet while the schedule starts no run. The summary step emits RunsSucceeded for a run that
    // ends a success, of its deployment (another stack's runs must not keep this one's alarm quiet), and nothing for an
    // hour without one, so missing data must count as breaching; one hour with a success makes the alarm OK again.
    // CloudWatch allows Period x EvaluationPeriods up to seven days for hourly periods, hence N <= 168.
    const runsSucceeded = this.metric('RunsSucceeded', { period: Duration.hours(1) });
    this.noSuccessfulRunAlarm = alarm(
      'NoSuccessfulRun',
      runsSucceeded,
      `no archive run has succeeded in the last ${hours} hours`,
      {
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: hours,
        datapointsToAlarm: hours,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        actionsEnabled: props.scheduledRunsExpected ?? true,
      },
    );
    this.alarms = alarms;

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: stack.stackName,
      defaultInterval: Duration.days(7),
    });
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          '# audit-archiver\nCustom metrics come from the step functions (namespace ' +
          `\`${METRICS_NAMESPACE}\`): totals carry the \`service\` and \`deployment\` dimensions (deployment: ` +
          `${this.deployment}, the lock table's name), per-table series also \`database\` and \`table\`.`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      this.graph('Rows archived and deleted (total)', [
        this.metric('RowsArchived'),
        this.metric('RowsDeleted'),
      ]),
      this.graph('Bytes archived (total)', [this.metric('BytesArchived')]),
      this.graph('Batches and archive objects (total)', [
        this.metric('BatchesArchived'),
        this.metric('ObjectsArchived'),
      ]),
      this.graph('Batches withdrawn (total)', [
        this.metric('VerificationFailures'),
        this.metric('RowsChanged'),
      ]),
    );
    this.dashboard.addWidgets(
      this.graph('Rows archived per table', [this.perTable('RowsArchived')]),
      this.graph('Bytes archived per table', [this.perTable('BytesArchived')]),
      this.graph('Rows deleted per table', [this.perTable('RowsDeleted')]),
      this.graph('Verification failures per table', [this.perTable('VerificationFailures')]),
    );
    // Are we keeping up? The eligible rows each table's run left (0 when it archived them all; counted once the batch
    // budget ends a run), a table's successful runs per day (a gap is a day it was not archived), the tables whose
    // run used its whole batch budget, and what held tables back.
    const daily = { statistic: cloudwatch.Stats.SUM, period: Duration.days(1) };
    this.dashboard.addWidgets(
      this.graph(
        'Backlog: eligible rows left after each run, per table',
        [this.perTable('BacklogRows', 86_400, 'Minimum')],
        8,
      ),
      this.graph('Successful runs per table (per day)', [this.perTable('TableRunsSucceeded', 86_400)], 8),
      this.graph(
        'Runs that left rows for the next run, per table (per day)',
        [this.perTable('TablesBudgetReached', 86_400)],
        8,
      ),
    );
    this.dashboard.addWidgets(
      this.graph('Tables skipped: lease held (total)', [this.metric('TablesSkippedLocked', daily)], 8),
      this.graph('Replica lag pauses (total)', [this.metric('ReplicaLagPauses', daily)], 8),
      this.graph('VACUUM failures after a run (total)', [this.metric('VacuumFailures', daily)], 8),
    );
    // The throttle: the application's load export saw (yieldToLoad), and the waits it and the rate limits set.
    this.dashboard.addWidgets(
      this.graph(
        'Application load seen by export (busy sessions, per batch), per table',
        [this.perTable('BusySessions', 300, 'Maximum')],
        12,
      ),
      this.graph(
        'Throttle waits after batches (seconds), per table',
        [this.perTable('ThrottlePauseSeconds')],
        12,
      ),
    );
    this.dashboard.addWidgets(
      ...(['ExportDuration', 'UploadDuration', 'VerifyDuration', 'DeleteDuration'] as const).map((name) =>
        this.graph(
          `${name.replace('Duration', '')} step duration (ms)`,
          [
            this.metric(name, { statistic: cloudwatch.Stats.AVERAGE, label: 'average' }),
            this.metric(name, { statistic: cloudwatch.Stats.p(99), label: 'p99' }),
            this.metric(name, { statistic: cloudwatch.Stats.MAXIMUM, label: 'maximum' }),
          ],
          6,
        ),
      ),
    );
    const outcomes = (machine: sfn.IStateMachine) => [
      machine.metricSucceeded({ ...sum, label: 'succeeded' }),
      machine.metricFailed({ ...sum, label: 'failed' }),
      machine.metricAborted({ ...sum, label: 'aborted' }),
    ];
    this.dashboard.addWidgets(
      this.graph(
        'Runs (parent executions)',
        [
          ...outcomes(parent),
          runsSucceeded.with({ period: sum.period, label: 'runs that succeeded (no dry runs)' }),
        ],
        12,
      ),
      this.graph('Tables (child executions)', outcomes(child), 12),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: Object.values(alarms), width: 24 }),
    );
  }

  /** Roles of the functions granted `grantPublishSummaries`: the only principals of the account that may publish. */
  private readonly publishers: string[] = [];

  /**
   * Lets `fn` publish to the alarm topic (a run's summary) and tells it the topic in `NOTIFICATION_TOPIC_ARN`. Spelled
   * out rather than `topic.grantPublish`, which grants the wildcard action `kms:GenerateDataKey*`.
   *
   * From the first grant on, the topic policy denies publishing to every other principal but AWS services (the
   * alarms): within the account an IAM allow would otherwise be enough, and a forged "run succeeded" or alarm
   * message would reach the operators' mail and chat channels as the archiver's.
   */
  public grantPublishSummaries(fn: lambda.Function): void {
    if (!fn.role) throw new Error(`${fn.node.path}: a function that publishes summaries needs a role`);
    if (this.publishers.length === 0) {
      this.topic.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'DenyPublishByOthers',
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['sns:Publish'],
          resources: [this.topic.topicArn],
          conditions: {
            Bool: { 'aws:PrincipalIsAWSService': 'false' },
            ArnNotEquals: { 'aws:PrincipalArn': Lazy.list({ produce: () => this.publishers }) },
          },
        }),
      );
    }
    this.publishers.push(fn.role.roleArn);
    fn.addEnvironment('NOTIFICATION_TOPIC_ARN', this.topic.topicArn);
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sns:Publish'], resources: [this.topic.topicArn] }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [this.topicKey.keyArn],
        conditions: {
          StringEquals: { 'kms:ViaService': `sns.${Stack.of(this).region}.${Stack.of(this).urlSuffix}` },
        },
      }),
    );
  }

  /** A custom metric of this deployment in total (no table dimensions), as the functions emit it. */
  private metric(name: MetricName, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: name,
      dimensionsMap: { service: SERVICE_NAME, deployment: this.deployment },
      statistic: cloudwatch.Stats.SUM,
      period: Duration.minutes(5),
      ...options,
    });
  }

  /**
   * One series per table of this deployment: a SEARCH over the per-table dimension set (service, deployment, database,
   * table). `Minimum` for a level reported once a run (a day's runs left the least), `Sum` for counts.
   */
  private perTable(
    name: MetricName,
    periodSeconds = 300,
    statistic: 'Sum' | 'Minimum' | 'Maximum' = 'Sum',
  ): cloudwatch.MathExpression {
    const schema = `{${METRICS_NAMESPACE},service,deployment,database,table}`;
    const among = `service="${SERVICE_NAME}" deployment="${this.deployment}" MetricName="${name}"`;
    return new cloudwatch.MathExpression({
      expression: `SEARCH('${schema} ${among}', '${statistic}', ${periodSeconds})`,
      usingMetrics: {},
      // Empty: each series keeps its own label, the database and table dimension values.
      label: '',
      period: Duration.seconds(periodSeconds),
    });
  }

  private graph(title: string, metrics: cloudwatch.IMetric[], width = 6): cloudwatch.GraphWidget {
    return new cloudwatch.GraphWidget({ title, left: metrics, width, height: 6 });
  }
}
