import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import {
  type BatchBounds,
  manifestKeyFor,
  quarantineKey,
  type TableLocation,
  type WithdrawReason,
  writeOnceProbeKey,
} from '../archive/format.js';
import type { InventoryEntry } from '../archive/inventory.js';
import { RowDigest, rowDigestFromSql } from '../archive/row-digest.js';
import type { ArchiveStore, ObjectHead } from '../archive/store.js';
import { createLinesGunzip, LineMeter } from '../archive/stream.js';
import { versionDigestFromSql } from '../archive/version-digest.js';
import { assertCutoffAllowed } from '../config/governance.js';
import type { ResolvedTable, TableIdentity } from '../config/resolved-table.js';
import type { ArchiverConfig } from '../config/schema.js';
import { inReadOnlyTransaction } from '../database/db.js';
import { describeTable, type TableShape } from '../database/table-shape.js';
import {
  batchPredicateSql,
  digestSelectSql,
  rowHashSql,
  rowSourceSql,
  rowVersionSql,
} from '../database/table-sql.js';
import {
  BatchOutcomeUnknownError,
  ConfigError,
  classifyDatabaseError,
  DatabaseUnavailableError,
  DeleteInProgressError,
  StorageUnavailableError,
  TableNotUsableError,
} from '../errors/step-errors.js';
import type { BatchObject, InFlight, TableState } from '../lock-table/table-state.js';
import type { StepDeps } from '../step/step-deps.js';
import type { TableTask } from '../step/table-task.js';
import { batchSpan, batchTotals, forEachObject, REQUEST_CONCURRENCY } from './batch-objects.js';
import {
  afterDeleteSettled,
  assertTransition,
  readingChange,
  recoveryOf,
  resumeOrWithdraw,
} from './lifecycle.js';

export const BATCH_ID_METADATA = 'batch-id';
/** The lock table of the deployment whose upload created an archive object (ArchiveInventory.lockTableName). */
export const LOCK_TABLE_METADATA = 'lock-table';

export function tableLocation(config: ArchiverConfig, table: ResolvedTable): TableLocation {
  return { prefix: config.s3.prefix, database: table.database, schema: table.schema, table: table.name };
}

/**
 * The table as the batch in flight read it: its key, timestamp column and zone as its record keeps them, whatever
 * the config says now. The batch's bounds and windows only mean what they meant at export read this way.
 */
function tableAsExported<T extends TableIdentity>(table: T, inFlight: Pick<InFlight, 'manifest'>): T {
  const exported = inFlight.manifest;
  if (!exported) return table;
  return {
    ...table,
    keyColumns: exported.keyColumns,
    timestampColumn: exported.timestampColumn,
    timestampTimeZone: exported.timestampTimeZone,
  };
}

export const tableLabel = (task: Pick<TableTask, 'database' | 'table'>) => ({
  database: task.database,
  table: task.table,
});

/**
 * Refuses a task whose cut-off (or `cutoff`, e.g. the upper bound of the batch in flight) is later than the table's
 * retention allows at the step's clock and at the execution's start: a ConfigError the ASL catches, before any row is
 * read or deleted.
 */
export function assertTaskCutoff(
  deps: Pick<StepDeps, 'config' | 'now'>,
  task: TableTask,
  table: ResolvedTable,
  cutoff: string = task.cutoff,
): void {
  assertCutoffAllowed(deps.config, task.database, table.settings, cutoff, deps.now(), task.startedAt);
}

/** Count and digest of the rows a batch predicate selects now, computed by PostgreSQL over the archive line text. */
export async function digestBatchInDatabase(
  client: pg.ClientBase,
  shape: TableShape,
  bounds: BatchBounds,
): Promise<{ rows: number; rowDigest: string }> {
  const hashes = `SELECT ${rowHashSql(shape)} AS h FROM ${rowSourceSql(shape)} AS t WHERE ${batchPredicateSql(shape, bounds)}`;
  const result = await client.query<{ rows: string; hi: string; lo: string }>(digestSelectSql(hashes));
  const row = result.rows[0] ?? { rows: '0', hi: '0', lo: '0' };
  return { rows: Number(row.rows), rowDigest: rowDigestFromSql(row) };
}

