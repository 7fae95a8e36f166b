import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { z } from 'zod';
import type { ArchiverConfigInput } from '../lambdas/shared/config/schema.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { ArchiveInventory } from '../lambdas/shared/lock-table/archive-inventory.js';
import { LeaseStore } from '../lambdas/shared/lock-table/lease-store.js';
import { RestoreRecords } from '../lambdas/shared/lock-table/restore-records.js';
import { LockTableClient } from '../lambdas/shared/lock-table/table-client.js';
import { createAuditLogsTable } from './audit-table.js';
import { compareRows, type RowComparison } from './compare-rows.js';
import type { LocalServices } from './services.js';

/**
 * The demo's database entry in its config, which names its tables' items in the state dir's lock table. The state dir
 * may serve local runs of an operator's own config too, where a short name (`shop`) could be an entry of theirs: the
 * demo forgets its own items before each run, so it takes a name of its own, as its bucket does.
 */
export const DEMO_DATABASE = 'audit-archiver-demo';
/** The demo's PostgreSQL database, in the demo's own cluster (demoDataDir). */
export const DEMO_PG_DATABASE = 'shop';
const DEMO_RETENTION_DAYS = 90;
const DEMO_BUCKET = 'audit-archiver-demo';
/** The untouched copy of the demo tables, taken before archiving, that a demo restore is compared with. */
const ORIGINALS_SCHEMA = 'demo_original';
const DEMO_TABLES = [
  { schema: 'public', name: 'audit_logs', timestampColumn: 'created_at' },
  { schema: 'billing', name: 'Invoice Events', timestampColumn: 'Occurred At', timestampTimeZone: 'UTC' },
];

/**
 * The demo's PostgreSQL cluster persists between commands, so that a restore after `npm start` finds the database
 * it archived. It lives under the system temp dir (the `postgres` user must reach it), one per state dir.
 */
export function demoDataDir(stateDir: string, version: number): string {
  const id = createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 12);
  return join(tmpdir(), `audit-archiver-demo-${id}-pg${version}`);
}

/** The demo's database entry before it was DEMO_DATABASE: a demo an earlier version ran has its archives under it. */
const EARLIER_DEMO_DATABASE = 'shop';

/** What the last `demo` run left for later `--demo` commands (demo.json); an earlier version's names no entry. */
const DemoStateSchema = z.object({
  postgres: z.union([z.literal(14), z.literal(18)]),
  database: z.string().min(1).default(EARLIER_DEMO_DATABASE),
});
export type DemoState = z.infer<typeof DemoStateSchema>;

/** What the last `demo` run left for a later `local restore --demo`: the PostgreSQL major and the config entry it used. */
export function writeDemoState(stateDir: string, version: number): void {
  writeFileSync(
    join(stateDir, 'demo.json'),
    `${JSON.stringify({ postgres: version, database: DEMO_DATABASE })}\n`,
  );
}

export function readDemoState(stateDir: string): DemoState {
  const path = join(stateDir, 'demo.json');
  if (!existsSync(path))
    throw new ConfigError(`--demo: no demo in ${resolve(stateDir)}; run \`npm start\` first`);
  let parsed: ReturnType<typeof DemoStateSchema.safeParse> | undefined;
  try {
    parsed = DemoStateSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  } catch {
    // No JSON (a damaged file): said below as one another version left.
  }
  if (!parsed?.success)
    throw new ConfigError(
      `--demo: ${path} is not one this version reads (another version's demo, or damaged); run \`npm start\` to make a new demo in this state dir, or use another --state-dir`,
    );
  return parsed.data;
}

/** A new demo seeds a new database: archives of an earlier demo would no longer match it. */
export function clearDemoArchives(stateDir: string): void {
  rmSync(join(stateDir, 's3', DEMO_BUCKET), { recursive: true, force: true });
}

/**
 * What the lock table holds of an earlier demo's tables goes with its archives (clearDemoArchives): the lease item
 * (a batch in flight, totals, last outcome), the inventory of committed archives and the restore watermarks. Left
 * there, the inventory listed archives that were gone, and `local restore --demo` refused them all. Only the demo's
 * own tables' items go (a legal hold an operator set stays): the state dir may serve local runs of their own
 * databases too.
 */
export async function forgetDemoTables(services: Pick<LocalServices, 'dynamoEndpoint' | 'lockTable'>) {
  // Region and credentials are local mode's, which opening the environment set in the process. Loaded on use: it
  // loads Powertools, which reads its log level once (cli/commands/common.ts).
  const { awsClients } = await import('../lambdas/shared/runtime/deps.js');
  const lockTable = new LockTableClient(
    awsClients({ dynamodb: services.dynamoEndpoint }).ddb,
    services.lockTable,
  );
  for (const table of DEMO_TABLES) {
    const ref = `${table.schema}.${table.name}`;
    // The demo restores each table into itself: its watermarks are kept per identity of the table, listed under it.
    const targets = RestoreRecords.targetsKey(DEMO_DATABASE, ref).pk;
    const partitions = [
      LeaseStore.stateKey(DEMO_DATABASE, ref).pk,
      ArchiveInventory.key(DEMO_DATABASE, ref, '').pk,
      ...(await lockTable.queryAll(targets)).map(
        (item) => RestoreRecords.watermarkKey(DEMO_DATABASE, String(item.sk)).pk,
      ),
      targets,
    ];
    const keys: { pk: string; sk: string }[] = [];
    for (const pk of partitions)
      for (const item of await lockTable.queryAll(pk)) keys.push({ pk, sk: String(item.sk) });
    await lockTable.deleteItems(keys);
  }
}

