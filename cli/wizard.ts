import { randomUUID } from 'node:crypto';
import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import pg from 'pg';
import { parse as parseYaml, stringify } from 'yaml';
import { z } from 'zod';
import { suggestedObjectSpan } from '../lambdas/shared/archive/format.js';
import { ASSUMED_COMPRESSION_RATIO } from '../lambdas/shared/batch/plan-report.js';
import { formatIssues, parseConfig } from '../lambdas/shared/config/config.js';
import { resolveTable } from '../lambdas/shared/config/resolved-table.js';
import {
  type ArchiverConfig,
  type ArchiverConfigInput,
  type TableConfig,
  tableRef,
} from '../lambdas/shared/config/schema.js';
import { parseConnectionUrl } from '../lambdas/shared/database/credentials.js';
import {
  inReadOnlyTransaction,
  sessionSetupSql,
  tlsOption,
  underSavepoint,
} from '../lambdas/shared/database/db.js';
import {
  describeTable,
  keyIndexSql,
  primaryKey,
  TABLE_RELATIONS_SQL,
} from '../lambdas/shared/database/table-shape.js';
import {
  EARLIEST_ELIGIBLE,
  localTimeInstantSql,
  quoteIdent,
  rowSourceSql,
} from '../lambdas/shared/database/table-sql.js';
import { ConfigError, classifyDatabaseError } from '../lambdas/shared/errors/step-errors.js';
import { printable, safeLine, safeLines, type Write } from './output.js';
import { formatNumber } from './report.js';
import { sessionZone } from './session-zone.js';

/** Names that say "audit data": such tables rank first. */
const AUDIT_NAME = /audit|log|history|event|journal|activity|trail|change|outbox/i;
/** Timestamp column names in order of preference: when the row happened, never when it was last touched. */
const PREFERRED_COLUMNS = [
  'created_at',
  'occurred_at',
  'logged_at',
  'timestamp',
  'event_time',
  'inserted_at',
  'recorded_at',
  'created',
  'ts',
  'time',
];
/** Names of columns a row's later life changes: a row's age by them moves whenever it is touched. */
const MUTABLE_COLUMN = /updated|modified|deleted|expires|due|scheduled|last|seen|touched|accessed|refreshed/i;
/** Retentions the wizard chooses between, longest first. */
const RETENTIONS = [730, 365, 180, 90] as const;
/** A retention is worth suggesting when it archives at least this share of the rows. */
const WORTHWHILE_SHARE = 0.25;
/** Tables estimated above this many rows are measured on a sample. */
const SAMPLE_ABOVE_ROWS = 1_000_000;

export interface TimestampCandidate {
  name: string;
  kind: 'timestamptz' | 'timestamp';
  notNull: boolean;
  indexed: boolean;
}

export interface AgeProfile {
  rows: number;
  oldestDays: number | null;
  /** Rows older than each of RETENTIONS days. */
  olderThan: Record<number, number>;
}

export interface Candidate {
  schema: string;
  name: string;
  bytes: number;
  estimatedRows: number;
  timestamp?: TimestampCandidate;
  /** Key columns when they are not the primary key (a NOT NULL unique index). */
  keyColumns?: string[];
  keyKind: 'primary key' | 'unique index' | 'none';
  timestampTimeZone?: string;
  /** Why the archiver would refuse it (TableNotUsableError's reason), when it would. */
  unusable?: string;
  auditLike: boolean;
  age?: AgeProfile;
  retention?: RetentionSuggestion;
}

export interface RetentionSuggestion {
  days: number;
  reason: string;
}

/**
 * The preferred timestamp column of a table: named like an event time, NOT NULL, indexed. Never a mutable-sounding one
 * ("updated_at", "last_seen"): a table with only such columns gets no choice, and the operator names its column.
 */
export function chooseTimestampColumn(columns: TimestampCandidate[]): TimestampCandidate | undefined {
  const score = (c: TimestampCandidate) => {
    const preferred = PREFERRED_COLUMNS.indexOf(c.name.toLowerCase());
    return (
      (preferred >= 0 ? 100 - preferred : 0) +
      (/created|occurred|logged|inserted|recorded/i.test(c.name) ? 20 : 0) +
      (c.indexed ? 10 : 0) +
      (c.notNull ? 5 : 0)
    );
  };
  return columns.filter((c) => !MUTABLE_COLUMN.test(c.name)).sort((a, b) => score(b) - score(a))[0];
}

