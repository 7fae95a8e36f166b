import { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { DeploymentConfig } from '../lambdas/shared/config/deployment-schema.js';
import type { ArchiveBucket } from './archive-bucket.js';
import { archiveLayout } from './archive-layout.js';
import {
  ArchiverFunction,
  type ArchiverFunctionProps,
  type DatabaseNetworkProps,
} from './archiver-function.js';
import { BundledConfig } from './bundled-config.js';
import { DatabaseCaBundle } from './database-ca-bundle.js';
import { DatabaseSecrets } from './database-secrets.js';
import type { ArchiverStep, PipelineStep } from './function-memory.js';
import type { LockTable } from './lock-table.js';

export interface ArchiverFunctionsProps extends DatabaseNetworkProps {
  /** The validated config: bundled into every function, and the source of its secrets and key layout. */
  readonly config: DeploymentConfig;
  /** Where the steps stage, publish, quarantine and withdraw archives; access is granted per key area. */
  readonly archiveBucket: ArchiveBucket;
  /** Leases, in-flight batches and run outcomes; each step gets only the item operations it issues. */
  readonly lockTable: LockTable;
  /**
   * Retention of each function's log group.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * PEM file (absolute path) of the CA certificates that sign the databases' server certificates, shipped with the
   * functions that connect to databases.
   * @default - those functions trust the Lambda runtime's Amazon CA file, which includes the RDS CAs
   */
  readonly databaseCaBundleFile?: string;
  /**
   * Reserved concurrency of each function that connects to databases.
   * @default - unreserved
   */
  readonly databaseFunctionConcurrency?: number;
}

/**
 * Audit events are written once: a writer reads the key first (a retry finds its own event) and never deletes.
 */
export const auditWriter = { read: true, write: true } as const;

/** The timeout of steps that stream, digest or delete a batch: the Lambda maximum, since each checks its own time budget. */
export const LONG_STEP = Duration.seconds(900);
/** The timeout of steps that only plan, lock or total up. */
export const SHORT_STEP = Duration.seconds(60);

/**
 * What every step shares, as ArchiverFunction props: bundled config, environment and logs; for database steps also
 * network placement, CA certificates and reserved concurrency.
 */
export type SharedStepProps = Omit<ArchiverFunctionProps, 'step' | 'timeout'>;

/**
 * The seven step functions and, in one place, what each may touch. Grants follow the code in lambdas/: which
 * objects a step reads, writes or deletes (by key area), which lock-table operations it issues, whether it opens
 * database connections (secrets, VPC). A step gets nothing it does not call.
 *
 * Every step that removes a batch (export settling a crashed attempt, verify, delete) goes through `withdrawBatch`,
 * which heads the archive, deletes the batch's staging objects and, when the archive is the batch's own, the archive
 * and its manifest; verify first copies a damaged archive to the quarantine area. Upload never removes a batch: it
 * keeps a damaged staged object in the quarantine and leaves the batch to the next export.
 */
export class ArchiverFunctions extends Construct {
  public readonly bundledConfig: BundledConfig;
  public readonly databaseSecrets: DatabaseSecrets;
  /** What the database steps trust for `tls: verify-full`. */
  public readonly databaseCaBundle: DatabaseCaBundle;
  public readonly plan: ArchiverFunction;
  public readonly lock: ArchiverFunction;
  public readonly export: ArchiverFunction;
  public readonly upload: ArchiverFunction;
  public readonly verify: ArchiverFunction;
  public readonly delete: ArchiverFunction;
  public readonly summary: ArchiverFunction;

  private readonly shared: SharedStepProps;
  private readonly databaseShared: SharedStepProps;

  constructor(scope: Construct, id: string, props: ArchiverFunctionsProps) {
    super(scope, id);
    const { archiveBucket: bucket, lockTable } = props;
    const layout = archiveLayout(props.config);
    this.bundledConfig = new BundledConfig(this, 'Config', { config: props.config });
    this.databaseSecrets = new DatabaseSecrets(props.config);
    this.databaseCaBundle = new DatabaseCaBundle(props.databaseCaBundleFile);
    this.shared = {
      config: this.bundledConfig,
      environment: {
        ARCHIVE_BUCKET: bucket.bucket.bucketName,
        LOCK_TABLE_NAME: lockTable.table.tableName,
      },
      logRetention: props.logRetention,
    };
    this.databaseShared = {
      ...this.shared,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
      databaseCaBundle: this.databaseCaBundle,
      reservedConcurrentExecutions: props.databaseFunctionConcurrency,
    };
    const step = (name: ArchiverStep, id: string, timeout: Duration, db: boolean) =>
      new ArchiverFunction(this, id, { step: name, ...this.stepProps(db), timeout });

    // plan: works from the bundled config; a dry run (plan report) also counts rows and reads lease and hold items.
    this.plan = step('plan', 'Plan', SHORT_STEP, true);
    this.databaseSecrets.grantRead(this.plan);
    lockTable.grant(this.plan, ['tableState', 'holds', 'configFingerprint'], 'GetItem');
    // Run-started and config-changed events; the config fingerprint and the run's children live in the lock table.
    lockTable.grant(this.plan, ['configFingerprint', 'runOutcomes'], 'UpdateItem');
    bucket.grantObjects(this.plan, [layout.audit], auditWriter);

    // lock: acquires/releases leases (conditional updates) and records run outcomes.
    this.lock = step('lock', 'Lock', SHORT_STEP, false);
    lockTable.grant(this.lock, ['tableState', 'runOutcomes'], 'GetItem', 'UpdateItem');
    lockTable.grant(this.lock, ['holds'], 'GetItem');
    bucket.grantObjects(this.lock, [layout.audit], auditWriter);

    // export: streams rows into staging; settling a crashed batch may withdraw it (archive included). Withdrawing
    // reads each staging object's head (whose batch wrote it) before deleting it: read goes with delete.
    this.export = step('export', 'Export', LONG_STEP, true);
    this.databaseSecrets.grantRead(this.export);
    bucket.grantObjects(this.export, [layout.staging], { read: true, write: true, delete: true });
    bucket.grantObjects(this.export, layout.archives, { read: true, delete: true });
    // A batch's archive copied under an earlier name of the lock table (restored under a new one) is kept in the
    // quarantine before a withdrawal removes it: the earlier table may have committed it.
    bucket.grantObjects(this.export, [layout.quarantine], { write: true });
    lockTable.grant(this.export, ['tableState'], 'GetItem', 'UpdateItem');
    lockTable.grant(this.export, ['holds'], 'GetItem');
    // Settling a batch whose delete committed enters its archive in the inventory; withdrawing one never removes an
    // archive the inventory lists.
    lockTable.grant(this.export, ['inventory'], 'UpdateItem', 'BatchGetItem');
    // ... and removes the restore watermarks of its archives for the table (one Query, then the marks by key).
    lockTable.grant(this.export, ['restored'], 'Query', 'BatchGetItem', 'BatchWriteItem');
    bucket.grantObjects(this.export, [layout.audit], auditWriter);

    // upload: copies staging to the write-once archive key, publishes the manifest, removes staging.
    this.upload = step('upload', 'Upload', LONG_STEP, false);
    bucket.grantObjects(this.upload, [layout.staging], { read: true, delete: true });
    bucket.grantObjects(this.upload, layout.archives, { read: true, write: true });
    // An orphan manifest (no committed archive, the data object this batch's) is removed before upload writes its own:
    // manifests only, never an archive's data.
    bucket.grantObjects(
      this.upload,
      layout.archives.map((pattern) => `${pattern}.manifest.json`),
      { delete: true },
    );
    // A staged object that is there but not export's is kept in the quarantine as evidence (write only); the batch
    // is left to the next export to discard.
    bucket.grantObjects(this.upload, [layout.quarantine], { write: true });
    lockTable.grant(this.upload, ['tableState'], 'GetItem', 'UpdateItem');
    // Whether the inventory lists a committed archive under a key whose manifest looks orphaned.
    lockTable.grant(this.upload, ['inventory'], 'BatchGetItem');

    // verify: re-reads archive and manifest (no database: delete digests the rows); withdraws damage, quarantined.
    this.verify = step('verify', 'Verify', LONG_STEP, false);
    bucket.grantObjects(this.verify, [layout.staging], { read: true, delete: true });
    bucket.grantObjects(this.verify, layout.archives, { read: true, delete: true });
    bucket.grantObjects(this.verify, [layout.quarantine], { write: true });
    lockTable.grant(this.verify, ['tableState'], 'GetItem', 'UpdateItem');
    // The manifest digest the inventory binds for an archive another batch committed under the same key.
    lockTable.grant(this.verify, ['inventory'], 'BatchGetItem');

    // delete: deletes the verified rows in one transaction; withdraws the archive if they changed meanwhile.
    this.delete = step('delete', 'Delete', LONG_STEP, true);
    this.databaseSecrets.grantRead(this.delete);
    bucket.grantObjects(this.delete, [layout.staging], { read: true, delete: true });
    bucket.grantObjects(this.delete, layout.archives, { read: true, delete: true });
    // An archive changed after verification is withdrawn with a copy kept as evidence.
    bucket.grantObjects(this.delete, [layout.quarantine], { write: true });
    lockTable.grant(this.delete, ['tableState'], 'GetItem', 'UpdateItem');
    // Commits enter the batch's archives; a withdrawal never removes one the inventory lists.
    lockTable.grant(this.delete, ['inventory'], 'UpdateItem', 'BatchGetItem');
    // The commit removes the restore watermarks of its archives for the table (one Query, then the marks by key).
    lockTable.grant(this.delete, ['restored'], 'Query', 'BatchGetItem', 'BatchWriteItem');

    // summary: reads the run's outcomes.
    this.summary = step('summary', 'Summary', SHORT_STEP, false);
    lockTable.grant(this.summary, ['runOutcomes'], 'Query');
    bucket.grantObjects(this.summary, [layout.audit], auditWriter);
  }

  /**
   * The props every step shares, for steps built elsewhere (the restore workflow): the same bundle, environment and
   * logs; with `connectsToDatabase`, also the network placement, CA certificates and reserved concurrency.
   */
  public stepProps(connectsToDatabase: boolean): SharedStepProps {
    return connectsToDatabase ? this.databaseShared : this.shared;
  }

  /** The Lambda functions by step name, in pipeline order. */
  public get byStep(): Record<PipelineStep, lambda.IFunction> {
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
