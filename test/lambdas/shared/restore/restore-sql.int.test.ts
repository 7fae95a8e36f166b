import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TableNotUsableError } from '../../../../lambdas/shared/errors/step-errors.js';
import {
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

  // Asia/Jerusalem's clocks jumped from 02:00 to 03:00 at UTC midnight on 2024-03-29: export filed 02:30 under the
  // 28th, whose window ends at 03:00 local time (test/lambdas/export/core.int.test.ts, spring_gap).
  const local = ['2024-03-28 10:00:00', '2024-03-29 02:30:00', '2024-03-29 05:00:00'];
  const jerusalem = { type: 'timestamp' as const, timeZone: 'Asia/Jerusalem' };

  it('takes a timestamp column’s rows by the local-time windows export cut days by, a time in a DST gap too', async () => {
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
    expect([the28th, the29th]).toEqual([2, 1]);
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