/**
 * The server an xid belongs to: system identifier and timeline. A cluster restored by archive recovery (point in
 * time), a blue/green switchover or a promoted replica has another identity, and an xid from before means nothing
 * there. One restored from a copy of its data directory keeps both, and its transaction ids are given again: the rows
 * check what it tells (deleteOutcome). The timeline is the one WAL is
 * written on now (the first 8 hex digits of the current WAL file's name): the last checkpoint's, which
 * pg_control_checkpoint() reports, stays the old one after a promotion until the next checkpoint ends, minutes on a
 * busy server, and a delete retried across a failover would then ask the new primary about an xid of the old.
 * Undefined where the server does not let us read it (some managed services); xid lookups then rely on the row
 * comparison alone.
 */
export async function serverIdentity(client: pg.ClientBase): Promise<string | undefined> {
  try {
    const result = await client.query<{ id: string }>(
      `SELECT pg_catalog.format('%s:%s', s.system_identifier,
                pg_catalog.concat('x', pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int) AS id
         FROM pg_catalog.pg_control_system() s`,
    );
    return result.rows[0]?.id;
  } catch (error) {
    // A role that may not read pg_control_system gets no identity; a connection that broke is retried, not taken
    // for another server.
    throwIfUnavailable(error);
    return undefined;
  }
}

/** Rethrows an error that says the database went away (retried by the state machine), and nothing else. */
function throwIfUnavailable(error: unknown): void {
  const classified = classifyDatabaseError(error);
  if (classified instanceof DatabaseUnavailableError) throw classified;
}

/**
 * Whether the delete transaction of an in-flight batch committed, from the xid stored before COMMIT: PostgreSQL
 * keeps the outcome of recent transactions, so no marker row is needed in the user's database. `unknown` when the
 * xid is too old for the server to remember, belongs to another server, or lies in its future.
 */
export async function deleteTransactionStatus(
  client: pg.ClientBase,
  inFlight: Pick<InFlight, 'deleteXid' | 'deleteServer'>,
): Promise<'committed' | 'aborted' | 'unknown'> {
  if (!inFlight.deleteXid) return 'aborted';
  if (inFlight.deleteServer !== undefined && inFlight.deleteServer !== (await serverIdentity(client)))
    return 'unknown';
  let status: string | null;
  try {
    const result = await client.query<{ status: string | null }>(
      'SELECT pg_catalog.pg_xact_status($1::pg_catalog.xid8) AS status',
      [inFlight.deleteXid],
    );
    status = result.rows[0]?.status ?? null;
  } catch (error) {
    throwIfUnavailable(error);
    // "transaction ID ... is in the future": this server never ran that transaction.
    return 'unknown';
  }
  if (status === 'in progress') {
    throw new DeleteInProgressError(
      `the delete transaction ${inFlight.deleteXid} of a previous attempt is still open`,
    );
  }
  if (status === 'committed') return 'committed';
  return status === 'aborted' ? 'aborted' : 'unknown';
}

/**
 * Whether every row version the batch's export read (tableoid, slot and writing transaction: table-sql.ts
 * rowVersionSql) is still in the table, by their count and digest. The delete removes exactly those versions or
 * commits nothing, and a version once deleted never comes back, so while all are there no delete of the batch
 * committed in the history this server has: a cluster restored from a copy of its data directory (a volume or
 * file-system snapshot, started by crash recovery) keeps its system identifier and timeline, only its transaction
 * counter goes back, and the delete's transaction id later names one of the application's. False when the batch has no
 * version digest (an earlier version's record) or the table can no longer be read as the batch read it.
 */
