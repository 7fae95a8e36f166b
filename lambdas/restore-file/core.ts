import type { Readable } from 'node:stream';
import type pg from 'pg';
import type { CopyStreamQuery } from 'pg-copy-streams';
import { legacyBatchCommitted, readExpectation, streamArchive } from '../shared/archive/catalog.js';
import { LineNotCopyableError } from '../shared/archive/copy-text.js';
import { type Manifest, spanEnd, spanLastDay } from '../shared/archive/format.js';
import {
  type ArchiveExpectation,
  archiveProblems,
  type MeasuredArchive,
} from '../shared/archive/integrity.js';
import type { InventoryEntry } from '../shared/archive/inventory.js';
import { UNCOMMITTED_LEGACY_BATCH } from '../shared/archive/legacy-format.js';
import type { ObjectPin } from '../shared/archive/store.js';
import { serverIdentity } from '../shared/batch/batch.js';
import { findDatabase } from '../shared/config/resolved-table.js';
import { copyFromStdin } from '../shared/database/copy-from.js';
import { inRolledBackTransaction, inTransaction } from '../shared/database/db.js';
import { deferrableUniqueIndex, isUnique, looseUniqueIndex } from '../shared/database/table-shape.js';
import { qualifiedName, quoteIdent } from '../shared/database/table-sql.js';
import {
  ArchiveIntegrityError,
  ArchiverError,
  classifyDatabaseError,
  DatabaseAccessError,
  RestoreConflictError,
  SchemaDriftError,
  TableNotUsableError,
} from '../shared/errors/step-errors.js';
import {
  failedRestoreResult,
  type RestoredMark,
  type RestoreFileResult,
} from '../shared/lock-table/restore-records.js';
import { createTarget } from '../shared/restore/create-target.js';
import {
  type ArchivedColumn,
  type ArchivedRowRange,
  assertWritable,
  type ColumnPlan,
  checkConversions,
  checkRecomputed,
  columnReadSql,
  conflictKeyProblems,
  copyIntoStagingSql,
  copyIntoTargetSql,
  createStagingSql,
  describeTarget,
  dropStagingSql,
  insertSql,
  type LocalTimeColumn,
  lockAndDescribeTarget,
  planColumns,
  type RestoreTarget,
  type RowWindow,
  refusesValue,
  refuseUpdateCascade,
  rowsInRangeSql,
  type TableName,
  tableLabel,
  windowDigestSql,
  windowRowsSql,
} from '../shared/restore/restore-sql.js';
import {
  type ArchivePointer,
  assertRestoreTargetAllowed,
  type RestoreTask,
  restoresIntoArchivedTable,
  restoreTargetLabel,
} from '../shared/restore/restore-task.js';
import { refuseOverwriteUnderHold } from '../shared/restore/target-hold.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import type { RestoreFileInput, RestoreFileOutput } from './schema.js';

const sqlState = (error: unknown): string => (error as { code?: string }).code ?? '';

export type RestoreFileDeps = Pick<
  StepDeps,
  'config' | 'store' | 'inventory' | 'restoreRecords' | 'holds' | 'database' | 'telemetry' | 'now' | 'fault'
>;

/**
 * Restores a group of archives (consecutive keys of one table) in one transaction, one archive after another, each
 * under a savepoint: an archive that fails is rolled back to its savepoint, so it writes nothing and never stops the
 * others, and the group commits once. The next archive's sidecar is read, and its object opened, while the current
 * one is written. Errors that retrying cannot cure come back as that archive's `failed` result with a short message,
 * so a page of results stays small; a transient one is thrown for the state machine to retry the group, whose
 * transaction then wrote nothing. The watermarks of the archives written go to the lock table before the COMMIT,
 * naming the transaction (markBeforeCommit), and again after it, in one request each: a retry after a failure between
 * the COMMIT and the second write is answered by the first once the server tells the transaction committed.
 */
export async function restoreFiles(
  input: RestoreFileInput,
  deps: RestoreFileDeps,
): Promise<RestoreFileOutput> {
  const { task, archives } = input;
  const group: GroupWrite = { task, deps, uniqueKeys: new Map(), marks: [], unmarked: [], settled: [] };
  let results: RestoreFileResult[];
  try {
    assertRestoreTargetAllowed(findDatabase(deps.config, task.database), task);
    const db = await deps.database(task.database);
    // A dry run does everything in a transaction that always rolls back: it measures, and leaves nothing behind but
    // one thing. A target column the archive lacks whose default takes a sequence's next value draws on it for every
    // row written (nextval is not transactional), so that sequence moves on: values are skipped, never reused. Setting
    // it back would hand out values the application drew meanwhile; a value of the dry run's own could trip another
    // unique index the real restore would not.
    const transaction = task.dryRun ? inRolledBackTransaction : inTransaction;
    results = await db.withConnection(async (client) => {
      // Asked outside the transaction: a role that may not read it would abort the group's. A dry run asks too: it
      // settles marks written before a COMMIT as the restore it stands for would (settleMarks).
      group.server = await serverIdentity(client);
      try {
        return await transaction(client, () => writeGroup(client, archives, group, 'group'));
      } catch (error) {
        if (!(error instanceof DeferredConstraintBroken)) throw error;
        // Written again from the start, each archive checked as it is written: the ones that break it fail alone.
        Object.assign(group, { uniqueKeys: new Map(), marks: [], unmarked: [], settled: [] });
        return transaction(client, () => writeGroup(client, archives, group, 'archive'));
      }
    });
  } catch (error) {
    const failure = failedUnlessRetryable(error, deps, archives[0]?.key ?? '');
    return { results: archives.map((archive) => ({ ...failure, key: archive.key })) };
  } finally {
    // A transient error ends the group early: the next archive's opened body must not hold its connection.
    void group.next?.then((outcome) => {
      if ('value' in outcome && !('status' in outcome.value)) outcome.value.body?.destroy();
    });
  }
  // A mark this group wrote replaces the one it settled (a later entry of a key wins). A dry run writes none.
  const confirmed = [...group.settled, ...group.marks];
  if (!task.dryRun) await deps.fault('restore:afterCommit');
  if (!task.dryRun && confirmed.length > 0 && group.watermark) {
    await deps.restoreRecords.markAllRestored(task.database, group.watermark, confirmed);
  }
  return { results: results.map(boundedWarnings) };
}

/** What the archives of a group share while their transaction runs. */
interface GroupWrite {
  task: RestoreTask;
  deps: RestoreFileDeps;
  /** The target as the transaction found it; undefined for a dry run into a table the restore would create. */
  target?: RestoreTarget;
  /** The key of the target's watermark (its identity), when it exists. */
  watermark?: string;
  /**
   * Whether a conflict key is unique in the target, a unique index on its columns that compares them more loosely
   * (looseUniqueIndex) and a deferrable one (deferrableUniqueIndex), by its columns: asked once per group (the target
   * is locked).
   */
  uniqueKeys: Map<
    string,
    {
      unique: boolean;
      looseIndex?: { name: string; by: 'collation' | 'operator class' };
      deferrableIndex?: string;
    }
  >;
  /** The watermarks of the archives written, recorded once the transaction commits. */
  marks: { archiveKey: string; mark: RestoredMark; range?: ArchivedRowRange }[];
  /**
   * What the group wrote of archives that get no watermark (restored in part, not in the inventory, or not all their
   * rows where they lie in the target), for this restore's retries alone (recordGroupWrites).
   */
  unmarked: { archiveKey: string; mark: RestoredMark }[];
  /** Marks an earlier transaction wrote before its COMMIT, found committed: written again without it. */
  settled: { archiveKey: string; mark: RestoredMark }[];
  /** The server's identity, which a mark written before COMMIT names with the transaction (undefined: unknown). */
  server?: string;
  /** The next archive, being prepared while the current one is written. */
  next?: Promise<Settled<PreparedArchive | RestoreFileResult>>;
}