/**
 * Two audit tables spread over 400 days, so ~78% of rows are older than the 90-day retention:
 * - public.audit_logs: the shared benchmark table (bench/audit_logs.sql): bigint key, timestamptz, jsonb, inet;
 * - "billing"."Invoice Events": composite key, timestamp without time zone, numeric, text[], a name that needs quoting.
 */
export async function seedDemoDatabase(adminUrl: string, rows: number): Promise<string> {
  await withDemoClient(adminUrl, async (admin) => {
    await admin.query(`DROP DATABASE IF EXISTS ${DEMO_PG_DATABASE}`);
    await admin.query(`CREATE DATABASE ${DEMO_PG_DATABASE}`);
  });
  const url = adminUrl.replace(/\/[^/]*$/, `/${DEMO_PG_DATABASE}`);
  const auditRows = Math.round(rows * 0.7);
  const invoiceRows = rows - auditRows;
  await withDemoClient(url, async (client) => {
    await createAuditLogsTable(client, auditRows);
    await client.query(`
    CREATE SCHEMA billing;
    CREATE TABLE billing."Invoice Events" (
      tenant_id int NOT NULL,
      event_id bigint NOT NULL,
      "Occurred At" timestamp without time zone NOT NULL,
      amount numeric(12, 4),
      tags text[],
      note text,
      PRIMARY KEY (tenant_id, event_id));
    CREATE INDEX ON billing."Invoice Events" ("Occurred At");
    INSERT INTO billing."Invoice Events"
    SELECT g % 7, g, (now() AT TIME ZONE 'UTC') - interval '400 days' + (g * (interval '400 days' / ${invoiceRows})),
           (g % 100000) / 100.0, ARRAY['t' || (g % 3), NULL], CASE WHEN g % 10 = 0 THEN E'line1\\nline2 "quoted" \\\\ ✓' END
      FROM generate_series(1, ${invoiceRows}) AS g;
    ANALYZE;
    CREATE SCHEMA ${ORIGINALS_SCHEMA};
    CREATE TABLE ${ORIGINALS_SCHEMA}.audit_logs AS SELECT * FROM public.audit_logs;
    CREATE TABLE ${ORIGINALS_SCHEMA}."Invoice Events" AS SELECT * FROM billing."Invoice Events";`);
  });
  return url;
}

/**
 * Runs `work` on a connection that is closed however it ends. The listener keeps a connection the server drops (the
 * demo's PostgreSQL stopped after a failed seed) from crashing the process with an unhandled 'error' event, which
 * would hide the failure itself.
 */
export async function withDemoClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Where the demo keeps its config in the state dir (`audit --demo` reads it without starting the database). */
export function demoConfigPath(stateDir: string): string {
  return join(stateDir, 'demo-config.yaml');
}

/**
 * Writes the demo's config: the same schema a production config uses, with a local connection URL. `database`: the
 * entry its archives and lock-table items are under, the one its demo state records (readDemoState).
 */
export function writeDemoConfig(stateDir: string, databaseUrl: string, database = DEMO_DATABASE): string {
  const config: ArchiverConfigInput = {
    s3: { bucket: DEMO_BUCKET, prefix: 'archive/' },
    defaults: { retentionDays: DEMO_RETENTION_DAYS, batchSize: 25_000, maxBatchesPerRun: 800 },
    databases: [
      {
        name: database,
        credentials: { url: databaseUrl },
        tls: 'disable',
        maxConnections: 2,
        tables: DEMO_TABLES,
      },
    ],
  };
  const path = demoConfigPath(stateDir);
  // It holds the demo's password: a new file only its owner reads, renamed over one an earlier version left readable.
  const written = `${path}.${randomUUID()}.tmp`;
  writeFileSync(
    written,
    `# Written by \`audit-archiver demo\`; see config/archiver.example.yaml for every option.\n${stringify(config)}`,
    { mode: 0o600, flag: 'wx' },
  );
  renameSync(written, path);
  return path;
}

export interface DemoComparison extends RowComparison {
  table: string;
}

/** Compares each demo table with the copy taken before archiving (see compareRows). */
export async function compareWithOriginals(client: pg.ClientBase): Promise<DemoComparison[]> {
  const comparisons: DemoComparison[] = [];
  for (const table of DEMO_TABLES) {
    const current = `${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.name)}`;
    const original = `${ORIGINALS_SCHEMA}.${pg.escapeIdentifier(table.name)}`;
    const comparison = await compareRows(client, `SELECT * FROM ${original}`, `SELECT * FROM ${current}`);
    comparisons.push({ table: `${table.schema}.${table.name}`, ...comparison });
  }
  return comparisons;
}
