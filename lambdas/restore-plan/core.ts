import {
  type ArchiveRef,
  type ArchiveSource,
  archiveDay,
  type ListOptions,
  listArchives,
  OtherSchemaArchives,
  partitionInRange,
  sourcePrefix,
  withoutOtherSchemas,
} from '../shared/archive/catalog.js';
import { tablePrefix } from '../shared/archive/format.js';
import type { InventoryEntry } from '../shared/archive/inventory.js';
import { findDatabase } from '../shared/config/resolved-table.js';
import { tableRef } from '../shared/config/schema.js';
import { isColdStorageClass } from '../shared/config/storage-classes.js';
import { type Database, inReadOnlyTransaction, inTransaction } from '../shared/database/db.js';
import { ArchiveInColdStorageError, ConfigError, TableNotUsableError } from '../shared/errors/step-errors.js';
import { coldArchivesMessage, unreadableColdArchives } from '../shared/restore/cold-archives.js';
import { createTarget, sourceKind, targetTemplate } from '../shared/restore/create-target.js';
import { sortUnlisted, uncommittedInFlight } from '../shared/restore/in-flight-archives.js';
import { assertWritable, describeTarget, type TableName, tableLabel } from '../shared/restore/restore-sql.js';
import {
  assertRestoreTargetAllowed,
  type RestoreRequest,
  type RestoreTask,
} from '../shared/restore/restore-task.js';
import { refuseOverwriteUnderHold } from '../shared/restore/target-hold.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import {
  groupArchives,
  HISTORY_EVENTS_PER_GROUP,
  HISTORY_EVENTS_PER_PAGE,
  historyFullError,
  MAX_PLANNED_HISTORY_EVENTS,
} from './groups.js';
import {
  type CommittedArchives,
  cursorStart,
  legacyNewestFirst,
  partitionsOfSeveralRuns,
  restorePages,
} from './pages.js';
import type { RestorePage, RestorePlan, RestorePlanInput, RestorePlanOutput } from './schema.js';

/** Where the archives of a restore task are. */
function archiveSource(task: RestoreTask, prefix: string): ArchiveSource {
  return task.format === 'legacy' && task.legacy
    ? {
        format: 'legacy',
        prefix: task.legacy.prefix,
        database: task.legacy.database,
        schema: task.source.schema,
        table: task.source.name,
      }
    : { format: 'native', location: { prefix, database: task.database, ...splitName(task.source) } };
}

const splitName = (table: TableName) => ({ schema: table.schema, table: table.name });

/**
 * The stack lets the restore functions read the keys under `s3.prefix` alone (lib/restore-workflow.ts
 * `readableKeys`): the Python tool's archives beside it would be denied to the listing in AWS, so the request is
 * refused before anything is read.
 */
/**
 * Refuses a legacy restore that names another database's archives: the Python tool's keys start with the PostgreSQL
 * database's name, and several databases' archives may share a prefix. Whoever may start the restore writes its input,
 * so the name must be the config's `legacyDatabase`, or else the name of the database the connection reaches.
 */
async function assertLegacyDatabase(
  task: Pick<RestoreTask, 'legacy' | 'database'>,
  configured: string | undefined,
  client: () => Promise<string>,
): Promise<void> {
  if (!task.legacy) return;
  const own = configured ?? (await client());
  if (task.legacy.database === own) return;
  throw new ConfigError(
    `legacy.database "${task.legacy.database}" is not the database ${task.database} restores from: its Python tool archives carry "${own}" (${configured ? 'legacyDatabase in the config' : 'the name of the database the connection reaches; set legacyDatabase in the config if they carry another'}); another database's archives are never restored into it; nothing was read`,
  );
}

