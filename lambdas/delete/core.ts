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
import { batchSpan, batchTotals, forEachObject, REQUEST_CONCURRENCY } from '../shared/batch/batch-objects.js';
import { batchToActOn, reachesPastCutoff, readingChange } from '../shared/batch/lifecycle.js';
import { pauseAfterBatch } from '../shared/batch/throttle.js';
import { resolveTable } from '../shared/config/resolved-table.js';
import { inTransaction } from '../shared/database/db.js';
import { describeTable, type TableShape } from '../shared/database/table-shape.js';
import {
  batchPredicateSql,
  digestSelectSql,
  lockRowSource,
  rowHashSql,
  rowSourceSql,
  rowVersionSql,
} from '../shared/database/table-sql.js';
import {
  ArchiveIntegrityError,
  ConfigError,
  DeleteInProgressError,
  databaseErrorMessage,
  InvalidInputError,
  RowsChangedError,
  timedOutStatement,
} from '../shared/errors/step-errors.js';
import type { BatchObject, InFlight, TableState } from '../shared/lock-table/table-state.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import type { DeleteInput, DeleteOutput } from './schema.js';

class DigestMismatch extends Error {
  constructor(
    message: string,
    readonly reason: 'rows-changed' | 'reading-changed' = 'rows-changed',
  ) {
    super(message);
  }
}
class ArchiveChanged extends Error {
  constructor(
    message: string,
    readonly keys: string[],
  ) {
    super(message);
  }
}

/**
 * Deletes the batch's rows and measures what it deleted against what export read: the row versions' digest over the
 * whole batch (see table-sql.ts rowVersionSql for why equal sums mean exactly the exported tuples), or, for a batch
 * exported by an earlier version without one, the MD5 of every deleted row's line against its archive's row digest.
 * One statement takes every object's rows (each by its day window and key range, so each is served by the table's
 * indexes): a foreign key of the table onto itself (NO ACTION) is checked at the end of the statement, so rows of the
 * batch that reference each other go together; one statement per object would find each day's rows still referenced
 * by the next day's.
 */
async function deleteMeasured(
  deps: Pick<StepDeps, 'fault'>,
  client: pg.ClientBase,
  shape: TableShape,
  inFlight: InFlight,
): Promise<{ rows: number; matches: boolean }> {
  const source = (predicate: string) => `${rowSourceSql(shape)} AS t WHERE ${predicate}`;
  const statement = `delete's DELETE of the batch's ${inFlight.objects.length} object(s) of rows`;
  const named = (error: unknown) => {
    // A server limit (temp_file_limit) met by a batch in flight: every run resumes it whole, whatever batchSize says
    // now, so the limit is the only cure (classifyDatabaseError's advice of a smaller batchSize would not help).
    const limit = databaseErrorMessage(error);
    if (limit.code === '53400')
      return new ConfigError(
        `${limit.message}. A configuration limit of the database server (the one named above) stopped ${statement}, a batch already exported and verified that every run resumes whole (a smaller batchSize shortens only the batches after it): raise the limit for the archiver's role; not retried`,
        { cause: error },
      );
    return timedOutStatement(error, statement, 'in flight');
  };
  if (inFlight.versionDigest !== undefined) {
    const predicates = inFlight.objects.map((object) => `(${batchPredicateSql(shape, object.bounds)})`);
    // sum(int8) is exact (numeric); the digest is the batch's sum modulo 2^64, as export computed it.
    const deleted = await client
      .query<{ rows: string; sum: string }>(
        `WITH deleted AS (DELETE FROM ${source(predicates.join(' OR '))} RETURNING ${rowVersionSql()} AS v)
       SELECT count(*)::text AS rows, coalesce(sum(v), 0)::text AS sum FROM deleted`,
      )
      .catch((error) => Promise.reject(named(error)));
    await deps.fault('delete:afterDelete');
    const row = deleted.rows[0] ?? { rows: '0', sum: '0' };
    return {
      rows: Number(row.rows),
      matches: versionDigestFromSql(row.sum) === inFlight.versionDigest,
    };
  }
  // Records an earlier version wrote (no version digest) are compared object by object, each by its own statement: a
  // foreign key of the table onto itself between their days still holds such a batch back, until it is exported anew.
  let rows = 0;
  let matches = true;
  for (const object of inFlight.objects) {
    const deleted = await client
      .query<{ rows: string; hi: string; lo: string }>(
        `WITH deleted AS (DELETE FROM ${source(batchPredicateSql(shape, object.bounds))} RETURNING ${rowHashSql(shape)} AS h)
       ${digestSelectSql('SELECT h FROM deleted')}`,
      )
      .catch((error) => Promise.reject(named(error)));
    const row = deleted.rows[0] ?? { rows: '0', hi: '0', lo: '0' };
    rows += Number(row.rows);
    // Batches without a version digest come from versions that always recorded the row digest.
    matches &&= object.figures.rowDigest !== undefined && rowDigestFromSql(row) === object.figures.rowDigest;
  }
  await deps.fault('delete:afterDelete');
  return { rows, matches };
}

