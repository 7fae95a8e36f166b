import type pg from 'pg';
import { type BatchBounds, manifestKeyFor, quarantineKey, type TableLocation } from './archive-format.js';
import type { ArchiverConfig, ResolvedTable } from './config.js';
import type { StepDeps } from './deps.js';
import { DeleteInProgressError } from './errors.js';
import type { InFlight } from './locks.js';
import { rowDigestFromSql } from './row-digest.js';
import {
  batchPredicateSql,
  digestSelectSql,
  qualifiedName,
  rowLineSql,
  type TableShape,
} from './table-sql.js';
import type { TableTask } from './table-task.js';

export const BATCH_ID_METADATA = 'batch-id';

export function tableLocation(config: ArchiverConfig, table: ResolvedTable): TableLocation {
  return { prefix: config.s3.prefix, database: table.database, schema: table.schema, table: table.name };
}

export const tableLabel = (task: Pick<TableTask, 'database' | 'table'>) => ({
  database: task.database,
  table: task.table,
});

/** Count and digest of the rows a batch predicate selects now, computed by PostgreSQL over the archive line text. */
export async function digestBatchInDatabase(
  client: pg.ClientBase,
  shape: TableShape,
  bounds: BatchBounds,
): Promise<{ rows: number; rowDigest: string }> {
  const hashes = `SELECT md5(${rowLineSql(shape)}) AS h FROM ${qualifiedName(shape)} AS t WHERE ${batchPredicateSql(shape, bounds)}`;
  const result = await client.query<{ rows: string; hi: string; lo: string }>(digestSelectSql(hashes));
  const row = result.rows[0] ?? { rows: '0', hi: '0', lo: '0' };
  return { rows: Number(row.rows), rowDigest: rowDigestFromSql(row) };
}

/**
 * Whether the delete transaction of an in-flight batch committed. Its xid was stored before COMMIT, and PostgreSQL
 * keeps the outcome of recent transactions, so this needs no marker row in the user's database.
 * `unknown` means the xid is too old for the server to remember; callers then compare the rows themselves.
 */
export async function deleteTransactionStatus(
  client: pg.ClientBase,
  xid: string,
): Promise<'committed' | 'aborted' | 'unknown'> {
  const result = await client.query<{ status: string | null }>('SELECT pg_xact_status($1::xid8) AS status', [
    xid,
  ]);
  const status = result.rows[0]?.status ?? null;
  if (status === 'in progress') {
    throw new DeleteInProgressError(`the delete transaction ${xid} of a previous attempt is still open`);
  }
  if (status === 'committed') return 'committed';
  return status === 'aborted' ? 'aborted' : 'unknown';
}

/** Records a committed batch: clears it from the lease item, adds it to the totals, emits the metrics. */
export async function recordCommitted(deps: StepDeps, task: TableTask, inFlight: InFlight): Promise<void> {
  await deps.locks.clearInFlight(task.database, task.table, task.lease, inFlight.archiveKey, {
    rows: inFlight.figures.rowCount,
    bytes: inFlight.figures.compressedBytes,
  });
  const label = tableLabel(task);
  deps.telemetry.metric('RowsDeleted', 'Count', inFlight.figures.rowCount, label);
  deps.telemetry.metric('RowsArchived', 'Count', inFlight.figures.rowCount, label);
  deps.telemetry.metric('BytesArchived', 'Bytes', inFlight.figures.compressedBytes, label);
  deps.telemetry.metric('BatchesArchived', 'Count', 1, label);
}

/**
 * Takes back a batch whose delete never committed: its rows are all still in the database, so its archive must
 * not stay live. Only objects this batch wrote are removed (an identical archive committed earlier never is); with `quarantine`, a copy is kept
 * as evidence first. The in-flight record is cleared last, so a crash here is finished by the next attempt.
 */
export async function withdrawBatch(
  deps: StepDeps,
  task: TableTask,
  inFlight: InFlight,
  reason: 'rows-changed' | 'integrity' | 'missing-staging' | 'discarded',
): Promise<void> {
  const { store } = deps;
  const manifestKey = manifestKeyFor(inFlight.archiveKey);
  const head = await store.head(inFlight.archiveKey);
  // Ours by the lock table's record, or (if upload crashed before recording it) by the object's batch-id.
  const ours =
    head !== undefined &&
    (inFlight.createdArchive === true || head.metadata[BATCH_ID_METADATA] === inFlight.batchId);
  const toDelete = [inFlight.stagingKey, manifestKeyFor(inFlight.stagingKey)];
  if (ours) {
    if (reason === 'integrity') {
      const evidence = quarantineKey(deps.config.s3.prefix, inFlight.archiveKey, reason);
      await store.copyOnce(
        inFlight.archiveKey,
        evidence,
        { storageClass: 'STANDARD', kmsKeyId: deps.config.s3.kmsKeyId },
        {
          [BATCH_ID_METADATA]: inFlight.batchId,
        },
      );
    }
    toDelete.push(inFlight.archiveKey, manifestKey);
  }
  await store.deleteKeys(toDelete);
  await deps.locks.clearInFlight(task.database, task.table, task.lease, inFlight.archiveKey);
  deps.telemetry.warn('batch withdrawn; its rows stay in the database', {
    ...tableLabel(task),
    archiveKey: inFlight.archiveKey,
    reason,
  });
}
