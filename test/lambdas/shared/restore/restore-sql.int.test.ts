import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TableNotUsableError } from '../../../../lambdas/shared/errors/step-errors.js';
import {
  advanceSequences,
  createStagingSql,
  describeTarget,
  insertSql,
  planColumns,
  type RowWindow,
  resolveTypeName,
  windowRowsSql,
} from '../../../../lambdas/shared/restore/restore-sql.js';
import { createTestDatabase, type TestDatabase } from '../../../support/fixtures.js';

describe('resolveTypeName: a manifest type text, resolved by the server under the pinned search_path', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.client.query(`CREATE TYPE public.mood AS ENUM ('ok', 'sad'); CREATE SCHEMA app;
                           CREATE TYPE app."Level" AS ENUM ('low', 'high')`);
    await db.client.query('SET search_path = pg_catalog, pg_temp');
  });
  afterAll(async () => db?.drop());

  it.each([
    ['integer', 'integer'],
    // Modifiers the server spells back as written are kept; anything else reads as the unbounded type.
    ['character varying(12)', 'character varying(12)'],
    ['character(5)', 'character(5)'],
    ['numeric(10,2)', 'numeric(10,2)'],
    ['timestamp(3) with time zone', 'timestamp(3) with time zone'],
    ['character varying(8)[]', 'character varying(8)[]'],
    ['bit(4)', 'bit(4)'],
    ['interval(2)', 'interval'],
    ['interval day to second(2)', 'interval'],
    ['numeric(10, 2)', 'numeric'],
    ['character', 'bpchar'],
    // Written before the search_path was pinned: a type in public without its schema.
    ['mood', 'public.mood'],
    ['mood[]', 'public.mood[]'],
    ['public.mood', 'public.mood'],
    ['app."Level"', 'app."Level"'],
    ['no_such_type', undefined],
    ['app.no_such_type', undefined],
  ])('reads %s as %s', async (written, resolved) => {
    // Act
    const type = await resolveTypeName(db.client, written);

    // Assess
    expect(type).toBe(resolved);
  });

  it('refuses modifiers the type refuses, naming the type, rather than creating a column unlike the archived one', async () => {
    // Act
    const refused = await Promise.allSettled(
      ['character varying(0)', 'integer(3)'].map((type) => resolveTypeName(db.client, type)),
    );

    // Assess
    expect(refused.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    for (const [i, type] of ['character varying\\(0\\)', 'integer\\(3\\)'].entries()) {
      const reason = (refused[i] as PromiseRejectedResult).reason;
      expect(reason).toBeInstanceOf(TableNotUsableError);
      expect(reason.message).toMatch(
        new RegExp(`^archived column type ${type} has modifiers this server refuses`),
      );
    }
  });
});

describe('the rows of a month archive a day range takes', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  /** Stages archive lines holding these values of `at` and counts those inside [from, to). */
  async function countInWindow(values: string[], window: Omit<RowWindow, 'column'>): Promise<number> {
    await db.client.query('BEGIN');
    try {
      await db.client.query(createStagingSql);
      for (const at of values)
        await db.client.query('INSERT INTO audit_archiver_restore (line) VALUES ($1)', [
          JSON.stringify({ at }),
        ]);
      const counted = await db.client.query<{ rows: number }>(windowRowsSql({ column: 'at', ...window }));
      return counted.rows[0]?.rows ?? -1;
    } finally {
      await db.client.query('ROLLBACK');
    }
  }

  // Asia/Jerusalem's clocks jumped from 02:00 to 03:00 at UTC midnight on 2024-03-29: 02:30 reads as 00:30 UTC, and
  // export files it under the 29th (test/lambdas/export/core.int.test.ts, spring_gap).
  const local = ['2024-03-28 10:00:00', '2024-03-29 02:30:00', '2024-03-29 05:00:00'];
  const jerusalem = { type: 'timestamp' as const, timeZone: 'Asia/Jerusalem' };

  it('takes a timestamp column’s rows by the instants export cut days by, a time in a DST gap too', async () => {
    // Act
    const the28th = await countInWindow(local, {
      ...jerusalem,
      from: '2024-03-28T00:00:00.000Z',
      to: '2024-03-29T00:00:00.000Z',
    });
    const the29th = await countInWindow(local, {
      ...jerusalem,
      from: '2024-03-29T00:00:00.000Z',
      to: '2024-03-30T00:00:00.000Z',
    });

    // Assess
    expect([the28th, the29th]).toEqual([1, 2]);
  });

  it('takes a timestamptz column’s rows by their instants', async () => {
    // Act
    const counted = await countInWindow(['2024-03-28 23:59:59.999999+00', '2024-03-29 00:00:00+00'], {
      type: 'timestamptz',
      timeZone: 'UTC',
      from: '2024-03-28T00:00:00.000Z',
      to: '2024-03-29T00:00:00.000Z',
    });

    // Assess
    expect(counted).toBe(1);
  });
});

