import { z } from 'zod';
import { OBJECT_SPANS } from '../archive/format.js';
import { WRITABLE_STORAGE_CLASSES } from './storage-classes.js';

/** PostgreSQL truncates identifiers to NAMEDATALEN-1 bytes; a longer name would silently address another object. */
export const pgIdentifier = z
  .string()
  .min(1, 'must not be empty')
  .refine(
    (name) => Buffer.byteLength(name, 'utf8') <= 63,
    'must be at most 63 bytes (PostgreSQL NAMEDATALEN)',
  )
  .refine((name) => !name.includes('\u0000'), 'must not contain NUL');

/** Names that end up in S3 keys, DynamoDB keys and metric dimensions stay within a safe alphabet. */
const logicalName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, 'must be 1-63 characters of A-Z, a-z, 0-9, "_" or "-"');

export const S3ConfigSchema = z
  .object({
    /** Bucket name. In AWS the stack creates it (a generated name when omitted); locally it names the bucket. */
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name')
      .optional(),
    /** Key prefix for every object the archiver writes; empty, or ends with "/". */
    prefix: z
      .string()
      .default('')
      .refine(
        (p) => p === '' || (p.endsWith('/') && !p.startsWith('/')),
        'must be empty or end with "/" and not start with "/"',
      )
      .refine(
        (p) => !p.split('/').some((part) => part === '..' || part === '.'),
        'must not contain "." or ".." segments',
      )
      // S3 takes "a//b/", but a path, a console folder view or a local store reading it as one makes it "a/b/".
      .refine(
        (p) => p === '' || !p.slice(0, -1).split('/').includes(''),
        'must not contain an empty segment ("//")',
      ),
    storageClass: z.enum(WRITABLE_STORAGE_CLASSES).default('STANDARD'),
    /** KMS key id or ARN for SSE-KMS. When omitted, archives use the bucket's default encryption. */
    kmsKeyId: z.string().min(1).optional(),
  })
  .strict();

/**
 * The most batches one table's execution may run. Each batch adds 26 events to its history (four Tasks of 5, two
 * Choices and the throttle's Wait of 2; a withdrawn batch 28), so 800 are at most 22,400 of Step Functions' 25,000,
 * the rest left for retries; an execution past the limit fails where no Catch runs, holding the table's lease until
 * it expires. The acquire holds an execution started by hand to it too.
 */
export const MAX_BATCHES_PER_RUN = 800;

export const DefaultsSchema = z
  .object({
    retentionDays: z.number().int().min(1).max(36500).default(365),
    batchSize: z.number().int().min(1).max(5_000_000).default(50_000),
    /** Batches one table may archive in one execution; the next scheduled run continues. Bounds execution history. */
    maxBatchesPerRun: z.number().int().min(1).max(MAX_BATCHES_PER_RUN).default(200),
    /**
     * gzip level of archive objects (1 fastest .. 9 smallest). 3 by measurement on the benchmark table: about 2.5×
     * the speed of level 6 for 5% more bytes (74.8 against 71.5 bytes a row); 9 is 4× slower than 6 for 4% less.
     */
    compressionLevel: z.number().int().min(1).max(9).default(3),
    /**
     * Lease length. Every step renews it, so it must outlast one step (Step Functions allows a step 1000 s); it is
     * also how long a table stays locked after a run that died without releasing it.
     */
    leaseSeconds: z.number().int().min(1200).max(86_400).default(3600),
    /** Upper bound for any single archiver statement, so it never runs away on production. */
    statementTimeoutSeconds: z.number().int().min(1).max(3600).default(600),
    /** How long the delete waits for row locks before giving up, so the archiver never blocks writers for long. */
    lockTimeoutSeconds: z.number().int().min(1).max(600).default(5),
    /**
     * Share of the Lambda timeout one export, verify or delete may take: export sizes each batch from the rows/s the
     * table's previous batch achieved so the batch ends within it, and the loop continues in the next invocation.
     */
    timeBudgetShare: z.number().min(0.1).max(0.9).default(0.5),
    /** Throttle: a table's batches average at most this many rows per second (a Wait between batches). Unset: none. */
    maxRowsPerSecond: z.number().int().min(1).optional(),
    /** Throttle: a Wait of at least this long between two batches of a table (0: none). */
    pauseBetweenBatchesSeconds: z.number().int().min(0).max(3600).default(0),
    /**
     * Throttle that yields to the application: when other client sessions of the server had a transaction under way
     * on average at least `busySessions` at a time while a batch was exported (sampled before each COPY and after the
     * last, at most every 500 ms), the table waits after the batch so that its batches take at most `share` of the
     * time. An idle database (a nightly run) goes at full speed. `false`: never.
     */
    yieldToLoad: z
      .union([
        z.literal(false),
        z
          .object({
            busySessions: z.number().positive().max(10_000).default(1),
            share: z.number().min(0.01).max(1).default(0.1),
          })
          .strict(),
      ])
      .default({ busySessions: 1, share: 0.1 }),
    /** Runs `VACUUM (ANALYZE)` on a table after a run that deleted rows from it and found nothing more to archive. */
    vacuumAfterRun: z.boolean().default(false),
    /**
     * When a table's columns changed (added, removed, retyped, reordered, nullability) since its last archive:
     * `continue` records the drift (manifest and audit trail) and archives; `fail` records it and stops the table.
     */
    onSchemaDrift: z.enum(['fail', 'continue']).default('continue'),
  })
  .strict();