async function exportedVersionsRemain(
  client: pg.ClientBase,
  table: TableIdentity,
  inFlight: InFlight,
): Promise<boolean> {
  const { versionDigest } = inFlight;
  if (versionDigest === undefined || !inFlight.manifest) return false;
  return inReadOnlyTransaction(client, async () => {
    let shape: TableShape;
    try {
      shape = await describeTable(client, tableAsExported(table, inFlight), 'rows');
    } catch (error) {
      if (error instanceof TableNotUsableError) return false;
      throw error;
    }
    const predicates = inFlight.objects.map((object) => `(${batchPredicateSql(shape, object.bounds)})`);
    const found = await client.query<{ rows: string; sum: string }>(
      `SELECT count(*)::text AS rows, coalesce(sum(v), 0)::text AS sum
         FROM (SELECT ${rowVersionSql()} AS v FROM ${rowSourceSql(shape)} AS t WHERE ${predicates.join(' OR ')}) AS versions`,
    );
    const row = found.rows[0];
    const rows = batchTotals(inFlight).rowCount;
    return (
      row !== undefined &&
      rows > 0 &&
      Number(row.rows) === rows &&
      versionDigestFromSql(row.sum) === versionDigest
    );
  });
}

/**
 * Throws DeleteInProgressError while transaction `xid` holds its transaction id's lock, whatever pg_xact_status says of
 * it. A commit is in the commit log before the transaction leaves the running ones (with synchronous replication, for
 * as long as it waits for a standby), and until it has left them its deleted rows stay visible; it releases its locks
 * only after: once the lock is gone, a snapshot taken next sees what it did. Some releases' pg_xact_status read the
 * commit log first and answered `committed` in that window.
 */
export async function assertTransactionEnded(client: pg.ClientBase, xid: string): Promise<void> {
  const { rows } = await client.query<{ running: boolean }>(
    `SELECT EXISTS (SELECT FROM pg_catalog.pg_locks
                     WHERE locktype OPERATOR(pg_catalog.=) 'transactionid'
                       AND transactionid OPERATOR(pg_catalog.=) $1::pg_catalog.xid8::pg_catalog.xid) AS running`,
    [xid],
  );
  if (rows[0]?.running)
    throw new DeleteInProgressError(
      `the delete transaction ${xid} of a previous attempt is still committing`,
    );
}

/**
 * What the server tells of the delete of a batch in flight (deleteTransactionStatus), unless its rows contradict it:
 * `committed` while every row version the batch exported is still in the table (exportedVersionsRemain), read once the
 * transaction has ended (assertTransactionEnded), is a transaction id the server reused after a restore, and the
 * delete did not commit.
 */
export async function deleteOutcome(
  client: pg.ClientBase,
  table: TableIdentity,
  inFlight: InFlight,
): Promise<'committed' | 'aborted' | 'unknown'> {
  const status = await deleteTransactionStatus(client, inFlight);
  if (status !== 'committed' || !inFlight.deleteXid) return status;
  await assertTransactionEnded(client, inFlight.deleteXid);
  return (await exportedVersionsRemain(client, table, inFlight)) ? 'aborted' : 'committed';
}

/**
 * Settles a batch whose delete was under way when its attempt ended. The transaction's recorded outcome decides
 * (deleteOutcome);
 * when the server cannot tell, the rows decide, read as the batch read them (tableAsExported): none left of any
 * object means the delete committed, exactly the archived rows of every object means it did not. Anything else
 * cannot be settled safely, and nothing is deleted or withdrawn: an operator decides.
 */
export async function settleDelete(
  client: pg.ClientBase,
  store: ArchiveStore,
  table: ResolvedTable,
  inFlight: InFlight,
): Promise<'committed' | 'aborted'> {
  const status = await deleteOutcome(client, table, inFlight);
  if (status !== 'unknown') return status;
  // By the lines, not the row versions: the server cannot tell mostly after a restore or a switch to another server,
  // where the same rows may carry other xmins and slots.
  if (!inFlight.manifest) {
    throw new BatchOutcomeUnknownError(
      `cannot tell whether the delete of batch ${inFlight.batchId} committed (transaction ${inFlight.deleteXid} is unknown to this server), and its record, written by an earlier version, does not say how it read the table (its key, timestamp column and zone), so its rows cannot decide; nothing was changed (settle it with batch settle)`,
    );
  }
  const now = await inReadOnlyTransaction(client, async () => {
    let described: TableShape;
    try {
      described = await describeTable(client, tableAsExported(table, inFlight), 'rows');
    } catch (error) {
      if (!(error instanceof TableNotUsableError)) throw error;
      throw new BatchOutcomeUnknownError(
        `cannot tell whether the delete of batch ${inFlight.batchId} committed (transaction ${inFlight.deleteXid} is unknown to this server), and the table can no longer be read as the batch was (${error.message}); nothing was changed`,
      );
    }
    const found = [];
    for (const object of inFlight.objects)
      found.push(await digestBatchInDatabase(client, described, object.bounds));
    return found;
  });
  if (now.every((object) => object.rows === 0)) return 'committed';
  let intact = true;
  for (const [i, object] of inFlight.objects.entries()) {
    intact &&=
      now[i]?.rows === object.figures.rowCount &&
      now[i]?.rowDigest === (await archivedRowDigest(store, object));
  }
  if (intact) return 'aborted';
  const left = now.reduce((sum, object) => sum + object.rows, 0);
  throw new BatchOutcomeUnknownError(
    `cannot tell whether the delete of batch ${inFlight.batchId} (${inFlight.objects.length} objects from ${batchSpan(inFlight).firstDay}) committed (transaction ${inFlight.deleteXid} is unknown to this server, and ${left} of its ${batchTotals(inFlight).rowCount} rows are left); nothing was changed`,
  );
}

