import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CopyObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject } from 'vitest';
import { stringify } from 'yaml';
import { type ValidationReport, validateArchives } from '../../cli/archive-validation.js';
import { formatRestoreResults } from '../../cli/restore.js';
import { type Manifest, ManifestSchema, tablePrefix } from '../../lambdas/shared/archive/format.js';
import {
  type DeploymentConfig,
  loadDeploymentConfigFile,
} from '../../lambdas/shared/config/deployment-schema.js';
import { retentionCutoff } from '../../lambdas/shared/config/governance.js';
import type { TableIdentity } from '../../lambdas/shared/config/resolved-table.js';
import type { ArchiverConfigInput } from '../../lambdas/shared/config/schema.js';
import { sessionSetupSql } from '../../lambdas/shared/database/db.js';
import { describeTable } from '../../lambdas/shared/database/table-shape.js';
import { rowLineSql, rowSourceSql } from '../../lambdas/shared/database/table-sql.js';
import { LeaseStore } from '../../lambdas/shared/lock-table/lease-store.js';
import { LockTableClient } from '../../lambdas/shared/lock-table/table-client.js';
import { sortUnlisted } from '../../lambdas/shared/restore/in-flight-archives.js';
import type { RestoreTask } from '../../lambdas/shared/restore/restore-task.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../lambdas/shared/step/table-task.js';
import type { MetricName } from '../../lambdas/shared/telemetry/metric-names.js';
import { type LocalEnvironment, openLocalEnvironment } from '../../local/run.js';
import { type LocalServices, startLocalServices } from '../../local/services.js';
import { writeLegacyArchive } from './legacy-archive.js';
import { recordProof } from './proof-ledger.js';
import { deniedRequests, stackRoles } from './role-grants.js';

export interface TestDatabase {
  name: string;
  url: string;
  client: pg.Client;
  /**
   * The clock of this database's tests: the system's, held at the last instant of the UTC day the database's
   * fixtures are dated from (TODAY_UTC_SQL), so a run after a midnight passed takes the cut-off its rows were seeded
   * around. Its testbeds' archive runs hand it to Plan as their start.
   */
  now(): Date;
  drop(): Promise<void>;
}

const DAY_MS = 86_400_000;
/** The setting, per test database, that holds the UTC midnight its time-dependent fixtures are dated from. */
const TEST_DAY_SETTING = 'archiver_test.today';

/**
 * The UTC midnight a new test database's fixtures are dated from: today's, or with `TEST_DAY_SHIFT=-1` yesterday's.
 * That shift makes every test run as if midnight had passed since its rows were seeded: a test that reads the day
 * from the system clock where it should read its database's fails then, as it would once in a while at midnight.
 */
function testDayStart(): number {
  const shift = Math.trunc(Number(process.env.TEST_DAY_SHIFT ?? 0));
  return (Math.floor(Date.now() / DAY_MS) + shift) * DAY_MS;
}

/** Server encodings a test database may be created in besides the server's default (UTF8). */
export type TestEncoding =
  | 'SQL_ASCII'
  | 'LATIN1'
  | 'WIN1252'
  | 'EUC_JP'
  | 'EUC_JIS_2004'
  | 'EUC_TW'
  | 'EUC_KR';

/**
 * A fresh database in the project's embedded PostgreSQL, with the archiver's session settings (but search_path); in
 * `encoding` when given (with the C locale, which takes any encoding).
 */