export const TableConfigSchema = z
  .object({
    schema: pgIdentifier.default('public'),
    name: pgIdentifier,
    timestampColumn: pgIdentifier,
    /** Zone in which a `timestamp without time zone` column is expressed. Ignored for timestamptz. */
    timestampTimeZone: z
      .string()
      .refine(isIanaTimeZone, 'must be an IANA time zone name such as "UTC" or "Europe/Paris"')
      .superRefine((zone, ctx) => {
        const region = zoneForPostgres(zone);
        if (region !== zone)
          ctx.addIssue({
            code: 'custom',
            message: `PostgreSQL reads "${zone}" as an abbreviation of a fixed offset, with no summer time, unlike the zone of that name: rows' instants, the cut-off and their objects' days would be an hour off half the year; name the zone by its region, such as "${region}"`,
          });
      })
      .default('UTC'),
    /** Key columns; defaults to the table's primary key. Must identify a row uniquely and be NOT NULL. */
    keyColumns: z
      .array(pgIdentifier)
      .min(1)
      .max(8)
      .refine((names) => new Set(names).size === names.length, 'must not name a column twice')
      .optional(),
    retentionDays: z.number().int().min(1).max(36500).optional(),
    batchSize: z.number().int().min(1).max(5_000_000).optional(),
    onSchemaDrift: z.enum(['fail', 'continue']).optional(),
    /**
     * What one archive object covers: a UTC `day` (the default), or a UTC `month` for a low-volume table whose day
     * objects would be small (Standard-IA and Glacier bill each object as 128 KiB at least; `plan` and `wizard`
     * suggest it from the rows per day). A month is archived once it has ended before the cut-off, so its rows stay
     * in the table up to a month longer than `retentionDays`.
     */
    objectSpan: z.enum(OBJECT_SPANS).optional(),
    /** A name from `policy.classifications`: its retention bounds and KMS requirement apply to this table. */
    classification: z.string().min(1).optional(),
    /** Legal hold from the config: `true` or the reason. A held table is skipped (status `held`), nothing deleted. */
    legalHold: z.union([z.boolean(), z.string().min(1)]).optional(),
    /** Critical tables' archives must be SSE-KMS encrypted (`s3.kmsKeyId`); upload refuses any other object. */
    critical: z.boolean().optional(),
  })
  .strict();

/** Retention bounds a table's effective retention must respect, with a KMS requirement per classification. */
export const PolicyConfigSchema = z
  .object({
    minRetentionDays: z.number().int().min(1).max(36500).optional(),
    maxRetentionDays: z.number().int().min(1).max(36500).optional(),
    classifications: z
      .record(
        logicalName,
        z
          .object({
            minRetentionDays: z.number().int().min(1).max(36500).optional(),
            maxRetentionDays: z.number().int().min(1).max(36500).optional(),
            requireKms: z.boolean().default(false),
          })
          .strict(),
      )
      .default({}),
  })
  .strict();

/** What a connection URL must look like: a password generator's `/` or `#` otherwise ends the password early. */
export const CONNECTION_URL_RULE =
  'postgres://user:password@host:port/database, with any / ? # @ : % in the user or password percent-encoded (%2F %3F %23 %40 %3A %25)';

/**
 * Why a connection URL cannot be read safely, or undefined when it can. Beyond parsing (`%zz` is not an escape), it
 * refuses what parses as another URL than the one written: a second raw `@` in the authority, an `@` after it, or a
 * fragment, which an unencoded `@`, `/`, `?` or `#` in the password makes of it. Read as written, part of the password
 * would become the host or the database and reach DNS, errors, the audit trail and notifications.
 */