/**
 * When a group checks the target's deferred constraints (a foreign key or unique index DEFERRABLE INITIALLY DEFERRED):
 * once its archives are written (rows of two archives referencing each other pass), or as each archive is written.
 */
type DeferredChecks = 'group' | 'archive';

/** The group's rows break a deferred constraint of the target: it is written again, checked archive by archive. */
class DeferredConstraintBroken extends Error {
  override name = 'DeferredConstraintBroken';
}

async function writeGroup(
  client: pg.PoolClient,
  archives: ArchivePointer[],
  group: GroupWrite,
  checks: DeferredChecks,
): Promise<RestoreFileResult[]> {
  const { task, deps } = group;
  // Checked at each statement, a deferred constraint fails the archive that breaks it, inside its savepoint.
  if (checks === 'archive') await client.query('SET CONSTRAINTS ALL IMMEDIATE');
  // Locked for the group: the unique key checked once holds for every archive of it (lockAndDescribeTarget).
  group.target = await lockAndDescribeTarget(client, task.target);
  if (!group.target && task.dryRun) {
    // The plan creates a missing target only for a real restore: a dry run creates it as the plan would (like the
    // source, or as the plan's template once the source is gone) in its own transaction, which rolls back.
    await createTarget(client, task);
    group.target = await lockAndDescribeTarget(client, task.target);
  }
  if (group.target) assertWritable(group.target, task.strategy);
  group.watermark = watermarkOf(task, group.target);
  const lookups = await groupLookups(task, archives, group.target, deps);
  const committed = transactionStatus(client, group.server);
  lookups.marks = await settleMarks(group, lookups.marks, committed);
  await answerFromGroupWrites(task, lookups, committed);
  // A hold set while the restore runs stops an overwrite from the group under way on: checked before the group
  // writes and again before its COMMIT. A group this restore committed already (retried after a failure past its
  // COMMIT) writes nothing more, and is reported as what it wrote.
  const writes = !archives.every((archive) => lookups.marks.get(archive.key)?.restoreId === task.restoreId);
  const refuseUnderHold = async (archivesWere: 'not written' | 'rolled back') => {
    if (!writes) return;
    await refuseOverwriteUnderHold(
      deps,
      client,
      task,
      task.dryRun
        ? 'the dry run stopped here, as the restore would'
        : `this group's archives were ${archivesWere}; groups committed before the hold was set stay written`,
    );
  };
  await refuseUnderHold('not written');
  const prepare = (archive: ArchivePointer) =>
    settled(prepareArchive(task, archive, group.target, lookups, deps));
  const results: RestoreFileResult[] = [];
  group.next = archives[0] ? prepare(archives[0]) : undefined;
  for (const [i, archive] of archives.entries()) {
    const prepared = await group.next;
    const following = archives[i + 1];
    group.next = following ? prepare(following) : undefined;
    results.push(await writeInGroup(client, group, archive, prepared));
  }
  if (checks === 'group') await checkDeferredConstraints(client);
  await measureMarkedWindows(client, group);
  // A partition attached while the group wrote (ATTACH PARTITION passes its lock) may carry a trigger that changed
  // rows written into it: checked again, the group rolls back rather than commit them.
  const target = group.target && (await describeTarget(client, task.target));
  if (target) assertWritable(target, task.strategy);
  await deps.fault('restore:beforeCommit');
  // A hold set, or a held table attached as a partition, while the group wrote: the group rolls back. What is left is
  // the moment between this read of the lock table and the COMMIT.
  await refuseUnderHold('rolled back');
  await markBeforeCommit(client, group, lookups.marks);
  return results;
}

/**
 * Checks the target's deferred constraints now rather than at COMMIT, where a violation would fail the group with no
 * archive to blame, and which a dry run never reaches.
 */
async function checkDeferredConstraints(client: pg.PoolClient): Promise<void> {
  try {
    await client.query('SET CONSTRAINTS ALL IMMEDIATE');
  } catch (error) {
    if (sqlState(error).startsWith('23')) throw new DeferredConstraintBroken();
    throw error;
  }
}

/**
 * Writes the group's marks before its COMMIT, naming its transaction: should the write after the COMMIT fail (the
 * lock table throttled or down) or the invocation die, the group retried finds its rows answered for by the marks
 * rather than met as rows the target had (a conflict under `fail`). The last statement of the transaction: a mark of a
 * transaction that rolls back counts for nothing (settleMarks).
 */
async function markBeforeCommit(
  client: pg.PoolClient,
  group: GroupWrite,
  answering: Map<string, RestoredMark>,
): Promise<void> {
  const { task, deps, watermark } = group;
  const marks = watermark ? group.marks : [];
  if (task.dryRun || (marks.length === 0 && group.unmarked.length === 0)) return;
  const { rows } = await client.query<{ xid: string }>('SELECT pg_catalog.pg_current_xact_id()::text AS xid');
  const xid = rows[0]?.xid;
  if (!xid) return;
  const commit = { xid, server: group.server };
  await Promise.all([
    watermark &&
      marks.length > 0 &&
      deps.restoreRecords.markAllRestored(
        task.database,
        watermark,
        marks.map(({ archiveKey, mark }) => ({
          archiveKey,
          mark: { ...mark, commit: { ...commit, previous: answering.get(archiveKey) } },
        })),
      ),
    group.unmarked.length > 0 &&
      deps.restoreRecords.recordGroupWrites(
        task.restoreId,
        group.unmarked.map(({ archiveKey, mark }) => ({ archiveKey, mark: { ...mark, commit } })),
      ),
  ]);
}

/**
 * The marks as they stand once the transactions named by marks written before a COMMIT are settled: committed on this
 * server, the mark answers (and is written again without the transaction once the group commits); rolled back, still
 * open, on another server or too old to tell, the mark it replaced answers, if any. Whatever cannot be told counts as
 * not written: the archive is then written again, as before the marks were written early.
 */
async function settleMarks(
  group: GroupWrite,
  marks: Map<string, RestoredMark>,
  committed: TransactionStatus,
): Promise<Map<string, RestoredMark>> {
  const settled = new Map<string, RestoredMark>();
  for (const [key, { commit, ...mark }] of marks) {
    if (!commit) {
      settled.set(key, mark);
    } else if (await committed(commit)) {
      settled.set(key, mark);
      group.settled.push({ archiveKey: key, mark });
    } else if (commit.previous) settled.set(key, commit.previous);
  }
  return settled;
}

/**
 * A retried group's archives that get no watermark: what an earlier attempt of this very restore wrote of them, in a
 * transaction that committed, answers for them as a mark of this restore would (never written to the watermark).
 */
async function answerFromGroupWrites(
  task: RestoreTask,
  lookups: GroupLookups,
  committed: TransactionStatus,
): Promise<void> {
  for (const [key, { commit, ...mark }] of lookups.writes) {
    if (commit && markOfThisRestore(mark, task) && (await committed(commit))) lookups.marks.set(key, mark);
  }
}

/** Whether a mark's transaction committed, asked of the server once per transaction. */
type TransactionStatus = (commit: NonNullable<RestoredMark['commit']>) => Promise<boolean>;
function transactionStatus(client: pg.PoolClient, server: string | undefined): TransactionStatus {
  const known = new Map<string, Promise<boolean>>();
  return (commit) => {
    let committed = known.get(commit.xid);
    if (!committed) {
      committed = transactionCommitted(client, commit, server);
      known.set(commit.xid, committed);
    }
    return committed;
  };
}

