import { describe, expect, inject, it } from 'vitest';
import { listAuditEvents } from '../../lambdas/shared/telemetry/audit-trail.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, readLiveArchives, seedEvents, TODAY_UTC_SQL } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * Restore into a target the plan creates like a source that changed since archiving (a NOT NULL column with a default
 * added; the table renamed and a view put in its place), into a target whose identity sequence cannot reach the
 * restored keys, and over days the calendar does not have.
 */
describe('restore targets: created like a source that changed since, or with a sequence that cannot follow', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'grown', 60, 60);
      await seedEvents(db.client, 'viewed', 60, 60);
    },
    [
      { schema: 'public', name: 'grown', timestampColumn: 'created_at' },
      { schema: 'public', name: 'viewed', timestampColumn: 'created_at' },
    ],
  );
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(bed.local, { database: 'app', ...request }, { retryIntervalScale: 0 });
  const count = async (table: string) =>
    (await bed.db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n;
  const archivedIds = async (table: string) =>
    (await readLiveArchives(bed.local, 'public', table)).flatMap((a) =>
      a.lines.map((line) => Number((JSON.parse(line) as { id: string }).id)),
    );

  it('archives the old rows of both tables first', async () => {
    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect((await archivedIds('grown')).length).toBeGreaterThan(0);
    expect((await archivedIds('viewed')).length).toBeGreaterThan(0);
  });

  it('a column added to the source since with NOT NULL DEFAULT: the new target keeps that default, and every archive restores into it', async () => {
    // Prepare
    await bed.db.client.query(
      `ALTER TABLE public.grown ADD COLUMN tenant_id integer NOT NULL DEFAULT 7,
                                ADD COLUMN noted_at timestamptz NOT NULL DEFAULT '2020-01-01T00:00:00Z'`,
    );
    const archived = await archivedIds('grown');
    const sourceNext = await bed.db.client.query<{ value: string }>(
      `SELECT last_value::text AS value FROM public.grown_id_seq`,
    );

    // Act
    const result = await restore({ table: 'public.grown', targetTable: 'public.grown_copy' });
    const rows = await bed.db.client.query<{ n: number; tenants: number[]; noted: number }>(
      `SELECT count(*)::int AS n, array_agg(DISTINCT tenant_id) AS tenants,
              count(*) FILTER (WHERE noted_at = '2020-01-01T00:00:00Z')::int AS noted FROM public.grown_copy`,
    );
    const defaults = await bed.db.client.query<{ column: string; value: string | null }>(
      `SELECT column_name AS column, column_default AS value FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = 'grown_copy' ORDER BY ordinal_position`,
    );
    const sourceAfter = await bed.db.client.query<{ value: string }>(
      `SELECT last_value::text AS value FROM public.grown_id_seq`,
    );

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.results.every((r) => r.status === 'restored')).toBe(true);
    expect(rows.rows[0]).toEqual({ n: archived.length, tenants: [7], noted: archived.length });
    // The defaults that take no sequence's value are kept; the serial key's nextval of the source's sequence is not.
    expect(Object.fromEntries(defaults.rows.map((d) => [d.column, d.value]))).toEqual({
      id: null,
      created_at: null,
      actor: null,
      payload: null,
      tenant_id: '7',
      noted_at: "'2020-01-01 00:00:00+00'::timestamp with time zone",
    });
    expect(sourceAfter.rows[0]?.value).toBe(sourceNext.rows[0]?.value);
  });

  it('a target with a NOT NULL column the archive has no value for: each archive fails naming the column, nothing written', async () => {
    // Prepare: the operator's target has a column the archived table never had, NOT NULL without a default.
    await bed.db.client.query(
      `CREATE TABLE public.grown_strict (LIKE public.grown INCLUDING ALL, "Tenant ID" integer NOT NULL)`,
    );

    // Act
    const result = await restore({ table: 'public.grown', targetTable: 'public.grown_strict' });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results.length).toBeGreaterThan(0);
    for (const r of result.results)
      expect(r.error).toMatch(
        /^SchemaDriftError: .*its column "Tenant ID" is NOT NULL and the archive holds no value for it/,
      );
    expect(await count('public.grown_strict')).toBe(0);
  });

  it('the source renamed and a view put in its place: the error names the source as what is wrong and says to create the target first, and leaves no table', async () => {
    // Prepare
    await bed.db.client.query('ALTER TABLE public.viewed RENAME TO viewed_v2');
    await bed.db.client.query('CREATE VIEW public.viewed AS SELECT * FROM public.viewed_v2');

    // Act
    const result = await restore({ table: 'public.viewed', targetTable: 'public.viewed_copy' });
    const left = await bed.db.client.query(`SELECT to_regclass('public.viewed_copy') AS t`);

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.execution.error?.name).toBe('TableNotUsableError');
    expect(result.execution.error?.message).toMatch(
      /cannot create "public"\."viewed_copy" like the archived table: the source "public"\."viewed" is a view now, not a table .*create the target first/,
    );
    expect(result.execution.error?.message).not.toMatch(/restore target "public"\."viewed" is not a table/);
    expect(left.rows[0].t).toBeNull();
  });

  it('a target whose identity sequence cannot reach the restored keys: every row is restored, the execution succeeds, and the summary and audit trail say which sequence was left behind and why', async () => {
    // Prepare: an operator-made target whose identity stops at 10 (the archived keys go higher).
    await bed.db.client.query(
      `CREATE TABLE public.capped (id bigint GENERATED BY DEFAULT AS IDENTITY (MAXVALUE 10) PRIMARY KEY,
                                   created_at timestamptz, actor text NOT NULL, payload jsonb, tenant_id integer)`,
    );
    const archived = await archivedIds('grown');
    expect(Math.max(...archived)).toBeGreaterThan(10);

    // Act
    const result = await restore({ table: 'public.grown', targetTable: 'public.capped' });
    const events = await listAuditEvents(bed.local.deps().store, bed.local.config.s3.prefix, {
      kinds: ['restore-finished'],
    });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(await count('public.capped')).toBe(archived.length);
    expect(result.execution.output).toMatchObject({
      status: 'succeeded',
      totals: { inserted: archived.length, failedFiles: 0 },
      sequences: [],
      warnings: [
        expect.stringMatching(
          /^sequence public\.capped_id_seq of column "id" was not advanced past the restored values: the restored values lie beyond its MINVALUE\.\.MAXVALUE \(SQLSTATE 22003\)/,
        ),
      ],
    });
    // The reason is told by SQLSTATE, never by a value of the rows.
    const warning = (result.execution.output as { warnings: string[] }).warnings[0] ?? '';
    expect(warning.replace('22003', '')).not.toMatch(/\d{2}/);
    const finished = events.find((e) => e.table === 'public.capped');
    expect(finished?.details).toMatchObject({
      status: 'succeeded',
      inserted: archived.length,
      sequencesNotAdvanced: 1,
    });
  });

  it('a day the calendar does not have is refused, naming the field, before anything is read or created', async () => {
    // Act
    const result = await restore({
      table: 'public.grown',
      targetTable: 'public.days',
      mode: 'range',
      fromDay: '2020-02-30',
    });
    const left = await bed.db.client.query(`SELECT to_regclass('public.days') AS t`);

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.execution.error?.message).toMatch(/fromDay: must be a day of the calendar, YYYY-MM-DD/);
    expect(left.rows[0].t).toBeNull();
  });
});