function assertLegacyPrefixReadable(task: Pick<RestoreTask, 'legacy'>, prefix: string): void {
  if (!task.legacy || task.legacy.prefix.startsWith(prefix)) return;
  throw new ConfigError(
    `legacy prefix "${task.legacy.prefix}" is outside s3.prefix "${prefix}", the only keys the restore functions may read: copy the Python tool's archives (with their sidecars) below "${prefix}" and name that prefix; nothing was read`,
  );
}

export type RestorePlanDeps = Pick<
  StepDeps,
  'config' | 'store' | 'inventory' | 'locks' | 'holds' | 'database' | 'telemetry' | 'restoreRecords'
>;

/** Keys of unreachable committed archives the plan's error and warning name, at most. */
const MISSING_KEYS_SHOWN = 5;

export async function restorePlanStep(
  input: RestorePlanInput,
  deps: RestorePlanDeps,
): Promise<RestorePlanOutput> {
  return input.action === 'plan'
    ? planRestore(input.restoreId, input.request, deps, input.startedAt)
    : listPage(input.task, input.cursor, input.concurrency, deps);
}

/**
 * Plan: resolves the request against the config, selects the archives (refusing more than one execution can
 * carry), checks that every committed archive of the request (the inventory's) is among them, and makes sure the
 * target exists: the original table must, a separate target is created like the source (or from the archive's
 * manifest when the source is gone). A dry run creates nothing.
 */
