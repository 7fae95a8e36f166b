import { ArnFormat, CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import type { ArchiverConfig } from '../lambdas/shared/config.js';
import { ArchiveBucket } from './archive-bucket.js';
import { archiveLayout } from './archive-layout.js';
import { ArchiveStateMachines } from './archive-state-machines.js';
import type { DatabaseNetworkProps } from './archiver-function.js';
import { ArchiverFunctions } from './archiver-functions.js';
import { LockTable } from './lock-table.js';
import { ArchiveSchedule } from './schedule.js';

export interface AuditArchiverStackProps extends StackProps, DatabaseNetworkProps {
  /** The validated config (see loadDeploymentConfig): bucket, key, prefix, databases and their secrets. */
  readonly config: ArchiverConfig;
  /**
   * When the scheduled run starts.
   * @default daily at 03:00 UTC
   */
  readonly schedule?: events.Schedule;
  /**
   * Whether the schedule is enabled; runs can always be started by hand.
   * @default true
   */
  readonly scheduleEnabled?: boolean;
  /**
   * Execution log level of the state machines.
   * @default sfn.LogLevel.ERROR
   */
  readonly stateMachineLogLevel?: sfn.LogLevel;
  /**
   * Retention of all log groups.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * audit-archiver in AWS: archive bucket, lock table, the seven step functions, the two state machines and the
 * schedule. This class only wires the constructs together; each one owns its resources, defaults and grants.
 */
export class AuditArchiverStack extends Stack {
  public readonly archiveBucket: ArchiveBucket;
  public readonly lockTable: LockTable;
  public readonly functions: ArchiverFunctions;
  public readonly stateMachines: ArchiveStateMachines;
  public readonly schedule: ArchiveSchedule;

  constructor(scope: Construct, id: string, props: AuditArchiverStackProps) {
    super(scope, id, props);
    const { config } = props;
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
      logLevel: props.stateMachineLogLevel,
      logRetention: props.logRetention,
    });
    this.schedule = new ArchiveSchedule(this, 'Schedule', {
      stateMachine: this.stateMachines.archive.stateMachine,
      schedule: props.schedule,
      enabled: props.scheduleEnabled,
    });

    new CfnOutput(this, 'ArchiveStateMachineArn', {
      value: this.stateMachines.archive.stateMachine.stateMachineArn,
    });
    new CfnOutput(this, 'ArchiveBucketName', { value: this.archiveBucket.bucket.bucketName });
    new CfnOutput(this, 'LockTableName', { value: this.lockTable.table.tableName });
    new CfnOutput(this, 'ScheduleDeadLetterQueueUrl', { value: this.schedule.deadLetterQueue.queueUrl });
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
