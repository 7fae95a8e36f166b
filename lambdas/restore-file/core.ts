import type { Readable } from 'node:stream';
import type pg from 'pg';
import { readExpectation, streamArchive } from '../shared/archive/catalog.js';
import { LineNotCopyableError } from '../shared/archive/copy-text.js';
import {
  type ArchiveExpectation,
  archiveProblems,
  type MeasuredArchive,
} from '../shared/archive/integrity.js';
import type { InventoryEntry } from '../shared/archive/inventory.js';
import type { ObjectPin } from '../shared/archive/store.js';
import { findDatabase } from '../shared/config/resolved-table.js';
import { copyFromStdin } from '../shared/database/copy-from.js';
import { inReadOnlyTransaction, inRolledBackTransaction, inTransaction } from '../shared/database/db.js';
import { isUnique } from '../shared/database/table-shape.js';
import {
  ArchiveIntegrityError,
  ArchiverError,
  RestoreConflictError,
  SchemaDriftError,
  TableNotUsableError,
} from '../shared/errors/step-errors.js';
import {
  failedRestoreResult,
  type RestoredMark,
  type RestoreFileResult,
} from '../shared/lock-table/restore-records.js';
import {
  type ArchivedColumn,
  assertNoRules,
  checkConversions,
  copyIntoStagingSql,
  copyIntoTargetSql,
  createStagingSql,
  describeTarget,
  insertSql,
  planColumns,
  type RestoreTarget,
  tableLabel,
} from '../shared/restore/restore-sql.js';
import {
  type ArchivePointer,
  assertRestoreTargetAllowed,
  type RestoreTask,
  restoresIntoArchivedTable,
  restoreTargetLabel,
} from '../shared/restore/restore-task.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import type { RestoreFileInput, RestoreFileOutput } from './schema.js';

const sqlState = (error: unknown): string => (error as { code?: string }).code ?? '';

export type RestoreFileDeps = Pick<
  StepDeps,
  'config' | 'store' | 'inventory' | 'restoreRecords' | 'database' | 'telemetry' | 'now' | 'fault'
>;

/**
 * Restores a group of archives (restore-plan/groups.ts), one after another, each in its own transaction: an archive
 * that fails writes nothing and never stops the others. The next archive's sidecar, watermark and inventory entry
 * are read while the current one is written. Errors that retrying cannot cure come back as that archive's `failed`
 * result with a short message, so a page of results stays small; a transient one is thrown for the state machine to
 * retry the group, whose archives committed so far then answer from their watermark with the figures they recorded.
 */
export async function restoreFiles(
  input: RestoreFileInput,
  deps: RestoreFileDeps,
): Promise<RestoreFileOutput> {
  const { task, archives } = input;
  let existing: RestoreTarget | undefined;
  try {
    assertRestoreTargetAllowed(findDatabase(deps.config, task.database), task);
    const db = await deps.database(task.database);
    existing = await db.withConnection((client) =>
      inReadOnlyTransaction(client, () => describeTarget(client, task.target)),
    );
  } catch (error) {
    const failure = failedUnlessRetryable(error, deps, archives[0]?.key ?? '');
    return { results: archives.map((archive) => ({ ...failure, key: archive.key })) };
  }
  const lookups = await groupLookups(task, archives, existing, deps);
  const prepare = (archive: ArchivePointer) =>
    settled(prepareArchive(task, archive, existing, lookups, deps));
  const results: RestoreFileResult[] = [];
  let next = archives[0] ? prepare(archives[0]) : undefined;
  try {
    for (const [i, archive] of archives.entries()) {
      const prepared = await next;
      const following = archives[i + 1];
      next = following ? prepare(following) : undefined;
      try {
        const ready = unwrap(prepared);
        results.push('status' in ready ? ready : await writeArchive(task, archive, existing, ready, deps));
      } catch (error) {
        results.push(failedUnlessRetryable(error, deps, archive.key));
      }
    }
  } finally {
    // A transient error ends the group early: the next archive's opened body must not hold its connection.
    void next?.then((outcome) => {
      if ('value' in outcome && !('status' in outcome.value)) outcome.value.body?.destroy();
    });
  }
  return { results: results.map(boundedWarnings) };
}

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
  committed: { pin?: ObjectPin; warnings: string[] };
  /** The object, opened ahead for the fast path: its first bytes arrive while the previous archive is written. */
  body?: Readable;
}