export async function createTestDatabase(options: { encoding?: TestEncoding } = {}): Promise<TestDatabase> {
  const adminUrl = inject('postgresUrl');
  const name = `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(
    options.encoding
      ? `CREATE DATABASE ${name} ENCODING '${options.encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`
      : `CREATE DATABASE ${name}`,
  );
  const today = testDayStart();
  await admin.query(`ALTER DATABASE ${name} SET ${TEST_DAY_SETTING} = '${new Date(today).toISOString()}'`);
  await admin.end();
  const url = adminUrl.replace(/\/[^/]*$/, `/${name}`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(sessionSetupSql({ statementTimeoutSeconds: 300, lockTimeoutSeconds: 30 }));
  // The archiver's text formats, but a user's search_path: tests name their own objects unqualified, in public.
  await client.query('RESET search_path');
  return {
    name,
    url,
    client,
    now: () => new Date(Math.min(Date.now(), today + DAY_MS - 1)),
    async drop() {
      await client.end();
      const cleanup = new pg.Client({ connectionString: adminUrl });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}

export type TableSpec = ArchiverConfigInput['databases'][number]['tables'][number];

/** A config for one test database, written to a temp dir together with the local state dir. */
export function writeTestConfig(
  db: Pick<TestDatabase, 'url'>,
  tables: TableSpec[],
  overrides: {
    defaults?: ArchiverConfigInput['defaults'];
    prefix?: string;
    maxConnections?: number;
    /** Settings of the database entry besides its name, credentials, TLS and tables. */
    database?: Pick<
      ArchiverConfigInput['databases'][number],
      'replicaLag' | 'restoreTargets' | 'legacyDatabase'
    >;
  } = {},
): { dir: string; configPath: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'audit-archiver-test-'));
  const config: ArchiverConfigInput = {
    s3: { bucket: 'test-archive', prefix: overrides.prefix ?? 'archive/' },
    // The suite's files share one PostgreSQL server, so one file's sessions would throttle another's runs: the
    // throttle that yields to the application is off unless a test turns it on (test/proofs/throttle.test.ts).
    defaults: { retentionDays: 30, batchSize: 500, yieldToLoad: false, ...overrides.defaults },
    databases: [
      {
        name: 'app',
        credentials: { url: db.url },
        tls: 'disable',
        maxConnections: overrides.maxConnections ?? 2,
        // The suite restores into scratch tables of `public`; a test of the allow-list overrides it.
        restoreTargets: ['public.*'],
        ...overrides.database,
        tables,
      },
    ],
  };
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, stringify(config));
  return { dir, configPath, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function openTestEnvironment(
  db: TestDatabase,
  tables: TableSpec[],
  overrides: Parameters<typeof writeTestConfig>[2] = {},
) {
  const files = writeTestConfig(db, tables, overrides);
  const local = await openLocalEnvironment(files.configPath, join(files.dir, 'state'), { clock: db.now });
  return {
    local,
    files,
    async close() {
      await local.close();
      files.cleanup();
    },
  };
}

export interface RecordedMetric {
  name: MetricName;
  value: number;
  /** The table's; absent for a metric of the whole run. */
  database?: string;
  table?: string;
  /** A metric of the whole run (runMetric), emitted with the deployment's dimension. */
  run?: true;
}

/**
 * A recorder of the metrics the functions emit: pass `wrap` as a workflow's `deps` option. The functions' own
 * telemetry still receives every call; the recorder only listens.
 */
export function metricRecorder(): {
  metrics: RecordedMetric[];
  wrap: (deps: StepDeps) => StepDeps;
  count(name: MetricName, table?: string): number;
} {
  const metrics: RecordedMetric[] = [];
  return {
    metrics,
    wrap: (deps) => ({
      ...deps,
      telemetry: {
        ...deps.telemetry,
        metric(name, unit, value, label) {
          metrics.push({ name, value, ...label });
          deps.telemetry.metric(name, unit, value, label);
        },
        runMetric(name, unit, value) {
          metrics.push({ name, value, run: true });
          deps.telemetry.runMetric(name, unit, value);
        },
      },
    }),
    count: (name, table) =>
      metrics
        .filter((m) => m.name === name && (table === undefined || m.table === table))
        .reduce((sum, m) => sum + m.value, 0),
  };
}

/** A lease store whose clock runs at `now()`: lets a test act after a lease has expired. */
export function leaseStoreAt(local: LocalEnvironment, now: () => number): LeaseStore {
  const client = new DynamoDBClient({ endpoint: local.services.dynamoEndpoint });
  return new LeaseStore(
    new LockTableClient(
      DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
      local.services.lockTable,
      now,
    ),
  );
}

/**
 * One test file's world: a fresh database (in `encoding` when given) seeded by `seed`, a config for `tables` and
 * local S3/DynamoDB, set up before the file's tests and torn down after them.
 */
export function archiverTestbed(
  seed: (db: TestDatabase) => Promise<void>,
  tables: TableSpec[],
  { encoding, ...overrides }: Parameters<typeof writeTestConfig>[2] & { encoding?: TestEncoding } = {},
): {
  db: TestDatabase;
  local: LocalEnvironment;
  /** A config the functions also ran with (an operator who changed it deployed it): its roles count too. */
  redeployedWith(configPath: string): void;
} {
  let db: TestDatabase | undefined;
  let env: Awaited<ReturnType<typeof openTestEnvironment>> | undefined;
  const redeployed: DeploymentConfig[] = [];
  beforeAll(async () => {
    db = await createTestDatabase({ encoding });
    await seed(db);
    env = await openTestEnvironment(db, tables, overrides);
  });
  afterAll(async () => {
    try {
      if (env) await expectRequestsWithinRoles(env.local, redeployed);
    } finally {
      await env?.close();
      await db?.drop();
    }
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('testbed used outside its tests');
    return value;
  };
  return {
    get db() {
      return ready(db);
    },
    get local() {
      return ready(env).local;
    },
    redeployedWith(configPath: string) {
      redeployed.push(loadDeploymentConfigFile(configPath));
    },
  };
}

/**
 * Every request the file's workflow functions sent is one the deployed stack's role of that function allows: the
 * local servers authorize nothing, so a path that needs a permission its role lacks would otherwise pass locally
 * and fail in AWS with AccessDenied.
 */
export async function expectRequestsWithinRoles(
  local: LocalEnvironment,
  redeployed: readonly DeploymentConfig[] = [],
): Promise<void> {
  const requests = await local.services.requestLog();
  const names = { bucket: local.services.bucket, lockTable: local.services.lockTable };
  const configs = [local.config, ...redeployed];
  const denials = deniedRequests(
    requests,
    configs.map((config) => stackRoles(config, names)),
    names,
  );
  // Every function that ran named itself in its requests: were they not told apart, nothing would be checked.
  const callers = new Set(requests.map((r) => r.caller));
  expect([...local.functionsRun].filter((name) => !callers.has(name))).toEqual([]);
  recordProof({
    kind: 'threat',
    actor: 'invocation',
    attack: 'a function path that calls S3 or DynamoDB beyond what its deployed role allows',
    held: denials.length === 0,
  });
  expect(denials).toEqual([]);
}

/**
 * A local DynamoDB lock table for the tests of one store, started before the file's tests and stopped after: its
 * document client, and a LockTableClient on `now` (the test's clock, if it keeps one).
 */
export function localLockTable(
  name: string,
  now?: () => number,
): {
  readonly ddb: DynamoDBDocumentClient;
  readonly lockTable: LockTableClient;
  readonly services: LocalServices;
} {
  let dir: string | undefined;
  let started:
    | { services: LocalServices; ddb: DynamoDBDocumentClient; lockTable: LockTableClient }
    | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `${name}-`));
    const services = await startLocalServices(dir, name);
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: services.dynamoEndpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      }),
      { marshallOptions: { removeUndefinedValues: true } },
    );
    started = { services, ddb, lockTable: new LockTableClient(ddb, services.lockTable, now) };
  });
  afterAll(async () => {
    await started?.services.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const ready = () => {
    if (!started) throw new Error('lock table used outside its tests');
    return started;
  };
  return {
    get ddb() {
      return ready().ddb;
    },
    get lockTable() {
      return ready().lockTable;
    },
    get services() {
      return ready().services;
    },
  };
}

/** Lets a table's lease lapse, as if its time had passed: a killed run never releases it. */
export async function expireLease(local: LocalEnvironment, database: string, table: string): Promise<void> {
  const client = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: local.services.dynamoEndpoint }));
  await client.send(
    new UpdateCommand({
      TableName: local.services.lockTable,
      Key: LeaseStore.stateKey(database, table),
      UpdateExpression: 'SET expiresAt = :past',
      ExpressionAttributeValues: { ':past': 0 },
    }),
  );
  client.destroy();
}