/** Whether a mark's transaction committed on this server; false when the server cannot tell. */
async function transactionCommitted(
  client: pg.PoolClient,
  commit: NonNullable<RestoredMark['commit']>,
  server: string | undefined,
): Promise<boolean> {
  if (server === undefined || commit.server !== server || !/^\d+$/.test(commit.xid)) return false;
  // An xid this server never ran is refused (22023), which the savepoint takes back.
  const [row] =
    (await queryUnlessRefused<{ status: string | null }>(
      client,
      `SELECT pg_catalog.pg_xact_status('${commit.xid}'::pg_catalog.xid8) AS status`,
    )) ?? [];
  return row?.status === 'committed';
}

/**
 * What each watermark of the group records of where its archive's rows lie, once every archive is written, so a later
 * restore can tell that nothing there came or went since (staleMarkWarning). An archive whose rows the target does
 * not all hold there (a row skipped for a key the target has elsewhere), or whose place it cannot read, gets no mark:
 * a later restore writes it again.
 */
async function measureMarkedWindows(client: pg.PoolClient, group: GroupWrite): Promise<void> {
  const { target } = group;
  const kept: GroupWrite['marks'] = [];
  for (const entry of group.marks) {
    // A legacy archive records no place: its mark only says it was restored, which a later restore checks by writing
    // it again (as under skip).
    if (!entry.range) {
      kept.push(entry);
      continue;
    }
    const sql = target && windowDigestSql(target, entry.range);
    const [measured] =
      (sql && (await queryUnlessRefused<{ rows: number; digest: string }>(client, sql))) || [];
    if (!measured || measured.rows < entry.mark.rows) {
      group.unmarked.push(entry);
      continue;
    }
    entry.mark.window = { rows: measured.rows, digest: measured.digest };
    kept.push(entry);
  }
  group.marks = kept;
}

/** One archive of the group under its savepoint; a failure retrying cannot cure is its result, the rest is thrown. */
async function writeInGroup(
  client: pg.PoolClient,
  group: GroupWrite,
  archive: ArchivePointer,
  prepared: Settled<PreparedArchive | RestoreFileResult> | undefined,
): Promise<RestoreFileResult> {
  try {
    const ready = unwrap(prepared);
    if ('status' in ready) return ready;
    const staleMark = ready.mark && (await staleMarkWarning(client, group, ready.expected, ready.mark));
    if (ready.mark && !staleMark) return resultFromMark(archive.key, group.task, ready.mark);
    try {
      // Before the savepoint: a rollback to it (a refused COPY, then the reference path) would undo it.
      await client.query(MONEY_LOCALE_SQL, [ready.expected.manifest?.lcMonetary ?? null]);
      await client.query(`SAVEPOINT ${ARCHIVE_SAVEPOINT}`);
      // The mark vouches for the rows still there: under `fail` they are no conflict.
      const writing =
        staleMark && group.task.strategy === 'fail'
          ? { ...group, task: { ...group.task, strategy: 'skip' as const } }
          : group;
      const result = await writeArchive(client, writing, archive, ready, staleMark ? [staleMark] : []);
      // A month archive restored in part is not marked: a later restore of other days of it must not skip it (one
      // whose rows all lie in the days restored is restored whole). Nor is a native archive the inventory does not
      // list: one still in flight may have its rows deleted after this restore, and its mark would then skip them (a
      // committed archive's marks go when a batch deletes its rows).
      const whole =
        rowWindow(group.task, ready.expected) === undefined || result.rows === ready.expected.rows;
      const listed = ready.expected.format !== 'native' || ready.committed.listed;
      if (result.status === 'restored') {
        const mark: RestoredMark = {
          restoreId: group.task.restoreId,
          ...(group.task.startedAt === undefined ? {} : { startedAt: group.task.startedAt }),
          restoredAt: group.deps.now().toISOString(),
          rows: result.rows,
          written: { inserted: result.inserted, skipped: result.skipped, overwritten: result.overwritten },
        };
        if (group.watermark && whole && listed)
          group.marks.push({ archiveKey: archive.key, mark, range: archivedRange(ready.expected) });
        else group.unmarked.push({ archiveKey: archive.key, mark });
      }
      return result;
    } catch (error) {
      // A failed archive writes nothing; if even that cannot be done, the whole group is retried.
      await client.query(`ROLLBACK TO SAVEPOINT ${ARCHIVE_SAVEPOINT}`).catch((rollbackError: unknown) => {
        throw classifyDatabaseError(rollbackError);
      });
      throw error;
    } finally {
      // Unread when the reference path ran instead: its connection goes back to the pool.
      ready.body?.destroy();
    }
  } catch (error) {
    return failedUnlessRetryable(error, group.deps, archive.key);
  }
}

/** Set before each archive: rolling back to it undoes that archive alone. */
const ARCHIVE_SAVEPOINT = 'audit_archiver_archive';

/**
 * Reads an archive's money values under the lc_monetary they were written under: the one its manifest records (C), or,
 * for an archive written before export pinned it, the database's own default, which the exporting session had when
 * export and restore share the database, and which restore always used for them. Under another, C's "$12.34" reads as
 * 1234 where "," is the decimal separator. Set before the archive's savepoint, so it holds for its reference path too,
 * and local to the group's transaction.
 */
const MONEY_LOCALE_SQL = `SELECT pg_catalog.set_config('lc_monetary', coalesce($1::text,
    (SELECT s.reset_val FROM pg_catalog.pg_settings AS s WHERE s.name = 'lc_monetary')), true)`;

/** Warnings a result carries at most, each cut to a few hundred characters: a page of results stays small. */
const MAX_WARNINGS = 5;
const MAX_WARNING_CHARS = 300;
function boundedWarnings(result: RestoreFileResult): RestoreFileResult {
  const cut = result.warnings.map((w) =>
    w.length > MAX_WARNING_CHARS ? `${w.slice(0, MAX_WARNING_CHARS)}…` : w,
  );
  const warnings =
    cut.length > MAX_WARNINGS
      ? [...cut.slice(0, MAX_WARNINGS - 1), `${cut.length - MAX_WARNINGS + 1} more warnings`]
      : cut;
  return { ...result, warnings };
}

/** A failure retrying cannot cure, as the archive's `failed` result; anything else is thrown to be retried. */
function failedUnlessRetryable(
  error: unknown,
  deps: Pick<StepDeps, 'telemetry'>,
  key: string,
): RestoreFileResult {
  if (!(error instanceof ArchiverError) || error.retryable) throw error;
  deps.telemetry.warn('archive not restored', { key, error: error.name });
  return failedRestoreResult(key, `${error.name}: ${error.message}`);
}

type Settled<T> = { value: T } | { error: unknown };
const settled = <T>(promise: Promise<T>): Promise<Settled<T>> =>
  promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
