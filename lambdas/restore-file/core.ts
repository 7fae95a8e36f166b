import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import {
  type ArchiveExpectation,
  integrityProblems,
  readExpectation,
  streamArchive,
} from '../shared/archive-catalog.js';
import { inRolledBackTransaction, inTransaction } from '../shared/db.js';
import type { StepDeps } from '../shared/deps.js';
import {
  ArchiveIntegrityError,
  RestoreConflictError,
  SchemaDriftError,
  TableNotUsableError,
} from '../shared/errors.js';
import type { RestoreFileResult } from '../shared/locks.js';
import {
  type ArchivedColumn,
  conflictCountSql,
  copyIntoStagingSql,
  createStagingSql,
  describeTarget,
  insertSql,
  planColumns,
  type RestoreTarget,
  tableLabel,
} from '../shared/restore-sql.js';
import { type RestoreTask, restoreTargetLabel } from '../shared/restore-task.js';
import type { RestoreFileInput, RestoreFileOutput } from './schema.js';

const sqlState = (error: unknown): string => (error as { code?: string }).code ?? '';

/**
 * Restores one archive in one transaction: stream the object once into a temporary table (checksums, size and row
 * count measured on the way), compare every figure with the archive's sidecar, and only then write the rows into
 * the target with one INSERT ... SELECT under the conflict strategy. A damaged or tampered archive, a schema that
 * drifted beyond what is allowed, or a conflict under `fail` rolls back: nothing of that archive is written.
 * Afterwards the restore watermark records the archive for the target.
 */
export async function restoreFile(input: RestoreFileInput, deps: StepDeps): Promise<RestoreFileOutput> {
  const { task, archive } = input;
  const target = restoreTargetLabel(task);
  const empty = { key: archive.key, rows: 0, inserted: 0, skipped: 0, overwritten: 0, warnings: [] };
  if (!task.ignoreWatermark) {
    const mark = await deps.locks.restoredMark(task.database, target, archive.key);
    if (mark) return { ...empty, status: 'already-restored', rows: mark.rows };
  }
  const expected = await readExpectation(deps.store, archive);
  checkOrigin(task, expected);

  const db = await deps.database(task.database);
  // A dry run does everything in a transaction that always rolls back: it measures, and leaves nothing behind.
  const transaction = task.dryRun ? inRolledBackTransaction : inTransaction;
  const result = await db.withConnection((client) =>
    transaction(client, async (): Promise<RestoreFileResult> => {
      // A dry run into a target it would create measures against the source, which the target would copy.
      const table =
        (await describeTarget(client, task.target)) ??
        (task.dryRun ? await describeTarget(client, task.source) : undefined);
      if (!table) throw new TableNotUsableError(`restore target ${tableLabel(task.target)} does not exist`);
      const seen = new Set<string>();
      await client.query(createStagingSql);
      await stage(client, deps, task, archive, expected, (column) => {
        seen.add(column);
        return table.columns.find((c) => c.name === column)?.baseType;
      });
      const archived: ArchivedColumn[] = expected.manifest
        ? expected.manifest.columns.map((c) => ({ name: c.name, type: c.type }))
        : [...seen].map((name) => ({ name }));
      const plan = await planColumns(client, archived, table, task.drift);
      const conflictKey = conflictKeyOf(expected, table);
      if (task.strategy === 'overwrite' && conflictKey.length === 0) {
        throw new SchemaDriftError(
          `strategy "overwrite" needs a key: ${tableLabel(task.target)} has no primary key and lacks the archived key columns`,
        );
      }
      if (task.dryRun) {
        const counted =
          conflictKey.length > 0
            ? await client.query<{ conflicts: number }>(conflictCountSql(table, plan, conflictKey))
            : undefined;
        return dryRunResult(
          task,
          archive.key,
          expected.rows,
          counted?.rows[0]?.conflicts ?? 0,
          plan.warnings,
        );
      }
      const written = await insert(client, insertSql(table, plan, task.strategy, conflictKey), task.strategy);
      return {
        ...empty,
        status: 'restored',
        rows: expected.rows,
        inserted: written.inserted,
        overwritten: written.updated,
        skipped: expected.rows - written.inserted - written.updated,
        warnings: plan.warnings,
      };
    }),
  );
  if (result.status === 'restored') {
    await deps.fault('restore:afterCommit');
    await deps.locks.markRestored(task.database, target, archive.key, {
      restoreId: task.restoreId,
      restoredAt: deps.now().toISOString(),
      rows: result.rows,
    });
  }
  deps.telemetry.info('archive restored', {
    restoreId: task.restoreId,
    key: archive.key,
    status: result.status,
    rows: result.rows,
    inserted: result.inserted,
    skipped: result.skipped,
    overwritten: result.overwritten,
  });
  return result;
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

/** Streams the archive into the staging table and refuses it unless every figure matches its sidecar. */
async function stage(
  client: pg.PoolClient,
  deps: StepDeps,
  task: RestoreTask,
  archive: RestoreFileInput['archive'],
  expected: ArchiveExpectation,
  columnType: (column: string) => string | undefined,
): Promise<void> {
  let measured: Awaited<ReturnType<typeof streamArchive>>;
  try {
    measured = await streamArchive(deps.store, archive, {
      sink: client.query(copyFrom(copyIntoStagingSql)),
      columnType,
    });
  } catch (error) {
    // PostgreSQL refusing the bytes themselves (say, invalid UTF-8) is damage, reported without the value.
    if (sqlState(error).startsWith('22'))
      throw new ArchiveIntegrityError(
        `archive ${archive.key} holds bytes PostgreSQL refuses (${sqlState(error)})`,
      );
    throw error;
  }
  const problems = integrityProblems(expected, measured);
  if (problems.length > 0) {
    deps.telemetry.metric('VerificationFailures', 'Count', 1, {
      database: task.database,
      table: restoreTargetLabel(task),
    });
    throw new ArchiveIntegrityError(
      `archive ${archive.key} does not match its sidecar, nothing restored: ${problems.join('; ')}`,
    );
  }
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
      throw new SchemaDriftError(
        'strategy "overwrite" needs a primary key or unique index on the key columns',
      );
    // Values the target refuses (a cast that fails, a constraint): reported by SQLSTATE, never by value.
    if (code.startsWith('22') || code.startsWith('23'))
      throw new SchemaDriftError(`the target refused the archived rows (SQLSTATE ${code})`);
    throw error;
  }
}

function dryRunResult(
  task: RestoreTask,
  key: string,
  rows: number,
  conflicts: number,
  warnings: string[],
): RestoreFileResult {
  const overwrite = task.strategy === 'overwrite';
  return {
    key,
    status: 'dry-run',
    rows,
    inserted: rows - conflicts,
    skipped: overwrite ? 0 : conflicts,
    overwritten: overwrite ? conflicts : 0,
    warnings:
      task.strategy === 'fail' && conflicts > 0
        ? [...warnings, `${conflicts} row(s) already exist: strategy "fail" would refuse this archive`]
        : warnings,
  };
}
