import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { measureAll } from '../../cli/cost-measure.js';
import { type CheckResult, localDoctorDeps, runDoctor } from '../../cli/doctor.js';
import { parseWizardOptions, runWizard } from '../../cli/wizard.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  cutoffSql,
  fixedCutoffSql,
  listKeys,
  resolvedTable,
  seedEvents,
  type TestDatabase,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';
import {
  behindTransactionPooler,
  everyClientBehindTransactionPooler,
} from '../support/transaction-pooler.js';

/**
 * Another role in the database (the threat model's 'database role') shapes the archived table or the schemas
 * around it: inheritance children, foreign keys, triggers and rules that act on DELETE, an invalid unique index,
 * functions and operators planted in `public` and in the table's own schema. Each attack runs on the real workflow.
 */

const DAY_MS = 86_400_000;
const OLD = `${TODAY_UTC_SQL} - make_interval(days => 40)`;

/** Every row of a relation (with its partitions or children) as text, in a stable order. */
async function rowsOf(db: TestDatabase, relation: string): Promise<string[]> {
  const result = await db.client.query<{ r: string }>(`SELECT t::text AS r FROM ${relation} AS t ORDER BY 1`);
  return result.rows.map((row) => row.r);
}

describe('a database role shapes the table: children, cascades, triggers, rules, invalid keys', () => {
  const spec = (name: string, keyColumns?: string[]) => ({
    schema: 'public',
    name,
    timestampColumn: 'created_at',
    ...(keyColumns ? { keyColumns } : {}),
  });
  const bed = archiverTestbed(
    async (db) => {
      const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
      const partitionEnd = new Date(today - 33 * DAY_MS).toISOString();
      await db.client.query(`
        -- 1. An inheritance child under the archived table, with keys that repeat the parent's and a column of its own.
        CREATE TABLE public.inh_parent (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL);
        CREATE INDEX ON public.inh_parent (created_at);
        CREATE TABLE public.inh_child (secret text NOT NULL) INHERITS (public.inh_parent);
        INSERT INTO public.inh_parent SELECT g, ${OLD} + g * interval '1 minute', 'user_' || g FROM generate_series(1, 20) AS g;
        INSERT INTO public.inh_parent SELECT g, ${TODAY_UTC_SQL} - interval '1 day' + g * interval '1 minute', 'user_' || g FROM generate_series(21, 30) AS g;
        INSERT INTO public.inh_child SELECT g, ${OLD} + g * interval '1 minute', 'child_' || g, 'only in the child ' || g FROM generate_series(1, 11) AS g;

        -- 2a. A cascading foreign key that references one partition, not the partitioned table.
        CREATE TABLE public.fk_parted (id bigint NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
        CREATE TABLE public.fk_parted_old PARTITION OF public.fk_parted FOR VALUES FROM (MINVALUE) TO ('${partitionEnd}');
        CREATE TABLE public.fk_parted_rest PARTITION OF public.fk_parted DEFAULT;
        INSERT INTO public.fk_parted SELECT g, ${OLD} + g * interval '1 minute' FROM generate_series(1, 10) AS g;
        CREATE TABLE public.fk_ref (id int PRIMARY KEY, p_id bigint, p_at timestamptz,
          CONSTRAINT fk_ref_to_partition FOREIGN KEY (p_id, p_at) REFERENCES public.fk_parted_old ON DELETE CASCADE);
        INSERT INTO public.fk_ref SELECT id, id, created_at FROM public.fk_parted;

        -- 2b. A trigger on one partition that empties another table on DELETE; 2c. a rule that does the same.
        CREATE TABLE public.side_table (n int);
        INSERT INTO public.side_table SELECT generate_series(1, 5);
        CREATE FUNCTION public.purge_side() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN DELETE FROM public.side_table; RETURN OLD; END $$;
        CREATE TABLE public.trig_parted (id bigint NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
        CREATE TABLE public.trig_parted_all PARTITION OF public.trig_parted DEFAULT;
        INSERT INTO public.trig_parted SELECT g, ${OLD} + g * interval '1 minute' FROM generate_series(1, 10) AS g;
        CREATE TRIGGER purge_on_delete AFTER DELETE ON public.trig_parted_all FOR EACH ROW EXECUTE FUNCTION public.purge_side();

        -- 2d. A partition archived on its own, whose partitioned table has such a trigger: PostgreSQL clones it onto
        -- the partition, where it fires as its own (PostgreSQL 14 marks the clone internal, as it does a foreign key's).
        CREATE TABLE public.leaf_side (n int);
        INSERT INTO public.leaf_side SELECT generate_series(1, 5);
        CREATE FUNCTION public.purge_leaf_side() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN DELETE FROM public.leaf_side; RETURN OLD; END $$;
        CREATE TABLE public.trig_parent (id bigint NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
        CREATE TABLE public.trig_leaf PARTITION OF public.trig_parent DEFAULT;
        INSERT INTO public.trig_parent SELECT g, ${OLD} + g * interval '1 minute' FROM generate_series(1, 10) AS g;
        CREATE TRIGGER purge_leaf_on_delete AFTER DELETE ON public.trig_parent FOR EACH ROW EXECUTE FUNCTION public.purge_leaf_side();`);
      await seedEvents(db.client, 'ruled', 40);
      await db.client.query(
        'CREATE RULE purge_on_delete AS ON DELETE TO public.ruled DO ALSO DELETE FROM public.side_table',
      );
      // 7. A unique index whose concurrent build failed on duplicate keys: it stays behind, invalid.
      await db.client.query(`
        CREATE TABLE public.dupkey (id int NOT NULL, created_at timestamptz NOT NULL, n int NOT NULL);
        INSERT INTO public.dupkey SELECT g % 5, ${OLD} + g * interval '1 minute', g FROM generate_series(1, 10) AS g;`);
      await expect(
        db.client.query('CREATE UNIQUE INDEX CONCURRENTLY dupkey_id ON public.dupkey (id)'),
      ).rejects.toThrow(/could not create unique index/);
    },
    [
      spec('inh_parent'),
      spec('fk_parted'),
      spec('trig_parted'),
      spec('trig_leaf'),
      spec('ruled'),
      spec('dupkey', ['id']),
    ],
  );
  const archive = (table: string) =>
    runLocalArchive(bed.local, { tables: [`public.${table}`] }, { retryIntervalScale: 0 });

  it('archives a table with an inheritance child as itself only: the child keeps every row, restore gives the parent back', async () => {
    // Prepare
    const table = resolvedTable(spec('inh_parent'));
    const original = await tableLines(bed.db.client, table);
    const childBefore = await rowsOf(bed.db, 'public.inh_child');

    // Act
    const run = await archive('inh_parent');
    const childAfter = await rowsOf(bed.db, 'public.inh_child');
    // The invariant is checked before the restore changes the table; a violation fails the test after the record.
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original).catch(
      (error: Error) => error,
    );
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.inh_parent' },
      { retryIntervalScale: 0 },
    );
    const afterRestore = await tableLines(bed.db.client, table);

    // Assess
    const childLost = childBefore.filter((row) => !childAfter.includes(row)).length;
    const parentBack =
      afterRestore.length === original.length && original.every((l) => afterRestore.includes(l));
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'inheritance child under the archived table',
      held:
        run.execution.status === 'SUCCEEDED' && !(counts instanceof Error) && childLost === 0 && parentBack,
    });
    if (counts instanceof Error) throw counts;
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(childAfter).toEqual(childBefore);
    expect(counts.inArchives).toBe(20);
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(afterRestore.sort()).toEqual([...original].sort());
  });

  it.each([
    ['fk_parted', /foreign key "fk_ref_to_partition" of public\.fk_ref .*ON DELETE CASCADE/, 'public.fk_ref'],
    [
      'trig_parted',
      /trigger "purge_on_delete" on public\.trig_parted_all fires on DELETE/,
      'public.side_table',
    ],
    [
      'trig_leaf',
      /trigger "purge_leaf_on_delete" on public\.trig_parent fires on DELETE; .*; disabled on public\.trig_parent, it is disabled on every partition of it\)$/,
      'public.leaf_side',
    ],
    ['ruled', /rule "purge_on_delete" on public\.ruled acts on DELETE/, 'public.side_table'],
  ])(
    'refuses %s, whose deletes would change a table nothing archives, and changes nothing',
    async (name, reason, other) => {
      // Prepare
      const before = await rowsOf(bed.db, `public.${name}`);
      const otherBefore = await rowsOf(bed.db, other);

      // Act
      const run = await archive(name);

      // Assess
      const after = await rowsOf(bed.db, `public.${name}`);
      const otherAfter = await rowsOf(bed.db, other);
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `DELETE side effect on another table (${name})`,
        held: after.length === before.length && otherAfter.length === otherBefore.length,
      });
      expect(run.execution.status).toBe('FAILED');
      expect(run.outcomes[0]?.error).toMatch(/^TableNotUsableError: /);
      expect(run.outcomes[0]?.error).toMatch(reason);
      expect(after).toEqual(before);
      expect(otherAfter).toEqual(otherBefore);
    },
  );

  it('refuses a key whose only unique index is invalid (a failed concurrent build), and deletes nothing', async () => {
    // Prepare
    const before = await rowsOf(bed.db, 'public.dupkey');

    // Act
    const run = await archive('dupkey');

    // Assess
    const after = await rowsOf(bed.db, 'public.dupkey');
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'invalid unique index as the key',
      held: after.length === before.length && before.length === 10,
    });
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(
      /^TableNotUsableError: key columns \(id\) of table "public"."dupkey" .* are not exactly the columns of its primary key or of a valid, non-deferrable unique index/,
    );
    expect(after).toEqual(before);
  });
});