/**
 * Why the table's columns are no longer the ones the batch's archives hold (by name and type, in order: what each line
 * carries; and by their numbers in the table, which a column dropped and added again changes), or undefined. Deleting
 * then would lose a column added since export (its value is in no archive; a restore would take its default of the
 * day), or the values of one renamed since (a restore matches names).
 */
function columnsChange(inFlight: InFlight, now: TableShape): string | undefined {
  if (!inFlight.columns) return undefined;
  const described = (columns: readonly { name: string; type: string }[]) =>
    columns.map((c) => `${c.name} ${c.type}`);
  const archived = described(inFlight.columns);
  const current = described(now.columns);
  if (archived.join('\n') === current.join('\n')) {
    const numbers = inFlight.columnNumbers;
    if (!numbers || numbers.join(',') === now.columnNumbers.join(',')) return undefined;
    const readded = now.columns.filter((_, i) => numbers[i] !== now.columnNumbers[i]).map((c) => c.name);
    return `column(s) ${readded.join(', ')} of the table were dropped and added again under the same name and type since export: the table's values are not those archived`;
  }
  const added = current.filter((c) => !archived.includes(c));
  const gone = archived.filter((c) => !current.includes(c));
  if (added.length === 0 && gone.length === 0) return `the table's columns are in another order since export`;
  return `the table's columns changed since export (now also: ${added.join(', ') || 'none'}; no longer: ${gone.join(', ') || 'none'})`;
}

/**
 * Why the rows would read otherwise than their archive says though every row version and column name and type is the
 * same, or undefined: a collation, a generation expression, or a type a column is built from (an enum's labels, a
 * composite's attributes) changed since export (table-shape.ts READING_DIGEST_SQL). A batch exported by an earlier
 * version, which recorded no digest, has nothing to compare.
 */
function definitionsChange(inFlight: InFlight, now: string): string | undefined {
  if (inFlight.readingDigest === undefined || inFlight.readingDigest === now) return undefined;
  return `a column's collation or generation expression, or a type a column uses (an enum's labels, a composite's attributes, a domain or range), changed since export`;
}

/**
 * Why a published archive of the batch is no longer the one verify read, or undefined while none changed: checked
 * inside the delete transaction, so an object deleted or replaced after verification (by mistake or by intent) stops
 * the delete. The pin (ETag, version) is what makes a swap of other bytes with the same size and metadata visible; a
 * record from before pins existed has only size and metadata to go by.
 */
async function publishedChange(
  deps: Pick<StepDeps, 'store'>,
  inFlight: InFlight,
): Promise<ArchiveChanged | undefined> {
  const changes = await forEachObject(
    inFlight.objects,
    async (object) => ({ key: object.archiveKey, change: await objectChange(deps, object) }),
    REQUEST_CONCURRENCY,
  );
  const changed = changes.filter((c) => c.change !== undefined);
  if (changed.length === 0) return undefined;
  return new ArchiveChanged(
    changed.map((c) => `${c.key}: ${c.change}`).join('; '),
    changed.map((c) => c.key),
  );
}

async function objectChange(deps: Pick<StepDeps, 'store'>, object: BatchObject): Promise<string | undefined> {
  // The current object, not the pinned version: a versioned bucket would still serve that one after an overwrite.
  const head = await deps.store.head(object.archiveKey);
  if (!head) return 'object is missing';
  if (head.size !== object.figures.compressedBytes)
    return `object is ${head.size} bytes, expected ${object.figures.compressedBytes}`;
  if (head.metadata['content-sha256'] !== object.figures.contentSha256) return 'object holds other content';
  const { pin } = object;
  if (pin && head.pin?.etag !== pin.etag) return 'object was overwritten';
  if (pin?.versionId && head.pin?.versionId !== pin.versionId) return 'object is another version';
  return undefined;
}

/**
 * What a delete retried after its batch was committed and recorded answers (its response was lost, or a duplicate of
 * it got there first): the batch the record last cleared as committed under this lease, which renewLease just proved
 * ours. Under one lease the state machine asks for one batch's delete at a time, so no batch in flight means that one;
 * `batchId` names it when known.
 */
