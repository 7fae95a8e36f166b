import { randomUUID } from 'node:crypto';
import { DescribeTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  DescribeExecutionCommand,
  type ExecutionListItem,
  ListExecutionsCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import pg from 'pg';
import type { DeploymentConfig } from '../lambdas/shared/config/deployment-schema.js';
import { resolveTable } from '../lambdas/shared/config/resolved-table.js';
import { type ArchiverConfig, type DatabaseConfig, tableRef } from '../lambdas/shared/config/schema.js';
import { resolveConnection } from '../lambdas/shared/database/credentials.js';
import {
  type ConnectionSettings,
  inReadOnlyTransaction,
  sessionSetupSql,
  tlsOption,
  underSavepoint,
} from '../lambdas/shared/database/db.js';
import { describeTable, findRelation } from '../lambdas/shared/database/table-shape.js';
import { classifyDatabaseError } from '../lambdas/shared/errors/step-errors.js';
import type { LocalEnvironment } from '../local/run.js';
import { type SafeText, safeLines } from './output.js';
import { sessionZone } from './session-zone.js';

export type CheckStatus = 'ok' | 'warning' | 'critical' | 'skipped';

export interface CheckResult {
  check: string;
  /** What was checked: a database, a table, the bucket, the lock table, the state machine. */
  subject: string;
  status: CheckStatus;
  detail: string;
}

/** Everything doctor talks to, injected: local mode passes clients of the local stand-ins, AWS mode real ones. */
export interface DoctorDeps {
  config: DeploymentConfig;
  mode: 'local' | 'aws';
  /** Where `urlEnv` credentials are read from. */
  env: Record<string, string | undefined>;
  s3: S3Client;
  bucket: string;
  dynamodb: DynamoDBClient;
  lockTable: string;
  secrets?: SecretsManagerClient;
  sfn?: SFNClient;
  stateMachineArn?: string;
  now(): Date;
}

/** The Lambda timeout of the long steps (lib/archiver-functions.ts LONG_STEP): a statement must end well before. */
const STEP_TIMEOUT_SECONDS = 900;
/** Longer lock waits block the application's writers behind the archiver's delete. */
const MAX_SANE_LOCK_TIMEOUT_SECONDS = 30;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1']);

const failure = (error: unknown, secret?: string): string => {
  const err = error as Error;
  const text = `${err.name}: ${err.message}`;
  // Driver messages name the user and host, never the password; strip it anyway should one ever echo it.
  return secret ? text.split(secret).join('***') : text;
};

/** Runs every check; never throws: a check that cannot run is itself a result. */
export async function runDoctor(deps: DoctorDeps): Promise<CheckResult[]> {
  const results: CheckResult[] = [timeoutCheck(deps.config)];
  const reached: Reached = { entries: new Map(), tables: new Map() };
  for (const db of deps.config.databases) results.push(...(await databaseChecks(deps, db, reached)));
  results.push(...sharedDatabaseChecks(reached.entries), ...aliasChecks(reached.tables));
  results.push(...(await bucketChecks(deps)));
  results.push(await lockTableCheck(deps));
  results.push(await executionsCheck(deps));
  return results;
}

export function timeoutCheck(config: ArchiverConfig): CheckResult {
  const { statementTimeoutSeconds: statement, lockTimeoutSeconds: lock } = config.defaults;
  const problems: string[] = [];
  if (statement >= STEP_TIMEOUT_SECONDS - 60) {
    problems.push(
      `statementTimeoutSeconds ${statement} leaves no margin under the ${STEP_TIMEOUT_SECONDS} s step timeout`,
    );
  }
  if (lock > MAX_SANE_LOCK_TIMEOUT_SECONDS) {
    problems.push(
      `lockTimeoutSeconds ${lock} lets a delete block writers for over ${MAX_SANE_LOCK_TIMEOUT_SECONDS} s`,
    );
  }
  return {
    check: 'timeouts',
    subject: 'defaults',
    status: problems.length > 0 ? 'warning' : 'ok',
    detail: problems.length > 0 ? problems.join('; ') : `statement ${statement} s, lock ${lock} s`,
  };
}

function tlsCheck(db: DatabaseConfig, host: string, encrypted: boolean | undefined): CheckResult {
  const subject = db.name;
  const seen =
    encrypted === undefined ? '' : encrypted ? ' (connection encrypted)' : ' (connection not encrypted)';
  if (db.tls === 'verify-full') {
    return { check: 'tls', subject, status: 'ok', detail: `verify-full${seen}` };
  }
  if (db.tls === 'require') {
    return {
      check: 'tls',
      subject,
      status: 'warning',
      detail: `require encrypts but does not verify the server certificate; use verify-full${seen}`,
    };
  }
  return LOOPBACK.has(host)
    ? { check: 'tls', subject, status: 'ok', detail: `disable, on a loopback connection to ${host}` }
    : {
        check: 'tls',
        subject,
        status: 'warning',
        detail: `disable sends credentials and rows in clear text to ${host}; use verify-full`,
      };
}

/**
 * The physical database a connection reaches: the cluster's system identifier, the running server's start time and
 * the database's oid. Two config entries may reach one database (another host name, a pooler beside the direct
 * address); a clone restored from a snapshot or a base backup has the same identifier and oids, but a server of its
 * own. Undefined where the role may not call pg_control_system (role-sql grants it).
 */
async function physicalDatabase(client: pg.Client): Promise<string | undefined> {
  try {
    const result = await client.query<{ id: string }>(
      `SELECT s.system_identifier::text || ':' || pg_catalog.pg_postmaster_start_time()::text || ':' || d.oid::text AS id
         FROM pg_catalog.pg_control_system() s, pg_catalog.pg_database d
        WHERE d.datname = pg_catalog.current_database()`,
    );
    return result.rows[0]?.id;
  } catch {
    return undefined;
  }
}

/** The config entries that reach each physical database, and the entries' tables that are each physical table. */
interface Reached {
  entries: Map<string, string[]>;
  tables: Map<string, string[]>;
}

/**
 * Two entries that reach one database: legal holds and restoreTargets are kept per entry, so a hold set on a table
 * through one entry does not stop an overwrite restore into it through the other.
 */
function sharedDatabaseChecks(entries: ReadonlyMap<string, readonly string[]>): CheckResult[] {
  return [...entries.values()]
    .filter((names) => names.length > 1)
    .map((names) => ({
      check: 'one database, two entries',
      subject: names.join(', '),
      status: 'warning' as const,
      detail: `${names.length} config entries reach one database: legal holds are kept per entry, so a hold set through one does not stop an overwrite restore into that table through another. Keep one entry per database`,
    }));
}

/**
 * A table configured twice over (two entries that reach one database): both archive it, each under its own prefix
 * and inventory, so a restore through one entry silently lacks the rows the other archived.
 */
function aliasChecks(archivedAs: ReadonlyMap<string, readonly string[]>): CheckResult[] {
  return [...archivedAs.values()]
    .filter((subjects) => subjects.length > 1)
    .map((subjects) => ({
      check: 'configured twice',
      subject: subjects.join(', '),
      status: 'critical' as const,
      detail: `one table of one database, under ${subjects.length} config entries: each archives it under its own prefix and inventory, so a restore or validate through one misses the rows the other archived. Keep one entry`,
    }));
}

async function databaseChecks(
  deps: DoctorDeps,
  db: DatabaseConfig,
  reached: Reached,
): Promise<CheckResult[]> {
  const source =
    'url' in db.credentials
      ? 'url'
      : 'urlEnv' in db.credentials
        ? `environment variable ${db.credentials.urlEnv}`
        : `secret ${db.credentials.secretArn}`;
  let settings: ConnectionSettings;
  try {
    settings = await resolveConnection(db, { secrets: deps.secrets, env: deps.env, cacheSeconds: 0 });
  } catch (error) {
    return [
      { check: 'credentials', subject: db.name, status: 'critical', detail: `${source}: ${failure(error)}` },
    ];
  }
  const results: CheckResult[] = [
    {
      check: 'credentials',
      subject: db.name,
      status: 'ok',
      // Where it connects, not who as: the server and database are what an operator checks here; the user name, like
      // the password, stays out of output that is pasted into tickets.
      detail: `${source} resolves to ${settings.host}:${settings.port}, database ${JSON.stringify(settings.database)}`,
    },
  ];
  const client = new pg.Client({ ...settings, ssl: tlsOption(db.tls), connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sessionSetupSql(deps.config.defaults));
  } catch (error) {
    await client.end().catch(() => undefined);
    results.push({
      check: 'reachable',
      subject: db.name,
      status: 'critical',
      detail: failure(classifyDatabaseError(error, db.name), settings.password),
    });
    results.push(tlsCheck(db, settings.host, undefined));
    return results;
  }
  try {
    // Each read in a transaction of its own that pins the settings (SET LOCAL): behind a transaction pooler the
    // session's SET may not reach the next statement, which would then resolve names by the role's search_path. One
    // per table, so no table stays locked (ACCESS SHARE) while the next is checked.
    const server = await inReadOnlyTransaction(client, () =>
      client.query<{ version: string; ssl: boolean | null }>(
        `SELECT pg_catalog.current_setting('server_version') AS version,
                (SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()) AS ssl`,
      ),
    );
    const row = server.rows[0];
    results.push({
      check: 'reachable',
      subject: db.name,
      status: 'ok',
      detail: `PostgreSQL ${row?.version ?? '?'}`,
    });
    results.push(tlsCheck(db, settings.host, row?.ssl ?? undefined));
    const physical = await inReadOnlyTransaction(client, () => physicalDatabase(client));
    if (physical) reached.entries.set(physical, [...(reached.entries.get(physical) ?? []), db.name]);
    if (!physical && db.tables.length > 0)
      results.push({
        check: 'configured twice',
        subject: db.name,
        status: 'skipped',
        detail: `cannot tell whether another entry reaches this database: the role may not call pg_control_system() (role-sql grants it)`,
      });
    for (const table of db.tables) {
      const subject = `${db.name}/${tableRef(table)}`;
      const checked = await inReadOnlyTransaction(client, async () => {
        const relation = physical
          ? await underSavepoint(client, () =>
              findRelation(client, resolveTable(deps.config, db.name, tableRef(table))),
            ).catch(() => undefined)
          : undefined;
        return { relation, checks: await tableChecks(client, deps.config, db.name, tableRef(table)) };
      });
      if (checked.relation) {
        const identity = `${physical}:${checked.relation.oid}`;
        reached.tables.set(identity, [...(reached.tables.get(identity) ?? []), subject]);
      }
      results.push(...checked.checks);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  return results;
}

/**
 * CHECK and NOT NULL constraints added NOT VALID on the table, its partitions or the domains its columns use (also as
 * array elements or inside composite types): rows
 * written before them may break them, and a restore into the table checks every row it writes.
 */
const UNVALIDATED_CONSTRAINTS_SQL = `
  WITH RECURSIVE relations AS (
         SELECT relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass)
          UNION SELECT $1::pg_catalog.oid),
       types AS (
         SELECT a.atttypid AS oid FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
          UNION
         -- Under each type: a domain's base type, an array's element type, a composite type's attributes' types.
         SELECT under.oid FROM types JOIN pg_catalog.pg_type t ON t.oid = types.oid
          CROSS JOIN LATERAL (
            SELECT t.typbasetype WHERE t.typtype = 'd'
            UNION ALL SELECT t.typelem WHERE t.typcategory = 'A' AND t.typelem <> 0
            UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
                       WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
          ) AS under(oid))
  SELECT co.conname AS name,
         CASE WHEN co.contypid <> 0 THEN 'domain ' || pg_catalog.format_type(co.contypid, NULL)
              ELSE 'table ' || co.conrelid::pg_catalog.regclass::text END AS on
    FROM pg_catalog.pg_constraint co
   WHERE NOT co.convalidated AND co.contype IN ('c', 'n')
     -- PostgreSQL 18 marks a NOT ENFORCED constraint not validated too, and checks no row against it, a restored one
     -- neither: read through the row's JSON, since conenforced does not exist before 18.
     AND coalesce((pg_catalog.to_jsonb(co) ->> 'conenforced')::bool, true)
     AND (co.conrelid IN (SELECT relid FROM relations) OR co.contypid IN (SELECT oid FROM types))
   ORDER BY 2, 1`;

/**
 * Usable (the steps' own describeTable), a `timestamp` column read in another zone than sessions write it in, constraints older rows may break, privileges the steps need, and an index
 * that finds old rows.
 */
async function tableChecks(
  client: pg.Client,
  config: ArchiverConfig,
  database: string,
  ref: string,
): Promise<CheckResult[]> {
  const subject = `${database}/${ref}`;
  const table = resolveTable(config, database, ref);
  try {
    const shape = await describeTable(client, table);
    const relation = await findRelation(client, table);
    if (!relation) throw new Error(`${ref} disappeared while checking`);
    const results: CheckResult[] = [
      {
        check: 'table',
        subject,
        status: 'ok',
        detail: `key (${shape.keyColumns.map((c) => c.name).join(', ')}), ${shape.timestampColumn.name} ${shape.timestampKind}`,
      },
    ];
    if (shape.timestampKind === 'timestamp') {
      // Back to the oldest rows a run of this retention archives, and two years at least.
      const yearsBack = Math.max(2, Math.ceil(table.retentionDays / 365) + 1);
      const sessions = await sessionZone(client, table.timestampTimeZone, yearsBack);
      const set = sessions.zone
        ? `set timestampTimeZone: ${sessions.zone}`
        : 'set timestampTimeZone to a zone with the same offsets (the config takes zone names only)';
      if (!sessions.same)
        results.push({
          check: 'timestamp zone',
          subject,
          status: 'warning',
          detail: `"${shape.timestampColumn.name}" is a timestamp without time zone read in ${table.timestampTimeZone} (timestampTimeZone), but this database's sessions start in ${sessions.setting}, where now(), CURRENT_TIMESTAMP and LOCALTIMESTAMP write local time: if the application writes it so, ${set}, or rows are read as other instants than they were written at (where ${sessions.setting} is behind ${table.timestampTimeZone}, as earlier ones: archived and deleted that many hours before retentionDays)`,
        });
    }
    if (shape.inheritanceChildren.length > 0) {
      results.push({
        check: 'inheritance children',
        subject,
        status: 'warning',
        detail: `archived ONLY as itself: the rows of ${shape.inheritanceChildren.join(', ')} stay (configure each child as its own table to archive it)`,
      });
    }
    const unvalidated = await client.query<{ name: string; on: string }>(UNVALIDATED_CONSTRAINTS_SQL, [
      relation.oid,
    ]);
    if (unvalidated.rows.length > 0) {
      results.push({
        check: 'constraints not validated',
        subject,
        status: 'warning',
        detail: `${unvalidated.rows.map((c) => `"${c.name}" on ${c.on}`).join(', ')}: added NOT VALID, so older rows may break them; a restore into this table refuses such rows (the error names the constraint; restore them into a target without it). ALTER TABLE ... VALIDATE CONSTRAINT (ALTER DOMAIN for a domain's) tells`,
      });
    }
    const granted = await client.query<{ usage: boolean; select: boolean; delete: boolean }>(
      `SELECT pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE') AS usage,
              pg_catalog.has_table_privilege(c.oid, 'SELECT') AS select,
              pg_catalog.has_table_privilege(c.oid, 'DELETE') AS delete
         FROM pg_catalog.pg_class c WHERE c.oid = $1`,
      [relation.oid],
    );
    const row = granted.rows[0];
    const missing = [
      ...(row?.usage ? [] : [`USAGE on schema "${table.schema}"`]),
      ...(row?.select ? [] : ['SELECT']),
      ...(row?.delete ? [] : ['DELETE']),
    ];
    results.push({
      check: 'privileges',
      subject,
      status: missing.length > 0 ? 'critical' : 'ok',
      detail:
        missing.length > 0
          ? `the archiver's role lacks ${missing.join(', ')}: archive needs SELECT, delete needs DELETE`
          : 'SELECT and DELETE',
    });
    // A valid index first: one a failed CREATE INDEX CONCURRENTLY left behind is invalid, and no query ever uses it.
    const indexed = await client.query<{ name: string; valid: boolean }>(
      `SELECT ic.relname AS name, i.indisvalid AS valid
         FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attname = $2
        WHERE i.indrelid = $1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL
        ORDER BY i.indisvalid DESC
        LIMIT 1`,
      [relation.oid, shape.timestampColumn.name],
    );
    const index = indexed.rows[0];
    const unindexed = `every batch scans the whole table to find the oldest rows`;
    results.push({
      check: 'index',
      subject,
      status: index?.valid ? 'ok' : 'warning',
      detail: !index
        ? `no index leads with "${shape.timestampColumn.name}": ${unindexed}`
        : index.valid
          ? `"${shape.timestampColumn.name}" is indexed (${index.name})`
          : relation.relkind === 'p'
            ? // A partitioned table's index is invalid until every partition has one attached (CREATE INDEX ON ONLY).
              `the index that leads with "${shape.timestampColumn.name}", ${index.name}, is invalid: some partition has no index attached to it, and batches scan that partition whole; attach one (ALTER INDEX ... ATTACH PARTITION)`
            : `the index that leads with "${shape.timestampColumn.name}", ${index.name}, is invalid (a CREATE INDEX CONCURRENTLY that failed, or one still being built), so no query uses it and ${unindexed}: once no build is running (pg_stat_progress_create_index), drop it and build it again`,
    });
    return results;
  } catch (error) {
    return [{ check: 'table', subject, status: 'critical', detail: failure(classifyDatabaseError(error)) }];
  }
}

async function bucketChecks(deps: DoctorDeps): Promise<CheckResult[]> {
  const subject = `s3://${deps.bucket}`;
  try {
    await deps.s3.send(new HeadBucketCommand({ Bucket: deps.bucket }));
  } catch (error) {
    return [{ check: 'bucket', subject, status: 'critical', detail: `not reachable: ${failure(error)}` }];
  }
  const results: CheckResult[] = [{ check: 'bucket', subject, status: 'ok', detail: 'reachable' }];
  const key = `${deps.config.s3.prefix}_doctor/${randomUUID()}`;
  try {
    if (deps.mode === 'aws') {
      // A multipart upload started and aborted proves PutObject without leaving an object (or, under Object Lock,
      // a version nobody could delete).
      const upload = await deps.s3.send(new CreateMultipartUploadCommand({ Bucket: deps.bucket, Key: key }));
      await deps.s3.send(
        new AbortMultipartUploadCommand({ Bucket: deps.bucket, Key: key, UploadId: upload.UploadId }),
      );
    } else {
      // The local S3 server cannot abort a multipart upload: write and remove a probe object instead.
      await deps.s3.send(new PutObjectCommand({ Bucket: deps.bucket, Key: key, Body: Buffer.from('probe') }));
      await deps.s3.send(new DeleteObjectCommand({ Bucket: deps.bucket, Key: key }));
    }
    results.push({
      check: 'bucket writable',
      subject,
      status: 'ok',
      detail: `may write under "${deps.config.s3.prefix}"`,
    });
  } catch (error) {
    results.push({ check: 'bucket writable', subject, status: 'critical', detail: failure(error) });
  }
  if (deps.mode === 'local') {
    results.push({
      check: 'versioning / Object Lock',
      subject,
      status: 'skipped',
      detail: 'the local S3 server has neither',
    });
    return results;
  }
  results.push(await retentionCheck(deps, subject));
  return results;
}

async function retentionCheck(deps: DoctorDeps, subject: string): Promise<CheckResult> {
  const check = 'versioning / Object Lock';
  const wanted = deps.config.aws.storage?.objectLock;
  try {
    const versioning = await deps.s3.send(new GetBucketVersioningCommand({ Bucket: deps.bucket }));
    if (!wanted) {
      return {
        check,
        subject,
        status: 'ok',
        detail: `versioning ${versioning.Status ?? 'never enabled'}; no Object Lock configured`,
      };
    }
    if (versioning.Status !== 'Enabled') {
      return {
        check,
        subject,
        status: 'critical',
        detail: 'Object Lock is configured but versioning is not enabled',
      };
    }
    const lock = await deps.s3.send(new GetObjectLockConfigurationCommand({ Bucket: deps.bucket }));
    const rule = lock.ObjectLockConfiguration?.Rule?.DefaultRetention;
    const days = rule?.Days ?? (rule?.Years ?? 0) * 365;
    if (
      lock.ObjectLockConfiguration?.ObjectLockEnabled !== 'Enabled' ||
      rule?.Mode !== wanted.mode ||
      days !== wanted.retentionDays
    ) {
      return {
        check,
        subject,
        status: 'critical',
        detail: `default retention is ${rule?.Mode ?? 'none'} ${days} days; the config sets ${wanted.mode} ${wanted.retentionDays} days`,
      };
    }
    return {
      check,
      subject,
      status: 'ok',
      detail: `versioning Enabled; Object Lock ${rule.Mode} ${days} days`,
    };
  } catch (error) {
    return { check, subject, status: 'critical', detail: failure(error) };
  }
}

async function lockTableCheck(deps: DoctorDeps): Promise<CheckResult> {
  const subject = `dynamodb:${deps.lockTable}`;
  try {
    const described = await deps.dynamodb.send(new DescribeTableCommand({ TableName: deps.lockTable }));
    const status = described.Table?.TableStatus;
    await deps.dynamodb.send(
      new GetItemCommand({
        TableName: deps.lockTable,
        Key: { pk: { S: '_doctor' }, sk: { S: '_doctor' } },
      }),
    );
    return {
      check: 'lock table',
      subject,
      status: status === 'ACTIVE' ? 'ok' : 'warning',
      detail: `${status ?? 'unknown status'}, readable`,
    };
  } catch (error) {
    return { check: 'lock table', subject, status: 'critical', detail: failure(error) };
  }
}

/** The archive state machine's recent runs: the latest failed is critical, no success for too long a warning. */
export async function executionsCheck(deps: DoctorDeps): Promise<CheckResult> {
  const check = 'last executions';
  if (deps.mode === 'local' || !deps.sfn || !deps.stateMachineArn) {
    return {
      check,
      subject: 'state machine',
      status: 'skipped',
      detail: deps.mode === 'local' ? 'local mode has no deployed state machine' : 'give --state-machine-arn',
    };
  }
  const subject = deps.stateMachineArn;
  try {
    const listed = await deps.sfn.send(
      new ListExecutionsCommand({ stateMachineArn: deps.stateMachineArn, maxResults: 50 }),
    );
    const executions = listed.executions ?? [];
    return judgeExecutions(
      executions,
      await lastSucceededRun(deps.sfn, executions),
      deps.now(),
      deps.config.aws.alarms.noSuccessfulRunHours,
      subject,
    );
  } catch (error) {
    return { check, subject, status: 'critical', detail: failure(error) };
  }
}

const startedAt = (e: ExecutionListItem) => e.startDate?.getTime() ?? 0;
const newestFirst = (executions: ExecutionListItem[]) =>
  [...executions].sort((a, b) => startedAt(b) - startedAt(a));

/**
 * The newest succeeded execution that was a run, read newest first (one DescribeExecution each) until one is: a dry
 * run (input `dryRun: true`) succeeds having archived nothing, so it tells nothing of the runs, as the no-successful-run
 * alarm, which counts runs only (the summary's RunsSucceeded).
 */
async function lastSucceededRun(
  sfn: SFNClient,
  executions: ExecutionListItem[],
): Promise<ExecutionListItem | undefined> {
  for (const execution of newestFirst(executions).filter((e) => e.status === 'SUCCEEDED')) {
    const { input } = await sfn.send(new DescribeExecutionCommand({ executionArn: execution.executionArn }));
    if (!isDryRun(input)) return execution;
  }
  return undefined;
}

/** Whether an execution's input (JSON, as Step Functions takes only JSON) asks for a dry run. */
const isDryRun = (input: string | undefined): boolean =>
  (JSON.parse(input ?? '{}') as { dryRun?: unknown } | null)?.dryRun === true;

function judgeExecutions(
  executions: ExecutionListItem[],
  success: ExecutionListItem | undefined,
  now: Date,
  maxHours: number,
  subject: string,
): CheckResult {
  const check = 'last executions';
  const sorted = newestFirst(executions);
  const latest = sorted[0];
  if (!latest) return { check, subject, status: 'warning', detail: 'no execution yet' };
  const finished = sorted.find((e) => e.status !== 'RUNNING');
  if (finished && ['FAILED', 'TIMED_OUT', 'ABORTED'].includes(finished.status ?? '')) {
    return {
      check,
      subject,
      status: 'critical',
      detail: `latest run ${finished.name} ${finished.status} (started ${finished.startDate?.toISOString()})`,
    };
  }
  const hours = success ? (now.getTime() - startedAt(success)) / 3_600_000 : Number.POSITIVE_INFINITY;
  if (hours > maxHours) {
    return {
      check,
      subject,
      status: 'warning',
      detail: success
        ? `no successful run for ${Math.floor(hours)} h (more than ${maxHours} h)`
        : `no successful run among the last ${sorted.length}`,
    };
  }
  return {
    check,
    subject,
    status: 'ok',
    detail: `last success ${success?.name} ${Math.floor(hours)} h ago${latest.status === 'RUNNING' ? '; one running' : ''}`,
  };
}

/** The CLI's scheme (docs/operating.md, Exit codes): 1 when a check is critical, or warns under --strict; else 0. */
export function doctorExitCode(results: CheckResult[], strict = false): 0 | 1 {
  if (results.some((r) => r.status === 'critical')) return 1;
  return strict && results.some((r) => r.status === 'warning') ? 1 : 0;
}

const MARKS: Record<CheckStatus, string> = { ok: '✔', warning: '⚠', critical: '✖', skipped: '-' };

export function formatDoctor(results: CheckResult[]): SafeText {
  const width = Math.max(...results.map((r) => r.check.length));
  const lines = results.map((r) => `${MARKS[r.status]} ${r.check.padEnd(width)}  ${r.subject}: ${r.detail}`);
  const count = (status: CheckStatus) => results.filter((r) => r.status === status).length;
  lines.push('', `${count('ok')} ok, ${count('warning')} warnings, ${count('critical')} critical`);
  // Subjects name databases and tables; details carry the database's and AWS's messages: each check stays one line.
  return safeLines(lines);
}

/** Doctor's clients for local mode: the local S3 and DynamoDB of `local`, one attempt each so an outage shows fast. */
export function localDoctorDeps(
  local: LocalEnvironment,
  env: Record<string, string | undefined>,
): DoctorDeps {
  const credentials = {
    accessKeyId: local.env.AWS_ACCESS_KEY_ID ?? '',
    secretAccessKey: local.env.AWS_SECRET_ACCESS_KEY ?? '',
  };
  const region = local.env.AWS_REGION ?? 'us-east-1';
  return {
    config: local.config,
    mode: 'local',
    env,
    s3: new S3Client({
      endpoint: local.services.s3Endpoint,
      forcePathStyle: true,
      region,
      credentials,
      maxAttempts: 1,
    }),
    bucket: local.services.bucket,
    dynamodb: new DynamoDBClient({
      endpoint: local.services.dynamoEndpoint,
      region,
      credentials,
      maxAttempts: 1,
    }),
    lockTable: local.services.lockTable,
    now: () => new Date(),
  };
}
