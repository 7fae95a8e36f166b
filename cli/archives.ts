import {
  type ArchiveSource,
  listArchives,
  OtherSchemaArchives,
  sourcePrefix,
} from '../lambdas/shared/archive/catalog.js';
import { isCalendarDay } from '../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../lambdas/shared/archive/store.js';
import { didYouMean, findDatabase, tablesNamedLike } from '../lambdas/shared/config/resolved-table.js';
import { type ArchiverConfig, tableRef } from '../lambdas/shared/config/schema.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import type { ArchiveInventory } from '../lambdas/shared/lock-table/archive-inventory.js';
import { TableRefSchema } from '../lambdas/shared/restore/restore-task.js';
import { listWithRows, type ValidationReport, validateArchives } from './archive-validation.js';
import { safeJson, safeLine, type Write } from './output.js';
import { formatNumber } from './report.js';

export interface ArchiveScopeOptions {
  database?: string;
  table?: string[];
  from?: string;
  to?: string;
  legacyDatabase?: string;
  legacyPrefix?: string;
  json: boolean;
}

interface ScopedSource {
  database: string;
  table: { schema: string; name: string };
  source: ArchiveSource;
  /** Whether this database entry of the config lists the table. */
  configured: boolean;
  /** Not listed here, but by another entry in scope (no database given): reported only if something is found. */
  elsewhere: boolean;
}

/** Refuses a --from or --to that is no day of the calendar (2020-02-30 is not read as March 1st), naming the option. */
export function requireCalendarDays(days: { from?: string; to?: string }): void {
  for (const [name, day] of [
    ['--from', days.from],
    ['--to', days.to],
  ] as const) {
    if (day !== undefined && !isCalendarDay(day))
      throw new ConfigError(`${name} must be a day of the calendar YYYY-MM-DD, got "${day}"`);
  }
  // A reversed range selects nothing, which would read as "all is well" for the days meant.
  if (days.from !== undefined && days.to !== undefined && days.to < days.from)
    throw new ConfigError(`--to ${days.to} is before --from ${days.from}: the range selects no day`);
}

/** Refuses --legacy-prefix alone: without --legacy-database it was ignored and the native archives read instead. */
export function requireLegacyDatabase(options: { legacyDatabase?: string; legacyPrefix?: string }): void {
  if (options.legacyPrefix !== undefined && options.legacyDatabase === undefined)
    throw new ConfigError(
      "--legacy-prefix needs --legacy-database (the Python tool's PostgreSQL database): without it the native archives would be read instead",
    );
}

const configuredIn = (db: ArchiverConfig['databases'][number], table: { schema: string; name: string }) =>
  db.tables.some((t) => t.schema === table.schema && t.name === table.name);

/** A -t value as a table; a name without its schema is a usage error that names the configured tables it matches. */
function tableOption(ref: string, databases: ArchiverConfig['databases']): { schema: string; name: string } {
  const parsed = TableRefSchema.safeParse(ref);
  if (parsed.success) return parsed.data;
  throw new ConfigError(`-t ${ref}: must be "schema.name"${didYouMean(tablesNamedLike(databases, ref))}`);
}

export function sourcesInScope(config: ArchiverConfig, options: ArchiveScopeOptions): ScopedSource[] {
  requireCalendarDays(options);
  requireLegacyDatabase(options);
  const databases = options.database ? [findDatabase(config, options.database)] : config.databases;
  return databases.flatMap((db) => {
    // A table named twice is one table: listed (and its archives counted) once.
    const tables = options.table
      ? [...new Set(options.table)].map((ref) => tableOption(ref, databases))
      : db.tables.map((t) => ({ schema: t.schema, name: t.name }));
    return tables.map((table) => ({
      database: db.name,
      table,
      configured: configuredIn(db, table),
      // A table named without a database is looked for in every entry; one that does not configure it while another
      // does is only reported when it holds something of it (archives written before the table moved, say).
      elsewhere:
        options.database === undefined &&
        !configuredIn(db, table) &&
        databases.some((other) => configuredIn(other, table)),
      source: options.legacyDatabase
        ? {
            format: 'legacy' as const,
            prefix: options.legacyPrefix ?? config.s3.prefix,
            database: options.legacyDatabase,
            schema: table.schema,
            table: table.name,
          }
        : {
            format: 'native' as const,
            location: {
              prefix: config.s3.prefix,
              database: db.name,
              schema: table.schema,
              table: table.name,
            },
          },
    }));
  });
}

/**
 * Whether the bucket holds no archive of a source at all, whatever --from/--to: a table the config does not name with
 * archives only outside the range is named right (an entry that no longer configures it), not mistyped.
 */
async function noArchiveAtAll(
  store: ArchiveStore,
  scoped: ScopedSource,
  range: { fromDay?: string; toDay?: string },
): Promise<boolean> {
  if (range.fromDay === undefined && range.toDay === undefined) return true;
  const archives = listArchives(store, scoped.source);
  try {
    return (await archives.next()).done === true;
  } finally {
    await archives.return(undefined);
  }
}

/** A table in scope that the config does not name and of which nothing is found: far more often a typo than intended. */
const notConfigured = (config: ArchiverConfig, scoped: ScopedSource): string =>
  `${tableRef(scoped.table)} is no table of database ${scoped.database} in the config, and no archive of it is here: a mistyped name?${didYouMean(tablesNamedLike([findDatabase(config, scoped.database)], tableRef(scoped.table)))}`;