export async function planRestore(
  restoreId: string,
  request: RestoreRequest,
  deps: RestorePlanDeps,
  startedAt?: string,
): Promise<RestorePlan> {
  const database = findDatabase(deps.config, request.database);
  const task: RestoreTask = {
    restoreId,
    startedAt,
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
    unlistedArchives: request.unlistedArchives,
    fromDay: request.fromDay,
    toDay: request.toDay,
    key: request.key,
  };
  assertRestoreTargetAllowed(database, task);
  if (task.strategy === 'overwrite')
    await (await deps.database(task.database)).withConnection((client) =>
      inReadOnlyTransaction(client, () =>
        refuseOverwriteUnderHold(deps, client, task, 'nothing was written'),
      ),
    );
  assertLegacyPrefixReadable(task, deps.config.s3.prefix);
  await assertLegacyDatabase(task, database.legacyDatabase, async () =>
    (await deps.database(task.database)).withConnection(async (client) => {
      const result = await client.query<{ name: string }>('SELECT pg_catalog.current_database() AS name');
      return result.rows[0]?.name ?? '';
    }),
  );
  const source = archiveSource(task, deps.config.s3.prefix);
  // What the listing must hold: the committed archives of the request, read before listing, so an archive committed
  // meanwhile is listed too.
  const unlisted = await committedArchives(task, deps);
  // A committed key outside the current prefix is one the listing cannot return: said below, with the reason.
  if (task.key && archiveDay(source, task.key) === undefined && !unlisted.has(task.key)) {
    throw new ConfigError(`key "${task.key}" is not an archive of ${tableLabel(task.source)}`);
  }
  const concurrency = database.maxConnections;
  const db = await deps.database(task.database);
  // The plan lists every archive of the request at once: it reads legacy metadata only where another schema's table
  // may have archives among them, or for the one key asked for. The list steps read it still, for their pages: they
  // leave out the archives of a twin since dropped, which the plan then counts.
  const otherSchemas =
    task.format === 'native' || task.key !== undefined || (await twinTableExists(db, task.source));
  let archives = 0;
  /** Archives the inventory does not list (sortUnlisted): how many, and the first few keys for the message. */
  const notListed = { count: 0, keys: [] as string[] };
  /** The keys selected, in key order: a target created once the source is gone takes every shape among them. */
  const keys: string[] = [];
  // The execution's history grows with the groups and pages it will run: counted as the list steps will cut them, in
  // the order they will hand the archives out (by the same inventory).
  let historyEvents = 0;
  const committed = new Map(unlisted);
  const others = new OtherSchemaArchives();
  /** Archives listed in a class S3 may refuse to read (GLACIER, DEEP_ARCHIVE): checked before anything is written. */
  const coldRefs: { key: string; storageClass: string }[] = [];
  const selected = async function* () {
    for await (const ref of selectArchives(
      task,
      source,
      deps,
      undefined,
      others.add,
      otherSchemas,
      (found) => {
        notListed.count += 1;
        if (notListed.keys.length < MISSING_KEYS_SHOWN) notListed.keys.push(found.key);
      },
    )) {
      archives += 1;
      unlisted.delete(ref.key);
      keys.push(ref.key);
      if (isColdStorageClass(ref.storageClass))
        coldRefs.push({ key: ref.key, storageClass: ref.storageClass });
      yield ref;
    }
  };
  for await (const page of restorePages(selected(), {
    strategy: task.strategy,
    cursor: '',
    committed: async () => committed,
    format: task.format,
  })) {
    historyEvents +=
      HISTORY_EVENTS_PER_PAGE + HISTORY_EVENTS_PER_GROUP * groupArchives(page.archives, concurrency).length;
    if (historyEvents > MAX_PLANNED_HISTORY_EVENTS) throw historyFullError(archives, task);
  }
  if (unlisted.size > 0) {
    const missing = missingArchives(task, source, deps.config.s3, [...unlisted.values()]);
    // One archive asked for by key that is not there leaves nothing to restore: allowing it changes nothing.
    if (!request.allowMissingArchives || (task.key && archives === 0))
      throw new ConfigError(`${missing.message}; nothing was written`);
    task.missingArchives = { archives: unlisted.size, rows: missing.rows };
    deps.telemetry.warn('restore leaves out committed archives that are not in the bucket', {
      restoreId,
      database: task.database,
      table: `${task.source.schema}.${task.source.name}`,
      missingArchives: unlisted.size,
      missingRows: missing.rows,
      keys: missing.keys,
    });
  }
  if (notListed.count > 0 && task.unlistedArchives === 'refuse')
    throw new ConfigError(
      `${notListed.count} archive(s) of ${tableLabel(task.source)} are not in the inventory of committed archives though S3 dates them after the table's archives began to be recorded there (${notListed.keys.join(', ')}${notListed.count > notListed.keys.length ? ', …' : ''}): a withdrawn batch's object completed late by an invocation that had lost its lease (its rows may have been changed or erased since), an object written outside the archiver, or a committed archive whose inventory entry is gone (a lock table restored to an earlier time?); restore again with unlistedArchives "skip" to leave them out, or "restore" to restore them; nothing was written`,
    );
  if (notListed.count > 0 && task.unlistedArchives === 'skip') {
    task.unlistedArchivesLeftOut = notListed.count;
    deps.telemetry.warn('restore leaves out archives the inventory does not list', {
      restoreId,
      database: task.database,
      table: `${task.source.schema}.${task.source.name}`,
      unlistedArchives: notListed.count,
      keys: notListed.keys,
    });
  }
  // Archives of the table's batch in flight hold rows never deleted: the table has them, as the application has them
  // now. Read after the listing (see uncommittedInFlight); the list steps leave them out again, page by page.
  const inFlight =
    task.format === 'native'
      ? await uncommittedInFlight(
          { ...deps, sourceDatabase: async () => db },
          task.database,
          task.source,
          keys,
        )
      : new Set<string>();
  if (inFlight.size > 0) {
    archives -= inFlight.size;
    keys.splice(0, keys.length, ...keys.filter((key) => !inFlight.has(key)));
    if (archives === 0)
      throw new ConfigError(
        `the only archive(s) of ${tableLabel(task.source)} selected (${inFlight.size}) belong to the batch it has in flight: their rows are still in the source table, not yet deleted; nothing to restore`,
      );
    task.inFlightArchives = inFlight.size;
    deps.telemetry.warn('restore leaves out the archives of the batch in flight', {
      restoreId,
      database: task.database,
      table: `${task.source.schema}.${task.source.name}`,
      inFlightArchives: inFlight.size,
    });
  }
  const leftOut = others.note(task.source.name);
  // Nothing to restore is far more often a mistyped table, day range or prefix than an intent: say so.
  if (archives === 0) {
    throw new ConfigError(
      task.key
        ? `archive "${task.key}" does not exist${leftOut ? ` as an archive of ${tableLabel(task.source)}: ${leftOut}` : ''}`
        : `no ${task.format} archives of ${tableLabel(task.source)} in ${task.database}${task.fromDay || task.toDay ? ` between ${task.fromDay ?? 'the first'} and ${task.toDay ?? 'the last'} day` : ''} (under ${sourcePrefix(source)})${leftOut ? `; ${leftOut}` : ''}`,
    );
  }
  // Found now rather than by each group as it reads them, after others have written their rows.
  const unreadable = await unreadableColdArchives(
    deps.store,
    coldRefs.filter((ref) => !inFlight.has(ref.key)),
  );
  if (unreadable.length > 0) {
    throw new ArchiveInColdStorageError(
      `${coldArchivesMessage(unreadable, tableLabel(task.source))}; nothing was written`,
    );
  }
  if (leftOut)
    deps.telemetry.info('restore leaves out legacy archives of another schema', {
      restoreId,
      table: `${task.source.schema}.${task.source.name}`,
      otherSchemaArchives: others.count,
      note: leftOut,
    });
  // The list steps list the bucket again, where archives committed since (the table's next batch, the batch in flight
  // now committed) appear beside these: the summary checks these keys, not their count. Recorded before anything is
  // written.
  task.plannedKeys = await deps.restoreRecords.recordPlan(restoreId, keys);

  const sameTable = task.target.schema === task.source.schema && task.target.name === task.source.name;
  // Read outside the transaction that creates the target: a manifest per archive may take a while.
  const fromArchives =
    task.format === 'native' &&
    !sameTable &&
    (await db.withConnection((client) =>
      inReadOnlyTransaction(
        client,
        async () =>
          !(await describeTarget(client, task.target)) && (await sourceKind(client, task)) === undefined,
      ),
    ));
  if (fromArchives) task.template = await targetTemplate(deps.store, keys, committed, task.requireInventory);
  const targetCreated = await db.withConnection((client) =>
    inTransaction(client, async () => {
      const target = await describeTarget(client, task.target);
      if (target) {
        assertWritable(target, task.strategy);
        return false;
      }
      if (sameTable) {
        throw new TableNotUsableError(
          `restore target ${tableLabel(task.target)} does not exist in database ${task.database}; create it, or restore into another table (targetTable)`,
        );
      }
      if (task.dryRun) return false;
      if (await createTarget(client, task)) return true;
      // Another restore into the same new target created it meanwhile: restore into it as into any existing target.
      const created = await describeTarget(client, task.target);
      if (!created)
        throw new TableNotUsableError(
          `restore target ${tableLabel(task.target)} in database ${task.database} could not be created: a type of that name exists, and it is no table; restore into another table (targetTable)`,
        );
      assertWritable(created, task.strategy);
      return false;
    }),
  );
  deps.telemetry.info('restore planned', {
    restoreId,
    database: task.database,
    target: tableLabel(task.target),
    archives,
    targetCreated,
    // Days (or months) archived again after a restore: where two versions of a row exist, the newest is restored.
    partitionsOfSeveralRuns: partitionsOfSeveralRuns(committed.values()),
  });
  return { task, archives, targetCreated, concurrency };
}