/**
 * The row digest of an object's lines: recorded by versions that computed it on export, otherwise measured now
 * from the verified, pinned object. Only an unsettled delete needs it, rarely, so export never pays for it.
 */
async function archivedRowDigest(store: ArchiveStore, object: BatchObject): Promise<string> {
  if (object.figures.rowDigest) return object.figures.rowDigest;
  const body = await store.getStream(object.archiveKey, object.pin);
  if (!body) throw new BatchOutcomeUnknownError(`cannot read ${object.archiveKey} to settle its batch`);
  const digest = new RowDigest();
  const meter = new LineMeter(digest);
  try {
    await pipeline(body, createLinesGunzip(), async (lines: AsyncIterable<Buffer>) => {
      for await (const chunk of lines) meter.push(chunk);
    });
  } catch (error) {
    // zlib's errors mean a damaged object, for an operator; anything else is the network, which the step retries.
    if (((error as { code?: string }).code ?? '').startsWith('Z_')) throw error;
    throw new StorageUnavailableError(`reading ${object.archiveKey} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  meter.end();
  return digest.value();
}

/**
 * Writes the table's in-flight record under the task's lease, renewing the lease, provided the current record is
 * as `expect` says (see LeaseStore.setInFlight); otherwise LeaseLostError and nothing is written. Every stage it
 * may have expected must be allowed to go to the new one (lifecycle.ts).
 */
export async function recordInFlight(
  deps: Pick<StepDeps, 'config' | 'locks'>,
  task: TableTask,
  inFlight: InFlight,
  expect: NonNullable<Parameters<StepDeps['locks']['setInFlight']>[5]>,
): Promise<void> {
  const from =
    expect === 'none' ? ['none' as const] : Array.isArray(expect) ? expect : [expect.unchanged.stage];
  for (const stage of from) assertTransition(stage, inFlight.stage);
  await deps.locks.setInFlight(
    task.database,
    task.table,
    task.lease,
    deps.config.defaults.leaseSeconds,
    inFlight,
    expect,
  );
}

/**
 * Renews the task's lease for `leaseSeconds` plus `waitSeconds` (a throttle pause the state machine waits next): each
 * step calls it first, so neither retries nor waits between steps outlast the lease, and acts on the table's state it
 * returns (the lease item as the renew left it). LeaseLostError once it is lost.
 */
export function renewLease(
  deps: Pick<StepDeps, 'config' | 'locks'>,
  task: TableTask,
  waitSeconds = 0,
): Promise<TableState> {
  return deps.locks.renew(
    task.database,
    task.table,
    task.lease,
    deps.config.defaults.leaseSeconds + waitSeconds,
  );
}

/**
 * Records a committed batch: enters each of its archives in the inventory and removes the restore watermarks of its
 * archive keys for this table (the rows they name left the table again, so a later restore must write them), then
 * clears it from the lease item (fenced), adds it to the totals and emits the metrics. A crash before the clearing
 * leaves the batch `deleting`: the next attempt settles it as committed and comes here again (the inventory writes
 * and the watermark removals are idempotent).
 */
export async function recordCommitted(
  deps: Pick<StepDeps, 'inventory' | 'locks' | 'now' | 'telemetry'>,
  task: TableTask,
  inFlight: InFlight,
): Promise<void> {
  assertTransition(inFlight.stage, 'committed');
  const committedAt = inFlight.deleteAt ?? deps.now().toISOString();
  await Promise.all([
    forEachObject(
      inFlight.objects,
      (object) =>
        deps.inventory.record(task.database, task.table, {
          archiveKey: object.archiveKey,
          day: object.day,
          ...(object.span ? { span: object.span } : {}),
          batchId: inFlight.batchId,
          runId: inFlight.runId,
          figures: object.figures,
          pin: object.pin,
          ...(object.manifestSha256 ? { manifestSha256: object.manifestSha256 } : {}),
          committedAt,
          ...lcMonetaryOf(inFlight, object),
        }),
      REQUEST_CONCURRENCY,
    ),
    // Rows restored into the table and archived again by this batch went back under the same keys: the watermark
    // saying the table holds those archives is stale (one query per batch when the table never was a target).
    deps.inventory.forgetRestored(
      task.database,
      task.table,
      inFlight.objects.map((object) => object.archiveKey),
    ),
  ]);
  const totals = batchTotals(inFlight);
  await deps.locks.clearInFlight(task.database, task.table, task.lease, inFlight, {
    rows: totals.rowCount,
    bytes: totals.compressedBytes,
  });
  const label = tableLabel(task);
  deps.telemetry.metric('RowsDeleted', 'Count', totals.rowCount, label);
  deps.telemetry.metric('RowsArchived', 'Count', totals.rowCount, label);
  deps.telemetry.metric('BytesArchived', 'Bytes', totals.compressedBytes, label);
  deps.telemetry.metric('BatchesArchived', 'Count', 1, label);
  deps.telemetry.metric('ObjectsArchived', 'Count', inFlight.objects.length, label);
}

/**
 * The `lcMonetary` of the manifest an object's commit binds: the one verify read (an archive identical rows made
 * before keeps its own manifest, perhaps from before manifests recorded it), else the batch's own.
 */
function lcMonetaryOf(inFlight: InFlight, object: BatchObject): Pick<InventoryEntry, 'lcMonetary'> {
  const lcMonetary =
    object.manifestLcMonetary === undefined ? inFlight.manifest?.lcMonetary : object.manifestLcMonetary;
  return lcMonetary ? { lcMonetary } : {};
}

/**
 * Marks the batch `withdrawing`: from then on no step takes it further, and the next export withdraws it whatever
 * stage it had reached. A record already `withdrawing` (a crash mid-withdrawal) is claimed again the same way, to
 * finish the job.
 */
export async function claimForWithdrawal(
  deps: Pick<StepDeps, 'config' | 'locks'>,
  task: TableTask,
  inFlight: InFlight,
): Promise<void> {
  await recordInFlight(deps, task, { ...inFlight, stage: 'withdrawing' }, { unchanged: inFlight });
}

/**
 * Copies an object the batch found damaged to the quarantine area, where it stays as evidence: under the folder of
 * `at`, one per withdrawal, so the objects it keeps (an archive and its manifest) lie side by side.
 */
export async function keepAsEvidence(
  deps: Pick<StepDeps, 'config' | 'store'>,
  inFlight: InFlight,
  key: string,
  head: ObjectHead,
  reason: WithdrawReason,
  at = new Date(),
): Promise<void> {
  await deps.store.copyOnce(
    key,
    quarantineKey(deps.config.s3.prefix, key, reason, at),
    { storageClass: 'STANDARD', kmsKeyId: deps.config.s3.kmsKeyId },
    { [BATCH_ID_METADATA]: inFlight.batchId },
    head.size,
  );
}

/**
 * Takes back a batch whose delete never committed: its rows are all still in the database, so its archive must not
 * stay live. The caller passes the record it read and decided on; the batch is first claimed (`withdrawing`) with a
 * write that succeeds only if that record is unchanged, so an invocation acting on a stale view (the batch since
 * deleted and committed by a retry or a new lease holder) fails there and removes nothing. Only objects this batch
 * wrote are removed; an identical archive committed earlier never is. The keys named in `evidence` (archives found
 * damaged or changed, staged objects that are not the ones export wrote) are first copied to the quarantine, and so
 * is an archive of the batch copied under an earlier name of the lock table.
 */
export async function withdrawBatch(
  deps: Pick<StepDeps, 'config' | 'locks' | 'store' | 'inventory' | 'telemetry'>,
  task: TableTask,
  inFlight: InFlight,
  reason: WithdrawReason,
  evidence: readonly string[] = [],
): Promise<void> {
  const { store } = deps;
  await claimForWithdrawal(deps, task, inFlight);
  // Ownership is read from each object right before it is removed: an invocation still running beside its retry
  // must not take an object another batch has put under the same (content-addressed) key since. An object without
  // a batch-id counts as ours only under keys this batch wrote (its staging keys; the archive if upload created it).
  const ours = (head: ObjectHead | undefined, wroteKey: boolean): head is ObjectHead => {
    const writer = head?.metadata[BATCH_ID_METADATA];
    return head !== undefined && (writer === inFlight.batchId || (writer === undefined && wroteKey));
  };
  const owned = async (key: string, wroteKey: boolean) => {
    const head = await store.head(key);
    return ours(head, wroteKey) ? head : undefined;
  };
  // A committed archive is never removed, whatever its object says: a stale upload of this batch may have completed
  // its copy after the batch left the lease item once, and the next batch adopted that object and committed it.
  const committed = await deps.inventory.entries(
    task.database,
    task.table,
    inFlight.objects.map((object) => object.archiveKey),
  );
  const removeIfOwned = async (key: string, wroteKey: boolean) => {
    if (!(await owned(key, wroteKey))) return;
    // Fenced: a withdrawal whose lease was lost meanwhile removes nothing another holder may have published since.
    await deps.locks.assertHolding(task.database, task.table, task.lease, inFlight.batchId);
    await store.deleteKeys([key]);
  };
  const quarantinedAt = new Date();
  const quarantine = (key: string, head: ObjectHead) =>
    keepAsEvidence(deps, inFlight, key, head, reason, quarantinedAt);
  const lockTable = deps.inventory.lockTableName;
  await forEachObject(inFlight.objects, async (object) => {
    const staged = evidence.includes(object.stagingKey) && (await owned(object.stagingKey, true));
    if (staged) await quarantine(object.stagingKey, staged);
    await removeIfOwned(object.stagingKey, true);
    // A batch recorded before its manifests were kept in its record staged them.
    if (!inFlight.manifest) await removeIfOwned(manifestKeyFor(object.stagingKey), true);
    if (committed.has(object.archiveKey)) return;
    const createdArchive = object.createdArchive === true;
    const head = await store.head(object.archiveKey);
    // Another batch's archive under the key (identical rows archived before): neither it nor its manifest is ours.
    if (head && !ours(head, createdArchive)) return;
    if (head) {
      // An archive of this batch that names another lock table was copied before the lock table was restored under a
      // new name: the earlier table may have gone on to commit the batch, its rows deleted, where this one's record
      // and inventory stop at the restore's point. Kept in the quarantine, it is never the only copy removed; so is
      // its manifest, which reading it back needs (the earlier table's entry binds its digest).
      const underAnotherLockTable = (head.metadata[LOCK_TABLE_METADATA] ?? lockTable) !== lockTable;
      if (evidence.includes(object.archiveKey) || underAnotherLockTable)
        await quarantine(object.archiveKey, head);
      const manifestKey = manifestKeyFor(object.archiveKey);
      const manifestHead = underAnotherLockTable ? await store.head(manifestKey) : undefined;
      if (manifestHead) await quarantine(manifestKey, manifestHead);
      await removeIfOwned(object.archiveKey, createdArchive);
    }
    // The manifest is removed even when the archive is already gone: a withdrawal that ended between the two, or a
    // stale upload that wrote it after the archive went, would otherwise leave it to the next batch of these rows.
    await removeIfOwned(manifestKeyFor(object.archiveKey), createdArchive);
  });
  const [first] = inFlight.objects;
  if (first) await removeIfOwned(writeOnceProbeKey(first.stagingKey), true);
  await deps.locks.clearInFlight(task.database, task.table, task.lease, inFlight);
  deps.telemetry.warn('batch withdrawn; its rows stay in the database', {
    ...tableLabel(task),
    batchId: inFlight.batchId,
    days: `${batchSpan(inFlight).firstDay}..${batchSpan(inFlight).lastDay}`,
    objects: inFlight.objects.length,
    reason,
  });
}

/**
 * Refuses a batch, not yet deleting, whose objects lie outside the deployed `s3.prefix`: the config changed it with
 * the batch in flight. The functions' roles are built per prefix, so carrying the batch on or withdrawing it would
 * fail with S3's AccessDenied, which no retry cures; the operator is told how to let it finish first. (A deleting
 * batch is settled from the database and the inventory: its recorded keys are kept as they are.)
 */
function refuseMovedPrefix(config: ArchiverConfig, task: TableTask, inFlight: InFlight): void {
  const { prefix } = config.s3;
  if (inFlight.stage === 'deleting') return;
  const moved = inFlight.objects.find(
    (object) => !object.stagingKey.startsWith(prefix) || !object.archiveKey.startsWith(prefix),
  );
  if (!moved) return;
  const was = moved.stagingKey.slice(0, moved.stagingKey.indexOf('_staging/'));
  throw new ConfigError(
    `the batch in flight of ${task.database}/${task.table} (${inFlight.stage}) keeps its objects under the s3.prefix "${was}", not under this deployment's "${prefix}", whose functions cannot reach them: deploy s3.prefix "${was}" again until a run has finished the batch (status shows none in flight), then change it; nothing was changed`,
  );
}

/**
 * Finishes or undoes a batch an earlier attempt left in flight, as lifecycle.ts decides: `recoveryOf` first; a batch
 * to carry on, or a `deleting` one to settle (settleDelete), with the table as it is read now (decideWithTable).
 * True when the batch is carried on (the caller resumes it from its stage), false when it left the lease item.
 */
export async function recoverInFlight(
  deps: Pick<StepDeps, 'config' | 'store' | 'locks' | 'inventory' | 'database' | 'telemetry' | 'now'>,
  task: TableTask,
  table: ResolvedTable,
  inFlight: InFlight,
): Promise<boolean> {
  refuseMovedPrefix(deps.config, task, inFlight);
  const first = recoveryOf(inFlight, task.cutoff);
  const recovery =
    first.action === 'resume' || first.action === 'settle-delete'
      ? await decideWithTable(deps, task, table, inFlight, first.action === 'settle-delete')
      : first;
  switch (recovery.action) {
    case 'resume':
      return true;
    case 'resume-verified':
      await recordInFlight(
        deps,
        task,
        { ...inFlight, stage: 'verified', deleteXid: undefined, deleteServer: undefined },
        { unchanged: inFlight },
      );
      return true;
    case 'record-committed':
      await recordCommitted(deps, task, inFlight);
      return false;
    case 'withdraw':
      await withdrawBatch(deps, task, inFlight, recovery.reason);
      return false;
  }
}

/**
 * A batch to carry on, or a `deleting` one to settle, decided with the database: a committed delete is recorded
 * whatever became of the table since (dropped, even); a batch whose rows are all in the table is carried on only if
 * the table is still read as the batch read it (lifecycle.ts readingChange).
 */
async function decideWithTable(
  deps: Pick<StepDeps, 'store' | 'database' | 'telemetry'>,
  task: TableTask,
  table: ResolvedTable,
  inFlight: InFlight,
  settling: boolean,
) {
  const db = await deps.database(task.database);
  return db.withConnection(async (client) => {
    const settled = settling ? await settleDelete(client, deps.store, table, inFlight) : undefined;
    if (settled === 'committed') return afterDeleteSettled(inFlight, task.cutoff, settled);
    // In a transaction, as every description: it sets the archiver's settings again (a pooler may have reset them).
    const shape = await inReadOnlyTransaction(client, () => describeTable(client, table));
    const changed = readingChange(inFlight, shape);
    if (changed) deps.telemetry.warn('batch in flight read otherwise now', { ...tableLabel(task), changed });
    return settled
      ? afterDeleteSettled(inFlight, task.cutoff, settled, changed)
      : resumeOrWithdraw(inFlight, task.cutoff, changed);
  });
}