const noArchiveInRange = ({ fromDay, toDay }: { fromDay?: string; toDay?: string }): string =>
  `no archive of it lies ${fromDay && toDay ? `between ${fromDay} and ${toDay}` : fromDay ? `on or after ${fromDay}` : `on or before ${toDay}`}, though the bucket holds archives of it on other days: nothing in this range was checked (a mistyped --from or --to?)`;

/**
 * `validate`: re-reads every archive in scope; exit code 1 on any error, and with --strict on warnings too. With the
 * lock table, native archives are also compared with its inventory of committed archives.
 */
export async function validateCommand(
  store: ArchiveStore,
  config: ArchiverConfig,
  options: ArchiveScopeOptions & { strict: boolean },
  write: Write,
  inventory?: Pick<ArchiveInventory, 'listTable'>,
): Promise<number> {
  const reports: (ValidationReport & { database: string; table: string })[] = [];
  for (const scoped of sourcesInScope(config, options)) {
    const origin = {
      database: scoped.source.format === 'legacy' ? scoped.source.database : scoped.database,
      schema: scoped.table.schema,
      table: scoped.table.name,
    };
    const committed =
      inventory && scoped.source.format === 'native'
        ? await inventory.listTable(scoped.database, scoped.table)
        : undefined;
    const range = { fromDay: options.from, toDay: options.to };
    const report = await validateArchives(store, scoped.source, origin, range, new Date(), committed);
    const empty = report.archives === 0 && !committed?.length && report.problems.length === 0;
    if (empty && scoped.elsewhere) continue;
    if (empty && !scoped.configured && (await noArchiveAtAll(store, scoped, range))) {
      // Nothing found for a table the config does not name is far more often a mistyped name than an intent.
      report.problems.push({
        severity: 'error',
        kind: 'not-configured',
        key: sourcePrefix(scoped.source),
        detail: notConfigured(config, scoped),
      });
    }
    if (
      report.archives === 0 &&
      report.problems.length === 0 &&
      !(await noArchiveAtAll(store, scoped, range))
    )
      // "OK" on nothing in a range the operator typed reads as "intact": say that the archives lie elsewhere.
      report.notes = [...(report.notes ?? []), noArchiveInRange(range)];
    reports.push({ ...report, database: scoped.database, table: tableRef(scoped.table) });
  }
  const problems = reports.flatMap((r) => r.problems);
  const errors = problems.filter((p) => p.severity === 'error').length;
  const warnings = problems.length - errors;
  // `ok` is what the exit code says: with --strict a warning fails too.
  const ok = errors === 0 && !(options.strict && warnings > 0);
  if (options.json) {
    write(safeJson({ ok, errors, warnings, tables: reports }));
  } else {
    for (const r of reports) {
      write(
        safeLine(
          `${r.database}/${r.table}: ${formatNumber(r.archives)} archives, ${formatNumber(r.rows)} rows verified`,
        ),
      );
      for (const note of r.notes ?? []) write(safeLine(`  NOTE ${note}`));
      for (const p of r.problems)
        write(safeLine(`  ${p.severity.toUpperCase()} ${p.kind}: ${p.key}: ${p.detail}`));
    }
    write(
      safeLine(
        ok
          ? `OK: no errors, ${warnings} warning(s)`
          : `FAILED${errors === 0 ? ' (--strict: warnings fail)' : ''}: ${errors} error(s), ${warnings} warning(s)`,
      ),
    );
  }
  return ok ? 0 : 1;
}

/** `list`: the archives in scope with day (or month), rows, bytes and storage class. */
export async function listCommand(
  store: ArchiveStore,
  config: ArchiverConfig,
  options: ArchiveScopeOptions,
  write: Write,
): Promise<number> {
  const all = [];
  const mistyped: string[] = [];
  for (const scoped of sourcesInScope(config, options)) {
    const others = new OtherSchemaArchives();
    const range = { fromDay: options.from, toDay: options.to };
    const archives = await listWithRows(store, scoped.source, range, others);
    if (archives.length === 0 && scoped.elsewhere) continue;
    if (archives.length === 0 && !scoped.configured && (await noArchiveAtAll(store, scoped, range))) {
      mistyped.push(notConfigured(config, scoped));
      continue;
    }
    const note = others.note(scoped.table.name);
    all.push({
      database: scoped.database,
      table: tableRef(scoped.table),
      archives,
      ...(note ? { notes: [note] } : {}),
    });
  }
  if (mistyped.length > 0) throw new ConfigError(mistyped.join('; '));
  if (options.json) {
    write(safeJson(all));
    return 0;
  }
  for (const { database, table, archives, notes } of all) {
    const rows = archives.reduce((n, a) => n + (a.rows ?? 0), 0);
    const bytes = archives.reduce((n, a) => n + a.size, 0);
    write(
      safeLine(
        `${database}/${table}: ${archives.length} archives, ${formatNumber(rows)} rows, ${formatNumber(bytes)} bytes`,
      ),
    );
    for (const note of notes ?? []) write(safeLine(`  NOTE ${note}`));
    for (const a of archives) {
      write(
        safeLine(
          `  ${a.span === 'month' ? a.day.slice(0, 7).padEnd(10) : a.day}  ${String(a.rows ?? '?').padStart(9)} rows  ${String(a.size).padStart(11)} B  ${a.storageClass.padEnd(12)} ${a.key}`,
        ),
      );
    }
  }
  return 0;
}
