import { join } from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ArchiveBucket } from './archive-bucket.js';
import { STATE_MACHINES_DIR } from './archive-state-machines.js';
import { ArchiverFunction } from './archiver-function.js';
import { type ArchiverFunctions, auditWriter, LONG_STEP } from './archiver-functions.js';
import { AslStateMachine } from './asl-state-machine.js';
import type { LockTable } from './lock-table.js';

/** Planning and listing read sidecars and pages of keys; its Task allows 360 s. */
const PLAN_STEP = Duration.seconds(300);
/** Totals results and resets sequences; its Task allows 360 s. */
const SUMMARY_STEP = Duration.seconds(300);

export interface RestoreWorkflowProps {
  /** The archive steps: the restore steps share their bundle, environment, network, CA certificates and secrets. */
  readonly functions: ArchiverFunctions;
  /** The bucket the restore reads archives from (through `readableKeys`) and writes its audit events to. */
  readonly archiveBucket: ArchiveBucket;
  /** The lock table: the restore reads the inventory and the batch in flight, and keeps its watermarks and results. */
  readonly lockTable: LockTable;
  /**
   * Key pattern (relative to the bucket) the restore may read: the archiver's prefix, which also holds archives of
   * the Python tool's layout under database names the config need not know.
   */
  readonly readableKeys: string;
  /** Key pattern of the audit trail, where the summary step writes each restore's event. */
  readonly auditKeys: string;
  /**
   * Name of the state machine, as operators find it in the console.
   * @default `${stackName}-restore`
   */
  readonly stateMachineName?: string;
  /**
   * Execution log level.
   * @default sfn.LogLevel.ERROR
   */
  readonly logLevel?: sfn.LogLevel;
  /**
   * Retention of the execution log group.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The console restore: `restore.asl.json` as a named Standard state machine, started by hand with a restore request,
 * and its three functions (same conventions as the archive steps). Grants follow lambdas/restore-*: plan lists and
 * reads archives and sidecars, queries the table's inventory of committed archives, reads the source table's batch in
 * flight (its archives are left out), checks the target table and records the keys of the archives it found; each
 * file step reads one archive, restores it in the database and marks it restored; summary records and totals the
 * results, checks each archive the plan found has one, and finishes the table. None of them
 * writes or deletes an object.
 */
export class RestoreWorkflow extends Construct {
  public readonly plan: ArchiverFunction;
  public readonly file: ArchiverFunction;
  public readonly summary: ArchiverFunction;
  public readonly stateMachine: AslStateMachine;

  constructor(scope: Construct, id: string, props: RestoreWorkflowProps) {
    super(scope, id);
    const { functions, archiveBucket: bucket, lockTable } = props;
    const shared = functions.stepProps(true);

    this.plan = new ArchiverFunction(this, 'Plan', { step: 'restore-plan', ...shared, timeout: PLAN_STEP });
    functions.databaseSecrets.grantRead(this.plan);
    bucket.grantObjects(this.plan, [props.readableKeys], { read: true });
    // The table's committed archives, one paginated Query, which the listing must hold; a list page reads the entries
    // of the archives of a day several runs archived (their commit order) by key.
    lockTable.grant(this.plan, ['inventory'], 'Query', 'BatchGetItem');
    // The source table's batch in flight, whose archives a restore leaves out (their rows were never deleted), and
    // the target's legal hold, which refuses strategy overwrite.
    lockTable.grant(this.plan, ['tableState', 'holds'], 'GetItem');
    // The keys of the archives it found, for the summary's check: one BatchWriteItem for most restores.
    lockTable.grant(this.plan, ['restorePlans'], 'BatchWriteItem');

    this.file = new ArchiverFunction(this, 'File', { step: 'restore-file', ...shared, timeout: LONG_STEP });
    functions.databaseSecrets.grantRead(this.file);
    bucket.grantObjects(this.file, [props.readableKeys], { read: true });
    // A group's watermarks and inventory entries are read in one BatchGetItem each, its watermarks written in one
    // BatchWriteItem.
    lockTable.grant(this.file, ['restored'], 'BatchGetItem', 'BatchWriteItem');
    lockTable.grant(this.file, ['inventory'], 'BatchGetItem');
    // What a group wrote of archives that get no watermark, read by its retries: one BatchGetItem and one
    // BatchWriteItem a group.
    lockTable.grant(this.file, ['restoreWrites'], 'BatchGetItem', 'BatchWriteItem');
    // The target's legal hold, checked again by each group of a restore with strategy overwrite.
    lockTable.grant(this.file, ['holds'], 'GetItem');

    this.summary = new ArchiverFunction(this, 'Summary', {
      step: 'restore-summary',
      ...shared,
      timeout: SUMMARY_STEP,
    });
    functions.databaseSecrets.grantRead(this.summary);
    // A page's results are written 25 to a BatchWriteItem.
    lockTable.grant(this.summary, ['restoreResults'], 'BatchWriteItem', 'Query');
    // The keys the plan found, read back in one Query, each of which must have a result.
    lockTable.grant(this.summary, ['restorePlans'], 'Query');
    bucket.grantObjects(this.summary, [props.auditKeys], auditWriter);

    const steps = {
      RestorePlanFunctionArn: this.plan,
      RestoreFileFunctionArn: this.file,
      RestoreSummaryFunctionArn: this.summary,
    };
    this.stateMachine = new AslStateMachine(this, 'StateMachine', {
      definitionFile: join(STATE_MACHINES_DIR, 'restore.asl.json'),
      stateMachineName: props.stateMachineName ?? `${Stack.of(this).stackName}-restore`,
      substitutions: Object.fromEntries(
        Object.entries(steps).map(([name, step]) => [name, step.function.functionArn]),
      ),
      logLevel: props.logLevel,
      logRetention: props.logRetention,
    });
    for (const step of Object.values(steps)) this.stateMachine.grantInvoke(step.function);
  }
}