describe('a database role plants functions and operators where the archiver might resolve them', () => {
  const spec = { schema: 'app', name: 'events', timestampColumn: 'created_at' };
  /** One hostile definition per schema: each records its call, and convert_to also deletes young rows. */
  const hostile = (schema: string) => `
    CREATE FUNCTION ${schema}.convert_to(t text, e text) RETURNS bytea LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO public.hijack_calls VALUES ('${schema}.convert_to');
        DELETE FROM app.events WHERE created_at >= ${cutoffSql()};
        RETURN pg_catalog.convert_to(t, e::name);
      END $$;
    CREATE FUNCTION ${schema}.md5(b bytea) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.md5'); RETURN pg_catalog.md5(b); END $$;
    CREATE FUNCTION ${schema}.json_object(k text[], v text[]) RETURNS json LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.json_object'); RETURN pg_catalog.json_object(k, v); END $$;
    CREATE FUNCTION ${schema}.pg_xact_status(x xid8) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.pg_xact_status'); RETURN 'aborted'; END $$;
    CREATE FUNCTION ${schema}.ts_ge(a timestamptz, b timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.>='); RETURN pg_catalog.timestamptz_ge(a, b); END $$;
    CREATE OPERATOR ${schema}.>= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = ${schema}.ts_ge);
    CREATE FUNCTION ${schema}.ts_lt(a timestamptz, b timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.<'); RETURN pg_catalog.timestamptz_lt(a, b); END $$;
    CREATE OPERATOR ${schema}.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = ${schema}.ts_lt);
    CREATE FUNCTION ${schema}.int8_le(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.<='); RETURN pg_catalog.int8le(a, b); END $$;
    CREATE OPERATOR ${schema}.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = ${schema}.int8_le);
    CREATE FUNCTION ${schema}.oid_eq(a oid, b oid) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.='); RETURN pg_catalog.oideq(a, b); END $$;
    CREATE OPERATOR ${schema}.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = ${schema}.oid_eq);
    CREATE FUNCTION ${schema}.cat(a text, b text) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.||'); RETURN pg_catalog.textcat(a, b); END $$;
    CREATE OPERATOR ${schema}.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = ${schema}.cat);
    CREATE FUNCTION ${schema}.field(j jsonb, k text) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.->>'); RETURN pg_catalog.jsonb_object_field_text(j, k); END $$;
    CREATE OPERATOR ${schema}.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = ${schema}.field);
    CREATE FUNCTION ${schema}.unnest(a smallint[]) RETURNS SETOF smallint LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.unnest(smallint[])');
            DELETE FROM app.events WHERE created_at >= ${cutoffSql()};
            RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
    CREATE FUNCTION ${schema}.unnest(a oid[]) RETURNS SETOF oid LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.unnest(oid[])'); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
    CREATE FUNCTION ${schema}.name_eq(a name, b name) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.hijack_calls VALUES ('${schema}.=(name)'); RETURN pg_catalog.nameeq(a, b); END $$;
    CREATE OPERATOR ${schema}.= (LEFTARG = name, RIGHTARG = name, FUNCTION = ${schema}.name_eq);`;
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query('CREATE SCHEMA app');
      await seedEvents(db.client, 'events', 120, 60, 'app');
      await db.client.query('CREATE TABLE public.hijack_calls (fn text)');
      await db.client.query(hostile('public'));
      await db.client.query(hostile('app'));
      // Whoever may set the database's defaults puts both schemas before pg_catalog, so that even an exact match
      // of a built-in would be taken from them by any session that does not pin its own search_path.
      await db.client.query(`ALTER DATABASE ${db.name} SET search_path = app, public, pg_catalog`);
      // The test's own reads (tableLines describes the table) must not call what was planted either.
      await db.client.query('SET search_path = pg_catalog, pg_temp');
    },
    [spec],
  );
  const table = resolvedTable(spec);
  let original: string[] = [];
  const calls = async () =>
    (
      await bed.db.client.query<{ fn: string }>('SELECT DISTINCT fn FROM public.hijack_calls ORDER BY 1')
    ).rows.map((r) => r.fn);
  /**
   * Rows at or after `from`: the cut-off a day later than today's (fixedCutoffSql with 29 days, taken before the run),
   * which no run can pass even if UTC midnight passes during it, so the run leaves them all.
   */
  const young = async (from: string) =>
    (
      await bed.db.client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM app.events WHERE created_at >= ${from}`,
      )
    ).rows[0]?.n;

  it('archives with every function and operator taken from pg_catalog, behind a transaction pooler too', async () => {
    // Prepare
    original = await tableLines(bed.db.client, table);
    const youngFrom = await fixedCutoffSql(bed.db.client, 29);
    const youngBefore = await young(youngFrom);

    // Act
    const run = await runLocalArchive(
      bed.local,
      {},
      { retryIntervalScale: 0, deps: behindTransactionPooler },
    );

    // Assess
    const hijacked = await calls();
    const youngAfter = await young(youngFrom);
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original).catch(
      (error: Error) => error,
    );
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'functions and operators planted in public and the table schema (archive)',
      held: hijacked.length === 0 && youngAfter === youngBefore && !(counts instanceof Error),
    });
    if (counts instanceof Error) throw counts;
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(hijacked).toEqual([]);
    expect(youngAfter).toBe(youngBefore);
    expect(counts.inArchives).toBeGreaterThan(0);
  });

  it('restores with every function and operator taken from pg_catalog, behind a transaction pooler too', async () => {
    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'app.events' },
      { retryIntervalScale: 0, deps: behindTransactionPooler },
    );

    // Assess
    const hijacked = await calls();
    const now = await tableLines(bed.db.client, table);
    const exact =
      now.length === original.length && [...now].sort().join('\n') === [...original].sort().join('\n');
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'functions and operators planted in public and the table schema (restore)',
      held: hijacked.length === 0 && exact,
    });
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(hijacked).toEqual([]);
    expect(exact).toBe(true);
  });

  it('plans a restore of the Python tool’s archives with every operator taken from pg_catalog, behind a transaction pooler', async () => {
    // Act: its look for a table of the same name in another schema runs outside a transaction.
    await runLocalRestore(
      bed.local,
      { database: 'app', table: 'app.events', legacy: { database: bed.db.name } },
      { retryIntervalScale: 0, deps: behindTransactionPooler },
    );

    // Assess: before, it compared names with the planted =(name, name).
    const hijacked = await calls();
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'operators planted in public and the table schema (legacy restore plan behind a pooler)',
      held: hijacked.length === 0,
    });
    expect(hijacked).toEqual([]);
  });

  it('runs doctor, cost and the wizard with every function and operator taken from pg_catalog, behind a transaction pooler', async () => {
    // Prepare: each opens its own connection; behind the pooler, a session's SET may not reach its next statement.
    const youngFrom = await fixedCutoffSql(bed.db.client, 29);
    const youngBefore = await young(youngFrom);
    const out = mkdtempSync(join(tmpdir(), 'wizard-'));
    const restore = everyClientBehindTransactionPooler(bed.db.client);

    // Act
    let doctor: CheckResult[];
    try {
      doctor = await runDoctor(localDoctorDeps(bed.local, {}));
      await measureAll(bed.local.config);
      await runWizard(
        parseWizardOptions({ databaseUrl: bed.db.url, out: join(out, 'archiver.yaml'), yes: true }),
        { write: () => undefined, env: {}, now: () => new Date() },
      );
    } finally {
      restore();
      rmSync(out, { recursive: true, force: true });
    }

    // Assess: before, doctor's table checks called the planted unnest(smallint[]), which deleted the young rows.
    const hijacked = await calls();
    const youngAfter = await young(youngFrom);
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack:
        'functions and operators planted in public and the table schema (doctor, cost, wizard behind a pooler)',
      held: hijacked.length === 0 && youngAfter === youngBefore,
    });
    expect(hijacked).toEqual([]);
    expect(youngAfter).toBe(youngBefore);
    expect(doctor.filter((r) => r.check === 'table')).toEqual([expect.objectContaining({ status: 'ok' })]);
  });
});

describe('rows the archived table still has referenced by a plain foreign key, and a session in replica mode', () => {
  const spec = { schema: 'public', name: 'referenced', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'referenced', 120, 60);
      // Another table keeps pointing at three old rows (ON DELETE NO ACTION): PostgreSQL must refuse their delete.
      await db.client.query(`
        CREATE TABLE public.referrer (id int PRIMARY KEY, event_id bigint REFERENCES public.referenced (id));
        INSERT INTO public.referrer SELECT g, g FROM generate_series(1, 3) AS g;`);
    },
    [spec],
  );
  const table = resolvedTable(spec);
  const archive = () =>
    runLocalArchive(bed.local, { tables: ['public.referenced'] }, { retryIntervalScale: 0 });
  /**
   * Sets (or resets) the database's session_replication_role, as only a superuser may. It holds for new connections,
   * so the archiver's pooled ones are ended: they reconnect with it.
   */
  const replicaSessions = async (on: boolean) => {
    await bed.db.client.query(
      `ALTER DATABASE ${bed.db.name} ${on ? 'SET session_replication_role = replica' : 'RESET session_replication_role'}`,
    );
    await bed.db.client.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    );
  };
  const orphans = async () =>
    (
      await bed.db.client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM public.referrer r
          WHERE NOT EXISTS (SELECT FROM public.referenced e WHERE e.id = r.event_id)`,
      )
    ).rows[0]?.n;

  it('refuses a session whose role or database sets session_replication_role = replica, before any row moves', async () => {
    // Prepare
    const before = await tableLines(bed.db.client, table);
    await replicaSessions(true);

    // Act
    const run = await archive().finally(() => replicaSessions(false));

    // Assess
    const after = await tableLines(bed.db.client, table);
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'session_replication_role = replica on the archiver role (foreign-key checks skipped)',
      held: after.length === before.length && (await orphans()) === 0,
    });
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(
      /^TableNotUsableError: .*session_replication_role = replica .*skips foreign-key checks/,
    );
    expect(after).toEqual(before);
    expect(await listKeys(bed.local, 'archive/app/')).toEqual([]);
  });

  it('fails the batch loudly when archived rows are still referenced, deleting nothing and orphaning nothing', async () => {
    // Prepare
    const before = await tableLines(bed.db.client, table);

    // Act
    const run = await archive();

    // Assess
    const after = await tableLines(bed.db.client, table);
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'a plain foreign key (NO ACTION) keeps archived rows referenced',
      held: after.length === before.length && (await orphans()) === 0,
    });
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(
      /^TableNotUsableError: database error 23503: .* violates foreign key constraint "referrer_event_id_fkey" on table "referrer"; rows that stay \(in that table\) still reference rows of the batch/,
    );
    expect(run.outcomes[0]?.error).not.toMatch(/\(id\)=/);
    expect(after).toEqual(before);
    expect(await orphans()).toBe(0);

    // Once nothing references the rows, the next run finishes the batch in flight and archives the rest.
    await bed.db.client.query('DELETE FROM public.referrer');
    const next = await archive();
    expect(next.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, before);
  });

  it('refuses to restore in a replica session, writing nothing, and restores once it is reset', async () => {
    // Prepare: the rows are archived (the test before); the referrer points at a row the restore brings back.
    const archived = await tableLines(bed.db.client, table);
    await replicaSessions(true);
    const restore = () =>
      runLocalRestore(bed.local, { database: 'app', table: 'public.referenced' }, { retryIntervalScale: 0 });

    // Act
    const refused = await restore().finally(() => replicaSessions(false));
    const afterRefusal = await tableLines(bed.db.client, table);
    const restored = await restore();

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'session_replication_role = replica on a restore (foreign-key checks skipped)',
      held: refused.execution.status === 'FAILED' && afterRefusal.length === archived.length,
    });
    expect(refused.execution.status).toBe('FAILED');
    expect(refused.execution.error).toMatchObject({
      name: 'TableNotUsableError',
      message: expect.stringMatching(
        /^restore target "public"\."referenced": .*session_replication_role = replica/,
      ),
    });
    expect(afterRefusal).toEqual(archived);
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, table)).length).toBe(120);
  });
});

