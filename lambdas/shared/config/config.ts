import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors/step-errors.js';
import { governanceIssues } from './governance.js';

/** PostgreSQL truncates identifiers to NAMEDATALEN-1 bytes; a longer name would silently address another object. */
const pgIdentifier = z
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

/**
 * Classes an archive can be written in: verify must read the object back at once, so archival classes
 * (GLACIER, DEEP_ARCHIVE) are reached through lifecycle transitions, never written directly.
 */
const storageClasses = [
  'STANDARD',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER_IR',
] as const;

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
      ),
    storageClass: z.enum(storageClasses).default('STANDARD'),
    /** KMS key id or ARN for SSE-KMS. When omitted, archives use the bucket's default encryption. */
    kmsKeyId: z.string().min(1).optional(),
  })
  .strict();

export const DefaultsSchema = z
  .object({
    retentionDays: z.number().int().min(1).max(36500).default(365),
    batchSize: z.number().int().min(1).max(5_000_000).default(50_000),
    /** Batches one table may archive in one execution; the next scheduled run continues. Bounds execution history. */
    maxBatchesPerRun: z.number().int().min(1).max(800).default(200),
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
    timestampTimeZone: z.string().min(1).default('UTC'),
    /** Key columns; defaults to the table's primary key. Must identify a row uniquely and be NOT NULL. */
    keyColumns: z.array(pgIdentifier).min(1).max(8).optional(),
    retentionDays: z.number().int().min(1).max(36500).optional(),
    batchSize: z.number().int().min(1).max(5_000_000).optional(),
    onSchemaDrift: z.enum(['fail', 'continue']).optional(),
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

const CredentialsSchema = z.union([
  z.object({ secretArn: z.string().min(1) }).strict(),
  z.object({ url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL') }).strict(),
  z
    .object({ urlEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name') })
    .strict(),
]);

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
     * Tables other than the archived one that a restore may write into: "schema.name", or "schema.*" for every table
     * of a schema. An existing one must be shaped like the archive (every archived column, unique on its key).
     */
    restoreTargets: z
      .array(
        z
          .string()
          .regex(/^[^.]+\..+$/, 'must be "schema.name" or "schema.*"')
          .refine((ref) => !ref.startsWith('*.'), 'the schema cannot be a wildcard'),
      )
      .optional(),
    tables: z.array(TableConfigSchema).min(1, 'must list at least one table'),
  })
  .strict();

/** The six fields of an EventBridge cron expression: minutes hours day-of-month month day-of-week year. */
const CRON = /^cron\((\S+(?:\s+\S+)*)\)$/;
const RATE = /^rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)$/;

/** An EventBridge Scheduler recurring expression: `cron(...)` with six fields or `rate(N unit)`. */
const scheduleExpression = z.string().superRefine((expression, ctx) => {
  const cron = CRON.exec(expression);
  if (cron) {
    const fields = (cron[1] ?? '').split(/\s+/);
    if (fields.length !== 6) {
      ctx.addIssue({
        code: 'custom',
        message: `cron(...) must have 6 fields (minutes hours day-of-month month day-of-week year), found ${fields.length}`,
      });
    } else if ((fields[2] === '?') === (fields[4] === '?')) {
      ctx.addIssue({
        code: 'custom',
        message: 'cron(...) needs "?" in exactly one of day-of-month (3rd field) and day-of-week (5th field)',
      });
    }
    return;
  }
  const rate = RATE.exec(expression);
  if (rate) {
    const plural = (rate[2] ?? '').endsWith('s');
    if ((rate[1] === '1') === plural) {
      ctx.addIssue({
        code: 'custom',
        message: 'rate(...) takes a singular unit for 1 and a plural unit otherwise',
      });
    }
    return;
  }
  ctx.addIssue({
    code: 'custom',
    message:
      'must be "cron(minutes hours day-of-month month day-of-week year)" or "rate(N minutes|hours|days)"',
  });
});

/** Whether the runtime knows the zone: IANA names (with their aliases), as EventBridge Scheduler expects them. */
function isIanaTimeZone(zone: string): boolean {
  // Intl also accepts offsets such as "+01:00", which are not IANA names; names start with a letter.
  if (!/^[A-Za-z][A-Za-z0-9_+/-]*$/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const AwsScheduleConfigSchema = z
  .object({
    /** When the scheduled run starts: `cron(...)` (six fields) or `rate(N unit)`, read in `timeZone`. */
    expression: scheduleExpression.default('cron(0 3 * * ? *)'),
    /** IANA time zone the cron expression is read in (daylight saving time included), e.g. `Europe/Paris`. */
    timeZone: z
      .string()
      .refine(isIanaTimeZone, 'must be an IANA time zone name such as "UTC" or "Europe/Paris"')
      .default('UTC'),
    /** Whether the schedule starts runs; when false, runs are only started by hand. */
    enabled: z.boolean().default(true),
  })
  .strict();

/** The retention periods CloudWatch Logs accepts, in days. */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/**
 * Lifecycle transition targets of archives, coldest last: S3 moves objects only down this order. GLACIER and
 * DEEP_ARCHIVE objects must be restored (S3 RestoreObject) before they can be read, by Athena or a restore run.
 */
export const TRANSITION_STORAGE_CLASSES = [
  'STANDARD_IA',
  'INTELLIGENT_TIERING',
  'GLACIER_IR',
  'GLACIER',
  'DEEP_ARCHIVE',
] as const;

/**
 * Days an archive stays in its written class at least before a transition, and between two transitions. S3 itself
 * requires 30 days before (and in) STANDARD_IA; the archiver also needs archives readable while a batch that made
 * them can still be re-verified or settled by a later run.
 */
export const MIN_TRANSITION_DAYS = 30;

export const AwsStorageConfigSchema = z
  .object({
    /** Lifecycle transitions of archives (not staging or quarantine objects), in S3's order, days increasing. */
    transitions: z
      .array(
        z
          .object({
            storageClass: z.enum(TRANSITION_STORAGE_CLASSES),
            afterDays: z.number().int().min(MIN_TRANSITION_DAYS).max(36_500),
          })
          .strict(),
      )
      .default([]),
    /** Days after which archives expire (are deleted). Without it archives are kept for ever. */
    expireAfterDays: z.number().int().min(1).max(36_500).optional(),
    /** S3 Object Lock: a default retention on every object version written, which nobody (COMPLIANCE) can shorten. */
    objectLock: z
      .object({
        mode: z.enum(['GOVERNANCE', 'COMPLIANCE']),
        retentionDays: z.number().int().min(1).max(36_500),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((storage, ctx) => {
    storage.transitions.forEach((transition, i) => {
      const previous = storage.transitions[i - 1];
      if (!previous) return;
      const order = TRANSITION_STORAGE_CLASSES.indexOf(transition.storageClass);
      if (order <= TRANSITION_STORAGE_CLASSES.indexOf(previous.storageClass)) {
        ctx.addIssue({
          code: 'custom',
          path: ['transitions', i, 'storageClass'],
          message: `${transition.storageClass} cannot follow ${previous.storageClass}: S3 moves objects only in the order ${TRANSITION_STORAGE_CLASSES.join(', ')}`,
        });
      }
      if (transition.afterDays < previous.afterDays + MIN_TRANSITION_DAYS) {
        ctx.addIssue({
          code: 'custom',
          path: ['transitions', i, 'afterDays'],
          message: `must be at least ${MIN_TRANSITION_DAYS} days after the previous transition (${previous.afterDays})`,
        });
      }
    });
    const last = storage.transitions.at(-1);
    if (storage.expireAfterDays !== undefined && last && storage.expireAfterDays <= last.afterDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['expireAfterDays'],
        message: `must be after the last transition (${last.afterDays} days)`,
      });
    }
    const lock = storage.objectLock;
    if (storage.expireAfterDays !== undefined && lock && storage.expireAfterDays < lock.retentionDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['expireAfterDays'],
        message: `must not be shorter than objectLock.retentionDays (${lock.retentionDays}): locked versions cannot be removed earlier`,
      });
    }
  });

const awsId = (prefix: string) =>
  z
    .string()
    .regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `must be an id such as "${prefix}-0123456789abcdef0"`);

/** Where the functions that open database connections run: existing subnets and security groups of one VPC. */
export const AwsVpcConfigSchema = z
  .object({
    vpcId: awsId('vpc'),
    /** Private subnets (with a route to S3, DynamoDB and Secrets Manager: NAT or VPC endpoints). */
    subnetIds: z.array(awsId('subnet')).min(1, 'must list at least one subnet'),
    /** Groups the databases' security groups admit on their port. */
    securityGroupIds: z.array(awsId('sg')).min(1, 'must list at least one security group'),
  })
  .strict();

/** Glue column names: Athena lower-cases them; the SerDe maps each back to its JSON key. */
const athenaColumnName = z.string().min(1).max(255);

export const AwsAthenaConfigSchema = z
  .object({
    /** Partition projection range of the `year` partition; queries see no archive outside it. */
    firstYear: z.number().int().min(1).max(9999).default(2000),
    lastYear: z.number().int().min(1).max(9999).default(2100),
    /** Query results (in the stack's results bucket) expire after this many days. */
    resultsExpireAfterDays: z.number().int().min(1).max(3650).default(30),
    /** Per archived table: the columns its Glue table declares (every value is a string: PostgreSQL text form). */
    tables: z
      .array(
        z
          .object({
            database: z.string().min(1),
            /** "schema.name", as in execution input. */
            table: z.string().min(1),
            columns: z.array(athenaColumnName).min(1).max(1000),
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .refine((athena) => athena.firstYear <= athena.lastYear, {
    path: ['lastYear'],
    message: 'must not be before firstYear',
  });

export const AwsConfigSchema = z
  .object({
    /** The EventBridge Scheduler schedule that starts the parent state machine with input `{}`. */
    schedule: AwsScheduleConfigSchema.default(() => AwsScheduleConfigSchema.parse({})),
    /** Execution log level of both state machines (CloudWatch Logs); ALL logs every per-batch transition. */
    stateMachineLogLevel: z.enum(['ERROR', 'ALL', 'FATAL', 'OFF']).default('ERROR'),
    /** Who hears about alarms: the alarm topic's subscriptions. */
    notifications: z
      .object({
        /** Addresses subscribed (by email, each confirms once) to the alarm topic. */
        emails: z.array(z.email('must be an email address')).default([]),
        /** AWS Chatbot Slack channel (workspace authorized in the Chatbot console once). */
        slack: z
          .object({
            workspaceId: z
              .string()
              .regex(/^[0-9A-Z]{1,255}$/, 'must be a Slack workspace id such as "T0123ABCD"'),
            channelId: z
              .string()
              .regex(/^[A-Za-z0-9]{9,11}$/, 'must be a Slack channel id such as "C0123ABCDE"'),
          })
          .strict()
          .optional(),
        /** AWS Chatbot Microsoft Teams channel (team authorized in the Chatbot console once). */
        teams: z
          .object({
            teamId: z.guid('must be the team id (a GUID)'),
            tenantId: z.guid('must be the tenant id (a GUID)'),
            /** URL-encoded, as in the channel's link: `19%3A...%40thread.tacv2`. */
            channelId: z
              .string()
              .regex(
                /^[A-Za-z0-9\-_=+/.,]*%3[aA][A-Za-z0-9\-_=+/.,]*%40[A-Za-z0-9\-_=+/.,]*$/,
                'must be the URL-encoded channel id of the channel link, such as "19%3Aabc123%40thread.tacv2"',
              ),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default(() => ({ emails: [] })),
    /** Thresholds of the alarms that are not plain "any failure" alarms. */
    alarms: z
      .object({
        /**
         * Hours without a successful run after which an alarm fires. At most 168: CloudWatch evaluates an alarm
         * with one-hour periods over seven days at most.
         */
        noSuccessfulRunHours: z.number().int().min(1).max(168).default(26),
      })
      .strict()
      .default(() => ({ noSuccessfulRunHours: 26 })),
    /** Retention of every log group (functions and state machines), in days CloudWatch Logs accepts. Default 90. */
    logRetentionDays: z
      .number()
      .refine(
        (days) => (LOG_RETENTION_DAYS as readonly number[]).includes(days),
        `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
      )
      .optional(),
    /** Network of the functions that connect to databases; without it they run outside any VPC. */
    vpc: AwsVpcConfigSchema.optional(),
    /**
     * PEM file of the CA certificates that sign the databases' server certificates (for RDS: the global bundle
     * from AWS), relative to this config file. Shipped with the database functions (NODE_EXTRA_CA_CERTS). Without
     * it they trust the Amazon CA file of the Lambda runtime, which includes the RDS CAs.
     */
    databaseCaBundlePath: z.string().min(1).optional(),
    /**
     * Reserved concurrency of each function that connects to databases: a hard cap on their connections, and
     * capacity no other function in the account can take. At least run.maxConcurrency.
     */
    databaseFunctionConcurrency: z.number().int().min(1).max(1000).optional(),
    /** Lifecycle (transitions, expiry) and Object Lock of the archive bucket. */
    storage: AwsStorageConfigSchema.optional(),
    /** The Athena tables over the archives (Glue database, one table per archived table, workgroup). */
    athena: AwsAthenaConfigSchema.optional(),
  })
  .strict();

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

export const ArchiverConfigSchema = z
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
    aws: AwsConfigSchema.default(() => AwsConfigSchema.parse({})),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seenDatabases = new Set<string>();
    config.databases.forEach((db, i) => {
      if (seenDatabases.has(db.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['databases', i, 'name'],
          message: `duplicate database name "${db.name}"`,
        });
      }
      seenDatabases.add(db.name);
      const seenTables = new Set<string>();
      db.tables.forEach((t, j) => {
        const ref = tableRef(t);
        if (seenTables.has(ref)) {
          ctx.addIssue({
            code: 'custom',
            path: ['databases', i, 'tables', j],
            message: `duplicate table ${ref}`,
          });
        }
        seenTables.add(ref);
      });
    });
    for (const issue of governanceIssues(config)) ctx.addIssue({ code: 'custom', ...issue });
  });

export type S3Config = z.infer<typeof S3ConfigSchema>;
export type Defaults = z.infer<typeof DefaultsSchema>;
export type TableConfig = z.infer<typeof TableConfigSchema>;
export type DatabaseConfig = z.infer<typeof DatabaseConfigSchema>;
export type AwsConfig = z.infer<typeof AwsConfigSchema>;
export type PolicyConfig = z.infer<typeof PolicyConfigSchema>;
export type NotificationsConfig = z.infer<typeof NotificationsConfigSchema>;
export type ArchiverConfig = z.infer<typeof ArchiverConfigSchema>;
export type ArchiverConfigInput = z.input<typeof ArchiverConfigSchema>;

/** A table with every default applied: what the steps work with. */
export interface ResolvedTable {
  database: string;
  schema: string;
  name: string;
  ref: string;
  timestampColumn: string;
  timestampTimeZone: string;
  keyColumns?: string[];
  retentionDays: number;
  batchSize: number;
  onSchemaDrift: 'fail' | 'continue';
}

/** "schema.name" as operators write it; used in execution input and summaries, never in SQL. */
export function tableRef(table: { schema: string; name: string }): string {
  return `${table.schema}.${table.name}`;
}

/** Formats zod issues as "path: reason" lines so operators can find the offending field. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
      return `${path}: ${issue.message}`;
    })
    .join('\n');
}

export function parseConfig(raw: unknown, source = 'config'): ArchiverConfig {
  const result = ArchiverConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(`${source} is invalid:\n${formatIssues(result.error)}`);
  }
  return result.data;
}

/** Reads a YAML (or JSON, which is YAML) config file and validates it. */
export function loadConfigFile(path: string): ArchiverConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid YAML: ${(error as Error).message}`);
  }
  return parseConfig(raw, path);
}

export function findDatabase(config: ArchiverConfig, database: string): DatabaseConfig {
  const db = config.databases.find((d) => d.name === database);
  if (!db) throw new ConfigError(`database "${database}" is not in the config`);
  return db;
}

export function resolveTable(config: ArchiverConfig, database: string, ref: string): ResolvedTable {
  const db = findDatabase(config, database);
  const table = db.tables.find((t) => tableRef(t) === ref);
  if (!table) throw new ConfigError(`table "${ref}" is not configured for database "${database}"`);
  return {
    database,
    schema: table.schema,
    name: table.name,
    ref,
    timestampColumn: table.timestampColumn,
    timestampTimeZone: table.timestampTimeZone,
    keyColumns: table.keyColumns,
    retentionDays: table.retentionDays ?? config.defaults.retentionDays,
    batchSize: table.batchSize ?? config.defaults.batchSize,
    onSchemaDrift: table.onSchemaDrift ?? config.defaults.onSchemaDrift,
  };
}