/** Usable audit-like tables first, then other usable ones, biggest first; unusable ones last. */
export function rankCandidates(candidates: Candidate[]): Candidate[] {
  const group = (c: Candidate) => (c.unusable ? 2 : c.auditLike ? 0 : 1);
  return [...candidates].sort(
    (a, b) =>
      group(a) - group(b) ||
      b.bytes - a.bytes ||
      `${a.schema}.${a.name}`.localeCompare(`${b.schema}.${b.name}`),
  );
}

/**
 * The longest usual retention that still archives at least a quarter of the rows: as much history as possible
 * stays queryable, and the run is worth having. A table too young for that keeps a year.
 */
export function suggestRetention(age: AgeProfile): RetentionSuggestion {
  const share = (days: number) => (age.rows > 0 ? (age.olderThan[days] ?? 0) / age.rows : 0);
  const pct = (days: number) => `${Math.round(share(days) * 100)}%`;
  for (const days of RETENTIONS) {
    if (share(days) >= WORTHWHILE_SHARE) {
      const longer = RETENTIONS[RETENTIONS.indexOf(days) - 1];
      return {
        days,
        reason:
          `${days} days archives ${pct(days)} of the rows (${formatNumber(age.olderThan[days] ?? 0)}) and keeps the last ${days} days queryable` +
          (longer ? `; ${longer} days would archive only ${pct(longer)}` : ''),
      };
    }
  }
  return {
    days: 365,
    reason:
      age.oldestDays === null
        ? 'the table is empty: 365 days keeps a year queryable once rows arrive'
        : `the oldest row is ${Math.floor(age.oldestDays)} days old and 90 days would archive only ${pct(90)}: 365 days keeps a year queryable`,
  };
}

/** Every ordinary or partitioned table outside the system schemas, with what archiving it needs. */
export async function discoverCandidates(client: pg.ClientBase): Promise<Candidate[]> {
  // Each read in a transaction of its own that pins the settings (SET LOCAL): behind a transaction pooler the
  // session's SET may not reach the next statement, which would then resolve names by the role's search_path. One per
  // table, so no table stays locked (ACCESS SHARE) while the others are looked at.
  const { sessions, tables, columns } = await inReadOnlyTransaction(client, () => catalogOf(client));
  const candidates: Candidate[] = [];
  for (const t of tables)
    candidates.push(
      await inReadOnlyTransaction(client, () =>
        assessCandidate(
          client,
          t,
          columns.filter((c) => c.oid === t.oid),
          sessions,
        ),
      ),
    );
  return rankCandidates(candidates);
}

/** The tables outside the system schemas, their timestamp columns, and the zone the database's sessions start in. */
async function catalogOf(client: pg.ClientBase) {
  const sessions = await sessionZone(client);
  // Rows of the relations that hold them: ANALYZE of a partitioned table gives the table itself its partitions' rows as
  // reltuples, which summed with theirs would count every row twice.
  const tables = await client.query<{
    oid: number;
    schema: string;
    name: string;
    partitioned: boolean;
    bytes: string;
    rows: string;
  }>(
    `SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind = 'p' AS partitioned,
            (SELECT coalesce(sum(pg_catalog.pg_total_relation_size(r.oid)), 0)
               FROM unnest(${TABLE_RELATIONS_SQL}) AS r(oid))::text AS bytes,
            (SELECT coalesce(sum(pc.reltuples) FILTER (WHERE pc.reltuples > 0 AND pc.relkind <> 'p'), 0)
               FROM unnest(${TABLE_RELATIONS_SQL}) AS r(oid) JOIN pg_catalog.pg_class pc ON pc.oid = r.oid)::text AS rows
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
      ORDER BY n.nspname, c.relname`,
  );
  const columns = await client.query<TimestampCandidate & { oid: number }>(
    `SELECT a.attrelid AS oid, a.attname AS name,
            CASE WHEN a.atttypid = 'timestamptz'::regtype THEN 'timestamptz' ELSE 'timestamp' END AS kind,
            a.attnotnull AS "notNull",
            -- Valid: one a failed CREATE INDEX CONCURRENTLY left behind is never used.
            EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                     WHERE i.indrelid = a.attrelid AND i.indkey[0] = a.attnum AND i.indpred IS NULL
                       AND i.indisvalid) AS indexed
       FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
        AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)`,
    [tables.rows.map((t) => t.oid)],
  );
  return { sessions, tables: tables.rows, columns: columns.rows };
}