describe('rows referenced by a DEFERRABLE INITIALLY DEFERRED foreign key', () => {
  const spec = { schema: 'public', name: 'deferred_referenced', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'deferred_referenced', 120, 60);
      // Checked at COMMIT, not by the DELETE: the refusal comes after the delete recorded its transaction id.
      await db.client.query(`
        CREATE TABLE public.deferred_referrer (id int PRIMARY KEY,
          event_id bigint REFERENCES public.deferred_referenced (id) DEFERRABLE INITIALLY DEFERRED);
        INSERT INTO public.deferred_referrer SELECT g, g FROM generate_series(1, 3) AS g;`);
    },
    [spec],
  );
  const table = resolvedTable(spec);
  const archive = () =>
    runLocalArchive(bed.local, { tables: ['public.deferred_referenced'] }, { retryIntervalScale: 0 });

  it('fails the batch at COMMIT, and every later attempt settles it as aborted: nothing deleted, nothing orphaned', async () => {
    // Prepare
    const before = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);

    // Act: twice refused (the second settles the first's recorded transaction), then archived once unreferenced
    const first = await archive();
    const recorded = (await bed.local.deps().locks.get('app', 'public.deferred_referenced')).inFlight;
    const second = await archive();
    const afterRefusals = await tableLines(bed.db.client, table);
    await bed.db.client.query('DELETE FROM public.deferred_referrer');
    const next = await archive();

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack:
        'a DEFERRABLE INITIALLY DEFERRED foreign key keeps archived rows referenced (refused at COMMIT)',
      held: afterRefusals.length === before.length && next.execution.status === 'SUCCEEDED',
    });
    for (const run of [first, second]) {
      expect(run.execution.status).toBe('FAILED');
      expect(run.outcomes[0]?.error).toMatch(
        /^TableNotUsableError: database error 23503: .* violates foreign key constraint "deferred_referrer_event_id_fkey"/,
      );
    }
    expect(recorded?.stage).toBe('deleting');
    expect(afterRefusals).toEqual(before);
    expect(next.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, before);
    const left = await bed.db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.deferred_referenced WHERE created_at < ${cutoff}`,
    );
    expect(left.rows[0]?.n).toBe(0);
  });
});

describe('row-level security that applies to the archiver, and triggers on a restore target', () => {
  // The usual setup: the application's role owns the tables, the archiver's role is granted SELECT and DELETE.
  const role = `archiver_${randomUUID().replaceAll('-', '').slice(0, 8)}`;
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE ROLE ${role} LOGIN PASSWORD 'not-a-secret';
        GRANT CONNECT, TEMPORARY ON DATABASE ${db.name} TO ${role};
        GRANT USAGE ON SCHEMA public TO ${role};`);
      for (const name of [
        'guarded',
        'hidden',
        'stamped',
        'stamped_always',
        'no_backdating',
        'policed',
        'unseen',
      ]) {
        await db.client.query(`
          CREATE TABLE public.${name} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, kind text NOT NULL,
                                       received_by text NOT NULL DEFAULT 'app');
          INSERT INTO public.${name} (id, created_at, kind)
          SELECT g, ${OLD} + g * interval '1 hour', CASE WHEN g % 5 = 0 THEN 'legal' ELSE 'plain' END
            FROM generate_series(1, 30) AS g;
          GRANT SELECT, DELETE, INSERT, UPDATE ON public.${name} TO ${role};`);
      }
      // stamped_leaf: a partition restored on its own, whose partitioned table gets the trigger (cloned onto it).
      await db.client.query(`
        CREATE TABLE public.stamped_parent (id bigint NOT NULL, created_at timestamptz NOT NULL, kind text NOT NULL,
                                            received_by text NOT NULL DEFAULT 'app', PRIMARY KEY (id, created_at))
          PARTITION BY RANGE (created_at);
        CREATE TABLE public.stamped_leaf PARTITION OF public.stamped_parent DEFAULT;
        INSERT INTO public.stamped_leaf (id, created_at, kind)
        SELECT g, ${OLD} + g * interval '1 hour', 'plain' FROM generate_series(1, 30) AS g;
        GRANT SELECT, DELETE, INSERT, UPDATE ON public.stamped_parent, public.stamped_leaf TO ${role};`);
      // guarded: every row visible, but a DELETE policy keeps some; hidden: a SELECT policy hides some.
      await db.client.query(`
        ALTER TABLE public.guarded ENABLE ROW LEVEL SECURITY;
        CREATE POLICY sel ON public.guarded FOR SELECT USING (true);
        CREATE POLICY del ON public.guarded FOR DELETE USING (kind <> 'legal');
        ALTER TABLE public.hidden ENABLE ROW LEVEL SECURITY;
        CREATE POLICY sel ON public.hidden FOR SELECT USING (kind <> 'legal');
        CREATE POLICY del ON public.hidden FOR DELETE USING (true);`);
      // Triggers that fire on the rows a restore writes: one stamps them anew, one drops back-dated rows.
      await db.client.query(`
        CREATE FUNCTION public.stamp_row() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN NEW.received_by := 'trigger'; RETURN NEW; END $$;
        CREATE FUNCTION public.drop_backdated() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN IF NEW.created_at < pg_catalog.now() - interval '7 days' THEN RETURN NULL; END IF; RETURN NEW; END $$;`);
      const url = new URL(db.url);
      url.username = role;
      url.password = 'not-a-secret';
      Object.assign(db, { url: url.toString() });
    },
    [
      spec('guarded'),
      spec('hidden'),
      spec('stamped'),
      spec('stamped_always'),
      spec('no_backdating'),
      spec('stamped_leaf'),
      spec('policed'),
      spec('unseen'),
    ],
  );
  const archive = (table: string) =>
    runLocalArchive(bed.local, { tables: [`public.${table}`] }, { retryIntervalScale: 0 });

  it.each(['guarded', 'hidden'])(
    'refuses %s, whose policies the archiver is subject to, before any row moves',
    async (name) => {
      // Prepare
      const before = await rowsOf(bed.db, `public.${name}`);

      // Act
      const run = await archive(name);

      // Assess
      const after = await rowsOf(bed.db, `public.${name}`);
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `row-level security the archiver is subject to (${name})`,
        held: run.execution.status === 'FAILED' && after.length === before.length,
      });
      expect(run.execution.status).toBe('FAILED');
      expect(run.outcomes[0]?.error).toMatch(
        /^TableNotUsableError: .* has row-level security that applies to the archiver's role/,
      );
      expect(after).toEqual(before);
      expect(await listKeys(bed.local, `archive/app/public.${name}/`)).toEqual([]);
    },
  );

  /** Table `name` archived, then its owner enables row-level security with `policy`; its lines before the archive. */
  const archivedUnderRowSecurity = async (name: string, policy: string) => {
    const table = resolvedTable(spec(name));
    const original = await tableLines(bed.db.client, table);
    expect((await archive(name)).execution.status).toBe('SUCCEEDED');
    await bed.db.client.query(`ALTER TABLE public.${name} ENABLE ROW LEVEL SECURITY; ${policy}`);
    return { table, original };
  };

  it('refuses to restore into a target whose row-level security keeps the role from writing the rows, naming the table and the remedies', async () => {
    // Prepare: archived, then the owner enables row-level security with a policy that lets the role read rows only.
    const { table, original } = await archivedUnderRowSecurity(
      'policed',
      'CREATE POLICY sel ON public.policed FOR SELECT USING (true)',
    );
    const restore = (strategy: string) =>
      runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.policed', strategy },
        { retryIntervalScale: 0 },
      );

    // Act: every strategy refused; then a policy that lets the role insert, as the message suggests.
    const refused: Awaited<ReturnType<typeof restore>>[] = [];
    for (const strategy of ['skip', 'overwrite', 'fail']) refused.push(await restore(strategy));
    const afterRefusal = await rowsOf(bed.db, 'public.policed');
    await bed.db.client.query(`CREATE POLICY ins ON public.policed FOR INSERT WITH CHECK (true)`);
    const restored = await restore('skip');

    // Assess
    for (const run of refused) {
      expect(run.execution.status).toBe('FAILED');
      expect(run.results.length).toBeGreaterThan(0);
      for (const result of run.results) {
        expect(result.status).toBe('failed');
        expect(result.error).toMatch(
          /^DatabaseAccessError: restore target "public"\."policed": its row-level security refused the archived rows .*BYPASSRLS.*policies for it .*ALTER TABLE "public"\."policed" DISABLE ROW LEVEL SECURITY/,
        );
      }
    }
    expect(afterRefusal).toEqual([]);
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());
  });

  it('names SELECT among what a policy must admit: the INSERT returns the rows it wrote, which an INSERT policy alone refuses', async () => {
    // Prepare: archived, then row-level security with a policy that lets the role insert rows, but none to read them.
    const { table, original } = await archivedUnderRowSecurity(
      'unseen',
      'CREATE POLICY ins ON public.unseen FOR INSERT WITH CHECK (true)',
    );
    const restore = () =>
      runLocalRestore(bed.local, { database: 'app', table: 'public.unseen' }, { retryIntervalScale: 0 });

    // Act: refused; then the SELECT policy the message names.
    const refused = await restore();
    const afterRefusal = await rowsOf(bed.db, 'public.unseen');
    await bed.db.client.query(`CREATE POLICY sel ON public.unseen FOR SELECT USING (true)`);
    const restored = await restore();

    // Assess
    expect(refused.execution.status).toBe('FAILED');
    expect(refused.results.length).toBeGreaterThan(0);
    for (const result of refused.results)
      expect(result.error).toMatch(
        /^DatabaseAccessError: .*policies for it that admit the rows on INSERT and on SELECT/,
      );
    expect(afterRefusal).toEqual([]);
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());
  });

  it.each([
    ['stamped', 'BEFORE INSERT', 'public.stamp_row', '', 'stamped'],
    // Enabled ALWAYS: it fires in replica sessions too (which restore refuses anyway), and in this one.
    ['stamped_always', 'BEFORE INSERT', 'public.stamp_row', 'ENABLE ALWAYS', 'stamped_always'],
    ['no_backdating', 'BEFORE INSERT', 'public.drop_backdated', '', 'no_backdating'],
    // Made on its partitioned table: the clone fires on the partition as its own (PostgreSQL 14 marks it internal).
    ['stamped_leaf', 'BEFORE INSERT', 'public.stamp_row', '', 'stamped_parent'],
  ])(
    'refuses to restore into %s, whose trigger would change or drop the restored rows, writing nothing',
    async (name, timing, fn, enable, on) => {
      // Prepare: archived, then the owner adds the trigger.
      const table = resolvedTable(spec(name));
      const original = await tableLines(bed.db.client, table);
      expect((await archive(name)).execution.status).toBe('SUCCEEDED');
      await bed.db.client.query(
        `CREATE TRIGGER on_insert ${timing} ON public.${on} FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
      );
      if (enable) await bed.db.client.query(`ALTER TABLE public.${on} ${enable} TRIGGER on_insert`);
      const restore = () =>
        runLocalRestore(bed.local, { database: 'app', table: `public.${name}` }, { retryIntervalScale: 0 });

      // Act
      const refused = await restore();
      const afterRefusal = await rowsOf(bed.db, `public.${name}`);
      await bed.db.client.query(`ALTER TABLE public.${on} DISABLE TRIGGER on_insert`);
      const restored = await restore();

      // Assess
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `an INSERT trigger on a restore target (${name})`,
        held: refused.execution.status === 'FAILED' && afterRefusal.length === 0,
      });
      expect(refused.execution.status).toBe('FAILED');
      expect(refused.execution.error).toMatchObject({
        name: 'TableNotUsableError',
        // Named where the owner can disable it: on the partitioned table for its clone (see the second restore).
        message: expect.stringContaining(`trigger "on_insert" on public.${on} fires on INSERT`),
      });
      expect(afterRefusal).toEqual([]);
      expect(restored.execution.status).toBe('SUCCEEDED');
      expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());
    },
  );
});

describe('a restore target whose expressions call a function of another role', () => {
  // Each table is archived first; then the role (not a superuser) gives it an expression that calls its function on
  // every row written, as a trigger would: the function writes a table of the role's (it could as well delete from any
  // archived table, with the archiver's privileges). kept's own expressions call only PostgreSQL's functions, and its
  // column default that calls the role's function fills a column the archive has, so it never runs.
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const names = [
    'checked',
    'defaulted',
    'indexed',
    'domained',
    'membered',
    'domain_defaulted',
    'viewed',
    'cast_checked',
    'kept',
  ];
  const shaper = `shaper_${randomUUID().replaceAll('-', '').slice(0, 8)}`;
  const bed = archiverTestbed(async (db) => {
    await db.client.query(`
        CREATE ROLE ${shaper} NOLOGIN;
        GRANT CREATE ON SCHEMA public TO ${shaper};
        CREATE TABLE public.side_log (n bigserial PRIMARY KEY, note text);
        SET ROLE ${shaper};
        CREATE FUNCTION public.log_side() RETURNS int LANGUAGE plpgsql VOLATILE AS
          $$ BEGIN INSERT INTO public.side_log (note) VALUES ('written by a restore'); RETURN 0; END $$;
        CREATE FUNCTION public.passes(bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE AS
          $$ BEGIN PERFORM public.log_side(); RETURN true; END $$;
        -- Declared IMMUTABLE, as an index expression must be; PostgreSQL takes the word for it.
        CREATE FUNCTION public.same(bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS
          $$ BEGIN PERFORM public.log_side(); RETURN $1; END $$;
        CREATE DOMAIN public.watched_text AS text CONSTRAINT watched CHECK (public.passes(length(VALUE)));
        CREATE DOMAIN public.stamped_int AS int DEFAULT public.log_side();
        CREATE DOMAIN public.vetted_bigint AS bigint CONSTRAINT vetted CHECK (public.passes(VALUE));
        CREATE VIEW public.trap AS SELECT public.log_side() AS n;
        RESET ROLE;
        -- A trusted extension the role creates is the role's: it may add its own function to it.
        DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO ${shaper}', current_database()); END $$;
        SET ROLE ${shaper};
        CREATE EXTENSION pgcrypto;
        CREATE FUNCTION public.member_passes(bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE AS
          $$ BEGIN PERFORM public.log_side(); RETURN true; END $$;
        ALTER EXTENSION pgcrypto ADD FUNCTION public.member_passes(bigint);
        RESET ROLE;`);
    for (const name of names) await seedEvents(db.client, name, 40, 40);
  }, names.map(spec));
  const sideRows = async () =>
    (await bed.db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM public.side_log')).rows[0]?.n;
  const restore = (name: string) =>
    runLocalRestore(bed.local, { database: 'app', table: `public.${name}` }, { retryIntervalScale: 0 });
  /** The table holds its original rows again, read without the column added since. */
  const expectRestored = async (
    table: ReturnType<typeof resolvedTable>,
    original: string[],
    added: string,
  ) => {
    const without = (line: string) => {
      const { [added]: _added, ...rest } = JSON.parse(line) as Record<string, unknown>;
      return JSON.stringify(rest);
    };
    expect((await tableLines(bed.db.client, table)).map(without).sort()).toEqual(
      original.map(without).sort(),
    );
  };
  const originals = new Map<string, string[]>();
  beforeAll(async () => {
    for (const name of names) originals.set(name, await tableLines(bed.db.client, resolvedTable(spec(name))));
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    if (run.execution.status !== 'SUCCEEDED') throw new Error('setup: the archive run failed');
  });

  it.each([
    [
      'checked',
      'ALTER TABLE public.checked ADD CONSTRAINT sane CHECK (public.passes(id)) NOT VALID',
      'constraint sane on table public.checked calls public.passes(bigint)',
      'ALTER TABLE public.checked DROP CONSTRAINT sane',
    ],
    [
      'defaulted',
      'ALTER TABLE public.defaulted ADD COLUMN extra int DEFAULT public.log_side()',
      'default value for column extra of table public.defaulted calls public.log_side()',
      'ALTER TABLE public.defaulted ALTER COLUMN extra DROP DEFAULT',
    ],
    [
      'indexed',
      'CREATE INDEX same_id ON public.indexed (public.same(id))',
      'index public.same_id calls public.same(bigint)',
      'DROP INDEX public.same_id',
    ],
    [
      'domained',
      'ALTER TABLE public.domained ALTER COLUMN actor TYPE public.watched_text',
      'constraint watched calls public.passes(bigint)',
      'ALTER DOMAIN public.watched_text DROP CONSTRAINT watched',
    ],
    [
      'membered',
      'ALTER TABLE public.membered ADD CONSTRAINT sane CHECK (public.member_passes(id)) NOT VALID',
      'constraint sane on table public.membered calls public.member_passes(bigint)',
      'ALTER TABLE public.membered DROP CONSTRAINT sane',
    ],
    [
      'domain_defaulted',
      'ALTER TABLE public.domain_defaulted ADD COLUMN extra public.stamped_int',
      'default value of domain public.stamped_int for column extra calls public.log_side()',
      'ALTER DOMAIN public.stamped_int DROP DEFAULT',
    ],
    [
      'viewed',
      `ALTER TABLE public.viewed ADD CONSTRAINT sane
         CHECK (length(pg_catalog.table_to_xml('public.trap'::regclass, true, false, '')::text) > 0) NOT VALID`,
      'constraint sane on table public.viewed calls table_to_xml(regclass,boolean,boolean,text)',
      'ALTER TABLE public.viewed DROP CONSTRAINT sane',
    ],
    [
      'cast_checked',
      'ALTER TABLE public.cast_checked ADD CONSTRAINT sane CHECK ((id::public.vetted_bigint) IS NOT NULL) NOT VALID',
      'constraint vetted calls public.passes(bigint)',
      'ALTER TABLE public.cast_checked DROP CONSTRAINT sane',
    ],
  ])(
    'refuses to restore into %s, writing nothing, and restores once the call is gone',
    async (name, add, named, drop) => {
      // Prepare
      const table = resolvedTable(spec(name));
      const original = originals.get(name) ?? [];
      await bed.db.client.query(add);
      const archived = await rowsOf(bed.db, `public.${name}`);
      const before = await sideRows();

      // Act
      const refused = await restore(name);
      const afterRefusal = { rows: await rowsOf(bed.db, `public.${name}`), side: await sideRows() };
      await bed.db.client.query(drop);
      const restored = await restore(name);

      // Assess
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `an expression of a restore target that calls the role's function (${name})`,
        held: refused.execution.status === 'FAILED' && afterRefusal.side === before,
      });
      expect(refused.execution.status).toBe('FAILED');
      const errors = [refused.execution.error?.message, ...refused.results.map((r) => r.error)];
      expect(errors).toContainEqual(
        expect.stringContaining(
          `restore target "public"."${name}": ${named}, which may run code no superuser vouches for`,
        ),
      );
      expect(afterRefusal).toEqual({ rows: archived, side: before });
      expect(restored.execution.status).toBe('SUCCEEDED');
      expect(await sideRows()).toBe(before);
      await expectRestored(table, original, 'extra');
    },
  );

  it("restores into a table whose expressions call PostgreSQL's functions, and whose default calling the role's fills an archived column", async () => {
    // Prepare
    const table = resolvedTable(spec('kept'));
    const original = originals.get('kept') ?? [];
    await bed.db.client.query(`
      ALTER TABLE public.kept ADD COLUMN tag uuid DEFAULT pg_catalog.gen_random_uuid(),
        ADD CONSTRAINT short CHECK (length(actor) < 1000) NOT VALID,
        ADD CONSTRAINT read_only CHECK (length(current_query()) >= 0
          AND ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery) IS NOT NULL) NOT VALID,
        ALTER COLUMN id SET DEFAULT public.log_side();
      CREATE INDEX kept_actor ON public.kept (lower(actor));`);
    const before = await sideRows();

    // Act
    const restored = await restore('kept');

    // Assess
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(await sideRows()).toBe(before);
    await expectRestored(table, original, 'tag');
  });
});

