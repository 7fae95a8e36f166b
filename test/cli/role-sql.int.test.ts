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
import { recordProof } from '../support/proof-ledger.js';

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

/**
 * The SQL is run by a superuser (docs/operating.md: `psql ... user=postgres -f role.sql`), in a session whose
 * search_path is the default ("$user", public). Another database role that may create functions in public (the
 * default up to PostgreSQL 14), or a schema named like the superuser (which "$user" puts first), declares look-alikes
 * of format() that PostgreSQL prefers to pg_catalog.format(text, VARIADIC "any") for their more exact argument types
 * (CVE-2018-1058's pattern): they make their owner a superuser, then behave.
 */
describe('role-sql run by a superuser beside functions another role planted', () => {
  const hostile = `hostile_${randomUUID().replaceAll('-', '').slice(0, 8)}`;
  const role = `archiver_${randomUUID().replaceAll('-', '').slice(0, 8)}`;
  let db: TestDatabase;
  let files: ReturnType<typeof writeTestConfig>;
  const asHostile = () => {
    const url = new URL(db.url);
    url.username = hostile;
    url.password = 'x';
    return new pg.Client({ connectionString: url.toString() });
  };
  /** What a format() look-alike of these argument types in `schema` does: escalate its owner, then answer. */
  const planted = (
    schema: string,
    args: string,
  ) => `CREATE FUNCTION ${schema}.format(f text, a ${args}, b text)
    RETURNS text LANGUAGE plpgsql AS $$
    BEGIN
      EXECUTE 'ALTER ROLE ${hostile} SUPERUSER';
      RETURN pg_catalog.format(f, a, b);
    END $$`;
  /** Runs the printed SQL as the superuser; whether the hostile role is a superuser after it, and the grant made. */
  const installed = async (noRestore: boolean) => {
    await db.client.query(roleSql(loadDeploymentConfigFile(files.configPath), { role, noRestore }));
    const [escalated, granted] = await Promise.all([
      db.client.query<{ v: boolean }>('SELECT rolsuper AS v FROM pg_catalog.pg_roles WHERE rolname = $1', [
        hostile,
      ]),
      db.client.query<{ v: boolean }>(
        "SELECT pg_catalog.has_table_privilege($1, 'public.events', 'DELETE') AS v",
        [role],
      ),
    ]);
    return { escalated: escalated.rows[0]?.v, granted: granted.rows[0]?.v };
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 50, 10);
    await db.client.query(`CREATE ROLE ${hostile} LOGIN PASSWORD 'x' NOSUPERUSER`);
    files = writeTestConfig({ url: db.url }, [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
    ]);
  });
  afterAll(async () => {
    files?.cleanup();
    await db.client.query(`DROP OWNED BY ${hostile}; DROP OWNED BY ${role}`).catch(() => undefined);
    await db.drop();
    const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]*$/, '/postgres') });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${hostile}`);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  it.each([
    ['in public, which it may create in (PostgreSQL 14)', false],
    ['in a schema named like the superuser, with only CREATE on the database (PostgreSQL 15+)', true],
  ])('runs none of them: planted %s', async (where, inOwnSchema) => {
    // Prepare
    const superuser = (await db.client.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u ?? '';
    const schema = inOwnSchema ? `"${superuser}"` : 'public';
    await db.client.query(
      inOwnSchema
        ? `GRANT CREATE ON DATABASE ${db.name} TO ${hostile}`
        : `GRANT CREATE, USAGE ON SCHEMA public TO ${hostile}`,
    );
    const attacker = asHostile();
    await attacker.connect();
    try {
      if (inOwnSchema) await attacker.query(`CREATE SCHEMA ${schema}`);
      for (const args of ['name', 'text']) await attacker.query(planted(schema, args));
    } finally {
      await attacker.end();
    }

    // Act: the operator runs the printed SQL (the first DO block is printed with --no-restore too)
    const outcome = await installed(inOwnSchema);

    // Assess: before, the role became a superuser, and the grants came out right, so nothing looked wrong.
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: `plants format() look-alikes ${where} before a superuser runs role-sql's SQL`,
      held: outcome.escalated === false,
    });
    expect(outcome).toEqual({ escalated: false, granted: true });
    await db.client.query(`DROP SCHEMA IF EXISTS "${superuser}" CASCADE`);
    await db.client.query(
      `DROP FUNCTION IF EXISTS public.format(text, name, text), public.format(text, text, text)`,
    );
  });
});