/** What archiving one table needs: its key, timestamp column, whether the archiver takes it, and its rows' ages. */
async function assessCandidate(
  client: pg.ClientBase,
  t: Awaited<ReturnType<typeof catalogOf>>['tables'][number],
  own: Awaited<ReturnType<typeof catalogOf>>['columns'],
  sessions: Awaited<ReturnType<typeof sessionZone>>,
): Promise<Candidate> {
  const timestamp = chooseTimestampColumn(own);
  const candidate: Candidate = {
    schema: t.schema,
    name: t.name,
    bytes: Number(t.bytes),
    estimatedRows: Number(t.rows),
    timestamp,
    keyKind: 'none',
    auditLike: AUDIT_NAME.test(t.name),
  };
  await assessKey(client, t.oid, candidate);
  if (timestamp?.kind === 'timestamp') candidate.timestampTimeZone = sessions.zone;
  if (timestamp?.kind === 'timestamp' && !sessions.zone)
    candidate.unusable = `its timestamp column ${timestamp.name} holds local times, which the database's sessions start in ${sessions.setting}: no zone the config takes keeps that offset, so write the config with the zone the application writes in as timestampTimeZone yourself`;
  else if (!timestamp && own.length > 0)
    candidate.unusable = `its only timestamp columns (${own.map((c) => c.name).join(', ')}) change when a row is touched, so a row's age by them moves: if one is the event time, write the config with it as timestampColumn yourself`;
  else if (!timestamp) candidate.unusable = 'no timestamptz or timestamp column';
  else if (candidate.keyKind === 'none') candidate.unusable = 'no primary key or NOT NULL unique index';
  else candidate.unusable = await archiverRefusal(client, candidate);
  if (!candidate.unusable) {
    candidate.age = await ageProfile(client, candidate, t.partitioned);
    candidate.retention = suggestRetention(candidate.age);
  }
  return candidate;
}

async function assessKey(client: pg.ClientBase, oid: number, candidate: Candidate): Promise<void> {
  if ((await primaryKey(client, oid)).length > 0) {
    candidate.keyKind = 'primary key';
    return;
  }
  const unique = await client.query<{ columns: string[] }>(
    `SELECT array_agg(a.attname::text ORDER BY k.ord) AS columns
       FROM pg_catalog.pg_index i
       CROSS JOIN LATERAL unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND ${keyIndexSql('i')}
      GROUP BY i.indexrelid
     HAVING bool_and(a.attnotnull) AND count(*) <= 8
      ORDER BY count(*), i.indexrelid
      LIMIT 1`,
    [oid],
  );
  const columns = unique.rows[0]?.columns;
  if (columns) {
    candidate.keyKind = 'unique index';
    candidate.keyColumns = columns;
  }
}

/** The archiver's own check (describeTable): cascading foreign keys and the like refuse a table here too. */
async function archiverRefusal(client: pg.ClientBase, candidate: Candidate): Promise<string | undefined> {
  try {
    // The table as a config would name it, resolved the way the steps resolve it.
    const config = parseConfig({
      s3: {},
      databases: [
        {
          name: 'wizard',
          credentials: { urlEnv: 'WIZARD' },
          tables: [
            {
              schema: candidate.schema,
              name: candidate.name,
              timestampColumn: candidate.timestamp?.name ?? '',
              timestampTimeZone: candidate.timestampTimeZone ?? 'UTC',
              keyColumns: candidate.keyColumns,
            },
          ],
        },
      ],
    });
    // Under a savepoint: a refusal PostgreSQL raises must not end the candidate's transaction.
    await underSavepoint(client, () =>
      describeTable(client, resolveTable(config, 'wizard', tableRef(candidate))),
    );
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/ in database wizard/, '');
  }
}

/**
 * Row count, oldest row and rows older than each usual retention; big tables are read on a 1% block sample. Age is
 * measured on the rows a run can archive, those at a calendar day of year 1 AD or later: sentinels (`-infinity`,
 * `infinity`, BC dates) stay in the table, and an infinite one would make the age infinite (PostgreSQL 17 and later)
 * or fail the subtraction (before 17). A plain table's own rows only, as a run reads it (`ONLY`): an inheritance child's
 * rows stay in the child.
 */