describe('a publication that publishes deletes from a table without a replica identity', () => {
  // keyed: its key is a unique index, not a primary key, so REPLICA IDENTITY DEFAULT finds none; parted: one partition
  // of a partitioned table published through its root; deferred: its primary key is DEFERRABLE, which PostgreSQL never
  // takes as a replica identity (its key is a unique index beside it).
  const spec = (name: string) => ({
    schema: 'public',
    name,
    timestampColumn: 'created_at',
    keyColumns: ['id'],
  });
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.keyed (id bigint NOT NULL, created_at timestamptz NOT NULL, v text);
        CREATE UNIQUE INDEX keyed_id ON public.keyed (id);
        INSERT INTO public.keyed SELECT g, ${OLD} + g * interval '1 hour', 'v' || g FROM generate_series(1, 30) g;
        CREATE TABLE public.parted (id bigint NOT NULL, created_at timestamptz NOT NULL, v text) PARTITION BY RANGE (id);
        CREATE UNIQUE INDEX parted_id ON public.parted (id);
        CREATE TABLE public.parted_low PARTITION OF public.parted FOR VALUES FROM (0) TO (100);
        INSERT INTO public.parted SELECT g, ${OLD} + g * interval '1 hour', 'v' || g FROM generate_series(1, 30) g;
        CREATE TABLE public.deferred (id bigint PRIMARY KEY DEFERRABLE, created_at timestamptz NOT NULL, v text);
        CREATE UNIQUE INDEX deferred_id ON public.deferred (id);
        INSERT INTO public.deferred SELECT g, ${OLD} + g * interval '1 hour', 'v' || g FROM generate_series(1, 30) g;`);
    },
    [
      spec('keyed'),
      spec('parted'),
      spec('deferred'),
      { schema: 'public', name: 'filtered', timestampColumn: 'created_at' },
    ],
  );

  it.each([
    ['keyed', 'keyed_pub', 'public.keyed', 'keyed_id', ''],
    [
      'parted',
      'parted_pub',
      'public.parted_low',
      'parted_low_id_idx',
      ' WITH (publish_via_partition_root = true)',
    ],
    ['deferred', 'deferred_pub', 'public.deferred', 'deferred_id', ''],
  ])(
    'refuses %s before any row moves, naming the publication and the remedy, and archives it once it has one',
    async (name, publication, relation, index, options) => {
      // Prepare: the rows as they were, then the table's owner publishes it.
      const table = resolvedTable(spec(name));
      const original = await tableLines(bed.db.client, table);
      const before = await rowsOf(bed.db, `public.${name}`);
      await bed.db.client.query(`CREATE PUBLICATION ${publication} FOR TABLE public.${name}${options}`);

      // Act
      const refused = await runLocalArchive(
        bed.local,
        { tables: [`public.${name}`] },
        { retryIntervalScale: 0 },
      );
      const keys = await listKeys(bed.local, `archive/app/public.${name}/`);
      const after = await rowsOf(bed.db, `public.${name}`);
      await bed.db.client.query(`ALTER TABLE ${relation} REPLICA IDENTITY USING INDEX ${index}`);
      const archived = await runLocalArchive(
        bed.local,
        { tables: [`public.${name}`] },
        { retryIntervalScale: 0 },
      );

      // Assess: PostgreSQL's own refusal came at the delete, after the batch's archives were written and verified.
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `publishes the deletes of ${name}, which has no replica identity`,
        held: refused.execution.status === 'FAILED' && keys.length === 0 && after.length === before.length,
      });
      expect(refused.execution.status).toBe('FAILED');
      expect(refused.outcomes[0]?.error).toBe(
        `TableNotUsableError: table "public"."${name}" in database app: publication "${publication}" publishes deletes from ${relation}, which has no replica identity, so PostgreSQL refuses to delete its rows; give it one (ALTER TABLE ${relation} REPLICA IDENTITY USING INDEX on the key's unique index, or REPLICA IDENTITY FULL), or leave it out of the publication`,
      );
      expect(keys).toEqual([]);
      expect(after).toEqual(before);
      expect(archived.execution.status).toBe('SUCCEEDED');
      const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      expect(counts.inArchives).toBe(original.length);
    },
  );

  // A row filter (PostgreSQL 15+) on a column outside the replica identity: PostgreSQL's own refusal, at the delete.
  it.skipIf(inject('postgresVersion') < 15)(
    'fails a table whose publication filters rows by a column outside its replica identity with an error naming the remedy, deleting nothing',
    async () => {
      // Prepare
      await bed.db.client.query(`
        CREATE TABLE public.filtered (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, v text);
        INSERT INTO public.filtered SELECT g, ${OLD} + g * interval '1 hour', 'v' || g FROM generate_series(1, 30) g;
        CREATE PUBLICATION filtered_pub FOR TABLE public.filtered WHERE (v <> 'draft');`);
      const before = await rowsOf(bed.db, 'public.filtered');

      // Act
      const run = await runLocalArchive(
        bed.local,
        { tables: ['public.filtered'] },
        { retryIntervalScale: 0 },
      );

      // Assess
      expect(run.execution.status).toBe('FAILED');
      expect(run.outcomes[0]?.error).toMatch(
        /^TableNotUsableError: database error 42P10: cannot delete from table "filtered" \(Column used in the publication WHERE expression is not part of the replica identity\.\): .*REPLICA IDENTITY FULL/,
      );
      expect(await rowsOf(bed.db, 'public.filtered')).toEqual(before);
    },
  );

  it.skipIf(inject('postgresVersion') < 15)(
    'fails an overwrite whose UPDATE a publication refuses, naming the publication as the cause, not the key',
    async () => {
      // Prepare: keyed was archived whole above; one of its keys is back, and a publication of its updates filters
      // rows by a column outside its replica identity (the key's unique index).
      await bed.db.client.query(`
        INSERT INTO public.keyed VALUES (1, ${OLD}, 'back');
        CREATE PUBLICATION keyed_updates FOR TABLE public.keyed WHERE (v <> 'draft') WITH (publish = 'update');`);

      // Act
      const restore = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.keyed', strategy: 'overwrite' },
        { retryIntervalScale: 0 },
      );

      // Assess
      expect(restore.execution.status).toBe('FAILED');
      expect(restore.results.map((r) => r.error)).toContainEqual(
        expect.stringMatching(
          /^TableNotUsableError: database error 42P10: cannot update table "keyed" \(Column used in the publication WHERE expression is not part of the replica identity\.\)/,
        ),
      );
      // The archive holding key 1 wrote nothing; the others, which update no row, were restored.
      const kept = await bed.db.client.query<{ v: string }>('SELECT v FROM public.keyed WHERE id = 1');
      expect(kept.rows).toEqual([{ v: 'back' }]);
    },
  );
});

