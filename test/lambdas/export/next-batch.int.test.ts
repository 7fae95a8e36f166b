import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextBatchBounds, type ObjectBounds, wholeSpans } from '../../../lambdas/export/next-batch.js';
import type { ObjectSpan } from '../../../lambdas/shared/archive/format.js';
import { retentionCutoff } from '../../../lambdas/shared/config/governance.js';
import { describeTable, type TableShape } from '../../../lambdas/shared/database/table-shape.js';
import { batchPredicateSql, rowSourceSql } from '../../../lambdas/shared/database/table-sql.js';
import { createTestDatabase, resolvedTable, type TestDatabase } from '../../support/fixtures.js';

const RETENTION_DAYS = 30;

/** The objects nextBatchBounds chooses one after another: what wholeSpans must agree with, span for span. */
async function objectByObject(
  db: TestDatabase,
  shape: TableShape,
  cutoff: string,
  span: ObjectSpan,
  batchSize: number,
): Promise<ObjectBounds[]> {
  const objects: ObjectBounds[] = [];
  let remaining = batchSize;
  for (let after: string | undefined; remaining > 0; ) {
    const next = await nextBatchBounds(db.client, shape, cutoff, span, remaining, after);
    if (!next) break;
    objects.push(next);
    remaining -= Math.min(next.rows, remaining);
    after = next.bounds.to;
  }
  return objects;
}