async function ageProfile(
  client: pg.ClientBase,
  candidate: Candidate,
  partitioned: boolean,
): Promise<AgeProfile> {
  const column = `t.${quoteIdent(candidate.timestamp?.name ?? '')}`;
  const instant =
    candidate.timestamp?.kind === 'timestamp'
      ? localTimeInstantSql(column, candidate.timestampTimeZone ?? 'UTC')
      : column;
  const sampled = candidate.estimatedRows > SAMPLE_ABOVE_ROWS;
  const percent = sampled ? Math.max(0.01, (100 * SAMPLE_ABOVE_ROWS) / candidate.estimatedRows) : 100;
  const scale = 100 / percent;
  const archivable = `${instant} >= '${EARLIEST_ELIGIBLE}'::timestamptz AND ${instant} < 'infinity'::timestamptz`;
  const result = await client.query<Record<string, string | null>>(
    `SELECT count(*)::text AS rows,
            extract(epoch FROM now() - min(${instant}) FILTER (WHERE ${archivable}))::text AS oldest,
            ${RETENTIONS.map((d) => `count(*) FILTER (WHERE ${archivable} AND ${instant} < now() - interval '${d} days')::text AS d${d}`).join(', ')}
       FROM ${rowSourceSql({ ...candidate, partitioned })} AS t ${sampled ? `TABLESAMPLE SYSTEM (${percent.toFixed(4)})` : ''}`,
  );
  const row = result.rows[0] ?? {};
  return {
    rows: Math.round(Number(row.rows ?? 0) * scale),
    oldestDays: row.oldest === null || row.oldest === undefined ? null : Number(row.oldest) / 86_400,
    olderThan: Object.fromEntries(RETENTIONS.map((d) => [d, Math.round(Number(row[`d${d}`] ?? 0) * scale)])),
  };
}

/** One table of the listing, as the database names it (runWizard writes each as one printable line). */
function candidateLine(c: Candidate, i: number): string {
  const head = `${String(i + 1).padStart(3)}. ${c.schema}.${c.name}`;
  if (c.unusable) return `${head}  (not usable: ${c.unusable})`;
  const age = c.age;
  const oldest =
    age?.oldestDays === null || age?.oldestDays === undefined
      ? 'empty'
      : `oldest ${Math.floor(age.oldestDays)} d`;
  return (
    `${head}  ${c.timestamp?.name} (${c.timestamp?.kind}${c.timestamp?.indexed ? ', indexed' : ', NOT indexed'}), ` +
    `${c.keyKind}${c.keyColumns ? ` (${c.keyColumns.join(', ')})` : ''}, ${formatNumber(age?.rows ?? 0)} rows, ` +
    `${(c.bytes / 1024 ** 2).toFixed(1)} MiB, ${oldest}${c.auditLike ? ', audit-like' : ''}`
  );
}

export const WizardOptionsSchema = z
  .object({
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional(),
    urlEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    name: z.string().optional(),
    retentionDays: z.coerce.number().int().min(1).max(36_500).optional(),
    tables: z.array(z.string().min(1)).optional(),
    tls: z.enum(['verify-full', 'require', 'disable']).optional(),
    bucket: z.string().optional(),
    out: z.string().min(1).default('archiver.yaml'),
    yes: z.boolean().default(false),
    /** The database is the demo's, which runs only during a `--demo` command. */
    demo: z.boolean().default(false),
  })
  .refine((o) => !(o.databaseUrl && o.urlEnv), {
    path: ['urlEnv'],
    message: 'give either --database-url or --url-env, not both',
  });
export type WizardOptions = z.infer<typeof WizardOptionsSchema>;

export function parseWizardOptions(raw: unknown): WizardOptions {
  const parsed = WizardOptionsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`wizard options are invalid:\n${formatIssues(parsed.error)}`);
  return parsed.data;
}

/** A config's logical database name from the PostgreSQL database name: its safe characters, or "main". */
export function logicalDatabaseName(database: string): string {
  const cleaned = database
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .replace(/^[_-]+/, '')
    .slice(0, 63);
  return cleaned || 'main';
}

