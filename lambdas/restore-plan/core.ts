import { type ArchiveSource, archiveDay, listArchives, sourcePrefix } from '../shared/archive/catalog.js';
import { findDatabase } from '../shared/config/resolved-table.js';
import { inTransaction } from '../shared/database/db.js';
import { ConfigError, TableNotUsableError } from '../shared/errors/step-errors.js';
import { createTarget } from '../shared/restore/create-target.js';
import { assertWritable, describeTarget, type TableName, tableLabel } from '../shared/restore/restore-sql.js';
import {
  assertRestoreTargetAllowed,
  type RestoreRequest,
  type RestoreTask,
} from '../shared/restore/restore-task.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import {
  groupArchives,
  HISTORY_EVENTS_PER_GROUP,
  HISTORY_EVENTS_PER_PAGE,
  type ListedArchive,
  MAX_PLANNED_HISTORY_EVENTS,
  RESTORE_PAGE_ARCHIVES,
} from './groups.js';
import type { RestorePage, RestorePlan, RestorePlanInput, RestorePlanOutput } from './schema.js';

/** Where the archives of a restore task are. */
export function archiveSource(task: RestoreTask, prefix: string): ArchiveSource {
  return task.format === 'legacy' && task.legacy
    ? {
        format: 'legacy',
        prefix: task.legacy.prefix,
        database: task.legacy.database,
        table: task.source.name,
      }
    : { format: 'native', location: { prefix, database: task.database, ...splitName(task.source) } };
}

const splitName = (table: TableName) => ({ schema: table.schema, table: table.name });

export type RestorePlanDeps = Pick<StepDeps, 'config' | 'store' | 'database' | 'telemetry'>;

export async function restorePlanStep(
  input: RestorePlanInput,
  deps: RestorePlanDeps,
): Promise<RestorePlanOutput> {
  return input.action === 'plan'
    ? planRestore(input.restoreId, input.request, deps)
    : listPage(input.task, input.cursor, input.concurrency, deps);
}

/**
 * Plan: resolves the request against the config, selects the archives (refusing more than one execution can
 * carry), and makes sure the target exists: the original table must, a separate target is created like the
 * source (or from the archive's manifest when the source is gone). A dry run creates nothing.
 */
export async function planRestore(
  restoreId: string,
  request: RestoreRequest,
  deps: RestorePlanDeps,
): Promise<RestorePlan> {
  const database = findDatabase(deps.config, request.database);
  const task: RestoreTask = {
    restoreId,
    database: request.database,
    source: request.table,
    target: request.targetTable ?? request.table,
    format: request.legacy ? 'legacy' : 'native',
    legacy: request.legacy
      ? { database: request.legacy.database, prefix: request.legacy.prefix ?? deps.config.s3.prefix }
      : undefined,
    strategy: request.strategy,
    dryRun: request.dryRun,
    ignoreWatermark: request.ignoreWatermark,
    drift: request.drift,
    requireInventory: request.requireInventory,
    fromDay: request.fromDay,
    toDay: request.toDay,
    key: request.key,
  };
  assertRestoreTargetAllowed(database, task);
  const source = archiveSource(task, deps.config.s3.prefix);
  if (task.key && archiveDay(source, task.key) === undefined) {
    throw new ConfigError(`key "${task.key}" is not an archive of ${tableLabel(task.source)}`);
  }
  const concurrency = database.maxConnections;
  let archives = 0;
  let first: string | undefined;
  // The execution's history grows with the groups and pages it will run: counted as the list steps will cut them.
  let historyEvents = 0;
  let page: ListedArchive[] = [];
  const countPage = () => {
    historyEvents +=
      HISTORY_EVENTS_PER_PAGE + HISTORY_EVENTS_PER_GROUP * groupArchives(page, concurrency).length;
    page = [];
  };
  for await (const ref of selectArchives(task, source, deps)) {
    archives += 1;
    first ??= ref.key;
    page.push({ key: ref.key, format: ref.format, size: ref.size });
    if (page.length === RESTORE_PAGE_ARCHIVES) countPage();
    if (historyEvents > MAX_PLANNED_HISTORY_EVENTS) {
      throw new ConfigError(
        `more archives match than one execution's history can hold (over ${archives.toLocaleString('en-US')} so far); restore them in several executions by day range (mode "range")`,
      );
    }
  }
  if (page.length > 0) countPage();
  // Nothing to restore is far more often a mistyped table, day range or prefix than an intent: say so.
  if (archives === 0) {
    throw new ConfigError(
      task.key
        ? `archive "${task.key}" does not exist`
        : `no ${task.format} archives of ${tableLabel(task.source)} in ${task.database}${task.fromDay || task.toDay ? ` between ${task.fromDay ?? 'the first'} and ${task.toDay ?? 'the last'} day` : ''} (under ${sourcePrefix(source)})`,
    );
  }

  const db = await deps.database(task.database);
  const targetCreated = await db.withConnection((client) =>
    inTransaction(client, async () => {
      const target = await describeTarget(client, task.target);
      if (target) {
        assertWritable(target, task.strategy);
        return false;
      }
      const sameTable = task.target.schema === task.source.schema && task.target.name === task.source.name;
      if (sameTable) {
        throw new TableNotUsableError(
          `restore target ${tableLabel(task.target)} does not exist in database ${task.database}; create it, or restore into another table (targetTable)`,
        );
      }
      if (task.dryRun) return false;
      await createTarget(client, task, first, deps.store);
      return true;
    }),
  );
  deps.telemetry.info('restore planned', {
    restoreId,
    database: task.database,
    target: tableLabel(task.target),
    archives,
    targetCreated,
  });
  return { task, archives, targetCreated, concurrency };
}

/** The archives a task selects, in key order. */
function selectArchives(
  task: RestoreTask,
  source: ArchiveSource,
  deps: Pick<StepDeps, 'store'>,
  startAfter?: string,
) {
  const refs = listArchives(deps.store, source, { fromDay: task.fromDay, toDay: task.toDay, startAfter });
  if (!task.key) return refs;
  const only = task.key;
  return (async function* () {
    for await (const ref of refs) if (ref.key === only) yield ref;
  })();
}

/** One page of archives after `cursor` (the previous page's last key), cut into groups for the Map. */
export async function listPage(
  task: RestoreTask,
  cursor: string,
  concurrency: number,
  deps: Pick<StepDeps, 'config' | 'store'>,
): Promise<RestorePage> {
  const source = archiveSource(task, deps.config.s3.prefix);
  const archives: ListedArchive[] = [];
  let more = false;
  for await (const ref of selectArchives(task, source, deps, cursor || undefined)) {
    if (archives.length === RESTORE_PAGE_ARCHIVES) {
      more = true;
      break;
    }
    archives.push({ key: ref.key, format: ref.format, size: ref.size });
  }
  return { groups: groupArchives(archives, concurrency), cursor: archives.at(-1)?.key ?? cursor, more };
}