function committedByTwin(input: DeleteInput, state: TableState, batchId?: string): DeleteOutput | undefined {
  const cleared = state.lastCleared;
  const stillInFlight =
    batchId === undefined ? state.inFlight !== undefined : state.inFlight?.batchId === batchId;
  if (stillInFlight || !cleared?.committed || cleared.token !== input.lease.token) return undefined;
  if (batchId !== undefined && cleared.batchId !== batchId) return undefined;
  const { rows, bytes, objects } = cleared;
  if (rows === undefined || bytes === undefined || !objects) return undefined;
  return {
    objects,
    rowsDeleted: rows,
    // No rate to size the next batch by, no pause: the first answer, which the state machine never saw, had them.
    progress: {
      batches: input.progress.batches + 1,
      rows: input.progress.rows + rows,
      bytes: input.progress.bytes + bytes,
      rowsPerSecond: 0,
      pauseSeconds: 0,
    },
  };
}

export type DeleteDeps = Pick<
  StepDeps,
  'config' | 'store' | 'locks' | 'inventory' | 'database' | 'telemetry' | 'now' | 'fault'
>;

/**
 * Delete: in one transaction, deletes the verified batch's rows, every object's by a predicate that includes its day
 * window and key range, digesting exactly the rows it deleted (DELETE ... RETURNING). It commits only if count and
 * digest equal what export read, every published archive is still the pinned, verified object,
 * and the lease is still held; before COMMIT it stores the transaction id, so a
 * later attempt can tell whether a delete whose acknowledgement was lost committed.
 */