export function s3ClientFor(local: LocalEnvironment): S3Client {
  return new S3Client({ endpoint: local.services.s3Endpoint, forcePathStyle: true });
}

export async function listKeys(local: LocalEnvironment, prefix: string): Promise<string[]> {
  const s3 = s3ClientFor(local);
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: local.services.bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

/**
 * Puts the Python tool's archives of tables named `audit_log` in several schemas, which its layout files in one folder:
 * a batch per `[schema, runStamp]`, each holding rows `ids` whose actor names their schema.
 */
export async function putLegacyAuditLogs(
  local: LocalEnvironment,
  database: string,
  runs: readonly (readonly [schema: string, runStamp: string])[],
  ids: readonly number[],
): Promise<void> {
  for (const [schema, runStamp] of runs) {
    const archive = writeLegacyArchive({
      prefix: 'archive/',
      database,
      schema,
      table: 'audit_log',
      runStamp,
      batch: 1,
      rows: ids.map((id) => ({
        id,
        created_at: `2025-01-02T03:04:${String(4 + id).padStart(2, '0')}+00:00`,
        actor: `${schema}-row`,
      })),
    });
    await putObjects(local, archive.files);
  }
}

/**
 * Makes the table's lease item as a version before `inventorySince` left it: restore then reads an archive the
 * inventory does not list (one a bucket writer planted, say) with a warning, as it reads archives written before the
 * inventory existed, where it would otherwise leave it out as never committed.
 */
export async function asBeforeTheInventory(local: LocalEnvironment, table: string): Promise<void> {
  const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: local.services.dynamoEndpoint }));
  await ddb.send(
    new UpdateCommand({
      TableName: local.services.lockTable,
      Key: LeaseStore.stateKey('app', table),
      UpdateExpression: 'REMOVE inventorySince',
    }),
  );
  ddb.destroy();
}