describe('the spans a batch takes whole', () => {
  let db: TestDatabase;
  let shape: TableShape;
  const cutoff = retentionCutoff(Date.now(), RETENTION_DAYS);

  beforeAll(async () => {
    db = await createTestDatabase();
    // A composite key whose columns are called "key" and "span", key order unlike time order within a day, 7 rows
    // on each of five days (three apart) before the cut-off, the first at 00:00 and the last a microsecond before the
    // next day (some after the cut-off); the same rows in a timestamp column; and rows on the 10th of each of the six
    // months before the cut-off's.
    await db.client.query(`
      CREATE TABLE "odd spans" ("key" text NOT NULL, span int NOT NULL, at timestamptz NOT NULL, PRIMARY KEY ("key", span));
      CREATE INDEX ON "odd spans" (at);
      INSERT INTO "odd spans"
      SELECT CASE WHEN h % 2 = 0 THEN 'K' ELSE 'k' END || (d * 10 + (7 - h)), h % 2,
             date_trunc('day', now(), 'UTC') - make_interval(days => ${RETENTION_DAYS} + 3 * d)
               + CASE WHEN h = 7 THEN interval '1 day' - interval '1 microsecond' ELSE (h - 1) * interval '3 hours' END
        FROM generate_series(1, 5) AS d, generate_series(1, 7) AS h
      UNION ALL
      SELECT 'late' || h, 0, date_trunc('day', now(), 'UTC') - make_interval(hours => h) FROM generate_series(1, 3) AS h;
      CREATE TABLE local_times AS SELECT "key", span, at AT TIME ZONE 'UTC' AS at FROM "odd spans";
      ALTER TABLE local_times ADD PRIMARY KEY ("key", span);
      CREATE TABLE months (id int PRIMARY KEY, at timestamptz NOT NULL);
      INSERT INTO months
      SELECT m * 10 + h, date_trunc('month', '${cutoff}'::timestamptz, 'UTC') - make_interval(months => m)
                           + interval '9 days' + h * interval '5 hours'
        FROM generate_series(1, 6) AS m, generate_series(1, 3) AS h;`);
    shape = await describeTable(db.client, resolvedTable({ name: 'odd spans', timestampColumn: 'at' }));
  });

  afterAll(async () => db?.drop());

  const rowsWithin = async (object: ObjectBounds) =>
    Number(
      (
        await db.client.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${rowSourceSql(shape)} AS t WHERE ${batchPredicateSql(shape, object.bounds)}`,
        )
      ).rows[0]?.n,
    );

  it('takes every eligible day whole, in one query, as object-by-object choice would', async () => {
    // Act
    const whole = await wholeSpans(db.client, shape, cutoff, 'day', 1000, 100);
    const expected = await objectByObject(db, shape, cutoff, 'day', 1000);

    // Assess: each span's bounds select exactly its rows.
    expect(whole).toHaveLength(5);
    expect(whole).toEqual(expected);
    expect(whole.map((o) => o.rows)).toEqual([7, 7, 7, 7, 7]);
    for (const object of whole) expect(await rowsWithin(object)).toBe(object.rows);
  });

  it('leaves out the span the batch size cuts, and stops at the most spans a batch may hold', async () => {
    // Act: 2.5 days' rows; then at most one span.
    const cut = await wholeSpans(db.client, shape, cutoff, 'day', 17, 100);
    const capped = await wholeSpans(db.client, shape, cutoff, 'day', 1000, 1);
    const expected = await objectByObject(db, shape, cutoff, 'day', 17);

    // Assess: the third day is nextBatchBounds' to cut, by key.
    expect(cut).toEqual(expected.slice(0, 2));
    expect(expected[2]?.rows).toBe(3);
    expect(capped).toEqual(expected.slice(0, 1));
  });

  it('bins rows into UTC days from the earliest eligible instant on: year 1, the epoch, a microsecond either side of midnight', async () => {
    // Prepare: days are counted in 24-hour strides from 0001-01-01 00:00 UTC; a row at the origin itself, and rows
    // on both sides of two later midnights.
    await db.client.query(`
      CREATE TABLE ancient (id int PRIMARY KEY, at timestamptz NOT NULL);
      INSERT INTO ancient VALUES
        (1, '0001-01-01 00:00:00+00'), (2, '0001-01-01 23:59:59.999999+00'), (3, '0001-01-02 00:00:00+00'),
        (4, '1969-12-31 23:59:59.999999+00'), (5, '1970-01-01 00:00:00+00'), (6, '1970-01-01 00:00:00.000001+00'),
        (7, '2000-02-29 12:00:00-14');`);
    const ancient = await describeTable(db.client, resolvedTable({ name: 'ancient', timestampColumn: 'at' }));

    // Act
    const whole = await wholeSpans(db.client, ancient, cutoff, 'day', 1000, 100);
    const expected = await objectByObject(db, ancient, cutoff, 'day', 1000);

    // Assess: the same days and keys as the windows object-by-object choice cuts.
    expect(whole.map((o) => [o.day, o.rows])).toEqual([
      ['0001-01-01', 2],
      ['0001-01-02', 1],
      ['1969-12-31', 1],
      ['1970-01-01', 2],
      ['2000-03-01', 1],
    ]);
    expect(whole).toEqual(expected);
  });

  it('groups a month table’s rows by month, up to the month before the cut-off’s', async () => {
    // Prepare
    const months = await describeTable(db.client, resolvedTable({ name: 'months', timestampColumn: 'at' }));

    // Act
    const whole = await wholeSpans(db.client, months, cutoff, 'month', 1000, 100);
    let remaining = 1000;
    const expected: ObjectBounds[] = [];
    for (let after: string | undefined; ; ) {
      const next = await nextBatchBounds(db.client, months, cutoff, 'month', remaining, after);
      if (!next) break;
      expected.push(next);
      remaining -= next.rows;
      after = next.bounds.to;
    }

    // Assess
    expect(whole.map((o) => [o.day.slice(8), o.rows])).toEqual(Array(6).fill(['01', 3]));
    expect(whole).toEqual(expected);
  });

  it('agrees with object-by-object choice on single keys: with min() and max() where they order as the key does, with sorts elsewhere', async () => {
    // Prepare: the rows of "odd spans" under one key each: text in an ICU collation (where 'k1' < 'K2', unlike in C),
    // numeric with NaN and both infinities, and uuid (which has no min()).
    await db.client.query(`
      CREATE TABLE text_keys AS SELECT ("key" || '/' || span) COLLATE "und-x-icu" AS id, at FROM "odd spans";
      CREATE TABLE numeric_keys AS
      SELECT CASE row_number() OVER (ORDER BY "key", span) WHEN 7 THEN 'NaN' WHEN 14 THEN 'Infinity'
                  WHEN 15 THEN '-Infinity' ELSE row_number() OVER (ORDER BY "key" DESC, span) + 0.5 END::numeric AS id,
             at
        FROM "odd spans";
      CREATE TABLE uuid_keys AS SELECT md5("key" || span)::uuid AS id, at FROM "odd spans";
      ALTER TABLE text_keys ADD PRIMARY KEY (id);
      ALTER TABLE numeric_keys ADD PRIMARY KEY (id);
      ALTER TABLE uuid_keys ADD PRIMARY KEY (id);`);
    const sqls: string[] = [];
    const watched = {
      query: (text: string, values?: unknown[]) => {
        sqls.push(text);
        return db.client.query(text, values);
      },
    } as unknown as typeof db.client;

    for (const [name, byMinMax] of [
      ['text_keys', true],
      ['numeric_keys', true],
      ['uuid_keys', false],
    ] as const) {
      const table = await describeTable(db.client, resolvedTable({ name, timestampColumn: 'at' }));
      sqls.length = 0;

      // Act: all five days, and two and a half.
      const whole = await wholeSpans(watched, table, cutoff, 'day', 1000, 100);
      const cut = await wholeSpans(watched, table, cutoff, 'day', 17, 100);

      // Assess
      expect(sqls.every((sql) => sql.includes('min(s.k0)') === byMinMax)).toBe(true);
      expect(whole).toHaveLength(5);
      expect(whole).toEqual(await objectByObject(db, table, cutoff, 'day', 1000));
      expect(cut).toEqual((await objectByObject(db, table, cutoff, 'day', 17)).slice(0, 2));
      for (const object of whole) {
        const rows = await db.client.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${rowSourceSql(table)} AS t WHERE ${batchPredicateSql(table, object.bounds)}`,
        );
        expect(Number(rows.rows[0]?.n)).toBe(object.rows);
      }
    }
  });

  it('leaves a timestamp column’s table to the object-by-object choice, whose windows are local times', async () => {
    // Prepare
    const local = await describeTable(
      db.client,
      resolvedTable({ name: 'local_times', timestampColumn: 'at' }),
    );

    // Act
    const whole = await wholeSpans(db.client, local, cutoff, 'day', 1000, 100);

    // Assess
    expect(local.timestampKind).toBe('timestamp');
    expect(whole).toEqual([]);
  });
});

