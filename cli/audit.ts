import { isCalendarDay } from '../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../lambdas/shared/archive/store.js';
import { formatIssues } from '../lambdas/shared/config/config.js';
import { didYouMean, tablesNamedLike } from '../lambdas/shared/config/resolved-table.js';
import { type ArchiverConfig, tableRef } from '../lambdas/shared/config/schema.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { TableRefSchema } from '../lambdas/shared/restore/restore-task.js';
import {
  AUDIT_EVENT_KINDS,
  type AuditEvent,
  type AuditFilter,
  AuditFilterSchema,
  readAuditEvents,
  type UnreadableAuditEvent,
} from '../lambdas/shared/telemetry/audit-trail.js';
import { EXIT_FINDINGS, EXIT_OK } from './exit-codes.js';
import { printError, type SafeText, safeJson, safeLine, safeLines, type Write } from './output.js';

export interface AuditOptions {
  since?: string;
  until?: string;
  kind?: string[];
  database?: string;
  table?: string;
  json: boolean;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
/** A date and time of day with nothing after it (no Z, no ±hh:mm), which Date.parse reads in the machine's zone. */
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;
/**
 * An ISO-8601 time with its offset. Anything else Date.parse takes ("2025/01/07", "Jan 7 2025", "2025-1-7") it reads
 * as the start of a day in the machine's zone, and "2025-01" as the start of a month: --until then left the day out.
 */
const ZONED_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$/i;

/**
 * A day means its start for --since and its end for --until (a UTC day); anything else must be an ISO-8601 time with
 * its offset: one without is refused, not read in the machine's zone, since days and every time printed are UTC.
 */
function instant(option: string, value: string | undefined, endOfDay: boolean): string | undefined {
  if (value === undefined) return undefined;
  if (LOCAL_TIME.test(value))
    throw new ConfigError(
      `${option}: "${value}" has no offset, so it would be read in this machine's time zone, while days and every time audit-archiver prints are UTC: write ${value.replace(' ', 'T')}Z for UTC, or give the offset (+02:00)`,
    );
  const text = DAY.test(value) ? `${value}T${endOfDay ? '23:59:59.999' : '00:00:00.000'}Z` : value;
  const time = Date.parse(text);
  // Date.parse reads 2020-02-30 (and 2020-02-30T10:00Z) as March 1st (2nd): a day must be one of the calendar.
  const day = value.slice(0, 10);
  if (Number.isNaN(time) || !isCalendarDay(day) || !(DAY.test(value) || ZONED_TIME.test(value))) {
    throw new ConfigError(`${option}: must be a day (YYYY-MM-DD) or an ISO-8601 time, got "${value}"`);
  }
  return new Date(time).toISOString();
}

/** The CLI options as a validated filter; errors name the option. */
export function auditFilter(options: Omit<AuditOptions, 'json'>): AuditFilter {
  const filter = {
    since: instant('--since', options.since, false),
    until: instant('--until', options.until, true),
    kinds: options.kind,
    database: options.database,
    table: options.table,
  };
  const parsed = AuditFilterSchema.safeParse(filter);
  if (!parsed.success) {
    const message = formatIssues(parsed.error).replace(/^kinds(\.\d+)?:/m, '--kind:');
    throw new ConfigError(`${message} (kinds: ${AUDIT_EVENT_KINDS.join(', ')})`);
  }
  if (parsed.data.since && parsed.data.until && parsed.data.since > parsed.data.until) {
    throw new ConfigError('--until: must not be before --since');
  }
  return parsed.data;
}

const detailText = (value: unknown) => (Array.isArray(value) ? `[${value.join('; ')}]` : String(value));

function formatAuditEvents(events: AuditEvent[]): SafeText {
  if (events.length === 0) return safeLine('No audit events in scope.');
  // Names, reasons and errors in the trail come from the database, S3 and operators: each event stays one line.
  return safeLines(
    events.map((e) => {
      const where = e.table ? `${e.database ?? ''}/${e.table}` : (e.database ?? '-');
      const details = Object.entries(e.details)
        .map(([key, value]) => `${key}=${detailText(value)}`)
        .join(' ');
      return `${e.time}  ${e.kind.padEnd(18)} ${where}  run=${e.runId ?? '-'} by ${e.actor}  ${details}`;
    }),
  );
}

/** The objects that are no event, by key and reason: their content is whoever planted them's choice. */
function formatUnreadable(unreadable: UnreadableAuditEvent[]): SafeText {
  const count = unreadable.length;
  return safeLines([
    `${count} audit event ${count === 1 ? 'object' : 'objects'} could not be read (left out above):`,
    ...unreadable.map(({ key, reason }) => `  ${key}: ${reason}`),
  ]);
}

/** What the audit command reads of the config: the trail's prefix, and the names -d and -t are checked against. */
export type AuditConfig = Pick<ArchiverConfig, 's3' | 'databases'>;

/** A -t without its schema names no event (each names its table "schema.name"): a usage error naming the configured ones. */
function requireSchema(config: AuditConfig, table: string | undefined): void {
  if (table === undefined || TableRefSchema.safeParse(table).success) return;
  throw new ConfigError(
    `-t ${table}: must be "schema.name"${didYouMean(tablesNamedLike(config.databases, table))}`,
  );
}

/** The -d and -t names the config does not have (in -d's database, when it has that), each as one phrase. */
function namesNotConfigured(config: AuditConfig, filter: AuditFilter): string[] {
  const phrases: string[] = [];
  const named = config.databases.filter((db) => !filter.database || db.name === filter.database);
  if (filter.database && named.length === 0) phrases.push(`database ${filter.database} is not in the config`);
  const inScope = named.length > 0 ? named : config.databases;
  if (filter.table && !inScope.some((db) => db.tables.some((t) => tableRef(t) === filter.table)))
    phrases.push(
      `${filter.table} is no table of the config${filter.database && named.length > 0 ? `'s database ${filter.database}` : ''}${didYouMean(tablesNamedLike(inScope, filter.table))}`,
    );
  return phrases;
}

/**
 * Whether some readable event of the whole trail (any time, any kind) has the filter's database and table: a name the
 * config no longer lists (an entry renamed or removed, a restore target) is still named right when the trail has it.
 */
async function trailNames(store: ArchiveStore, prefix: string, filter: AuditFilter): Promise<boolean> {
  const { events, unreadable } = await readAuditEvents(store, prefix, {
    ...(filter.database ? { database: filter.database } : {}),
    ...(filter.table ? { table: filter.table } : {}),
  });
  // An object that is no event may be the one that names it: nothing can be said of the name then.
  return events.length > 0 || unreadable.length > 0;
}

/**
 * Prints the audit events in scope, oldest first (human lines or one JSON array), and on `warn` the objects under the
 * trail that are no event: listed, not fatal, and the exit code says some of the trail could not be read. A -d or -t
 * name that matches no event, is not in the config and names no event of the whole trail is a usage error naming it:
 * "No audit events in scope." and exit 0 would read as nothing having happened to the table meant.
 */
export async function auditCommand(
  store: ArchiveStore,
  config: AuditConfig,
  options: AuditOptions,
  write: Write,
  warn: Write = printError,
): Promise<number> {
  requireSchema(config, options.table);
  const filter = auditFilter(options);
  const prefix = config.s3.prefix;
  const { events, unreadable } = await readAuditEvents(store, prefix, filter);
  const unknown = events.length === 0 && unreadable.length === 0 ? namesNotConfigured(config, filter) : [];
  if (unknown.length > 0) {
    // Without a time or kind filter the listing just read was the whole trail.
    const whole = !filter.since && !filter.until && !filter.kinds;
    if (whole || !(await trailNames(store, prefix, filter)))
      throw new ConfigError(`${unknown.join('; ')}, and no audit event names it: a mistyped name?`);
  }
  write(options.json ? safeJson(events) : formatAuditEvents(events));
  if (unreadable.length === 0) return EXIT_OK;
  warn(formatUnreadable(unreadable));
  return EXIT_FINDINGS;
}
