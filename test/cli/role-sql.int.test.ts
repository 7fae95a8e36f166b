import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleSql } from '../../cli/role-sql.js';
import { loadDeploymentConfigFile } from '../../lambdas/shared/config/deployment-schema.js';
import {
  type LocalEnvironment,
  openLocalEnvironment,
  runLocalArchive,
  runLocalRestore,
} from '../../local/run.js';
import {
  createTestDatabase,
  resolvedTable,
  seedEvents,
  type TestDatabase,
  tableLines,
  writeTestConfig,
} from '../support/fixtures.js';

/** Tables with awkward names, one partitioned, and one the role must not reach. */
const TABLES = [
  { schema: 'public', name: 'events', timestampColumn: 'created_at' },
  { schema: 'Audit $grants$ Log', name: 'Parted "events"', timestampColumn: 'created_at' },
];

describe('role-sql: the archiver’s database role, with exactly what archiving and restoring use', () => {
  const role = `archiver_${randomUUID().replaceAll('-', '').slice(0, 8)}`;
  let db: TestDatabase;
  let local: LocalEnvironment;
  let files: ReturnType<typeof writeTestConfig>;
  const stateDir = mkdtempSync(join(tmpdir(), 'role-sql-'));
  const asRole = () => new pg.Client({ connectionString: roleUrl() });
  const roleUrl = () => {
    const url = new URL(db.url);
    url.username = role;
    url.password = 'role-secret';
    return url.toString();
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 300, 40);
    // Its key's default draws on a sequence the column does not own: restore moves that one on too.
    await db.client.query(`CREATE SEQUENCE public.hand_seq;
      ALTER TABLE public.events ALTER COLUMN id SET DEFAULT nextval('public.hand_seq')`);
    await db.client.query(`
      CREATE SCHEMA "Audit $grants$ Log";
      CREATE TABLE "Audit $grants$ Log"."Parted ""events""" (id bigserial, created_at timestamptz NOT NULL, note text,
        PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
      CREATE TABLE "Audit $grants$ Log".p_all PARTITION OF "Audit $grants$ Log"."Parted ""events""" DEFAULT;
      INSERT INTO "Audit $grants$ Log"."Parted ""events""" (created_at, note)
        SELECT date_trunc('day', now(), 'UTC') - g * interval '7 hours', 'n' || g FROM generate_series(1, 200) AS g;
      CREATE TABLE public.payroll (id int PRIMARY KEY, salary int);
      INSERT INTO public.payroll VALUES (1, 100);`);
    await db.client.query('CREATE SCHEMA forensics');
    files = writeTestConfig({ url: roleUrl() }, TABLES, { database: { restoreTargets: ['forensics.*'] } });
    const sql = roleSql(loadDeploymentConfigFile(files.configPath), { role });
    // Act (as the superuser that installs it)
    await db.client.query(sql);
    await db.client.query(`ALTER ROLE ${role} PASSWORD 'role-secret'`);
    local = await openLocalEnvironment(files.configPath, stateDir, { clock: db.now });
  });
  afterAll(async () => {
    await local?.close();
    files?.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
    await db.client.query(`DROP OWNED BY ${role}`);
    await db.drop();
    const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]*$/, '/postgres') });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  it('is enough to archive every configured table, partitioned and oddly named ones too, and to restore them', async () => {
    // Prepare
    const events = resolvedTable({ name: 'events', timestampColumn: 'created_at' });
    const before = (await tableLines(db.client, events)).sort();

    // Act
    const archived = await runLocalArchive(local, {}, { retryIntervalScale: 0 });
    const restored = await runLocalRestore(
      local,
      { database: 'app', table: 'public.events' },
      { retryIntervalScale: 0 },
    );
    const intoTarget = await runLocalRestore(
      local,
      { database: 'app', table: 'public.events', targetTable: 'forensics.events' },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(archived.execution.status).toBe('SUCCEEDED');
    expect(archived.outcomes.map((o) => [o.table, o.status, o.rowsArchived > 0])).toEqual(
      expect.arrayContaining([
        ['public.events', 'succeeded', true],
        ['Audit $grants$ Log.Parted "events"', 'succeeded', true],
      ]),
    );
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await tableLines(db.client, events)).sort()).toEqual(before);
    const handSeq = await db.client.query<{ moved: boolean }>(
      'SELECT last_value >= (SELECT max(id) FROM public.events) AS moved FROM public.hand_seq',
    );
    expect(handSeq.rows[0]?.moved).toBe(true);
    // A restore target it creates in a schema restoreTargets names.
    expect(intoTarget.execution.status).toBe('SUCCEEDED');
    expect(intoTarget.results.reduce((n, r) => n + r.inserted, 0)).toBeGreaterThan(0);
  });

  it('grants nothing else: no other table, no DDL on the archived ones', async () => {
    // Prepare
    const client = asRole();
    await client.connect();
    const attempt = (sql: string) =>
      client.query(sql).then(
        () => 'allowed',
        (error: { code?: string }) => error.code,
      );

    // Act
    const outcomes = [
      await attempt('SELECT * FROM public.payroll'),
      await attempt('DROP TABLE public.events'),
      await attempt('ALTER TABLE public.events ADD COLUMN x int'),
      await attempt('TRUNCATE public.events'),
      await attempt('SELECT count(*) FROM public.events'),
    ];
    await client.end();

    // Assess: 42501 insufficient_privilege for all but the read it has
    expect(outcomes).toEqual(['42501', '42501', '42501', '42501', 'allowed']);
  });
});
