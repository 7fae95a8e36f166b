import type pg from 'pg';
import { rowDigestFromSql } from '../shared/archive/row-digest.js';
import { versionDigestFromSql } from '../shared/archive/version-digest.js';
import {
  assertTaskCutoff,
  recordCommitted,
  recordInFlight,
  renewLease,
  serverIdentity,
  settleDelete,
  tableLabel,
  withdrawBatch,
} from '../shared/batch/batch.js';
import { batchToActOn, reachesPastCutoff } from '../shared/batch/lifecycle.js';
import { pauseAfterBatch } from '../shared/batch/throttle.js';
import { resolveTable } from '../shared/config/resolved-table.js';
import { inTransaction } from '../shared/database/db.js';
import { describeTable, type TableShape } from '../shared/database/table-shape.js';
import {
  batchPredicateSql,
  digestSelectSql,
  rowHashSql,
  rowSourceSql,
  rowVersionSql,
} from '../shared/database/table-sql.js';
import { ArchiveIntegrityError, InvalidInputError, RowsChangedError } from '../shared/errors/step-errors.js';
import type { InFlight } from '../shared/lock-table/table-state.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import type { DeleteInput, DeleteOutput } from './schema.js';

class DigestMismatch extends Error {}
class ArchiveChanged extends Error {}

/**
 * Deletes the batch's rows and measures what it deleted against what export read: the row versions' digest (see
 * table-sql.ts rowVersionSql for why equal sums mean exactly the exported tuples), or, for a batch exported by an
 * earlier version without one, the MD5 of every deleted row's line against the archive's row digest.
 */
async function deleteMeasured(
  client: pg.ClientBase,
  shape: TableShape,
  inFlight: InFlight,
): Promise<{ rows: number; matches: boolean }> {
  const source = `${rowSourceSql(shape)} AS t WHERE ${batchPredicateSql(shape, inFlight.bounds)}`;
  if (inFlight.versionDigest !== undefined) {
    // sum(int8) is exact (numeric); the digest is that sum modulo 2^64, as export computed it.
    const deleted = await client.query<{ rows: string; sum: string }>(
      `WITH deleted AS (DELETE FROM ${source} RETURNING ${rowVersionSql()} AS v)
       SELECT count(*)::text AS rows, coalesce(sum(v), 0)::text AS sum FROM deleted`,
    );
    const row = deleted.rows[0] ?? { rows: '0', sum: '0' };
    return { rows: Number(row.rows), matches: versionDigestFromSql(row.sum) === inFlight.versionDigest };
  }
  const deleted = await client.query<{ rows: string; hi: string; lo: string }>(
    `WITH deleted AS (DELETE FROM ${source} RETURNING ${rowHashSql(shape)} AS h)
     ${digestSelectSql('SELECT h FROM deleted')}`,
  );
  const row = deleted.rows[0] ?? { rows: '0', hi: '0', lo: '0' };
  return { rows: Number(row.rows), matches: rowDigestFromSql(row) === inFlight.figures.rowDigest };
}

/**
 * Why the published archive is no longer the one verify read, or undefined while it is: checked inside the delete
 * transaction, so an object deleted or replaced after verification (by mistake or by intent) stops the delete. The
 * pin (ETag, version) is what makes a swap of other bytes with the same size and metadata visible; a record from
 * before pins existed has only size and metadata to go by.
 */
async function publishedChange(
  deps: Pick<StepDeps, 'store'>,
  inFlight: InFlight,
): Promise<string | undefined> {
  // The current object, not the pinned version: a versioned bucket would still serve that one after an overwrite.
  const head = await deps.store.head(inFlight.archiveKey);
  if (!head) return 'object is missing';
  if (head.size !== inFlight.figures.compressedBytes)
    return `object is ${head.size} bytes, expected ${inFlight.figures.compressedBytes}`;
  if (head.metadata['content-sha256'] !== inFlight.figures.contentSha256) return 'object holds other content';
  const { pin } = inFlight;
  if (pin && head.pin?.etag !== pin.etag) return 'object was overwritten';
  if (pin?.versionId && head.pin?.versionId !== pin.versionId) return 'object is another version';
  return undefined;
}

export type DeleteDeps = Pick<
  StepDeps,
  'config' | 'store' | 'locks' | 'inventory' | 'database' | 'telemetry' | 'now' | 'fault'
>;

/**
 * Delete: in one transaction, deletes the verified batch's rows by a predicate that includes the cut-off day window
 * and the key range, digesting exactly the rows it deleted (DELETE ... RETURNING). It commits only if count and
 * digest equal what export read, the published archive is still the pinned, verified object,
 * and the lease is still held; before COMMIT it stores the transaction id, so a
 * later attempt can tell whether a delete whose acknowledgement was lost committed.
 */