export async function deleteBatch(input: DeleteInput, deps: DeleteDeps): Promise<DeleteOutput> {
  const started = Date.now();
  const table = resolveTable(deps.config, input.database, input.table);
  assertTaskCutoff(deps, input, table);
  const state = await renewLease(deps, input);
  const recorded = committedByTwin(input, state);
  if (recorded) return recorded;
  const inFlight = batchToActOn('delete', input, state.inFlight);
  // The rows it would delete end at the batch's upper bound: that, too, must be within the retention.
  const totals = batchTotals(inFlight);
  assertTaskCutoff(deps, input, table, batchSpan(inFlight).to);
  const done = (rowsDeleted: number): DeleteOutput => {
    // The batch's rate from export to now sizes the next batch (time budget) and sets the throttle's pause.
    const seconds = Math.max(0.001, (Date.now() - (inFlight.exportedAt ?? started)) / 1000);
    return {
      objects: inFlight.objects.length,
      rowsDeleted,
      progress: {
        batches: input.progress.batches + 1,
        rows: input.progress.rows + rowsDeleted,
        bytes: input.progress.bytes + totals.compressedBytes,
        rowsPerSecond: Math.round(totals.rowCount / seconds),
        pauseSeconds: pauseAfterBatch(
          totals.rowCount,
          seconds,
          deps.config.defaults,
          // A batch an earlier run exported is timed from then: its load says nothing of this run's.
          inFlight.runId === input.runId ? inFlight.busySessions : undefined,
        ),
      },
    };
  };
  const db = await deps.database(input.database);
  let deleting: InFlight = inFlight;

  if (reachesPastCutoff(inFlight, input.cutoff)) {
    throw new InvalidInputError(
      `the batch in flight reaches past this run's cut-off; the next export withdraws it`,
    );
  }

  const outcome = await db.withConnection(async (client) => {
    const shape = () => describeTable(client, table);
    // A previous attempt may have reached COMMIT; its outcome decides whether there is anything left to do.
    if (
      inFlight.stage === 'deleting' &&
      (await settleDelete(client, deps.store, table, inFlight)) === 'committed'
    ) {
      return 'committed-before' as const;
    }
    const deleteServer = await serverIdentity(client);
    try {
      await inTransaction(client, async () => {
        // The lock DELETE takes anyway (on every partition), taken before the checks: a trigger, rule or foreign key
        // added to the table now waits for COMMIT, so the second check sees everything the DELETE will fire. ATTACH
        // PARTITION passes it (SHARE UPDATE EXCLUSIVE, which would also stop autovacuum of every partition if taken
        // here): the table is described again after the DELETE, before COMMIT. Locking needs only the table's kind, a
        // catalog look-up (describing the table costs PostgreSQL 15 to 20 ms, half of it planning).
        await lockRowSource(client, table, 'ROW EXCLUSIVE');
        const described = await shape();
        // ADD COLUMN rewrites no row, so the row versions still match what export read; the lock above keeps the
        // columns as they are until COMMIT.
        const columns = columnsChange(inFlight, described);
        // A 'rows-changed' mismatch, counted in RowsChanged: the alarm sees migrations that keep changing columns.
        if (columns) throw new DigestMismatch(columns);
        // The config (or the primary key) changed since export: the batch's bounds would select other rows, or none.
        const reading =
          readingChange(inFlight, described) ?? definitionsChange(inFlight, described.readingDigest);
        if (reading) throw new DigestMismatch(reading, 'reading-changed');
        const xid = await client.query<{ xid: string }>(
          'SELECT pg_catalog.pg_current_xact_id()::text AS xid',
        );
        const deleted = await deleteMeasured(deps, client, described, inFlight);
        if (deleted.rows !== totals.rowCount || !deleted.matches) {
          throw new DigestMismatch(
            deleted.rows === totals.rowCount
              ? `the ${deleted.rows} rows it would delete are not the row versions export read`
              : `would delete ${deleted.rows} rows, the verified archives hold ${totals.rowCount}`,
          );
        }
        const changed = await publishedChange(deps, inFlight);
        if (changed) throw changed;
        // Described again as late as the transaction allows: a partition attached during the DELETE with a trigger
        // that fired is refused (TableNotUsableError), and what the trigger did rolls back; ALTER TYPE takes no lock
        // on the table, and a label renamed during the DELETE would commit rows whose archive says otherwise.
        const redefined = definitionsChange(inFlight, (await shape()).readingDigest);
        if (redefined) throw new DigestMismatch(redefined, 'reading-changed');
        deleting = {
          ...inFlight,
          stage: 'deleting',
          deleteXid: xid.rows[0]?.xid,
          deleteServer,
          deleteAt: deps.now().toISOString(),
        };
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

  if (outcome instanceof ArchiveChanged || outcome instanceof DigestMismatch) {
    // A duplicate of this invocation (a Task retried while the first still ran) may have deleted the rows first: its
    // DELETE held them, so this one found none. Its record says so; the batch is then neither changed nor withdrawn.
    const now = await deps.locks.get(input.database, input.table);
    // A `deleting` record this invocation read itself (an earlier attempt's, settled as aborted) is no twin's.
    if (
      now.inFlight?.batchId === inFlight.batchId &&
      now.inFlight.stage === 'deleting' &&
      now.inFlight.deleteXid !== inFlight.deleteXid
    )
      throw new DeleteInProgressError(
        `another invocation is deleting the batch of ${input.database}/${input.table}; retry once it has ended`,
      );
    const recorded = committedByTwin(input, now, inFlight.batchId);
    if (recorded) return recorded;
  }
  if (outcome instanceof ArchiveChanged) {
    deps.telemetry.metric('VerificationFailures', 'Count', 1, tableLabel(input));
    await withdrawBatch(deps, input, inFlight, 'integrity', outcome.keys);
    throw new ArchiveIntegrityError(
      `an archive changed after verification (${outcome.message}); rolled back, nothing deleted, batch withdrawn`,
    );
  }
  if (outcome instanceof DigestMismatch) {
    // Counted before the withdrawal, which may fail: the alarm sees rows that changed either way.
    if (outcome.reason === 'rows-changed')
      deps.telemetry.metric('RowsChanged', 'Count', 1, tableLabel(input));
    await withdrawBatch(deps, input, inFlight, outcome.reason);
    if (outcome.reason === 'reading-changed')
      throw new RowsChangedError(
        `${input.database}/${input.table} is read otherwise than when its batch was exported (${outcome.message}); rolled back, nothing deleted, batch withdrawn: the next run archives the rows again`,
      );
    throw new RowsChangedError(
      `rows of ${input.database}/${input.table} changed after verification (${outcome.message}); rolled back, archive withdrawn`,
    );
  }
  await deps.fault('delete:afterCommit');
  await recordCommitted(deps, input, deleting);
  const result = done(totals.rowCount);
  // The throttle's Wait comes next: the lease must outlast it, whatever its length.
  await renewLease(deps, input, result.progress.pauseSeconds);
  if (result.progress.pauseSeconds)
    deps.telemetry.metric('ThrottlePauseSeconds', 'Seconds', result.progress.pauseSeconds, tableLabel(input));
  deps.telemetry.metric('DeleteDuration', 'Milliseconds', Date.now() - started, tableLabel(input));
  deps.telemetry.info('batch deleted', {
    ...tableLabel(input),
    rows: totals.rowCount,
    objects: inFlight.objects.length,
    days: `${batchSpan(inFlight).firstDay}..${batchSpan(inFlight).lastDay}`,
    pauseSeconds: result.progress.pauseSeconds,
  });
  return result;
}