describe('a publication FOR ALL TABLES, and an unlogged table it does not publish', () => {
  // PostgreSQL publishes no unlogged (or temporary) table, whatever the publication says, so it deletes the rows of
  // one without a replica identity: the archiver must not refuse it.
  const spec = { schema: 'public', name: 'scratch', timestampColumn: 'created_at', keyColumns: ['id'] };
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE UNLOGGED TABLE public.scratch (id bigint NOT NULL, created_at timestamptz NOT NULL, v text);
        CREATE UNIQUE INDEX scratch_id ON public.scratch (id);
        INSERT INTO public.scratch SELECT g, ${OLD} + g * interval '1 hour', 'v' || g FROM generate_series(1, 30) g;
        CREATE PUBLICATION everything FOR ALL TABLES;`);
    },
    [spec],
  );

  it('archives the unlogged table, whose deletes PostgreSQL allows', async () => {
    // Prepare: PostgreSQL itself deletes its rows (rolled back).
    await bed.db.client.query('BEGIN');
    const deleted = await bed.db.client.query('DELETE FROM public.scratch WHERE id = 1');
    await bed.db.client.query('ROLLBACK');
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.scratch'] }, { retryIntervalScale: 0 });

    // Assess
    expect(deleted.rowCount).toBe(1);
    expect(run.outcomes[0]?.error).toBeUndefined();
    expect(run.execution.status).toBe('SUCCEEDED');
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(counts.inArchives).toBe(original.length);
  });
});