describe('the staged lines a restore reads', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.client.query(`CREATE TABLE public.wide (a int PRIMARY KEY, b text, c text, d text, e text, f text,
                                                     at timestamptz)`);
  });
  afterAll(async () => db?.drop());

  it('are parsed as jsonb once per row, not once per column (a 200 MB line took 5 GB in six parses)', async () => {
    // Prepare
    await db.client.query('BEGIN');
    const target = await describeTarget(db.client, { schema: 'public', name: 'wide' });
    if (!target) throw new Error('setup: no target');
    const plan = planColumns(
      target.columns.map((c) => ({ name: c.name, type: c.type })),
      target,
      'strict',
    );
    const window: RowWindow = {
      column: 'at',
      type: 'timestamptz',
      timeZone: 'UTC',
      from: '2024-01-01T00:00:00.000Z',
      to: '2024-01-02T00:00:00.000Z',
    };

    // Act
    await db.client.query(createStagingSql);
    const explain = async (sql: string) =>
      (await db.client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (VERBOSE, COSTS OFF) ${sql}`)).rows
        .map((row) => row['QUERY PLAN'])
        .join('\n');
    const plans = [
      await explain(insertSql(target, plan, 'overwrite', ['a'], window)),
      await explain(windowRowsSql(window)),
    ];
    await db.client.query('ROLLBACK');

    // Assess
    expect(plan.columns).toHaveLength(7);
    for (const text of plans) expect(text.match(/::jsonb/g)).toHaveLength(1);
  });
});

describe("a target's type definitions, in the form exports record and the form of archives written before", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.client.query(`CREATE TYPE public.span AS (x int, "y text default,z" int, w text);
      CREATE TABLE public.spans (id bigint PRIMARY KEY, s public.span)`);
    // As a restore's session reads it: type names schema-qualified.
    await db.client.query('SET search_path = pg_catalog');
  });
  afterAll(async () => db?.drop());

  const archived = (definition: string) => [
    { name: 'id', type: 'bigint' },
    { name: 's', type: 'public.span', definition },
  ];
  const describeSpans = async () => {
    const target = await describeTarget(db.client, { schema: 'public', name: 'spans' });
    if (!target) throw new Error('setup: no target');
    return target;
  };

  it('takes an archive whose recorded digest is either form of the type as it is, and refuses any other', async () => {
    // Prepare: the text form's digest as the code before 2026-12-07 computed it for this very type.
    const textDigest = 'badb15e84089db5db63d0c9caf908ca8';

    // Act
    const target = await describeSpans();
    const jsonDigest = target.typeDefinitions.json['public.span'] ?? '';
    const plans = [jsonDigest, textDigest, 'f'.repeat(32)].map(
      (digest) => planColumns(archived(digest), target, 'lenient').redefined,
    );

    // Assess
    expect(target.typeDefinitions.text['public.span']).toBe(textDigest);
    expect(jsonDigest).toMatch(/^[0-9a-f]{32}$/);
    expect(jsonDigest).not.toBe(textDigest);
    expect(plans.map((redefined) => redefined.length)).toEqual([0, 0, 1]);
  });

  it('tells apart attributes whose names spell the old ones (the text form reads both the same)', async () => {
    // Prepare
    const before = await describeSpans();

    // Act
    await db.client.query(`ALTER TYPE public.span DROP ATTRIBUTE x, DROP ATTRIBUTE "y text default,z",
      DROP ATTRIBUTE w, ADD ATTRIBUTE "x integer ,y" text, ADD ATTRIBUTE z int, ADD ATTRIBUTE w text`);
    const after = await describeSpans();

    // Assess
    expect(after.typeDefinitions.text).toEqual(before.typeDefinitions.text);
    expect(after.typeDefinitions.json['public.span']).not.toBe(before.typeDefinitions.json['public.span']);
    const archivedNow = before.typeDefinitions.json['public.span'] ?? '';
    expect(planColumns(archived(archivedNow), after, 'lenient').redefined).toHaveLength(1);
  });
});

describe('advanceSequences: past the highest restored value, never backwards', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  /** As restore-summary runs it: in a transaction (it takes a savepoint per sequence). */
  async function inTransaction<T>(work: () => Promise<T>): Promise<T> {
    await db.client.query('BEGIN');
    try {
      return await work();
    } finally {
      await db.client.query('COMMIT');
    }
  }

  /** A table of ids 1..24 whose identity sequence `setup` prepares; the id the next insert takes after the advance. */
  async function nextIdAfterAdvance(name: string, identity: string, setup = ''): Promise<number> {
    await db.client.query(
      `CREATE TABLE public.${name} (id bigint GENERATED BY DEFAULT AS IDENTITY (${identity}) PRIMARY KEY, note text);
       INSERT INTO public.${name} (id) SELECT generate_series(1, 24); ${setup}`,
    );
    await inTransaction(() => advanceSequences(db.client, { schema: 'public', name }));
    const added = await db.client.query<{ id: string }>(
      `INSERT INTO public.${name} (note) VALUES ('new') RETURNING id::text AS id`,
    );
    return Number(added.rows[0]?.id);
  }

  const serial = (table: string) => `pg_get_serial_sequence('public.${table}', 'id')`;
  it.each([
    {
      case: 'never called, starting past the restored ids (a table recreated so ids are not reused)',
      name: 'far',
      identity: 'START WITH 1000000',
      setup: '',
      next: 1_000_000,
    },
    {
      case: 'restarted past them',
      name: 'restarted',
      identity: 'START WITH 1',
      setup: `SELECT nextval(${serial('restarted')}); ALTER TABLE public.restarted ALTER COLUMN id RESTART WITH 5000`,
      next: 5000,
    },
    {
      case: 'called, behind them',
      name: 'behind',
      identity: 'START WITH 1',
      setup: `SELECT setval(${serial('behind')}, 10)`,
      next: 25,
    },
    {
      case: 'never called, starting at a restored id',
      name: 'at',
      identity: 'START WITH 20',
      setup: '',
      next: 25,
    },
    {
      case: 'called, giving the highest restored id next',
      name: 'exactly',
      identity: 'START WITH 1',
      setup: `SELECT setval(${serial('exactly')}, 23)`,
      next: 25,
    },
  ])('$case: the next id is $next', async ({ name, identity, setup, next }) => {
    // Act
    const taken = await nextIdAfterAdvance(name, identity, setup);

    // Assess
    expect(taken).toBe(next);
  });

  // PostgreSQL 17 and later give a partitioned table identity columns, whose sequence its partitions share.
  it.skipIf((inject('postgresVersion') as number) < 17)(
    "moves the partitioned table's identity sequence past the ids restored into one of its partitions",
    async () => {
      // Prepare
      await db.client.query(
        `CREATE TABLE public.parted_ids (id bigint GENERATED BY DEFAULT AS IDENTITY, at date NOT NULL, PRIMARY KEY (id, at))
           PARTITION BY RANGE (at);
         CREATE TABLE public.parted_ids_2024 PARTITION OF public.parted_ids FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         INSERT INTO public.parted_ids_2024 (id, at) SELECT g, '2024-06-01' FROM generate_series(1, 24) AS g;`,
      );

      // Act
      const advanced = await inTransaction(() =>
        advanceSequences(db.client, { schema: 'public', name: 'parted_ids_2024' }),
      );
      const added = await db.client.query<{ id: string }>(
        `INSERT INTO public.parted_ids (at) VALUES ('2024-07-01') RETURNING id::text AS id`,
      );

      // Assess
      expect(advanced.advanced).toEqual([
        { column: 'id', sequence: expect.stringMatching(/parted_ids_id_seq$/), value: '24' },
      ]);
      expect(added.rows[0]?.id).toBe('25');
    },
  );

  it('judges a sequence never called by its start when the role may not read it (granted USAGE and UPDATE only)', async () => {
    // Prepare: a role as the role SQL of earlier versions made it.
    await db.client.query(
      `CREATE TABLE public.unread (id bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 1000000) PRIMARY KEY);
       INSERT INTO public.unread (id) SELECT generate_series(1, 24);
       CREATE ROLE unread_restorer; GRANT USAGE ON SCHEMA public TO unread_restorer;
       GRANT SELECT ON public.unread TO unread_restorer;
       GRANT USAGE, UPDATE ON SEQUENCE public.unread_id_seq TO unread_restorer;`,
    );

    // Act
    await db.client.query('SET ROLE unread_restorer');
    const advanced = await inTransaction(() =>
      advanceSequences(db.client, { schema: 'public', name: 'unread' }),
    ).finally(() => db.client.query('RESET ROLE'));
    const next = await db.client.query<{ id: string }>(`SELECT nextval('public.unread_id_seq')::text AS id`);

    // Assess
    expect(advanced).toEqual({ advanced: [], failed: [] });
    expect(next.rows[0]?.id).toBe('1000000');
  });
});