/** Moves an object to `storageClass` as a lifecycle transition would: a copy onto itself in that class. */
export async function moveToStorageClass(
  local: LocalEnvironment,
  key: string,
  storageClass: 'GLACIER' | 'DEEP_ARCHIVE',
): Promise<void> {
  const s3 = s3ClientFor(local);
  const Bucket = local.services.bucket;
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: key }));
  await s3.send(
    new CopyObjectCommand({
      Bucket,
      Key: key,
      CopySource: `${Bucket}/${key}`,
      MetadataDirective: 'REPLACE',
      Metadata: head.Metadata,
      ContentType: head.ContentType,
      StorageClass: storageClass,
    }),
  );
}

/** Puts objects into the local bucket as they are (a Python tool's archive, say), key by key. */
export async function putObjects(local: LocalEnvironment, files: ReadonlyMap<string, Buffer>): Promise<void> {
  const s3 = s3ClientFor(local);
  for (const [key, body] of files)
    await s3.send(new PutObjectCommand({ Bucket: local.services.bucket, Key: key, Body: body }));
}

export async function getObject(local: LocalEnvironment, key: string): Promise<Buffer> {
  const s3 = s3ClientFor(local);
  const object = await s3.send(new GetObjectCommand({ Bucket: local.services.bucket, Key: key }));
  return Buffer.from(
    await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
  );
}