/**
 * A constraint added to the archived table since (NOT VALID, so the rows already there were never checked) that the
 * archived rows break: restoring them into it is refused, naming the constraint or column, the table and what to do,
 * and never a value of the rows (audit rows hold personal data).
 */
describe('restore into a table given a NOT VALID constraint since that the archived rows break', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.payments (id int PRIMARY KEY, created_at timestamptz NOT NULL, amount numeric, payer text);
        INSERT INTO public.payments
        SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 hour', g * 1000 - 4242, 'Jane Roe'
          FROM generate_series(1, 6) AS g;
        CREATE TABLE public.booked (id int PRIMARY KEY, created_at timestamptz NOT NULL, during tstzrange NOT NULL, guest text);
        INSERT INTO public.booked
        SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 hour',
               tstzrange(${TODAY_UTC_SQL} - interval '40 days', ${TODAY_UTC_SQL} - interval '39 days'), 'Jane Roe'
          FROM generate_series(1, 6) AS g;
        CREATE TABLE public.signed (id int PRIMARY KEY, created_at timestamptz NOT NULL, signer text);
        INSERT INTO public.signed
        SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 hour', CASE WHEN g % 2 = 0 THEN 'Jane Roe' END
          FROM generate_series(1, 6) AS g;`);
    },
    [spec('payments'), spec('signed'), spec('booked')],
  );
  const count = async (table: string) =>
    (await bed.db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n;

  /** Archives the table's rows, then migrates it with `ddl`, then restores the rows into it. */
  async function restoreAfter(table: string, ddl: string) {
    const run = await runLocalArchive(bed.local, { tables: [table] }, { retryIntervalScale: 0 });
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(await count(table)).toBe(0);
    await bed.db.client.query(`ALTER TABLE ${table} ${ddl}`);
    return runLocalRestore(bed.local, { database: 'app', table }, { retryIntervalScale: 0 });
  }

  it('a CHECK constraint: each archive fails naming the constraint and the table, and nothing is written', async () => {
    // Act: a migration adds a CHECK the archived amounts break.
    const result = await restoreAfter(
      'public.payments',
      'ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID',
    );

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results.length).toBeGreaterThan(0);
    for (const r of result.results) {
      expect(r.error).toMatch(
        /^SchemaDriftError: the target table "public"\."payments" refused the archived rows: its CHECK constraint "amount_positive" does not hold for at least one of them \(SQLSTATE 23514/,
      );
      expect(r.error).toMatch(
        /restore into a target without that constraint, or change the constraint so the archived rows satisfy it$/,
      );
      expect(r.error).not.toMatch(/4242|3242|Jane|Roe/);
    }
    expect(await count('public.payments')).toBe(0);
  });

  it('an exclusion constraint: each archive fails naming the constraint and the table, and nothing is written', async () => {
    // Act: a migration forbids overlapping bookings, which the archived rows are (the constraint cannot be NOT VALID:
    // the table is empty once archived).
    const result = await restoreAfter(
      'public.booked',
      'ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&)',
    );

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results.length).toBeGreaterThan(0);
    for (const r of result.results) {
      expect(r.error).toMatch(
        /^SchemaDriftError: the target table "public"\."booked" refused the archived rows: its exclusion constraint "no_overlap" does not hold for at least one of them, .*\(SQLSTATE 23P01\); restore into a target without that constraint, or drop it for the restore$/,
      );
      expect(r.error).not.toMatch(/Jane|Roe|\[/);
    }
    expect(await count('public.booked')).toBe(0);
  });

  it.skipIf(inject('postgresVersion') < 18)(
    'a NOT NULL constraint (PostgreSQL 18): the error says the archive holds a null in the column, not that it lacks the column',
    async () => {
      // Act: a migration makes the column NOT NULL for the rows to come.
      const result = await restoreAfter(
        'public.signed',
        'ADD CONSTRAINT signer_nn NOT NULL signer NOT VALID',
      );

      // Assess
      expect(result.execution.status).toBe('FAILED');
      expect(result.results.length).toBeGreaterThan(0);
      for (const r of result.results) {
        expect(r.error).toMatch(
          /^SchemaDriftError: the target table "public"\."signed" refused the archived rows: its column "signer" is NOT NULL and the archive holds a null in it for at least one row \(SQLSTATE 23502/,
        );
        expect(r.error).toMatch(/restore into a target whose column "signer" allows nulls/);
        expect(r.error).not.toMatch(/holds no value|give the column a default|Jane|Roe/);
      }
      expect(await count('public.signed')).toBe(0);
    },
  );
});

describe('restore into a partitioned table whose partition of the archived days was dropped since', () => {
  const spec = { schema: 'public', name: 'by_month', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
      CREATE TABLE public.by_month (id int, created_at timestamptz NOT NULL, actor text,
                                    PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
      CREATE TABLE public.by_month_old PARTITION OF public.by_month
        FOR VALUES FROM (MINVALUE) TO (${TODAY_UTC_SQL} - interval '35 days');
      CREATE TABLE public.by_month_new PARTITION OF public.by_month
        FOR VALUES FROM (${TODAY_UTC_SQL} - interval '35 days') TO (MAXVALUE);
      INSERT INTO public.by_month
      SELECT g, ${TODAY_UTC_SQL} - g * interval '1 day', 'Jane Roe' FROM generate_series(1, 50) AS g;`);
    },
    [spec],
  );

  it('fails each archive saying no partition takes its rows, not that a CHECK constraint broke', async () => {
    // Prepare: the old rows are archived, then their partition is dropped (the usual end of an audit partition).
    const run = await runLocalArchive(bed.local, { tables: ['public.by_month'] }, { retryIntervalScale: 0 });
    expect(run.execution.status).toBe('SUCCEEDED');
    await bed.db.client.query('DROP TABLE public.by_month_old');

    // Act
    const result = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.by_month' },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(result.execution.status).toBe('FAILED');
    const failed = result.results.filter((r) => r.error);
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) {
      expect(r.error).toMatch(
        /refused the archived rows: no partition of it takes some of them \(SQLSTATE 23514/,
      );
      expect(r.error).toMatch(/create or attach a partition for those days/);
      expect(r.error).not.toMatch(/CHECK constraint|Jane|Roe/);
    }
  });
});