function unwrap<T>(outcome: Settled<T> | undefined): T {
  if (!outcome) throw new Error('archive not prepared');
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

interface PreparedArchive {
  expected: ArchiveExpectation;
  /** What the inventory says: the pin of the committed object, whether it lists the archive at all, and warnings. */
  committed: { pin?: ObjectPin; listed: boolean; warnings: string[] };
  /** The object, opened ahead for the fast path: its first bytes arrive while the previous archive is written. */
  body?: Readable;
  /** The watermark that answers for the archive, once the target proves to hold its rows (staleMarkWarning). */
  mark?: RestoredMark;
}

const watermarkOf = (task: RestoreTask, existing: RestoreTarget | undefined) =>
  existing ? `${restoreTargetLabel(task)}@${existing.identity}` : undefined;

/**
 * What the lock table knows of a group's archives: their watermarks for this target, their inventory entries, and
 * what earlier attempts of this restore wrote of those that get no watermark.
 */
interface GroupLookups {
  marks: Map<string, RestoredMark>;
  entries: Map<string, InventoryEntry>;
  writes: Map<string, RestoredMark>;
}

/** Three reads for the whole group, where one archive after another cost three each. */
async function groupLookups(
  task: RestoreTask,
  archives: ArchivePointer[],
  existing: RestoreTarget | undefined,
  deps: Pick<StepDeps, 'restoreRecords' | 'inventory'>,
): Promise<GroupLookups> {
  const watermark = watermarkOf(task, existing);
  const native = archives.filter((archive) => archive.format === 'native').map((archive) => archive.key);
  // Read under ignoreWatermark too: a mark written before a COMMIT keeps the one it replaces (markBeforeCommit).
  const keys = archives.map((archive) => archive.key);
  const [marks, entries, writes] = await Promise.all([
    watermark
      ? deps.restoreRecords.restoredMarks(
          task.database,
          watermark,
          archives.map((archive) => archive.key),
        )
      : new Map<string, RestoredMark>(),
    native.length > 0
      ? deps.inventory.entries(task.database, `${task.source.schema}.${task.source.name}`, native)
      : new Map<string, InventoryEntry>(),
    task.dryRun ? new Map<string, RestoredMark>() : deps.restoreRecords.groupWrites(task.restoreId, keys),
  ]);
  return { marks, entries, writes };
}

/**
 * What an archive's write needs, read before its transaction: its sidecar, checked against the request and the
 * inventory. An archive the watermark lists comes with its mark, which answers for it once the write finds the target
 * still holding its rows: by this very restore (a retried group) with the figures it recorded, by an earlier one as
 * already restored.
 */
async function prepareArchive(
  task: RestoreTask,
  archive: ArchivePointer,
  existing: RestoreTarget | undefined,
  lookups: GroupLookups,
  deps: RestoreFileDeps,
): Promise<PreparedArchive | RestoreFileResult> {
  const marked = lookups.marks.get(archive.key);
  // Overwrite puts the archived versions back whatever an earlier restore did, and ignoreWatermark writes every archive
  // again; a mark of this very restore is a retry.
  const others = task.strategy !== 'overwrite' && !task.ignoreWatermark;
  const mark = marked && (others || markOfThisRestore(marked, task)) ? marked : undefined;
  const expected = await readExpectation(deps.store, archive);
  checkOrigin(task, expected);
  const committed = checkInventory(deps, task, expected, lookups.entries.get(archive.key));
  if (expected.format === 'legacy' && !(await legacyBatchCommitted(deps.store, expected)))
    committed.warnings.push(UNCOMMITTED_LEGACY_BATCH);
  // A marked archive is mostly answered from its mark: its object is opened only if it is written after all.
  if (mark || !existing || !expected.manifest) return { expected, committed, mark };
  // Any trouble opening it is met again, and reported, when the write opens it itself.
  const body = await deps.store.getStream(archive.key, committed.pin).catch(() => undefined);
  // A connection that breaks while the body waits must not crash the process: the write then opens it afresh.
  body?.on('error', () => undefined);
  return { expected, committed, body };
}

/** Where a native archive's rows lie, by its manifest; undefined for the Python tool's archives. */
function archivedRange(expected: ArchiveExpectation): ArchivedRowRange | undefined {
  const manifest = expected.manifest;
  return manifest
    ? {
        keyColumns: manifest.keyColumns,
        firstKey: manifest.keyRange.first,
        lastKey: manifest.keyRange.last,
        window: {
          column: manifest.timestampColumn,
          type: manifest.timestampType,
          timeZone: manifest.timestampTimeZone,
          from: manifest.bounds.from,
          to: manifest.bounds.to,
        },
      }
    : undefined;
}

/**
 * Why a mark cannot answer for its archive, or undefined when it can. A mark outlives its rows when they were deleted
 * from the target, or archived again (under these keys by a batch whose removal of the marks has not run yet or ran
 * before the mark was written, or under other keys once the table's columns changed). It answers while the target's
 * rows where the archive's rows lie are what they were when it was written (their count and the digest of their keys,
 * windowDigestSql: one index range scan under the target's lock); a mark written before it recorded them, while the
 * target holds at least as many rows in the archive's key range and window as it says were restored. A legacy archive's
 * mark cannot be checked. An archive whose mark does not answer is written again (under `fail` as under `skip`: the
 * mark vouches for the rows still there).
 */
async function staleMarkWarning(
  client: pg.PoolClient,
  { task, deps, target }: GroupWrite,
  expected: ArchiveExpectation,
  mark: RestoredMark,
): Promise<string | undefined> {
  const range = archivedRange(expected);
  let found: string;
  if (range && target && mark.window) {
    const sql = windowDigestSql(target, range);
    const now = sql && (await queryUnlessRefused<{ rows: number; digest: string }>(client, sql))?.[0];
    if (now && now.rows === mark.window.rows && now.digest === mark.window.digest) return undefined;
    found = now
      ? `but the target's rows where its rows lie changed since (${mark.window.rows} then, ${now.rows} now)`
      : 'which the target can no longer check (its key or timestamp column changed since)';
  } else {
    const sql = range && target ? rowsInRangeSql(target, range) : undefined;
    const held = sql ? (await queryUnlessRefused<{ rows: number }>(client, sql))?.[0]?.rows : undefined;
    if (held !== undefined && held >= mark.rows) return undefined;
    found =
      held === undefined
        ? 'which cannot be checked against the target (a legacy archive, or a key or timestamp column changed since)'
        : `but the target holds ${held} rows in the archive's key range and time window (deleted, or archived again, since)`;
  }
  deps.telemetry.warn('restore watermark does not hold, archive restored again', {
    restoreId: task.restoreId,
    key: expected.key,
    markedBy: mark.restoreId,
  });
  return `restored again: the watermark says restore ${mark.restoreId} wrote its ${mark.rows} rows, ${found}`;
}

/** The rows, or undefined when the target cannot read an archive's bounds (SQLSTATE 22: its types changed). */
async function queryUnlessRefused<T extends pg.QueryResultRow>(
  client: pg.PoolClient,
  sql: string,
): Promise<T[] | undefined> {
  await client.query(`SAVEPOINT ${MARK_SAVEPOINT}`);
  try {
    const result = await client.query<T>(sql);
    await client.query(`RELEASE SAVEPOINT ${MARK_SAVEPOINT}`);
    return result.rows;
  } catch (error) {
    if (!sqlState(error).startsWith('22')) throw error;
    await client.query(`ROLLBACK TO SAVEPOINT ${MARK_SAVEPOINT}`);
    return undefined;
  }
}

/** Set before a mark's query: a bound the target refuses leaves the group's transaction usable. */
const MARK_SAVEPOINT = 'audit_archiver_mark';

/**
 * Whether `mark` is this very restore's (a retried group's): of its id, and of the execution that started when this
 * one did. An earlier execution under the same name (90 days on) wrote its marks before: under `overwrite` they answer
 * for nothing. A mark that names its execution's start is matched by it, not by the functions' clock, which may run
 * behind the one that dated the start: a retry's own rows would then be written again (a conflict under `fail`). One
 * written before marks named it is this restore's if written since the start.
 */
const markOfThisRestore = (mark: RestoredMark, task: RestoreTask): boolean =>
  mark.restoreId === task.restoreId &&
  (task.startedAt === undefined ||
    (mark.startedAt === undefined
      ? Date.parse(mark.restoredAt) >= Date.parse(task.startedAt)
      : mark.startedAt === task.startedAt));

function resultFromMark(key: string, task: RestoreTask, mark: RestoredMark): RestoreFileResult {
  const empty = { key, rows: mark.rows, inserted: 0, skipped: 0, overwritten: 0, warnings: [] };
  if (markOfThisRestore(mark, task) && mark.written) return { ...empty, status: 'restored', ...mark.written };
  return { ...empty, status: 'already-restored' };
}

/** Writes one archive's rows inside the group's transaction (under its savepoint): straight in, or by reference. */
async function writeArchive(
  client: pg.PoolClient,
  group: GroupWrite,
  archive: ArchivePointer,
  { expected, committed, body }: PreparedArchive,
  notes: string[],
): Promise<RestoreFileResult> {
  const { task, deps, target: table } = group;
  const empty = { key: archive.key, rows: 0, inserted: 0, skipped: 0, overwritten: 0, warnings: [] };
  if (!table) throw new TableNotUsableError(`restore target ${tableLabel(task.target)} does not exist`);
  const warnings = [...committed.warnings, ...notes];
  const figures = { ...empty, rows: expected.rows };
  // Which path wrote the rows: an operator wondering why one archive took longer sees the conflicts' second read.
  let path: 'copy' | 'reference' = 'reference';
  let result: RestoreFileResult | undefined;
  const rows = rowWindow(task, expected);
  if (!rows) {
    const opened = body && !body.destroyed ? body : undefined;
    const direct = await copyDirectly(client, group, archive, expected, committed.pin, table, opened);
    if (direct) {
      path = 'copy';
      result = {
        ...figures,
        status: task.dryRun ? 'dry-run' : 'restored',
        inserted: direct.written,
        skipped: expected.rows - direct.written,
        warnings: [...warnings, ...direct.planWarnings],
      };
    }
  }
  if (!result) {
    const seen = new Set<string>();
    await client.query(createStagingSql);
    await stage(client, deps, task, archive, expected, committed.pin, (column) => {
      seen.add(column);
      return table.columns.find((c) => c.name === column)?.baseType;
    });
    const archived: ArchivedColumn[] = expected.manifest
      ? archivedColumns(expected.manifest)
      : [...seen].map((name) => ({ name }));
    assertShapedLikeArchive(task, archived, table);
    const plan = planColumns(
      archived,
      table,
      task.drift,
      localTimeOf(expected),
      expected.manifest?.enumLabels,
    );
    // The key rows are recognised by: the archive's, and a primary key widened since (uniqueConflictKey).
    const keyColumns = [...new Set([...conflictKeyOf(expected, table), ...table.primaryKey])];
    await checkConversions(client, plan, task.drift, keyColumns);
    const conflictKey = await uniqueConflictKey(client, group, expected, table, plan, archived, {
      // insertSql arbitrates with ON CONFLICT under every strategy but "fail".
      onConflict: task.strategy !== 'fail',
    });
    const inWindow = rows ? await countInWindow(client, rows) : expected.rows;
    const windowNote =
      rows && inWindow < expected.rows
        ? [
            `a month archive: ${expected.rows - inWindow} of its ${expected.rows} rows lie outside ${rows.from.slice(0, 10)}..${dayBefore(rows.to)} and were left out`,
          ]
        : [];
    // A dry run runs the very INSERT too, in the transaction that rolls back: its figures are the real ones.
    const written = await insert(client, insertSql(table, plan, task.strategy, conflictKey, rows), {
      strategy: task.strategy,
      target: task.target,
      plan,
      rows,
      monthObject: expected.manifest?.span === 'month',
    });
    // Before the archive's savepoint is left: a refusal rolls back what the INSERT wrote.
    checkRecomputed(plan, written.recomputed ?? [], task.drift, task.target);
    result = {
      ...figures,
      // A month archive restored in part counts the rows of its days only; the others are named in the warning.
      rows: inWindow,
      warnings: [...warnings, ...windowNote, ...plan.warnings],
      status: task.dryRun ? 'dry-run' : 'restored',
      inserted: written.inserted,
      overwritten: written.updated,
      skipped: inWindow - written.inserted - written.updated,
    };
    // The next archive of the group may take this path too.
    await client.query(dropStagingSql);
  }
  deps.telemetry.info('archive restored', {
    restoreId: task.restoreId,
    key: archive.key,
    status: result.status,
    path,
    rows: result.rows,
    inserted: result.inserted,
    skipped: result.skipped,
    overwritten: result.overwritten,
  });
  return result;
}

/**
 * The rows a day-range restore takes of a native month archive, when the range leaves part of its month out (a day
 * archive is in the range whole or not listed at all). Those archives take the reference path, filtered.
 */
function rowWindow(task: RestoreTask, expected: ArchiveExpectation): RowWindow | undefined {
  const manifest = expected.manifest;
  if (manifest?.span !== 'month') return undefined;
  const first = manifest.day;
  const last = spanLastDay(first, 'month');
  const from = task.fromDay && task.fromDay > first ? task.fromDay : first;
  const to = task.toDay && task.toDay < last ? task.toDay : last;
  if (from === first && to === last) return undefined;
  return {
    column: manifest.timestampColumn,
    type: manifest.timestampType,
    timeZone: manifest.timestampTimeZone,
    from: `${from}T00:00:00.000Z`,
    to: spanEnd(to, 'day'),
  };
}

const dayBefore = (instant: string): string =>
  new Date(Date.parse(instant) - 86_400_000).toISOString().slice(0, 10);

async function countInWindow(client: pg.PoolClient, rows: RowWindow): Promise<number> {
  const counted = await client.query<{ rows: number }>(windowRowsSql(rows));
  return counted.rows[0]?.rows ?? 0;
}

/** The columns a native archive's manifest records, each with its type and that type's definition. */
const archivedColumns = (manifest: Manifest): ArchivedColumn[] =>
  manifest.columns.map((c) => ({
    name: c.name,
    type: c.type,
    definition: manifest.typeDefinitions?.[c.type],
  }));

/**
 * Another table takes an archive only if it holds every archived column: lenient drift (dropping columns) is for
 * the archived table itself, whose columns changed over time, never for an unrelated table that happens to share a
 * key. Its uniqueness on the archive's key is checked next, as for every target.
 */
function assertShapedLikeArchive(task: RestoreTask, archived: ArchivedColumn[], table: RestoreTarget): void {
  if (restoresIntoArchivedTable(task)) return;
  const missing = archived
    .filter((c) => !table.columns.some((t) => t.name === c.name))
    .map((c) => `"${c.name}"`);
  if (missing.length > 0) {
    throw new TableNotUsableError(
      `restore target ${tableLabel(task.target)} is not shaped like the archive: it lacks ${missing.join(', ')}; nothing was written`,
    );
  }
}

/** An archive's sidecar names the table its rows came from; restoring another table's rows is refused. */
function checkOrigin(task: RestoreTask, expected: ArchiveExpectation): void {
  const { origin } = expected;
  const sameTable = origin.table === task.source.name && origin.schema === task.source.schema;
  const sameDatabase =
    expected.format === 'native'
      ? origin.database === task.database
      : origin.database === task.legacy?.database;
  if (!sameTable || !sameDatabase) {
    throw new ArchiveIntegrityError(
      `archive ${expected.key} holds rows of "${origin.schema}"."${origin.table}" in ${origin.database}, not of ${tableLabel(task.source)}`,
    );
  }
}

/**
 * A native archive the inventory lists must be what its batch committed (figures, and the pinned object that is
 * read); one it does not list was written before the inventory existed (restored with a warning) or not by this
 * tool, and `requireInventory` refuses it. Legacy archives have no inventory.
 */
function checkInventory(
  deps: Pick<StepDeps, 'telemetry'>,
  task: RestoreTask,
  expected: ArchiveExpectation,
  entry: InventoryEntry | undefined,
): { pin?: ObjectPin; listed: boolean; warnings: string[] } {
  if (expected.format !== 'native') return { listed: false, warnings: [] };
  if (!entry) {
    if (task.requireInventory)
      throw new ArchiveIntegrityError(
        `archive ${expected.key} is not in the inventory of committed archives (requireInventory), nothing restored`,
      );
    return {
      listed: false,
      warnings: ['not in the inventory of committed archives (written before it existed?)'],
    };
  }
  const problems = archiveProblems(expected, { recorded: entry.figures, committed: entry }).sidecar;
  if (problems.length > 0) {
    refuseArchive(
      deps,
      task,
      `archive ${expected.key} is not the archive committed under its key, nothing restored: ${problems.join('; ')}`,
    );
  }
  return { pin: entry.pin, listed: true, warnings: [] };
}

/** Refuses the archive (rolling its transaction back) unless what was streamed matches its sidecar. */
function refuseUnlessLikeSidecar(
  deps: Pick<StepDeps, 'telemetry'>,
  task: RestoreTask,
  expected: ArchiveExpectation,
  measured: MeasuredArchive,
): void {
  const problems = archiveProblems(expected, { measured }).bytes;
  if (problems.length > 0) {
    refuseArchive(
      deps,
      task,
      `archive ${expected.key} does not match its sidecar, nothing restored: ${problems.join('; ')}`,
    );
  }
}

/** Counts a refused archive in VerificationFailures and throws its ArchiveIntegrityError. */
function refuseArchive(deps: Pick<StepDeps, 'telemetry'>, task: RestoreTask, message: string): never {
  deps.telemetry.metric('VerificationFailures', 'Count', 1, {
    database: task.database,
    table: restoreTargetLabel(task),
  });
  throw new ArchiveIntegrityError(message);
}

/** Streams the archive into the staging table and refuses it unless every figure matches its sidecar. */
async function stage(
  client: pg.PoolClient,
  deps: Pick<StepDeps, 'store' | 'telemetry'>,
  task: RestoreTask,
  archive: ArchivePointer,
  expected: ArchiveExpectation,
  pin: ObjectPin | undefined,
  columnType: (column: string) => string | undefined,
): Promise<void> {
  let measured: Awaited<ReturnType<typeof streamArchive>>;
  try {
    measured = await streamArchive(deps.store, archive, {
      openSink: () => client.query(copyFromStdin(copyIntoStagingSql)),
      columnType,
      pin,
      expected,
      rowDigest: expected.rowDigest !== undefined,
    });
  } catch (error) {
    // A reader's stop (a line or the bytes past their bound) is a refused archive like a figure that differs.
    if (error instanceof ArchiveIntegrityError) refuseArchive(deps, task, error.message);
    // PostgreSQL refusing the bytes themselves (say, invalid UTF-8) is damage, reported without the value.
    if (sqlState(error).startsWith('22'))
      refuseArchive(deps, task, `archive ${archive.key} holds bytes PostgreSQL refuses (${sqlState(error)})`);
    throw error;
  }
  refuseUnlessLikeSidecar(deps, task, expected, measured);
}

/**
 * The fast path, for a native archive whose columns reach the target unconverted and none of which the target
 * generates (the INSERT compares what it computes with the archive): its rows go straight into the
 * target with one `COPY target (columns) FROM STDIN`, as text rows the encoder builds from the lines (the values are
 * in their text form already), measured on the way and checked against the sidecar before the transaction commits.
 * No temporary table and no jsonb parse per column: per row, what a plain COPY FROM costs.
 *
 * The conflict strategy's promise holds because the database decides, not a look at the target beforehand: a row
 * whose key is already there, whether committed before the restore or by a writer that commits while the COPY waits
 * on it, fails the COPY with a unique violation, and so does a value the target refuses. Any such refusal rolls back
 * to the savepoint taken here, so nothing of the COPY remains, and the reference path (temporary table, INSERT ...
 * ON CONFLICT under the strategy) restores the archive instead, reading it once more. Targets with row-level
 * security, which COPY FROM refuses (RestoreTarget.copyable), take the reference path; rules are refused
 * (assertWritable). Undefined when the reference path is to run; otherwise the rows written and the plan's warnings.
 */
async function copyDirectly(
  client: pg.PoolClient,
  { task, deps, ...group }: GroupWrite,
  archive: ArchivePointer,
  expected: ArchiveExpectation,
  pin: ObjectPin | undefined,
  target: RestoreTarget,
  body: Readable | undefined,
): Promise<{ written: number; planWarnings: string[] } | undefined> {
  if (!expected.manifest) return undefined;
  const archived = archivedColumns(expected.manifest);
  assertShapedLikeArchive(task, archived, target);
  const plan = planColumns(archived, target, task.drift, localTimeOf(expected), expected.manifest.enumLabels);
  if (
    plan.converted.length > 0 ||
    plan.recomputed.length > 0 ||
    plan.redefined.length > 0 ||
    !target.copyable
  )
    return undefined;
  await uniqueConflictKey(client, { task, deps, ...group }, expected, target, plan, archived, {
    onConflict: false,
  });
  let sink: CopyStreamQuery | undefined;
  let measured: Awaited<ReturnType<typeof streamArchive>>;
  try {
    measured = await streamArchive(deps.store, archive, {
      openSink: () => {
        sink = client.query(copyFromStdin(copyIntoTargetSql(target, plan)));
        return sink;
      },
      pin,
      body,
      expected,
      rowDigest: expected.rowDigest !== undefined,
      copyColumns: plan.columns.map((c) => c.name),
    });
  } catch (error) {
    if (error instanceof ArchiveIntegrityError) refuseArchive(deps, task, error.message);
    const refusedByDatabase = refusesValue(sqlState(error)) || /^(23|0A)/.test(sqlState(error));
    if (!refusedByDatabase && !(error instanceof LineNotCopyableError)) throw error;
    // The archive's savepoint was set just before: nothing of the COPY remains.
    await client.query(`ROLLBACK TO SAVEPOINT ${ARCHIVE_SAVEPOINT}`);
    return undefined;
  }
  refuseUnlessLikeSidecar(deps, task, expected, measured);
  // streamArchive opens the sink before it reads a byte: one it did not open wrote nothing it could count.
  if (!sink) throw new Error(`the COPY of ${archive.key} was never started`);
  return { written: sink.rowCount, planWarnings: plan.warnings };
}

/**
 * The key rows conflict on, which must be unique in the target and tell the archive's rows apart as the archived
 * table did, for a restore to recognise rows already there (conflictKeyProblems), and, when an INSERT arbitrates on
 * it (`onConflict`), must have no deferrable unique index on its columns, which ON CONFLICT refuses as an arbiter.
 */
async function uniqueConflictKey(
  client: pg.ClientBase,
  { task, uniqueKeys }: GroupWrite,
  expected: ArchiveExpectation,
  table: RestoreTarget,
  plan: ColumnPlan,
  archived: readonly ArchivedColumn[],
  { onConflict }: { onConflict: boolean },
): Promise<string[]> {
  const conflictKey = conflictKeyOf(expected, table);
  const problems = conflictKeyProblems(conflictKey, plan, archived, table);
  if (problems.length > 0) {
    throw new SchemaDriftError(
      `restore cannot recognise the archive's rows by the key (${conflictKey.join(', ')}) of ${tableLabel(task.target)}: ${problems.join('; ')}; restore into a table keyed like the archive (${expected.manifest?.keyColumns.join(', ') || 'its key'}), nothing was written`,
    );
  }
  if (task.strategy === 'overwrite') refuseUpdateCascade(table, conflictKey);
  // The group holds the target's lock, so no index is dropped meanwhile: one answer serves the group.
  const described = async (key: string[]) => {
    const columns = JSON.stringify(key);
    let answer = uniqueKeys.get(columns);
    if (answer === undefined) {
      const unique = key.length > 0 && (await isUnique(client, table.oid, key));
      answer = unique
        ? {
            unique,
            looseIndex: await looseUniqueIndex(client, table.oid, key),
            deferrableIndex: await deferrableUniqueIndex(client, table.oid, key),
          }
        : { unique };
      uniqueKeys.set(columns, answer);
    }
    return answer;
  };
  const unique = async (key: string[]) => (await described(key)).unique;
  // Every unique index on the key's columns arbitrates ON CONFLICT, not only the one isUnique found.
  const arbitrated = async (key: string[]) => {
    // A unique index tells no NULL key from another (and NULLS NOT DISTINCT takes them all for one): an archived row
    // without its key would be written again by every restore, or skipped as another row's.
    const nullable = key.filter((name) => !table.columns.find((c) => c.name === name)?.notNull);
    if (nullable.length > 0)
      throw new SchemaDriftError(
        `restore cannot recognise the archive's rows by the key (${key.join(', ')}) of ${tableLabel(task.target)}: its key column(s) ${nullable.map((name) => `"${name}"`).join(', ')} admit NULL (only a validated NOT NULL on the column rules it out, not a CHECK (... IS NOT NULL) or a NOT NULL domain), and a row without its key would be written again by every restore; make them NOT NULL (ALTER TABLE ${qualifiedName(task.target)} ${nullable.map((name) => `ALTER COLUMN ${quoteIdent(name)} SET NOT NULL`).join(', ')}; it locks the table while it scans every row, unless a validated CHECK (... IS NOT NULL) on the column proves it already) or restore into a table keyed NOT NULL (targetTable), nothing was written`,
      );
    const { looseIndex: loose, deferrableIndex } = await described(key);
    if (onConflict && deferrableIndex)
      throw new SchemaDriftError(
        `restore cannot recognise the archive's rows by the key (${key.join(', ')}) of ${tableLabel(task.target)}: its unique index "${deferrableIndex}" is DEFERRABLE, and INSERT ... ON CONFLICT, which takes every unique index on the key's columns as an arbiter, refuses a deferrable one; drop that constraint for the restore or restore into a table without it (targetTable), nothing was written`,
      );
    if (loose)
      throw new SchemaDriftError(
        `restore cannot recognise the archive's rows by the key (${key.join(', ')}) of ${tableLabel(task.target)}: its unique index "${loose.name}" compares them ${loose.by === 'collation' ? 'under a nondeterministic collation' : "through an operator class other than their type's own"}, and INSERT ... ON CONFLICT arbitrates on it too, so an archived row would be taken for another one already there (skipped, or written over it); drop that index for the restore or restore into a table without it (targetTable), nothing was written`,
      );
    return key;
  };
  if (await unique(conflictKey)) return arbitrated(conflictKey);
  // A table made partitioned since archiving had to take its partition key into its primary key, (id) becoming
  // (id, created_at): rows are recognised by that key when the archive writes every column of it.
  const wider = table.primaryKey;
  if (
    conflictKey.length > 0 &&
    wider.length > conflictKey.length &&
    conflictKey.every((name) => wider.includes(name)) &&
    conflictKeyProblems(wider, plan, archived, table).length === 0 &&
    (await unique(wider))
  )
    return arbitrated(wider);
  throw new SchemaDriftError(
    `restore needs a primary key or unique index on the key (${conflictKey.join(', ') || 'none'}) of ${tableLabel(task.target)}, or a primary key that adds archived columns to it, to recognise rows that are already there`,
  );
}

/** A native archive's timestamp column when it holds local times, and their zone, as its manifest records them. */
function localTimeOf(expected: ArchiveExpectation): LocalTimeColumn | undefined {
  const manifest = expected.manifest;
  return manifest?.timestampType === 'timestamp'
    ? { column: manifest.timestampColumn, timeZone: manifest.timestampTimeZone }
    : undefined;
}

/** The key rows conflict on: the archived table's key when the target still has it, else the target's own. */
function conflictKeyOf(expected: ArchiveExpectation, target: RestoreTarget): string[] {
  const archivedKey = expected.manifest?.keyColumns ?? [];
  const names = new Set(target.columns.map((c) => c.name));
  return archivedKey.length > 0 && archivedKey.every((name) => names.has(name))
    ? archivedKey
    : target.primaryKey;
}

/** Where an INSERT of the archive's rows goes, for its refusals to name what to change. */
interface InsertRefusalContext {
  strategy: RestoreTask['strategy'];
  target: TableName;
  /** The target's columns the INSERT writes from the archive (the others take their defaults), and how it reads each. */
  plan: ColumnPlan;
  /** The rows of a month archive a day-range restore takes. */
  rows: RowWindow | undefined;
  /** Whether the archive is a month object, which a day-range restore takes in part, leaving it unmarked. */
  monthObject: boolean;
}

/**
 * A month object a day-range restore took in part gets no mark (a later restore of its other days must read it), so
 * a later restore under `fail` meets the rows that one wrote as a conflict, where a day object's mark vouches for them.
 */
const MONTH_CONFLICT_HINT =
  '; this is a month object: if an earlier day-range restore wrote some of its days into this target, those rows count as existing, since a month object restored in part is not marked restored; restore with strategy "skip" to add only the rows the target lacks';

/** Set before the INSERT: a data exception rolls back to it, and the staged rows are read again to name the column. */
const INSERT_SAVEPOINT = 'audit_archiver_insert';

async function insert(client: pg.PoolClient, sql: string, context: InsertRefusalContext) {
  await client.query(`SAVEPOINT ${INSERT_SAVEPOINT}`);
  try {
    const result = await client.query<{ inserted: number; updated: number; recomputed?: number[] }>(sql);
    return result.rows[0] ?? { inserted: 0, updated: 0 };
  } catch (error) {
    const code = sqlState(error);
    if (code === '23505' && context.strategy === 'fail')
      throw new RestoreConflictError(
        `rows of the archive already exist in the target (strategy "fail")${context.monthObject ? MONTH_CONFLICT_HINT : ''}`,
      );
    if (code === '42P10') {
      // Also PostgreSQL's refusal of an UPDATE that a publication's row filter or column list does not allow, which
      // classifyDatabaseError names; otherwise ON CONFLICT found no index on the key.
      const published = classifyDatabaseError(error);
      if (published instanceof TableNotUsableError) throw published;
      throw new SchemaDriftError('restore needs a primary key or unique index on exactly the key columns');
    }
    // An UPDATE may set a GENERATED ALWAYS identity column only to DEFAULT: overwrite cannot put the archived value.
    if (code === '428C9')
      throw new SchemaDriftError(
        `strategy "overwrite" cannot restore an identity column GENERATED ALWAYS of the target (PostgreSQL lets an UPDATE set it only to DEFAULT): restore with strategy "skip", or make the column GENERATED BY DEFAULT for the restore`,
      );
    if (code === '42501' && refusedByPolicy(error))
      throw new DatabaseAccessError(rowSecurityRefusal(error, context));
    if (code === '23502') throw new SchemaDriftError(notNullRefusal(error, context));
    if (code === '23514') throw new SchemaDriftError(checkRefusal(error, context));
    if (refusesValue(code)) throw new SchemaDriftError(await dataRefusal(client, code, context));
    // ON CONFLICT DO UPDATE met one target row twice (the archive holds a key twice), or a subquery of the target's
    // (a trigger's, a default's) returned more than one row.
    if (code === '21000')
      throw new RestoreConflictError(
        'the target refused the archived rows (SQLSTATE 21000): they meet the same row of the target twice (an archive holding a key twice, which no export writes), or a subquery of the target returned more than one row',
      );
    // A foreign key of the target (onto itself, say) finds a referenced row absent: it may be in another archive,
    // which this restore writes in a transaction of its own, maybe later.
    if (code === '23503')
      throw new RestoreConflictError(
        `the target refused the archived rows: ${foreignKeyRefusal(error)} references a row that is not there (SQLSTATE 23503), maybe one another archive holds; restore again once the archives it references are restored (rows referencing each other across archives never are), or restore into a target without that foreign key, or drop it for the restore`,
      );
    // Values the target refuses (a constraint): reported by SQLSTATE and the constraint's name, never by value.
    if (code.startsWith('23')) throw new SchemaDriftError(constraintRefusal(error, code, context));
    throw error;
  }
}

/**
 * Whether a 42501 is a row refused by the target's row-level security (a policy's WITH CHECK, or no policy for the
 * command), not a privilege the role lacks: told by the executor routine that raises it, whatever the server's language.
 */
const refusedByPolicy = (error: unknown): boolean =>
  (error as { routine?: string }).routine === 'ExecWithCheckOptions';

/**
 * The target's row-level security refused the archived rows: no strategy or retry cures that. The INSERT has a
 * RETURNING clause, so the role's SELECT policies must admit the new rows too, not only its INSERT policies.
 */
function rowSecurityRefusal(error: unknown, { strategy, target }: InsertRefusalContext): string {
  const { message } = error as { message?: string };
  return `restore target ${tableLabel(target)}: its row-level security refused the archived rows (SQLSTATE 42501: ${message}), and nothing of the archive was written; let the role the restore connects as write them: grant it BYPASSRLS (ALTER ROLE ... BYPASSRLS, which a superuser must grant, or from PostgreSQL 16 a role that has BYPASSRLS itself; a managed database's admin role may have neither), or add policies for it that admit the rows on INSERT and on SELECT (the INSERT returns the rows it wrote)${strategy === 'overwrite' ? ', and on SELECT and UPDATE of the rows they replace' : ''} (CREATE POLICY ... ON ${qualifiedName(target)} ... TO that role), or disable row-level security on the target for the restore (ALTER TABLE ${qualifiedName(target)} DISABLE ROW LEVEL SECURITY)`;
}

/**
 * A data exception refused the INSERT (a value its column's type cannot read, say an enum label renamed since): the
 * staged values are read again column by column, each rolled back to the savepoint set before the INSERT if it fails,
 * to name the first column that refuses them and its type. Never the value, nor PostgreSQL's message, which quotes it.
 */
async function dataRefusal(
  client: pg.PoolClient,
  code: string,
  { target, plan, rows }: InsertRefusalContext,
): Promise<string> {
  await client.query(`ROLLBACK TO SAVEPOINT ${INSERT_SAVEPOINT}`);
  for (const column of plan.columns) {
    try {
      await client.query(columnReadSql(column, rows));
    } catch (error) {
      const refused = sqlState(error);
      if (!refusesValue(refused)) throw error;
      await client.query(`ROLLBACK TO SAVEPOINT ${INSERT_SAVEPOINT}`);
      // xml's input refuses what its functions may write (a control character): archived before export read it back.
      const why =
        refused === '2200N' || refused === '2200M'
          ? 'xml that PostgreSQL wrote but its input refuses, such as a character XML 1.0 forbids; a text column reads it'
          : 'its type changed since archiving?';
      return `the target ${tableLabel(target)} refused the archived rows: its column ${quoteIdent(column.name)} (${column.type}) cannot read the archived values of at least one row (SQLSTATE ${refused}; ${why}); restore into a target whose column ${quoteIdent(column.name)} reads them`;
    }
  }
  // Every column reads its values: what the target computes from them failed.
  return `the target ${tableLabel(target)} refused the archived rows (SQLSTATE ${code}) computing a generated column, a default or a constraint`;
}

/** The foreign key a 23503 names, and its table: never the key values, which its detail quotes. */
function foreignKeyRefusal(error: unknown): string {
  const { constraint, table, schema } = error as RefusalFields;
  const on = named(table)
    ? ` of ${named(schema) ? `${quoteIdent(String(schema))}.` : ''}${quoteIdent(String(table))}`
    : '';
  return named(constraint) ? `foreign key ${quoteIdent(String(constraint))}${on}` : `a foreign key${on}`;
}

/** The fields of a PostgreSQL error that name what refused a value (never the value itself). */
interface RefusalFields {
  schema?: unknown;
  table?: unknown;
  column?: unknown;
  dataType?: unknown;
  constraint?: unknown;
}

const named = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

/** The table (or, for a domain's constraint, the type) an error names, qualified when it names a schema. */
function refusedObject(error: RefusalFields, target: TableName): string {
  const schema = named(error.schema);
  const qualified = (name: string) =>
    schema ? `${quoteIdent(schema)}.${quoteIdent(name)}` : quoteIdent(name);
  const table = named(error.table);
  if (table) return `table ${qualified(table)}`;
  const type = named(error.dataType);
  if (type) return `domain ${qualified(type)} (a column type of ${tableLabel(target)})`;
  return `table ${tableLabel(target)}`;
}

/**
 * A NOT NULL column refused a row: either the archive holds a null in it (the constraint was added since, NOT VALID
 * on PostgreSQL 18, or the target was made stricter), or the archive has no such column and the target no default.
 */
function notNullRefusal(error: unknown, { target, plan }: InsertRefusalContext): string {
  const fields = error as RefusalFields;
  const column = named(fields.column);
  const where = refusedObject(fields, target);
  if (!column) {
    return `the target ${where} refused the archived rows: a NOT NULL constraint refused a null (SQLSTATE 23502); restore into a target without that constraint, or drop it for the restore`;
  }
  if (plan.columns.some((c) => c.name === column)) {
    return `the target ${where} refused the archived rows: its column ${quoteIdent(column)} is NOT NULL and the archive holds a null in it for at least one row (SQLSTATE 23502; a NOT NULL added later as NOT VALID need not hold for older rows); restore into a target whose column ${quoteIdent(column)} allows nulls, or drop its NOT NULL for the restore`;
  }
  return `the target ${where} refused the archived rows: its column ${quoteIdent(column)} is NOT NULL and the archive holds no value for it, the archived table having no such column (SQLSTATE 23502); give the column a default, or restore into another table`;
}

/**
 * Another constraint refused the rows: an exclusion constraint (23P01, an archived row overlapping a row of the target
 * or another archived row) or a unique constraint other than the key rows conflict on (23505). Named with its table,
 * never by the values PostgreSQL's detail quotes.
 */
function constraintRefusal(error: unknown, code: string, { target }: InsertRefusalContext): string {
  const fields = error as RefusalFields;
  const constraint = named(fields.constraint);
  if (!constraint)
    return `the target ${refusedObject(fields, target)} refused the archived rows (SQLSTATE ${code})`;
  const kind =
    code === '23P01'
      ? 'exclusion constraint'
      : code === '23505'
        ? 'unique constraint or index'
        : 'constraint';
  return `the target ${refusedObject(fields, target)} refused the archived rows: its ${kind} ${quoteIdent(constraint)} does not hold for at least one of them, against the target's rows or each other (SQLSTATE ${code}); restore into a target without that constraint, or drop it for the restore`;
}

/**
 * A CHECK constraint refused a row: one added since (NOT VALID, say) that the archived rows never had to satisfy. The
 * message names the constraint and its table or domain, never a value (audit rows hold personal data). The same
 * SQLSTATE without a constraint is a partitioned target with no partition for the row (the old days' partitions of
 * an audit table are often dropped once archived).
 */
function checkRefusal(error: unknown, { target }: InsertRefusalContext): string {
  const fields = error as RefusalFields;
  const constraint = named(fields.constraint);
  if (!constraint)
    return `the target ${refusedObject(fields, target)} refused the archived rows: no partition of it takes some of them (SQLSTATE 23514; the partition of their days was dropped or detached, or never existed); create or attach a partition for those days, or restore into a table that is not partitioned`;
  const which = `its CHECK constraint ${quoteIdent(constraint)}`;
  return `the target ${refusedObject(fields, target)} refused the archived rows: ${which} does not hold for at least one of them (SQLSTATE 23514; a constraint added later as NOT VALID need not hold for older rows); restore into a target without that constraint, or change the constraint so the archived rows satisfy it`;
}