export interface LiveArchive {
  key: string;
  manifest: Manifest;
  lines: string[];
}

/**
 * Every live archive of a table: a data object with its manifest sidecar, read back and split into lines. The
 * table's in-flight batch (recorded in the lock table) is live only once its delete transaction has committed.
 */
export async function readLiveArchives(
  local: LocalEnvironment,
  schema: string,
  table: string,
  client?: pg.Client,
): Promise<LiveArchive[]> {
  const prefix = tablePrefix({ prefix: local.config.s3.prefix, database: 'app', schema, table });
  const keys = await listKeys(local, prefix);
  // An object the inventory does not list though dated after the table's archives began to be recorded there is not
  // one of the table's archives (no commit vouches for it; restore refuses or leaves it out).
  const deps = local.deps();
  const unlisted = new Set<string>();
  const listed = async function* () {
    const s3 = s3ClientFor(local);
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: local.services.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? [])
        if (object.Key?.endsWith('.jsonl.gz'))
          yield {
            key: object.Key,
            format: 'native' as const,
            day: '',
            span: 'day' as const,
            size: object.Size ?? 0,
            storageClass: 'STANDARD',
            lastModified: object.LastModified,
          };
      token = page.NextContinuationToken;
    } while (token);
  };
  for await (const _ of sortUnlisted(listed(), deps, 'app', `${schema}.${table}`, (ref) =>
    unlisted.add(ref.key),
  ));
  const { inFlight } = await deps.locks.get('app', `${schema}.${table}`);
  let uncommitted = new Set(inFlight?.objects.map((object) => object.archiveKey));
  if (inFlight?.deleteXid && client) {
    const status = await client.query('SELECT pg_xact_status($1::xid8) AS s', [inFlight.deleteXid]);
    if (status.rows[0]?.s === 'committed') uncommitted = new Set();
  }
  const archives: LiveArchive[] = [];
  for (const key of keys.filter((k) => k.endsWith('.jsonl.gz') && !uncommitted.has(k) && !unlisted.has(k))) {
    const manifestKey = key.replace(/\/([^/]+)\.jsonl\.gz$/, '/_$1.manifest.json');
    if (!keys.includes(manifestKey)) continue;
    const manifest = ManifestSchema.parse(JSON.parse((await getObject(local, manifestKey)).toString('utf8')));
    const text = gunzipSync(await getObject(local, key)).toString('utf8');
    archives.push({ key, manifest, lines: text.split('\n').filter((line) => line.length > 0) });
  }
  return archives;
}

/**
 * `validate` of database `app`'s `public.<table>` as the command runs it: every native archive under the config's
 * prefix, checked against the table's inventory.
 */
export async function validateLocalTable(local: LocalEnvironment, table: string): Promise<ValidationReport> {
  const deps = local.deps();
  const origin = { database: 'app', schema: 'public', table };
  return validateArchives(
    deps.store,
    { format: 'native', location: { prefix: local.config.s3.prefix, ...origin } },
    origin,
    {},
    new Date(),
    await deps.inventory.listTable('app', { schema: 'public', name: table }),
  );
}

export function resolvedTable(spec: {
  schema?: string;
  name: string;
  timestampColumn: string;
  keyColumns?: string[];
  timestampTimeZone?: string;
}): TableIdentity {
  return {
    database: 'app',
    schema: spec.schema ?? 'public',
    name: spec.name,
    ref: `${spec.schema ?? 'public'}.${spec.name}`,
    timestampColumn: spec.timestampColumn,
    timestampTimeZone: spec.timestampTimeZone ?? 'UTC',
    keyColumns: spec.keyColumns,
  };
}