/**
 * A target whose constraints are DEFERRABLE INITIALLY DEFERRED (a foreign key, a unique constraint outside the key):
 * PostgreSQL checks them at COMMIT, where a violation fails the whole group with no archive to blame, and a dry run
 * (which never commits) does not meet them. Each archive is checked as it is written instead.
 */
describe('restore into a target whose deferred constraints some archived rows break', () => {
  const bed = archiverTestbed(
    async (db) => {
      // Three UTC days of rows, so three archives: ids 1–2, 3–5 and 6.
      await db.client.query(`
        CREATE TABLE public.deferred (id int PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL);
        INSERT INTO public.deferred
        SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '8 hours', 'p' || g
          FROM generate_series(1, 6) AS g;
        CREATE TABLE public.people (actor text PRIMARY KEY);
        INSERT INTO public.people SELECT 'p' || g FROM generate_series(1, 6) AS g WHERE g <> 4;`);
    },
    [{ schema: 'public', name: 'deferred', timestampColumn: 'created_at' }],
  );
  const restoreInto = (targetTable: string, dryRun = false) =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.deferred', targetTable, dryRun },
      { retryIntervalScale: 0 },
    );
  /** The archive holding the row of `id`. */
  const archiveOf = async (id: number) =>
    (await readLiveArchives(bed.local, 'public', 'deferred')).find((a) =>
      a.lines.some((line) => (JSON.parse(line) as { id: string }).id === String(id)),
    )?.key;
  const ids = async (table: string) =>
    (await bed.db.client.query<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`)).rows.map((r) => r.id);

  it('archives the table first', async () => {
    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(await readLiveArchives(bed.local, 'public', 'deferred')).toHaveLength(3);
  });

  it('a deferred foreign key: the archive referencing a missing row fails as a conflict, in the dry run too; the others restore', async () => {
    // Prepare
    await bed.db.client.query(`
      CREATE TABLE public.deferred_fk (id int PRIMARY KEY, created_at timestamptz NOT NULL,
        actor text NOT NULL REFERENCES public.people DEFERRABLE INITIALLY DEFERRED)`);
    const orphan = await archiveOf(4);

    // Act
    const dry = await restoreInto('public.deferred_fk', true);
    const real = await restoreInto('public.deferred_fk');

    // Assess
    for (const result of [dry, real]) {
      expect(result.execution.status).toBe('FAILED');
      expect(result.results.filter((r) => r.error).map((r) => r.key)).toEqual([orphan]);
      expect(result.results.find((r) => r.key === orphan)?.error).toMatch(
        /^RestoreConflictError: the target refused the archived rows: foreign key "deferred_fk_actor_fkey" of "public"\."deferred_fk" references a row that is not there \(SQLSTATE 23503\)/,
      );
    }
    expect(await ids('public.deferred_fk')).toEqual([1, 2, 6]);
  });

  it('a deferred unique constraint outside the key: the archive holding a taken value fails naming the constraint; the others restore', async () => {
    // Prepare: the target already has a row whose actor an archived row repeats.
    await bed.db.client.query(`
      CREATE TABLE public.deferred_unique (id int PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL,
        CONSTRAINT actor_once UNIQUE (actor) DEFERRABLE INITIALLY DEFERRED);
      INSERT INTO public.deferred_unique VALUES (100, '2000-01-01T00:00:00Z', 'p1')`);
    const taken = await archiveOf(1);

    // Act
    const result = await restoreInto('public.deferred_unique');

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results.filter((r) => r.error).map((r) => r.key)).toEqual([taken]);
    expect(result.results.find((r) => r.key === taken)?.error).toMatch(/^SchemaDriftError: .*"actor_once"/);
    expect(await ids('public.deferred_unique')).toEqual([3, 4, 5, 6, 100]);
  });

  it('a deferrable unique constraint on the key itself: an archive whose rows are partly there fails naming it and the remedy, writing nothing; the others restore', async () => {
    // Prepare: row 3 is back already. Its archive's COPY meets it, and INSERT ... ON CONFLICT (id) then takes every
    // unique index on id as an arbiter, which PostgreSQL refuses for a deferrable one.
    await bed.db.client.query(`
      CREATE TABLE public.deferred_key (id int PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL,
        CONSTRAINT id_once UNIQUE (id) DEFERRABLE INITIALLY DEFERRED);
      INSERT INTO public.deferred_key SELECT * FROM public.deferred_unique WHERE id = 3`);
    const partly = await archiveOf(3);

    // Act
    const result = await restoreInto('public.deferred_key');
    const refused = await ids('public.deferred_key');
    await bed.db.client.query('ALTER TABLE public.deferred_key DROP CONSTRAINT id_once');
    const remedied = await restoreInto('public.deferred_key');

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results.filter((r) => r.error).map((r) => r.key)).toEqual([partly]);
    expect(result.results.find((r) => r.key === partly)?.error).toMatch(
      /^SchemaDriftError: restore cannot recognise the archive's rows by the key \(id\) of "public"\."deferred_key": its unique index "id_once" is DEFERRABLE, .*nothing was written/,
    );
    expect(refused).toEqual([1, 2, 3, 6]);
    expect(remedied.execution.status).toBe('SUCCEEDED');
    expect(await ids('public.deferred_key')).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe('restore with strategy overwrite into a table another table references ON UPDATE SET NULL', () => {
  const OLD = `${TODAY_UTC_SQL} - make_interval(days => 40)`;
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.audit (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, ext text NOT NULL UNIQUE,
          v text);
        INSERT INTO public.audit
          SELECT g, ${OLD} + g * interval '1 minute', 'e' || g, 'v' || g FROM generate_series(1, 10) g;`);
    },
    [{ schema: 'public', name: 'audit', timestampColumn: 'created_at' }],
  );

  it('is refused naming the foreign key, and no row of the referencing table changes', async () => {
    // Prepare: archived and restored once; then the application renames an event's external id and links to it, so
    // putting the archived id back would set the link's column to NULL.
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    const restore = (strategy: string) =>
      runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.audit', strategy },
        { retryIntervalScale: 0 },
      );
    const first = await restore('skip');
    await bed.db.client.query(`
      UPDATE public.audit SET ext = 'e1-renamed' WHERE id = 1;
      CREATE TABLE public.links (n int PRIMARY KEY, ext text REFERENCES public.audit (ext) ON UPDATE SET NULL);
      INSERT INTO public.links VALUES (1, 'e1-renamed'), (2, 'e2');`);
    const links = () => bed.db.client.query('SELECT n, ext FROM public.links ORDER BY n').then((r) => r.rows);

    // Act
    const overwrite = await restore('overwrite');
    const linksAfter = await links();
    const ext = await bed.db.client.query('SELECT ext FROM public.audit WHERE id = 1');

    // Assess
    expect([run.execution.status, first.execution.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores with strategy overwrite into a table another references ON UPDATE SET NULL, after a referenced value changed',
      held: overwrite.execution.status === 'FAILED' && linksAfter[0]?.ext === 'e1-renamed',
    });
    expect(overwrite.execution.status).toBe('FAILED');
    expect([overwrite.execution.error?.message, ...overwrite.results.map((r) => r.error)]).toContainEqual(
      expect.stringMatching(
        /restore target "public"."audit" is referenced by foreign key "links_ext_fkey" of public\.links with ON UPDATE CASCADE\/SET NULL\/SET DEFAULT on \(ext\): strategy overwrite/,
      ),
    );
    expect(linksAfter).toEqual([
      { n: 1, ext: 'e1-renamed' },
      { n: 2, ext: 'e2' },
    ]);
    expect(ext.rows).toEqual([{ ext: 'e1-renamed' }]);
  });

  it('restores over a foreign key ON UPDATE CASCADE on the key, which an overwrite writes with the value it matched', async () => {
    // Prepare: only a reference to the key is left; an overwrite puts the archived ext back.
    await bed.db.client.query(`DROP TABLE public.links;
      CREATE TABLE public.by_id (id bigint PRIMARY KEY REFERENCES public.audit (id) ON UPDATE CASCADE, note text);
      INSERT INTO public.by_id VALUES (1, 'kept'), (2, 'kept too');`);

    // Act
    const overwrite = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.audit', strategy: 'overwrite' },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(overwrite.execution.status).toBe('SUCCEEDED');
    expect((await bed.db.client.query('SELECT ext FROM public.audit WHERE id = 1')).rows).toEqual([
      { ext: 'e1' },
    ]);
    expect((await bed.db.client.query('SELECT id, note FROM public.by_id ORDER BY id')).rows).toEqual([
      { id: '1', note: 'kept' },
      { id: '2', note: 'kept too' },
    ]);
  });
});