/**
 * `client`, which runs `sql` once, right after the query that finds the oldest eligible day returns: the application
 * deleting that day's rows between that query and the one that reads the day's key range.
 */
function deletingAfterOldestDay(client: pg.ClientBase, sql: string): pg.ClientBase {
  let done = false;
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property !== 'query') return Reflect.get(target, property, receiver);
      return async (...args: unknown[]) => {
        const result = await query(...args);
        if (!done && typeof args[0] === 'string' && args[0].includes(' AS day FROM (')) {
          done = true;
          await query(sql);
        }
        return result;
      };
    },
  });
}

describe('a day whose rows the application deletes between finding it the oldest and reading its keys', () => {
  let db: TestDatabase;
  const cutoff = retentionCutoff(Date.now(), RETENTION_DAYS);

  beforeAll(async () => {
    db = await createTestDatabase();
    // Two rows on the oldest eligible day, three on a later one, one past the cut-off.
    await db.client.query(`
      CREATE TABLE vanishing (id int PRIMARY KEY, at timestamptz NOT NULL);
      INSERT INTO vanishing VALUES
        (1, '${cutoff}'::timestamptz - interval '10 days'), (2, '${cutoff}'::timestamptz - interval '10 days' + interval '1 hour'),
        (3, '${cutoff}'::timestamptz - interval '5 days'), (4, '${cutoff}'::timestamptz - interval '5 days' + interval '1 hour'),
        (5, '${cutoff}'::timestamptz - interval '5 days' + interval '2 hours'), (6, '${cutoff}'::timestamptz + interval '1 hour');`);
  });

  afterAll(async () => db?.drop());

  it.each(['timestamptz', 'timestamp'] as const)(
    'passes over it to the next eligible day (a %s column), rather than end the batch as if no row were left',
    async (kind) => {
      // Prepare
      const name = `vanishing_${kind}`;
      await db.client.query(
        `CREATE TABLE ${name} AS SELECT id, ${kind === 'timestamptz' ? 'at' : "at AT TIME ZONE 'UTC' AS at"} FROM vanishing;
         ALTER TABLE ${name} ADD PRIMARY KEY (id);`,
      );
      const shape = await describeTable(db.client, resolvedTable({ name, timestampColumn: 'at' }));
      const racing = deletingAfterOldestDay(db.client, `DELETE FROM ${name} WHERE id IN (1, 2)`);

      // Act
      const next = await nextBatchBounds(racing, shape, cutoff, 'day', 100);

      // Assess: the later day, whole.
      const later = new Date(Date.parse(cutoff) - 5 * 86_400_000).toISOString();
      expect(next?.day).toBe(later.slice(0, 10));
      expect(next?.rows).toBe(3);
      expect(next?.bounds).toMatchObject({ from: later, firstKey: ['3'], lastKey: ['5'] });
    },
  );
});