/**
 * The committed archives a native task selects, by key: the table's inventory (one query) within the day range (a
 * month object when its month meets it), or the one key. Legacy archives have no inventory.
 */
async function committedArchives(
  task: RestoreTask,
  deps: Pick<StepDeps, 'inventory'>,
): Promise<Map<string, InventoryEntry>> {
  if (task.format !== 'native') return new Map();
  const entries = await deps.inventory.listTable(task.database, task.source);
  const range = { fromDay: task.fromDay, toDay: task.toDay };
  const selected = entries.filter((entry) =>
    task.key
      ? entry.archiveKey === task.key
      : partitionInRange({ day: entry.day, span: entry.span ?? 'day' }, range),
  );
  return new Map(selected.map((entry) => [entry.archiveKey, entry]));
}

/**
 * What the plan says of committed archives the listing did not return: how many and how many rows, the first keys,
 * and why where it can tell. A key outside the table's folder under the current `s3.prefix` was written under another
 * prefix; one inside it is gone from this bucket (deleted or expired, or the bucket changed).
 */
function missingArchives(
  task: Pick<RestoreTask, 'source'>,
  source: ArchiveSource,
  s3: { bucket?: string; prefix: string },
  missing: InventoryEntry[],
): { message: string; rows: number; keys: string[] } {
  const folder = sourcePrefix(source);
  const sorted = [...missing].sort((a, b) => (a.archiveKey < b.archiveKey ? -1 : 1));
  const rows = sorted.reduce((n, entry) => n + entry.figures.rowCount, 0);
  const keys = sorted.slice(0, MISSING_KEYS_SHOWN).map((entry) => entry.archiveKey);
  const outside = sorted.filter((entry) => !entry.archiveKey.startsWith(folder));
  const gone = sorted.length - outside.length;
  // The folder of the table under any prefix: what precedes it in a key is the prefix it was written under.
  const tableFolder =
    source.format === 'native' ? tablePrefix({ ...source.location, prefix: '' }) : undefined;
  const oldPrefixes = [
    ...new Set(
      outside.map((entry) => {
        const at = tableFolder ? entry.archiveKey.lastIndexOf(tableFolder) : -1;
        return at >= 0 ? `"${entry.archiveKey.slice(0, at)}"` : 'another';
      }),
    ),
  ];
  const reasons = [
    outside.length > 0
      ? `${count(outside.length, 'is', 'are')} outside the current s3.prefix "${s3.prefix}" (written under ${oldPrefixes.join(', ')}): s3.prefix or the bucket changed since they were written; restore them with the old prefix (and bucket) in the config`
      : undefined,
    gone > 0
      ? `${count(gone, 'is', 'are')} under the current prefix but gone from this bucket${s3.bucket ? ` (${s3.bucket})` : ''}: deleted (by a bucket writer, or expired by aws.storage.expireAfterDays), or the bucket changed since they were written (then restore with the old bucket in the config)`
      : undefined,
  ].filter((reason) => reason !== undefined);
  const shown = `${keys.join(', ')}${sorted.length > keys.length ? `, and ${sorted.length - keys.length} more` : ''}`;
  return {
    message: `${sorted.length} committed archive(s) of ${tableLabel(task.source)} in the inventory, ${rows.toLocaleString('en-US')} rows, are not in the bucket under ${folder}, so this restore cannot read them (their rows are left out, unless other archives hold them too: rows restored into the table and archived again since): ${shown}. Of them, ${reasons.join('; ')}. Set allowMissingArchives to restore the rest knowingly`,
    rows,
    keys,
  };
}