const watermarkOf = (task: RestoreTask, existing: RestoreTarget | undefined) =>
  existing ? `${restoreTargetLabel(task)}@${existing.identity}` : undefined;

/** What the lock table knows of a group's archives: their watermarks for this target, their inventory entries. */
interface GroupLookups {
  marks: Map<string, RestoredMark>;
  entries: Map<string, InventoryEntry>;
}

/** Two reads for the whole group, where one archive after another cost two each. */
async function groupLookups(
  task: RestoreTask,
  archives: ArchivePointer[],
  existing: RestoreTarget | undefined,
  deps: Pick<StepDeps, 'restoreRecords' | 'inventory'>,
): Promise<GroupLookups> {
  const watermark = watermarkOf(task, existing);
  const native = archives.filter((archive) => archive.format === 'native').map((archive) => archive.key);
  const [marks, entries] = await Promise.all([
    watermark && !task.ignoreWatermark
      ? deps.restoreRecords.restoredMarks(
          task.database,
          watermark,
          archives.map((archive) => archive.key),
        )
      : new Map<string, RestoredMark>(),
    native.length > 0
      ? deps.inventory.entries(task.database, `${task.source.schema}.${task.source.name}`, native)
      : new Map<string, InventoryEntry>(),
  ]);
  return { marks, entries };
}

/**
 * What an archive's write needs, read before its transaction: its sidecar, checked against the request and the
 * inventory. An archive the watermark lists is answered from it: by this very restore (a retried group) with the
 * figures it recorded, by an earlier one as already restored.
 */
async function prepareArchive(
  task: RestoreTask,
  archive: ArchivePointer,
  existing: RestoreTarget | undefined,
  lookups: GroupLookups,
  deps: RestoreFileDeps,
): Promise<PreparedArchive | RestoreFileResult> {
  const mark = lookups.marks.get(archive.key);
  if (mark) return resultFromMark(archive.key, task, mark);
  const expected = await readExpectation(deps.store, archive);
  checkOrigin(task, expected);
  const committed = checkInventory(deps, task, expected, lookups.entries.get(archive.key));
  if (!existing || !expected.manifest) return { expected, committed };
  // Any trouble opening it is met again, and reported, when the write opens it itself.
  const body = await deps.store.getStream(archive.key, committed.pin).catch(() => undefined);
  // A connection that breaks while the body waits must not crash the process: the write then opens it afresh.
  body?.on('error', () => undefined);
  return { expected, committed, body };
}

function resultFromMark(key: string, task: RestoreTask, mark: RestoredMark): RestoreFileResult {
  const empty = { key, rows: mark.rows, inserted: 0, skipped: 0, overwritten: 0, warnings: [] };
  if (mark.restoreId === task.restoreId && mark.written)
    return { ...empty, status: 'restored', ...mark.written };
  return { ...empty, status: 'already-restored' };
}

async function writeArchive(
  task: RestoreTask,
  archive: ArchivePointer,
  existing: RestoreTarget | undefined,
  prepared: PreparedArchive,
  deps: RestoreFileDeps,
): Promise<RestoreFileResult> {
  try {
    return await writePreparedArchive(task, archive, existing, prepared, deps);
  } finally {
    // Unread when the reference path ran instead: its connection goes back to the pool.
    prepared.body?.destroy();
  }
}