export async function deleteBatch(input: DeleteInput, deps: DeleteDeps): Promise<DeleteOutput> {
  const started = Date.now();
  const table = resolveTable(deps.config, input.database, input.table);
  assertTaskCutoff(deps, input, table);
  await renewLease(deps, input);
  const state = await deps.locks.get(input.database, input.table);
  const inFlight = batchToActOn('delete', input, state.inFlight);
  // The rows it would delete end at the batch's upper bound: that, too, must be within the retention.
  assertTaskCutoff(deps, input, table, inFlight.bounds.to);
  const done = (rowsDeleted: number): DeleteOutput => {
    // The batch's rate from export to now sizes the next batch (time budget) and sets the throttle's pause.
    const seconds = Math.max(0.001, (Date.now() - (inFlight.exportedAt ?? started)) / 1000);
    return {
      archiveKey: inFlight.archiveKey,
      rowsDeleted,
      progress: {
        batches: input.progress.batches + 1,
        rows: input.progress.rows + rowsDeleted,
        bytes: input.progress.bytes + inFlight.figures.compressedBytes,
        rowsPerSecond: Math.round(inFlight.figures.rowCount / seconds),
        pauseSeconds: pauseAfterBatch(inFlight.figures.rowCount, seconds, deps.config.defaults),
      },
    };
  };
  const db = await deps.database(input.database);
  const expected = inFlight.figures;
  let deleting: InFlight = inFlight;

  if (reachesPastCutoff(inFlight, input.cutoff)) {
    throw new InvalidInputError(
      `the batch in flight reaches past this run's cut-off; the next export withdraws it`,
    );
  }

  const outcome = await db.withConnection(async (client) => {
    const shape = () => describeTable(client, table);
    // A previous attempt may have reached COMMIT; its outcome decides whether there is anything left to do.
    if (inFlight.stage === 'deleting' && (await settleDelete(client, shape, inFlight)) === 'committed') {
      return 'committed-before' as const;
    }
    const deleteServer = await serverIdentity(client);
    try {
      await inTransaction(client, async () => {
        // The lock DELETE takes anyway (on every partition), taken before the checks: a trigger, rule or foreign key
        // added to the table now waits for COMMIT, so the second check sees everything the DELETE will fire.
        await client.query(`LOCK TABLE ${rowSourceSql(await shape())} IN ROW EXCLUSIVE MODE`);
        const described = await shape();
        const xid = await client.query<{ xid: string }>(
          'SELECT pg_catalog.pg_current_xact_id()::text AS xid',
        );
        const deleted = await deleteMeasured(client, described, inFlight);
        if (deleted.rows !== expected.rowCount || !deleted.matches) {
          throw new DigestMismatch(
            `would delete ${deleted.rows} rows, the verified archive holds ${expected.rowCount}`,
          );
        }
        const changed = await publishedChange(deps, inFlight);
        if (changed) throw new ArchiveChanged(changed);
        deleting = { ...inFlight, stage: 'deleting', deleteXid: xid.rows[0]?.xid, deleteServer };
        // Conditional on the lease and on the record being as read: a holder whose lease was taken over, or a stale
        // invocation, fails here and rolls back (fencing).
        await recordInFlight(deps, input, deleting, { unchanged: inFlight });
        await deps.fault('delete:beforeCommit');
      });
      return 'committed' as const;
    } catch (error) {
      if (error instanceof DigestMismatch || error instanceof ArchiveChanged) return error;
      throw error;
    }
  });

  if (outcome instanceof ArchiveChanged) {
    deps.telemetry.metric('VerificationFailures', 'Count', 1, tableLabel(input));
    await withdrawBatch(deps, input, inFlight, 'integrity');
    throw new ArchiveIntegrityError(
      `archive ${inFlight.archiveKey} changed after verification (${outcome.message}); rolled back, nothing deleted, archive withdrawn`,
    );
  }
  if (outcome instanceof DigestMismatch) {
    deps.telemetry.metric('RowsChanged', 'Count', 1, tableLabel(input));
    await withdrawBatch(deps, input, inFlight, 'rows-changed');
    throw new RowsChangedError(
      `rows of ${input.database}/${input.table} changed after verification (${outcome.message}); rolled back, archive withdrawn`,
    );
  }
  await deps.fault('delete:afterCommit');
  await recordCommitted(deps, input, deleting);
  const result = done(expected.rowCount);
  // The throttle's Wait comes next: the lease must outlast it, whatever its length.
  await renewLease(deps, input, result.progress.pauseSeconds);
  deps.telemetry.metric('DeleteDuration', 'Milliseconds', Date.now() - started, tableLabel(input));
  deps.telemetry.info('batch deleted', {
    ...tableLabel(input),
    rows: expected.rowCount,
    archiveKey: inFlight.archiveKey,
  });
  return result;
}