const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/**
 * The archives a task selects, in key order (after `startAfter`); legacy archives of another schema are left out
 * (unless `otherSchemas` is false: none can be among them). A task of one key lists that key alone (and reads no
 * other legacy archive's metadata).
 */
function selectArchives(
  task: RestoreTask,
  source: ArchiveSource,
  deps: Pick<StepDeps, 'store' | 'locks' | 'inventory'>,
  startAfter?: string,
  onOtherSchema?: ListOptions['onOtherSchema'],
  otherSchemas = true,
  onUnlisted: (ref: ArchiveRef) => void = () => undefined,
) {
  const listed = listArchives(deps.store, source, {
    fromDay: task.fromDay,
    toDay: task.toDay,
    startAfter,
    key: task.key,
    onOtherSchema,
    otherSchemas,
  });
  // Sorted out here, before any page is cut: plan and list steps see the same ones.
  return task.format === 'native'
    ? sortUnlisted(
        listed,
        deps,
        task.database,
        tableRef(task.source),
        onUnlisted,
        task.unlistedArchives === 'restore',
      )
    : listed;
}

/**
 * Whether the database has a relation of the table's name in another schema: the Python tool's layout names no
 * schema, so its archives may share the table's folder, and only their metadata tells them apart. One catalog query,
 * outside a transaction (so, behind a transaction pooler, perhaps without the pinned search_path): its operators are
 * named by schema, never looked up where a role may plant its own.
 */