/** Picks tables by "schema.name" (exact, any characters) or by their number in the ranked list. */
export function selectTables(candidates: Candidate[], picks: string[] | undefined): Candidate[] {
  const usable = candidates.filter((c) => !c.unusable);
  if (!picks || picks.length === 0) {
    const audit = usable.filter((c) => c.auditLike);
    if (audit.length === 0) {
      throw new ConfigError('--tables: no table looks like an audit table; name the tables to archive');
    }
    return audit;
  }
  return picks.map((pick) => {
    const byNumber = /^\d+$/.test(pick) ? candidates[Number(pick) - 1] : undefined;
    const found = byNumber ?? candidates.find((c) => `${c.schema}.${c.name}` === pick);
    if (!found) throw new ConfigError(`--tables: "${pick}" is not a table of this database ("schema.name")`);
    if (found.unusable)
      throw new ConfigError(`--tables: ${found.schema}.${found.name} cannot be archived: ${found.unusable}`);
    return found;
  });
}

export interface WizardResult {
  yaml: string;
  config: ArchiverConfig;
  retention: RetentionSuggestion;
}

/**
 * The config for the chosen tables, rendered as YAML and parsed back through the config schema: what is written
 * is exactly what `loadConfig` accepts.
 */
/** Why a config written from the demo database stops working, and what to use instead. */
export const DEMO_NOTE =
  'The demo database runs only during a `--demo` command, on a port of its own each time: the url below stops working when this command ends. Try the demo with `--demo` (`plan --demo`, `local doctor --demo`, `local validate --demo`); run the wizard without --demo for your own database.';

export function buildConfig(input: {
  database: string;
  credentials: { url: string } | { urlEnv: string };
  tls: 'verify-full' | 'require' | 'disable';
  bucket?: string;
  tables: Candidate[];
  retentionDays?: number;
  now: Date;
  demo?: boolean;
}): WizardResult {
  const retention: RetentionSuggestion = input.retentionDays
    ? { days: input.retentionDays, reason: 'given with --retention-days' }
    : (defaultRetention(input.tables) ?? { days: 365, reason: 'default' });
  // Without a retention given, each table keeps its own suggestion: one table's must not shorten or lengthen another's.
  const ownRetention = (t: Candidate) =>
    !input.retentionDays && t.retention && t.retention.days !== retention.days ? t.retention.days : undefined;
  const spans = new Map(input.tables.map((t) => [t, objectSpanOf(t)]));
  const tables: TableConfig[] = input.tables.map((t) => ({
    schema: t.schema,
    name: t.name,
    timestampColumn: t.timestamp?.name ?? '',
    timestampTimeZone: t.timestampTimeZone ?? 'UTC',
    ...(t.keyColumns ? { keyColumns: t.keyColumns } : {}),
    ...(ownRetention(t) ? { retentionDays: ownRetention(t) } : {}),
    ...(spans.get(t)?.span === 'month' ? { objectSpan: 'month' as const } : {}),
  }));
  const config: ArchiverConfigInput = {
    s3: { ...(input.bucket ? { bucket: input.bucket } : {}), prefix: 'archive/' },
    defaults: { retentionDays: retention.days },
    databases: [{ name: input.database, credentials: input.credentials, tls: input.tls, tables }],
  };
  const header = [
    `Written by \`audit-archiver wizard\` on ${input.now.toISOString().slice(0, 10)}; every option: config/archiver.example.yaml.`,
    `retentionDays ${retention.days}: ${input.retentionDays ? retention.reason : `the longest of the suggestions for tables with rows; a table suggested otherwise has its own retentionDays`}.`,
    // Names quoted and escaped: a line break in one would end the comment and add settings to the file.
    ...input.tables.map(
      (t) =>
        `${quoted(tableRef(t))}: ${t.retention?.reason ?? ''}${t.timestamp?.indexed ? '' : `; index ${quoted(t.timestamp?.name ?? '')} first`}${spanReason(spans.get(t))}`,
    ),
    ...('url' in input.credentials
      ? ['This file holds a database password: keep it private, or use urlEnv.']
      : []),
    input.demo
      ? DEMO_NOTE
      : 'Check it with `audit-archiver local doctor -c <this file>` before the first run.',
  ];
  const yaml = `${header.map((line) => `# ${line}`).join('\n')}\n${stringify(config)}`;
  return { yaml, config: parseConfig(parseYaml(yaml), 'the generated config'), retention };
}