/** Each row of a table as its archive line (the exact text an archive holds for it). */
export async function tableLines(client: pg.Client, table: TableIdentity): Promise<string[]> {
  const shape = await describeTable(client, table);
  const result = await client.query<{ line: string }>(
    `SELECT ${rowLineSql(shape)} AS line FROM ${rowSourceSql(shape)} AS t`,
  );
  return result.rows.map((r) => r.line);
}

/** Lines of `original` missing from `present`, and lines present more often than `original` holds them. */
export function compareRows(
  original: string[],
  present: string[],
): { lost: number; doubled: number; extra: number } {
  const counts = new Map<string, number>();
  for (const line of original) counts.set(line, (counts.get(line) ?? 0) + 1);
  let doubled = 0;
  let extra = 0;
  for (const line of present) {
    const left = counts.get(line);
    if (left === undefined) extra += 1;
    else if (left === 0) doubled += 1;
    else counts.set(line, left - 1);
  }
  const lost = [...counts.values()].reduce((sum, n) => sum + n, 0);
  return { lost, doubled, extra };
}

/**
 * The zero-data-loss invariant: rows left in the database plus rows in live archives equal the original table,
 * row for row, and no row is in two live archives (or in an archive and the database). Every check is recorded in
 * the proof ledger (lost and doubled rows included) before a violation fails the test.
 */
export async function assertNoLossNoDuplicates(
  local: LocalEnvironment,
  client: pg.Client,
  table: TableIdentity,
  original: string[],
): Promise<{ inDatabase: number; inArchives: number }> {
  const remaining = await tableLines(client, table);
  const archived = (await readLiveArchives(local, table.schema, table.name, client)).flatMap((a) => a.lines);
  const { lost, doubled, extra } = compareRows(original, [...remaining, ...archived]);
  recordProof({ kind: 'invariant', rows: original.length, lost, doubled });
  if (doubled > 0) throw new Error(`${doubled} rows are doubled`);
  if (lost > 0 || extra > 0) {
    throw new Error(
      `rows lost: ${lost} missing, ${remaining.length + archived.length} present of ${original.length}`,
    );
  }
  return { inDatabase: remaining.length, inArchives: archived.length };
}

/**
 * Time-dependent fixtures anchor on today's UTC midnight, never on `now()`: the plan's cut-off is a UTC midnight too
 * (`retentionCutoff`), so which rows a run takes, and how many fall on each UTC day, is the same at every hour. In a
 * test database it is the midnight of the day the database was made on (TestDatabase.now), not one that passed since.
 */
export const TODAY_UTC_SQL = `coalesce(nullif(current_setting('${TEST_DAY_SETTING}', true), '')::timestamptz, date_trunc('day', now(), 'UTC'))`;

/** The cut-off a run started today takes with `retentionDays`, as SQL: rows `< cutoffSql()` are the eligible ones. */
export const cutoffSql = (retentionDays = 30): string =>
  `(${TODAY_UTC_SQL} - make_interval(days => ${Math.trunc(retentionDays)}))`;

/**
 * The cut-off a run takes with `retentionDays` on the day `database`'s fixtures are dated from (TODAY_UTC_SQL), read
 * through the functions' own connection: for a test that builds a batch's task by hand.
 */
export async function fixtureCutoff(deps: StepDeps, database = 'app', retentionDays = 30): Promise<string> {
  const today = await (await deps.database(database)).withConnection(async (client) => {
    const result = await client.query<{ ms: string }>(
      `SELECT (extract(epoch FROM ${TODAY_UTC_SQL}) * 1000)::text AS ms`,
    );
    return Number(result.rows[0]?.ms);
  });
  return retentionCutoff(today, retentionDays);
}

/**
 * The cut-off `cutoffSql` names, as a literal fixed now. Taken before a run, it is at or before the run's own cut-off
 * even if UTC midnight passes meanwhile (the run's is then a day later), so "no row older than it is left" holds
 * at any hour, where `cutoffSql` evaluated after the run would name the new day's.
 */
