import { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { ArchiverConfig } from '../lambdas/shared/config.js';
import type { ArchiveBucket } from './archive-bucket.js';
import { archiveLayout } from './archive-layout.js';
import { ArchiverFunction, type ArchiverStep, type DatabaseNetworkProps } from './archiver-function.js';
import { BundledConfig } from './bundled-config.js';
import { DatabaseSecrets } from './database-secrets.js';
import type { LockTable } from './lock-table.js';

export interface ArchiverFunctionsProps extends DatabaseNetworkProps {
  /** The validated config: bundled into every function, and the source of its secrets and key layout. */
  readonly config: ArchiverConfig;
  /** Where the steps stage, publish, quarantine and withdraw archives; access is granted per key area. */
  readonly archiveBucket: ArchiveBucket;
  /** Leases, in-flight batches and run outcomes; each step gets only the item operations it issues. */
  readonly lockTable: LockTable;
  /**
   * Retention of each function's log group.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

const LONG = { timeout: Duration.seconds(900), memorySize: 1024 };
const SHORT = { timeout: Duration.seconds(60), memorySize: 256 };

/**
 * The seven step functions and, in one place, what each may touch. Grants follow the code in lambdas/: which
 * objects a step reads, writes or deletes (by key area), which lock-table operations it issues, whether it opens
 * database connections (secrets, VPC). A step gets nothing it does not call.
 *
 * Every step that removes a batch (export settling a crashed attempt, upload, verify, delete) goes through
 * `withdrawBatch`, which heads the archive, deletes the batch's staging objects and, when the archive is the
 * batch's own, the archive and its manifest; verify first copies a damaged archive to the quarantine area.
 */
export class ArchiverFunctions extends Construct {
  public readonly bundledConfig: BundledConfig;
  public readonly databaseSecrets: DatabaseSecrets;
  public readonly plan: ArchiverFunction;
  public readonly lock: ArchiverFunction;
  public readonly export: ArchiverFunction;
  public readonly upload: ArchiverFunction;
  public readonly verify: ArchiverFunction;
  public readonly delete: ArchiverFunction;
  public readonly summary: ArchiverFunction;

  constructor(scope: Construct, id: string, props: ArchiverFunctionsProps) {
    super(scope, id);
    const { archiveBucket: bucket, lockTable } = props;
    const layout = archiveLayout(props.config);
    this.bundledConfig = new BundledConfig(this, 'Config', { config: props.config });
    this.databaseSecrets = new DatabaseSecrets(props.config);

    const environment = {
      ARCHIVE_BUCKET: bucket.bucket.bucketName,
      LOCK_TABLE_NAME: lockTable.table.tableName,
    };
    const network: DatabaseNetworkProps = {
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
    };
    const step = (name: ArchiverStep, id: string, size: typeof LONG, db: boolean) =>
      new ArchiverFunction(this, id, {
        step: name,
        config: this.bundledConfig,
        environment,
        logRetention: props.logRetention,
        ...size,
        ...(db ? network : {}),
      });

    // plan: works from the bundled config alone.
    this.plan = step('plan', 'Plan', SHORT, false);

    // lock: acquires/releases leases (conditional updates) and records run outcomes.
    this.lock = step('lock', 'Lock', SHORT, false);
    lockTable.grant(this.lock, 'GetItem', 'UpdateItem');

    // export: streams rows into staging; settling a crashed batch may withdraw it (archive included).
    this.export = step('export', 'Export', LONG, true);
    this.databaseSecrets.grantRead(this.export);
    bucket.grantObjects(this.export, [layout.staging], { write: true, delete: true });
    bucket.grantObjects(this.export, layout.archives, { read: true, delete: true });
    lockTable.grant(this.export, 'GetItem', 'UpdateItem');

    // upload: copies staging to the write-once archive key, publishes the manifest, removes staging.
    this.upload = step('upload', 'Upload', LONG, false);
    bucket.grantObjects(this.upload, [layout.staging], { read: true, delete: true });
    bucket.grantObjects(this.upload, layout.archives, { read: true, write: true });
    lockTable.grant(this.upload, 'GetItem', 'UpdateItem');

    // verify: re-reads archive and manifest and digests the rows; withdraws (quarantining damage) on mismatch.
    this.verify = step('verify', 'Verify', LONG, true);
    this.databaseSecrets.grantRead(this.verify);
    bucket.grantObjects(this.verify, [layout.staging], { delete: true });
    bucket.grantObjects(this.verify, layout.archives, { read: true, delete: true });
    bucket.grantObjects(this.verify, [layout.quarantine], { write: true });
    lockTable.grant(this.verify, 'GetItem', 'UpdateItem');

    // delete: deletes the verified rows in one transaction; withdraws the archive if they changed meanwhile.
    this.delete = step('delete', 'Delete', LONG, true);
    this.databaseSecrets.grantRead(this.delete);
    bucket.grantObjects(this.delete, [layout.staging], { delete: true });
    bucket.grantObjects(this.delete, layout.archives, { read: true, delete: true });
    lockTable.grant(this.delete, 'GetItem', 'UpdateItem');

    // summary: reads the run's outcomes.
    this.summary = step('summary', 'Summary', SHORT, false);
    lockTable.grant(this.summary, 'Query');
  }

  /** The Lambda functions by step name, in pipeline order. */
  public get byStep(): Record<ArchiverStep, lambda.IFunction> {
    return {
      plan: this.plan.function,
      lock: this.lock.function,
      export: this.export.function,
      upload: this.upload.function,
      verify: this.verify.function,
      delete: this.delete.function,
      summary: this.summary.function,
    };
  }

  /** The functions in pipeline order. */
  public get all(): ArchiverFunction[] {
    return [this.plan, this.lock, this.export, this.upload, this.verify, this.delete, this.summary];
  }
}