async function writePreparedArchive(
  task: RestoreTask,
  archive: ArchivePointer,
  existing: RestoreTarget | undefined,
  { expected, committed, body }: PreparedArchive,
  deps: RestoreFileDeps,
): Promise<RestoreFileResult> {
  const empty = { key: archive.key, rows: 0, inserted: 0, skipped: 0, overwritten: 0, warnings: [] };
  const db = await deps.database(task.database);
  const watermark = watermarkOf(task, existing);
  // A dry run does everything in a transaction that always rolls back: it measures, and leaves nothing behind.
  const transaction = task.dryRun ? inRolledBackTransaction : inTransaction;
  // Which path wrote the rows: an operator wondering why one archive took longer sees the conflicts' second read.
  let path: 'copy' | 'reference' = 'reference';
  const result = await db.withConnection((client) =>
    transaction(client, async (): Promise<RestoreFileResult> => {
      const target = await describeTarget(client, task.target);
      if (existing && target?.identity !== existing.identity)
        throw new TableNotUsableError(
          `restore target ${tableLabel(task.target)} was replaced during the restore`,
        );
      // A dry run into a target it would create reads the source's shape, which the new table would copy.
      const table = target ?? (task.dryRun ? await describeTarget(client, task.source) : undefined);
      if (!table) throw new TableNotUsableError(`restore target ${tableLabel(task.target)} does not exist`);
      if (target) assertNoRules(target);
      const warnings = committed.warnings;
      const figures = { ...empty, rows: expected.rows };
      if (target) {
        const opened = body && !body.destroyed ? body : undefined;
        const direct = await copyDirectly(
          client,
          deps,
          task,
          archive,
          expected,
          committed.pin,
          target,
          opened,
        );
        if (direct) {
          path = 'copy';
          const { written, planWarnings } = direct;
          return {
            ...figures,
            status: task.dryRun ? 'dry-run' : 'restored',
            inserted: written,
            skipped: expected.rows - written,
            warnings: [...warnings, ...planWarnings],
          };
        }
      }
      const seen = new Set<string>();
      await client.query(createStagingSql);
      await stage(client, deps, task, archive, expected, committed.pin, (column) => {
        seen.add(column);
        return table.columns.find((c) => c.name === column)?.baseType;
      });
      const archived: ArchivedColumn[] = expected.manifest
        ? expected.manifest.columns.map((c) => ({ name: c.name, type: c.type }))
        : [...seen].map((name) => ({ name }));
      assertShapedLikeArchive(task, archived, table);
      const plan = planColumns(archived, table, task.drift);
      await checkConversions(client, plan, task.drift);
      const conflictKey = await uniqueConflictKey(client, task, expected, table);
      const withWarnings = { ...figures, warnings: [...warnings, ...plan.warnings] };
      // Nothing is in a table the restore would create: every row would be written.
      if (!target) return { ...withWarnings, status: 'dry-run', inserted: expected.rows };
      // A dry run runs the very INSERT too, in the transaction that rolls back: its figures are the real ones.
      const written = await insert(client, insertSql(table, plan, task.strategy, conflictKey), task.strategy);
      return {
        ...withWarnings,
        status: task.dryRun ? 'dry-run' : 'restored',
        inserted: written.inserted,
        overwritten: written.updated,
        skipped: expected.rows - written.inserted - written.updated,
      };
    }),
  );
  if (result.status === 'restored' && watermark) {
    await deps.fault('restore:afterCommit');
    await deps.restoreRecords.markRestored(task.database, watermark, archive.key, {
      restoreId: task.restoreId,
      restoredAt: deps.now().toISOString(),
      rows: result.rows,
      written: { inserted: result.inserted, skipped: result.skipped, overwritten: result.overwritten },
    });
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
): { pin?: ObjectPin; warnings: string[] } {
  if (expected.format !== 'native') return { warnings: [] };
  if (!entry) {
    if (task.requireInventory)
      throw new ArchiveIntegrityError(
        `archive ${expected.key} is not in the inventory of committed archives (requireInventory), nothing restored`,
      );
    return { warnings: ['not in the inventory of committed archives (written before it existed?)'] };
  }
  const problems = archiveProblems(expected, { recorded: entry.figures }).sidecar;
  if (problems.length > 0) {
    refuseArchive(
      deps,
      task,
      `archive ${expected.key} is not the archive committed under its key, nothing restored: ${problems.join('; ')}`,
    );
  }
  return { pin: entry.pin, warnings: [] };
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
      sink: client.query(copyFromStdin(copyIntoStagingSql)),
      columnType,
      pin,
      rowDigest: expected.rowDigest !== undefined,
    });
  } catch (error) {
    // PostgreSQL refusing the bytes themselves (say, invalid UTF-8) is damage, reported without the value.
    if (sqlState(error).startsWith('22'))
      throw new ArchiveIntegrityError(
        `archive ${archive.key} holds bytes PostgreSQL refuses (${sqlState(error)})`,
      );
    throw error;
  }
  refuseUnlessLikeSidecar(deps, task, expected, measured);
}