export function connectionUrlProblem(url: string): string | undefined {
  const parses = `is not a valid URL: ${CONNECTION_URL_RULE}`;
  if (!URL.canParse(url)) return parses;
  const { username, password, hostname, pathname, search } = new URL(url);
  try {
    for (const part of [username, password, hostname, pathname, search]) decodeURIComponent(part);
  } catch {
    return parses;
  }
  const afterScheme = url.slice(url.indexOf('//') + 2);
  const authorityEnd = afterScheme.search(/[/?#]/);
  const authority = authorityEnd < 0 ? afterScheme : afterScheme.slice(0, authorityEnd);
  const rest = authorityEnd < 0 ? '' : afterScheme.slice(authorityEnd);
  if ((authority.match(/@/g) ?? []).length > 1 || rest.includes('@') || url.includes('#'))
    return `is ambiguous, part of the password would be read as the host or the database: ${CONNECTION_URL_RULE}`;
  return undefined;
}

const CREDENTIAL_FORMS =
  'exactly one of secretArn (a Secrets Manager secret), url (postgres://...) or urlEnv (an environment variable holding the URL)';

/**
 * Why credentials fit none of the forms: zod's own "Invalid input" says neither. Names the keys given, never a value
 * (a URL holds a password), and a key only when it looks like a field name (a URL written without `url:` is a key).
 */
function credentialsProblem(input: unknown): string {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return `must be a map holding ${CREDENTIAL_FORMS}, such as { urlEnv: DATABASE_URL }`;
  const given = Object.keys(input);
  if (given.length === 1 && ['secretArn', 'url', 'urlEnv'].includes(given[0] ?? ''))
    return `its ${given[0]} must be a string`;
  const keys = given.map((key) =>
    /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(key) ? `"${key}"` : 'a key that is no field name',
  );
  return `must hold ${CREDENTIAL_FORMS}; it holds ${keys.length === 0 ? 'none' : keys.join(', ')}`;
}

const CredentialsSchema = z.union(
  [
    z.object({ secretArn: z.string().min(1) }).strict(),
    z
      .object({
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
          // The message never quotes the URL: it holds the password.
          .superRefine((url, ctx) => {
            const problem = connectionUrlProblem(url);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          }),
      })
      .strict(),
    z
      .object({ urlEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name') })
      .strict(),
  ],
  { error: (issue) => (issue.code === 'invalid_union' ? credentialsProblem(issue.input) : undefined) },
);

export const DatabaseConfigSchema = z
  .object({
    name: logicalName,
    /** Where the connection comes from: a Secrets Manager secret (RDS JSON shape), a URL, or a URL in an env var. */
    credentials: CredentialsSchema,
    /** TLS to the database: verify-full checks the certificate (RDS CA bundle); disable must be explicit. */
    tls: z.enum(['verify-full', 'require', 'disable']).default('verify-full'),
    /** Tables of this database archived at the same time, i.e. concurrent connections the archiver opens. */
    maxConnections: z.number().int().min(1).max(32).default(2),
    /**
     * Pause (export waits and retries) while a named streaming replica of this database replays more than
     * `maxLagSeconds` behind, as `pg_stat_replication` on the primary reports it; a replica that is not connected
     * counts as lagging. Names are the replicas' `application_name`.
     */
    replicaLag: z
      .object({
        replicas: z.array(z.string().min(1)).min(1, 'must name at least one replica'),
        maxLagSeconds: z.number().int().min(1).max(86_400),
      })
      .strict()
      .optional(),
    /**
     * The PostgreSQL database name that the Python tool's archives of this database carry in their keys, when it is
     * not the name of the database the connection reaches (renamed, or moved to another server since). A restore of
     * legacy archives reads only this database's: no other database's archives under the same prefix.
     * @default the name of the database the connection reaches
     */
    legacyDatabase: z.string().min(1).optional(),
    /**
     * Tables other than the archived one that a restore may write into: "schema.name", or "schema.*" for every table
     * of a schema. An existing one must be shaped like the archive (every archived column, unique on its key).
     */
    restoreTargets: z
      .array(
        z
          .string()
          .regex(/^[^.]+\..+$/, 'must be "schema.name" or "schema.*"')
          .refine((ref) => !ref.startsWith('*.'), 'the schema cannot be a wildcard')
          .refine((ref) => {
            const dot = ref.indexOf('.');
            return [ref.slice(0, dot), ref.slice(dot + 1)].every(
              (part) => pgIdentifier.safeParse(part).success,
            );
          }, 'each name must be at most 63 bytes, without NUL (PostgreSQL NAMEDATALEN)'),
      )
      .optional(),
    tables: z.array(TableConfigSchema).min(1, 'must list at least one table'),
  })
  .strict();

/**
 * Zone names that PostgreSQL's Default abbreviations (pinned, db.ts) also hold, and that it reads as such, a fixed
 * offset all year (`AT TIME ZONE 'CET'` is UTC+01:00 in July), though the IANA zone keeps summer time; with a region
 * to suggest instead. The other zone names among the abbreviations (EST, MST, HST, GMT, UTC, UCT, Zulu) are fixed
 * offsets either way.
 */
const FIXED_IN_POSTGRES: Record<string, string> = {
  CET: 'Europe/Paris',
  EET: 'Europe/Athens',
  MET: 'Europe/Paris',
  WET: 'Europe/Lisbon',
};

/** `zone`, or for a name PostgreSQL would read as a fixed offset (FIXED_IN_POSTGRES), a region that keeps its rules. */
export function zoneForPostgres(zone: string): string {
  return FIXED_IN_POSTGRES[zone.toUpperCase()] ?? zone;
}

/** Whether the runtime knows the zone: IANA names (with their aliases), as EventBridge Scheduler expects them. */
export function isIanaTimeZone(zone: string): boolean {
  // Intl also accepts offsets such as "+01:00", which are not IANA names; names start with a letter.
  if (!/^[A-Za-z][A-Za-z0-9_+/-]*$/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const clockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a time of day such as "22:00"');

export const NotificationsConfigSchema = z
  .object({
    /** `digest`: one message per run; `per-table`: one per table outcome (and one for the run's end). */
    mode: z.enum(['digest', 'per-table']).default('digest'),
    /** `failures`: only runs (or tables) that failed; `always`: every run. */
    notifyOn: z.enum(['always', 'failures']).default('always'),
    /** Messages about nothing failing are not sent in this window; failures always are. `end` may be past midnight. */
    quietHours: z
      .object({
        start: clockTime,
        end: clockTime,
        timeZone: z
          .string()
          .refine(isIanaTimeZone, 'must be an IANA time zone name such as "UTC" or "Europe/Paris"')
          .default('UTC'),
      })
      .strict()
      .refine((quiet) => quiet.start !== quiet.end, { path: ['end'], message: 'must differ from start' })
      .optional(),
  })
  .strict();

/**
 * The runtime's view of a config file: every section the steps read. The `aws:` section is the CDK app's; it is
 * validated by the deployment schema (deployment-schema.ts, which extends this object), kept here as written, so
 * a file with it loads and its fingerprint is the one the deployed functions always recorded. Cross-section rules
 * (duplicate names, the retention policy) are added by config.ts.
 */
export const ArchiverConfigObject = z
  .object({
    s3: S3ConfigSchema,
    defaults: DefaultsSchema.default(DefaultsSchema.parse({})),
    run: z
      .object({
        /** Tables archived at the same time across all databases (Map MaxConcurrency). */
        maxConcurrency: z.number().int().min(1).max(40).default(8),
      })
      .strict()
      .default({ maxConcurrency: 8 }),
    databases: z.array(DatabaseConfigSchema).min(1, 'must list at least one database'),
    /** Retention policy and data classifications (see governance.ts); every table is checked against it. */
    policy: PolicyConfigSchema.optional(),
    /** Run summaries and failures, to SNS in AWS (notifications.jsonl in the state dir locally). */
    notifications: NotificationsConfigSchema.default(() => NotificationsConfigSchema.parse({})),
    /** Deployment settings (schedule, logging, notifications, alarms); read by the CDK app only. */
    aws: z.unknown().optional(),
  })
  .strict();

export type S3Config = z.infer<typeof S3ConfigSchema>;
export type Defaults = z.infer<typeof DefaultsSchema>;
export type TableConfig = z.infer<typeof TableConfigSchema>;
export type DatabaseConfig = z.infer<typeof DatabaseConfigSchema>;
export type PolicyConfig = z.infer<typeof PolicyConfigSchema>;
export type NotificationsConfig = z.infer<typeof NotificationsConfigSchema>;
export type ArchiverConfig = z.infer<typeof ArchiverConfigObject>;
export type ArchiverConfigInput = z.input<typeof ArchiverConfigObject>;

/** "schema.name" as operators write it; used in execution input and summaries, never in SQL. */
export function tableRef(table: { schema: string; name: string }): string {
  return `${table.schema}.${table.name}`;
}
