import { ArnFormat, CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import type { ArchiverConfig } from '../lambdas/shared/config.js';
import { ArchiveBucket } from './archive-bucket.js';
import { archiveLayout } from './archive-layout.js';
import { ArchiveStateMachines } from './archive-state-machines.js';
import type { DatabaseNetworkProps } from './archiver-function.js';
import { ArchiverFunctions } from './archiver-functions.js';
import { LockTable } from './lock-table.js';
import { ArchiveMonitoring } from './monitoring.js';
import { ArchiveSchedule } from './schedule.js';

export interface AuditArchiverStackProps extends StackProps, DatabaseNetworkProps {
  /**
   * The validated config (see loadDeploymentConfig): bucket, key, prefix, databases and their secrets, and the
   * `aws` block (schedule, state machine log level, alarm subscriptions and thresholds).
   */
  readonly config: ArchiverConfig;
  /**
   * Retention of all log groups.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * audit-archiver in AWS: archive bucket, lock table, the seven step functions, the two state machines, the
 * schedule and the monitoring (alarm topic, alarms, dashboard). This class only wires the constructs together;
 * each one owns its resources, defaults and grants.
 */
export class AuditArchiverStack extends Stack {
  public readonly archiveBucket: ArchiveBucket;
  public readonly lockTable: LockTable;
  public readonly functions: ArchiverFunctions;
  public readonly stateMachines: ArchiveStateMachines;
  public readonly schedule: ArchiveSchedule;
  public readonly monitoring: ArchiveMonitoring;

  constructor(scope: Construct, id: string, props: AuditArchiverStackProps) {
    super(scope, id, props);
    const { config } = props;
    const { aws } = config;
    const layout = archiveLayout(config);

    this.archiveBucket = new ArchiveBucket(this, 'ArchiveBucket', {
      bucketName: config.s3.bucket,
      encryptionKey: config.s3.kmsKeyId ? this.importKey(config.s3.kmsKeyId) : undefined,
      stagingPrefix: layout.staging.replace(/\*$/, ''),
    });
    this.lockTable = new LockTable(this, 'LockTable');
    this.functions = new ArchiverFunctions(this, 'Functions', {
      config,
      archiveBucket: this.archiveBucket,
      lockTable: this.lockTable,
      logRetention: props.logRetention,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
    });
    this.stateMachines = new ArchiveStateMachines(this, 'StateMachines', {
      functions: this.functions,
      logLevel: sfn.LogLevel[aws.stateMachineLogLevel],
      logRetention: props.logRetention,
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
      functions: this.functions.byStep,
      emails: aws.notifications.emails,
      noSuccessfulRunHours: aws.alarms.noSuccessfulRunHours,
      scheduledRunsExpected: aws.schedule.enabled,
    });

    new CfnOutput(this, 'ArchiveStateMachineArn', {
      value: this.stateMachines.archive.stateMachine.stateMachineArn,
    });
    new CfnOutput(this, 'ArchiveBucketName', { value: this.archiveBucket.bucket.bucketName });
    new CfnOutput(this, 'LockTableName', { value: this.lockTable.table.tableName });
    new CfnOutput(this, 'ScheduleDeadLetterQueueUrl', { value: this.schedule.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.monitoring.topic.topicArn });
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
