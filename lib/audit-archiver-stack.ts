import { ArnFormat, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import type { DeploymentConfig } from '../lambdas/shared/config/deployment-schema.js';
import { tableRef } from '../lambdas/shared/config/schema.js';
import { ArchiveBucket } from './archive-bucket.js';
import { archiveLayout } from './archive-layout.js';
import { ArchiveQueries, type QueryTable } from './archive-queries.js';
import { ArchiveStateMachines } from './archive-state-machines.js';
import { ArchiverFunctions } from './archiver-functions.js';
import { ChatNotifications } from './chat-notifications.js';
import { DatabaseNetwork } from './database-network.js';
import { LockTable } from './lock-table.js';
import { ArchiveMonitoring } from './monitoring.js';
import { RestoreWorkflow } from './restore-workflow.js';
import { ArchiveSchedule } from './schedule.js';

export interface AuditArchiverStackProps extends StackProps {
  /**
   * The validated config (see loadDeploymentConfig): bucket, key, prefix, databases and their secrets, and the
   * `aws` block (schedule, logging, network, storage lifecycle, notifications, alarms, Athena).
   */
  readonly config: DeploymentConfig;
  /**
   * Absolute path of the PEM file `aws.databaseCaBundlePath` names (see databaseCaBundleFile).
   * @default - the database functions trust the Lambda runtime's Amazon CA file, which includes the RDS CAs
   */
  readonly databaseCaBundleFile?: string;
}

/** Log retention when the config sets none (`aws.logRetentionDays`). */
const DEFAULT_LOG_RETENTION = logs.RetentionDays.THREE_MONTHS;

/**
 * audit-archiver in AWS: archive bucket, lock table, the step functions, the state machines, the schedule, the
 * monitoring (alarm topic, alarms, dashboard, chat channels) and the Athena tables. This class only wires the
 * constructs together from the config; each one owns its resources, defaults and grants.
 */
export class AuditArchiverStack extends Stack {
  public readonly archiveBucket: ArchiveBucket;
  public readonly lockTable: LockTable;
  /** The databases' network, when the config places the functions in a VPC. */
  public readonly databaseNetwork?: DatabaseNetwork;
  public readonly functions: ArchiverFunctions;
  public readonly stateMachines: ArchiveStateMachines;
  public readonly restore: RestoreWorkflow;
  public readonly schedule: ArchiveSchedule;
  public readonly monitoring: ArchiveMonitoring;
  public readonly chatNotifications: ChatNotifications;
  public readonly queries: ArchiveQueries;

  constructor(scope: Construct, id: string, props: AuditArchiverStackProps) {
    super(scope, id, props);
    const { config } = props;
    const { aws } = config;
    const layout = archiveLayout(config);
    const areaPrefix = (pattern: string) => pattern.replace(/\*$/, '');
    const logRetention: logs.RetentionDays = aws.logRetentionDays ?? DEFAULT_LOG_RETENTION;
    const storage = aws.storage;

    this.archiveBucket = new ArchiveBucket(this, 'ArchiveBucket', {
      bucketName: config.s3.bucket,
      encryptionKey: config.s3.kmsKeyId ? this.importKey(config.s3.kmsKeyId) : undefined,
      stagingPrefix: areaPrefix(layout.staging),
      archivePrefixes: layout.archives.map(areaPrefix),
      // Archives, manifests and audit events are all written with If-None-Match: none can be overwritten.
      writeOnceKeyPatterns: [...layout.archives, layout.audit],
      archiveTransitions: storage?.transitions.map((t) => ({
        storageClass: new s3.StorageClass(t.storageClass),
        transitionAfter: Duration.days(t.afterDays),
      })),
      archiveExpiration: storage?.expireAfterDays ? Duration.days(storage.expireAfterDays) : undefined,
      objectLockRetention: storage?.objectLock
        ? s3.ObjectLockRetention[storage.objectLock.mode === 'COMPLIANCE' ? 'compliance' : 'governance'](
            Duration.days(storage.objectLock.retentionDays),
          )
        : undefined,
    });
    this.lockTable = new LockTable(this, 'LockTable', { databases: config.databases.map((db) => db.name) });
    if (aws.vpc) this.databaseNetwork = new DatabaseNetwork(this, 'DatabaseNetwork', aws.vpc);
    this.functions = new ArchiverFunctions(this, 'Functions', {
      config,
      archiveBucket: this.archiveBucket,
      lockTable: this.lockTable,
      logRetention,
      ...this.databaseNetwork?.placement,
      databaseCaBundleFile: props.databaseCaBundleFile,
      databaseFunctionConcurrency: aws.databaseFunctionConcurrency,
    });
    this.stateMachines = new ArchiveStateMachines(this, 'StateMachines', {
      functions: this.functions,
      logLevel: sfn.LogLevel[aws.stateMachineLogLevel],
      logRetention,
    });
    this.restore = new RestoreWorkflow(this, 'Restore', {
      functions: this.functions,
      archiveBucket: this.archiveBucket,
      lockTable: this.lockTable,
      readableKeys: `${config.s3.prefix}*`,
      auditKeys: layout.audit,
      logLevel: sfn.LogLevel[aws.stateMachineLogLevel],
      logRetention,
    });
    this.schedule = new ArchiveSchedule(this, 'Schedule', {
      stateMachine: this.stateMachines.archive.stateMachine,
      expression: aws.schedule.expression,
      timeZone: aws.schedule.timeZone,
      enabled: aws.schedule.enabled,
    });
    this.monitoring = new ArchiveMonitoring(this, 'Monitoring', {
      archiveStateMachine: this.stateMachines.archive.stateMachine,
      archiveTableStateMachine: this.stateMachines.archiveTable.stateMachine,
      restoreStateMachine: this.restore.stateMachine.stateMachine,
      deployment: this.lockTable.table.tableName,
      functions: {
        ...this.functions.byStep,
        restorePlan: this.restore.plan.function,
        restoreFile: this.restore.file.function,
        restoreSummary: this.restore.summary.function,
      },
      emails: aws.notifications.emails,
      noSuccessfulRunHours: aws.alarms.noSuccessfulRunHours,
      runbookUrl: aws.alarms.runbookUrl,
      scheduledRunsExpected: aws.schedule.enabled,
    });
    // Run summaries go to the alarm topic, so its email subscribers and chat channels receive them too.
    this.monitoring.grantPublishSummaries(this.functions.summary.function);
    this.chatNotifications = new ChatNotifications(this, 'ChatNotifications', {
      topic: this.monitoring.topic,
      slack: aws.notifications.slack,
      teams: aws.notifications.teams,
    });
    this.queries = new ArchiveQueries(this, 'Queries', {
      archiveBucket: this.archiveBucket,
      prefix: config.s3.prefix,
      tables: queryTables(config),
      archiveAreas: layout.archives,
      firstYear: aws.athena?.firstYear,
      lastYear: aws.athena?.lastYear,
      resultsExpiration: aws.athena ? Duration.days(aws.athena.resultsExpireAfterDays) : undefined,
      queryPrincipals: aws.athena?.queryPrincipals?.map((arn) => new iam.ArnPrincipal(arn)),
    });

    const outputs: [string, string, string][] = [
      [
        'ArchiveStateMachineArn',
        this.stateMachines.archive.stateMachine.stateMachineArn,
        'The archive run the schedule starts: `audit-archiver run --state-machine-arn`, `doctor`',
      ],
      [
        'RestoreStateMachineArn',
        this.restore.stateMachine.stateMachine.stateMachineArn,
        'Restores archives: start it from the console with a JSON input, or `audit-archiver restore`',
      ],
      ['ArchiveBucketName', this.archiveBucket.bucket.bucketName, 'The archives, manifests and audit trail'],
      [
        'LockTableName',
        this.lockTable.table.tableName,
        'Leases, batches in flight, outcomes, holds, inventory: `status`, `lease break`, `hold --lock-table`',
      ],
      [
        'ScheduleDeadLetterQueueUrl',
        this.schedule.deadLetterQueue.queueUrl,
        'Schedule events that could not start a run (see the runbook, NoSuccessfulRun)',
      ],
      ['AlarmTopicArn', this.monitoring.topic.topicArn, 'Every alarm and run summary is published here'],
      [
        'DashboardUrl',
        `https://console.aws.amazon.com/cloudwatch/home?region=${this.region}#dashboards/dashboard/${this.monitoring.dashboard.dashboardName}`,
        'Are we keeping up: runs, tables, backlog, step durations, alarms',
      ],
      ['AthenaWorkGroup', this.queries.workGroup.ref, 'Query the archives in this workgroup'],
      [
        'AthenaDatabase',
        this.queries.databaseName,
        'Glue database of the archives, one table per archived table',
      ],
      ['AthenaQueryRoleArn', this.queries.queryRole.roleArn, 'Assume this role to query the archives'],
    ];
    for (const [id, value, description] of outputs) new CfnOutput(this, id, { value, description });
  }

  /** The config's `s3.kmsKeyId`: a key ARN as written, or a key id in this stack's account and region. */
  private importKey(kmsKeyId: string): kms.IKey {
    const keyArn = kmsKeyId.startsWith('arn:')
      ? kmsKeyId
      : this.formatArn({
          service: 'kms',
          resource: 'key',
          resourceName: kmsKeyId,
          arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
        });
    return kms.Key.fromKeyArn(this, 'ArchiveKey', keyArn);
  }
}

/**
 * The Athena view of every configured table: the columns `aws.athena.tables` lists for it, or else the ones the
 * config itself names (key columns when given, and the timestamp column).
 */
function queryTables(config: DeploymentConfig): QueryTable[] {
  return config.databases.flatMap((db) =>
    db.tables.map((table) => {
      const listed = config.aws.athena?.tables.find(
        (entry) => entry.database === db.name && entry.table === tableRef(table),
      );
      const known = [...(table.keyColumns ?? []), table.timestampColumn];
      return {
        database: db.name,
        schema: table.schema,
        table: table.name,
        columns: listed?.columns ?? [...new Set(known)],
        objectSpan: table.objectSpan,
      };
    }),
  );
}