/** A name in a comment line or on the terminal: quoted, its control characters escaped. */
const quoted = (name: string) => printable(JSON.stringify(name));

/**
 * The longest of the tables' suggestions, among tables with rows when there are any: an empty table's year says
 * nothing about the rows of the others.
 */
function defaultRetention(tables: Candidate[]): RetentionSuggestion | undefined {
  const withRows = tables.filter((t) => t.retention && t.age?.oldestDays != null);
  return (withRows.length > 0 ? withRows : tables)
    .flatMap((t) => (t.retention ? [t.retention] : []))
    .sort((a, b) => b.days - a.days)[0];
}

/**
 * The object span for a table from its measured rows per day and its size per row (gzip assumed at the plan's
 * ratio): a month where a day's object would be small. Undefined without an age profile to measure from.
 */
function objectSpanOf(t: Candidate): ReturnType<typeof suggestedObjectSpan> | undefined {
  if (!t.age?.oldestDays || t.age.rows === 0 || t.estimatedRows <= 0) return undefined;
  const rowsPerDay = t.age.rows / Math.max(1, t.age.oldestDays);
  return suggestedObjectSpan(rowsPerDay, (t.bytes / t.estimatedRows) * ASSUMED_COMPRESSION_RATIO);
}

const spanReason = (suggested: ReturnType<typeof objectSpanOf>): string =>
  suggested?.span === 'month'
    ? `; objectSpan month: a day's archive would be about ${Math.max(1, Math.round(suggested.dayObjectBytes / 1024))} KiB, and Standard-IA and Glacier bill each object as 128 KiB at least`
    : '';

/**
 * How the wizard talks to its user; tests answer from a script. `check` returns why an answer is not acceptable
 * (undefined when it is): the prompter says so and asks again, so a typo never ends the wizard.
 */
export interface Prompter {
  ask(question: string, fallback: string, check?: (answer: string) => string | undefined): Promise<string>;
}

/** Why `check` refuses an answer: its ConfigError's message without the flag it names for the command line. */
function refusal(check: () => void, flag: string): string | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    if (error instanceof ConfigError) return error.message.replace(`${flag}: `, '');
    throw error;
  }
}

const splitPicks = (answer: string) =>
  answer
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);

function retentionRefusal(answer: string): string | undefined {
  return /^[1-9]\d{0,5}$/.test(answer.trim()) ? undefined : 'a whole number of days, such as 365';
}

export interface WizardIo {
  prompter?: Prompter;
  write: Write;
  env: Record<string, string | undefined>;
  now(): Date;
}

/** Why the config cannot be written to `out`: its folder is missing, or not a folder; undefined when it can be. */
function outFolderProblem(out: string): string | undefined {
  const folder = dirname(resolve(out));
  if (!existsSync(folder))
    return `the folder ${folder} does not exist: create it, or write the config elsewhere`;
  return statSync(folder).isDirectory()
    ? undefined
    : `${folder} is a file, not a folder: write the config elsewhere`;
}