export async function fixedCutoffSql(client: pg.Client, retentionDays = 30): Promise<string> {
  const result = await client.query<{ cutoff: string }>(
    `SELECT to_json(${cutoffSql(retentionDays)})#>>'{}' AS cutoff`,
  );
  return `${pg.escapeLiteral(result.rows[0]?.cutoff ?? '')}::timestamptz`;
}

/**
 * `public.whole`, partitioned by range on created_at: `whole_old` holds every row older than 40 days, `whole_new` the
 * rest; 480 rows 3 hours apart back from today (UTC).
 */
export async function seedPartitionedWhole(client: pg.Client): Promise<void> {
  await client.query(`
    CREATE TABLE public.whole (id bigserial, created_at timestamptz NOT NULL, actor text NOT NULL,
                               PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
    CREATE TABLE public.whole_old PARTITION OF public.whole FOR VALUES FROM (MINVALUE) TO (${TODAY_UTC_SQL} - interval '40 days');
    CREATE TABLE public.whole_new PARTITION OF public.whole DEFAULT;
    INSERT INTO public.whole (created_at, actor)
    SELECT ${TODAY_UTC_SQL} - g * interval '3 hours', 'user_' || g % 7 FROM generate_series(1, 60 * 8) AS g;`);
}

/**
 * An audit-like table with `rows` rows spread evenly over the `days` UTC days before today, from just after the
 * midnight `days` days ago up to today's midnight: the same rows fall on the same UTC days at every hour.
 */
export async function seedEvents(
  client: pg.Client,
  name: string,
  rows: number,
  days = 60,
  schema = 'public',
): Promise<void> {
  const table = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
  await client.query(
    `CREATE TABLE ${table} (id bigserial PRIMARY KEY, created_at timestamptz, actor text NOT NULL, payload jsonb)`,
  );
  await client.query(`CREATE INDEX ON ${table} (created_at)`);
  await client.query(
    `INSERT INTO ${table} (created_at, actor, payload)
     SELECT ${TODAY_UTC_SQL} - make_interval(days => $2) + g * (make_interval(days => $2) / $1), 'user_' || g % 97,
            jsonb_build_object('n', g, 'note', md5(g::text))
       FROM generate_series(1, $1) AS g`,
    [rows, days],
  );
}

/**
 * A task of database `app`'s `table` under a lease taken now for `owner`, with the cut-off a run started today takes
 * (30 days' retention): what the state machine hands the batch steps, for a test that drives them one by one.
 */
export async function leasedTask(
  local: LocalEnvironment,
  table: string,
  owner: string,
  runId = owner,
): Promise<TableTask> {
  const acquired = await local.deps().locks.acquire('app', table, owner, 1200);
  if (!acquired.acquired) throw new Error(`the lease of ${table} was not acquired`);
  return { runId, database: 'app', table, cutoff: retentionCutoff(local.clock(), 30), lease: acquired.lease };
}

/** A restore task of database `app` with the defaults a request gets: `source` into `target` (itself by default). */
export const restoreTaskOf = (source: string, target = source): RestoreTask => ({
  restoreId: 'r-1',
  database: 'app',
  source: { schema: 'public', name: source },
  target: { schema: 'public', name: target },
  format: 'native',
  strategy: 'skip',
  dryRun: false,
  ignoreWatermark: false,
  drift: 'strict',
  requireInventory: false,
  unlistedArchives: 'refuse',
});

/**
 * Everything a restore shows of itself: the execution (its output and error), every archive's result, and the CLI's
 * report of them. Row values must be in none of it (audit rows hold personal data).
 */
export function restoreAsShown(restored: {
  execution: unknown;
  results: Parameters<typeof formatRestoreResults>[0];
}): string {
  return [
    JSON.stringify(restored.execution),
    JSON.stringify(restored.results),
    formatRestoreResults(restored.results, { dryRun: restored.results.some((r) => r.status === 'dry-run') }),
  ].join('\n');
}