/**
 * The fast path, for a native archive whose columns reach the target unconverted: its rows go straight into the
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
 * (assertNoRules). Undefined when the reference path is to run; otherwise the rows written and the plan's warnings.
 */
async function copyDirectly(
  client: pg.PoolClient,
  deps: Pick<StepDeps, 'store' | 'telemetry'>,
  task: RestoreTask,
  archive: ArchivePointer,
  expected: ArchiveExpectation,
  pin: ObjectPin | undefined,
  target: RestoreTarget,
  body: Readable | undefined,
): Promise<{ written: number; planWarnings: string[] } | undefined> {
  if (!expected.manifest) return undefined;
  const archived = expected.manifest.columns.map((c) => ({ name: c.name, type: c.type }));
  assertShapedLikeArchive(task, archived, target);
  const plan = planColumns(archived, target, task.drift);
  if (plan.converted.length > 0 || !target.copyable) return undefined;
  await uniqueConflictKey(client, task, expected, target);
  await client.query(`SAVEPOINT ${DIRECT_SAVEPOINT}`);
  const sink = client.query(copyFromStdin(copyIntoTargetSql(target, plan)));
  let measured: Awaited<ReturnType<typeof streamArchive>>;
  try {
    measured = await streamArchive(deps.store, archive, {
      sink,
      pin,
      body,
      rowDigest: expected.rowDigest !== undefined,
      copyColumns: plan.columns.map((c) => c.name),
    });
  } catch (error) {
    const refusedByDatabase = /^(22|23|0A)/.test(sqlState(error));
    if (!refusedByDatabase && !(error instanceof LineNotCopyableError)) throw error;
    await client.query(`ROLLBACK TO SAVEPOINT ${DIRECT_SAVEPOINT}`);
    return undefined;
  }
  refuseUnlessLikeSidecar(deps, task, expected, measured);
  return { written: sink.rowCount, planWarnings: plan.warnings };
}

const DIRECT_SAVEPOINT = 'audit_archiver_direct_copy';

/** The key rows conflict on, which must be unique in the target for a restore to recognise rows already there. */
async function uniqueConflictKey(
  client: pg.ClientBase,
  task: RestoreTask,
  expected: ArchiveExpectation,
  table: RestoreTarget,
): Promise<string[]> {
  const conflictKey = conflictKeyOf(expected, table);
  if (conflictKey.length === 0 || !(await isUnique(client, table.oid, conflictKey))) {
    throw new SchemaDriftError(
      `restore needs a primary key or unique index on the key (${conflictKey.join(', ') || 'none'}) of ${tableLabel(task.target)}, to recognise rows that are already there`,
    );
  }
  return conflictKey;
}

/** The key rows conflict on: the archived table's key when the target still has it, else the target's own. */
function conflictKeyOf(expected: ArchiveExpectation, target: RestoreTarget): string[] {
  const archivedKey = expected.manifest?.keyColumns ?? [];
  const names = new Set(target.columns.map((c) => c.name));
  return archivedKey.length > 0 && archivedKey.every((name) => names.has(name))
    ? archivedKey
    : target.primaryKey;
}

async function insert(client: pg.PoolClient, sql: string, strategy: RestoreTask['strategy']) {
  try {
    const result = await client.query<{ inserted: number; updated: number }>(sql);
    return result.rows[0] ?? { inserted: 0, updated: 0 };
  } catch (error) {
    const code = sqlState(error);
    if (code === '23505' && strategy === 'fail')
      throw new RestoreConflictError('rows of the archive already exist in the target (strategy "fail")');
    if (code === '42P10')
      throw new SchemaDriftError('restore needs a primary key or unique index on exactly the key columns');
    // Values the target refuses (a cast that fails, a constraint): reported by SQLSTATE, never by value.
    if (code.startsWith('22') || code.startsWith('23'))
      throw new SchemaDriftError(`the target refused the archived rows (SQLSTATE ${code})`);
    throw error;
  }
}