/** Runs the wizard on a connected database: discover, choose, build, write. Returns the written path. */
export async function runWizard(options: WizardOptions, io: WizardIo): Promise<string> {
  const prompter = options.yes ? undefined : io.prompter;
  // Known before a database is read or a question asked: the answers would be lost at the end.
  const outProblem = outFolderProblem(options.out);
  if (outProblem && !prompter) throw new ConfigError(`--out: ${outProblem}`);
  let urlEnv = options.urlEnv;
  let url = options.databaseUrl ?? (urlEnv ? io.env[urlEnv] : undefined);
  if (urlEnv && !url) throw new ConfigError(`--url-env: environment variable ${urlEnv} is not set`);
  if (!url && prompter) {
    const answer = await prompter.ask(
      'Environment variable with the database URL, or the URL itself',
      'DATABASE_URL',
      (a) =>
        /^postgres(ql)?:\/\//.test(a) || io.env[a]
          ? undefined
          : `environment variable ${a} is not set (or give a postgres:// URL)`,
    );
    if (/^postgres(ql)?:\/\//.test(answer)) url = answer;
    else {
      urlEnv = answer;
      url = io.env[answer];
      if (!url) throw new ConfigError(`environment variable ${answer} is not set`);
    }
  }
  if (!url) throw new ConfigError('--database-url or --url-env: the wizard needs a database to look at');
  const settings = parseConnectionUrl(url, urlEnv ? `environment variable ${urlEnv}` : 'the database URL');
  const loopback = ['localhost', '127.0.0.1', '::1'].includes(settings.host);
  const tls = options.tls ?? (loopback ? 'disable' : 'verify-full');
  const client = new pg.Client({ ...settings, ssl: tlsOption(tls), connectionTimeoutMillis: 10_000 });
  // A connection the server drops fails the query under way; the event alone must not crash the process.
  client.on('error', () => undefined);
  // As every command says it: the error class (a database the server lacks is a usage error), never the password.
  await client.connect().catch(async (error: unknown) => {
    await client.end().catch(() => undefined);
    throw classifyDatabaseError(error);
  });
  let candidates: Candidate[];
  try {
    // The steps' own settings (search_path pinned to pg_catalog), with a one-minute statement limit for a look around.
    await client.query(sessionSetupSql({ statementTimeoutSeconds: 60, lockTimeoutSeconds: 10 }));
    candidates = await discoverCandidates(client);
  } finally {
    await client.end();
  }
  io.write(
    safeLines([`Tables of ${settings.database} (audit-like first):`, ...candidates.map(candidateLine)]),
  );
  let picks = options.tables;
  let retentionDays = options.retentionDays;
  let out = options.out;
  if (prompter) {
    const defaults = candidates
      .map((c, i) => (!c.unusable && c.auditLike ? String(i + 1) : ''))
      .filter(Boolean)
      .join(',');
    picks = splitPicks(
      await prompter.ask('Tables to archive (numbers or schema.name, comma separated)', defaults, (a) =>
        refusal(() => selectTables(candidates, splitPicks(a)), '--tables'),
      ),
    );
  }
  const chosen = selectTables(candidates, picks);
  if (prompter && retentionDays === undefined) {
    const suggested = buildConfig({
      database: 'x',
      credentials: { urlEnv: 'X' },
      tls,
      tables: chosen,
      now: io.now(),
    });
    const own = suggested.config.databases[0]?.tables.filter((t) => t.retentionDays !== undefined) ?? [];
    io.write(
      safeLine(
        `Suggested retention: ${suggested.retention.days} days (${suggested.retention.reason})` +
          own.map((t) => `; ${quoted(tableRef(t))} ${t.retentionDays} days, its own suggestion`).join('') +
          '.',
      ),
    );
    const answer = Number(
      await prompter.ask('Retention in days', String(suggested.retention.days), retentionRefusal),
    );
    // The suggestion accepted keeps each table's own; another number applies to every table.
    retentionDays = answer === suggested.retention.days ? undefined : answer;
  }
  if (prompter) out = await prompter.ask('Write the config to', out, outFolderProblem);
  const result = buildConfig({
    database: logicalDatabaseName(options.name ?? settings.database),
    credentials: urlEnv ? { urlEnv } : { url },
    tls,
    bucket: options.bucket,
    tables: chosen,
    retentionDays,
    now: io.now(),
    demo: options.demo,
  });
  if (existsSync(out) && !options.yes) {
    const answer = prompter
      ? await prompter.ask(`${out} exists. Overwrite? (y/N)`, 'N', (a) =>
          /^(y|yes|n|no)$/i.test(a.trim()) ? undefined : 'answer y or n',
        )
      : 'N';
    if (!/^y(es)?$/i.test(answer)) throw new ConfigError(`--out: ${out} exists; give --yes to overwrite it`);
  }
  // A new file, renamed over the old: its mode applies only where a file is created, and the config may hold the
  // password, so an existing world-readable file must not be written in place.
  const written = `${out}.${randomUUID()}.tmp`;
  writeFileSync(written, result.yaml, { mode: 0o600, flag: 'wx' });
  try {
    renameSync(written, out);
  } catch (error) {
    rmSync(written, { force: true });
    throw error;
  }
  io.write(
    safeLine(
      `Wrote ${out}: ${chosen.length} table(s), retention ${result.retention.days} days (${result.retention.reason}).`,
    ),
  );
  if (options.demo) io.write(safeLine(DEMO_NOTE));
  return out;
}