async function twinTableExists(db: Database, table: TableName): Promise<boolean> {
  const result = await db.withConnection((client) =>
    client.query<{ twin: boolean }>(
      `SELECT EXISTS (
         SELECT FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE c.relname OPERATOR(pg_catalog.=) $1 AND n.nspname OPERATOR(pg_catalog.<>) $2
           AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f,v,m}'::pg_catalog."char"[])
       ) AS twin`,
      [table.name, table.schema],
    ),
  );
  return result.rows[0]?.twin !== false;
}

/**
 * One page of archives after `cursor` (where the previous page ended), cut into groups for the Map, in the order the
 * strategy restores them (pages.ts). The inventory is read only for the archives of a partition that holds several
 * (or that the previous page ended inside), by key: a page costs the same however many archives the table has.
 */
export async function listPage(
  task: RestoreTask,
  cursor: string,
  concurrency: number,
  deps: Pick<StepDeps, 'config' | 'store' | 'inventory' | 'locks' | 'database'>,
): Promise<RestorePage> {
  const source = archiveSource(task, deps.config.s3.prefix);
  const table = tableRef(task.source);
  // One the plan did not see (written since) is refused here as the plan would have refused it.
  const onUnlisted = (ref: ArchiveRef) => {
    if (task.unlistedArchives === 'refuse')
      throw new ConfigError(
        `archive ${ref.key} appeared during the restore, not in the inventory of committed archives though S3 dates it after the table's archives began to be recorded there; restore the rest again with unlistedArchives "skip" or "restore"`,
      );
  };
  // The Python tool's archives newest first: each page lists them from the start, so their metadata is read for the
  // page's archives only, once cut.
  const newestFirst = source.format === 'legacy' && legacyNewestFirst(task.strategy, cursor);
  const pages = restorePages(
    selectArchives(task, source, deps, cursorStart(cursor), undefined, !newestFirst, onUnlisted),
    {
      strategy: task.strategy,
      cursor,
      // Legacy archives have no inventory.
      committed: async (keys): Promise<CommittedArchives> =>
        task.format === 'native' ? deps.inventory.entries(task.database, table, keys) : new Map(),
      format: task.format,
    },
  );
  const next = await pages.next();
  await pages.return(undefined);
  const page = next.done ? undefined : next.value;
  let listed = page?.archives ?? [];
  if (newestFirst) {
    const kept: typeof listed = [];
    for await (const archive of withoutOtherSchemas(deps.store, source, listed.values())) kept.push(archive);
    listed = kept;
  }
  // As the plan did: archives of the batch in flight are not written (read again now that this page is listed).
  const inFlight =
    task.format === 'native'
      ? await uncommittedInFlight(
          { ...deps, sourceDatabase: () => deps.database(task.database) },
          task.database,
          task.source,
          listed.map((archive) => archive.key),
        )
      : new Set<string>();
  return {
    groups: groupArchives(
      listed.filter((archive) => !inFlight.has(archive.key)),
      concurrency,
    ),
    cursor: page?.cursor ?? cursor,
    more: page?.more ?? false,
  };
}
