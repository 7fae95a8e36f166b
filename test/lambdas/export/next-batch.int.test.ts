import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextBatchBounds, type ObjectBounds, wholeSpans } from '../../../lambdas/export/next-batch.js';
import type { ObjectSpan } from '../../../lambdas/shared/archive/format.js';
import { retentionCutoff } from '../../../lambdas/shared/config/governance.js';
import { describeTable, type TableShape } from '../../../lambdas/shared/database/table-shape.js';
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
    // A composite key whose columns are called "key" and "span", key order unlike time order within a day, rows on
    // five days and in two months before the cut-off (and some after it), 7 a day.
    await db.client.query(`
      CREATE TABLE "odd spans" ("key" text NOT NULL, span int NOT NULL, at timestamp NOT NULL, PRIMARY KEY ("key", span));
      CREATE INDEX ON "odd spans" (at);
      INSERT INTO "odd spans"
      SELECT 'k' || (d * 10 + (7 - h)), h % 2, (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '${RETENTION_DAYS} days')
               - make_interval(days => d * 20) + make_interval(hours => h * 3)
        FROM generate_series(1, 5) AS d, generate_series(1, 7) AS h
      UNION ALL
      SELECT 'late' || h, 0, date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(hours => h) FROM generate_series(1, 3) AS h`);
    shape = await describeTable(db.client, resolvedTable({ name: 'odd spans', timestampColumn: 'at' }));
  });

  afterAll(async () => db?.drop());

  it('takes every eligible day whole, in one query, as object-by-object choice would', async () => {
    // Act
    const whole = await wholeSpans(db.client, shape, cutoff, 'day', 1000, 100);
    const expected = await objectByObject(db, shape, cutoff, 'day', 1000);

    // Assess
    expect(whole).toHaveLength(5);
    expect(whole).toEqual(expected);
    expect(whole.map((o) => o.rows)).toEqual([7, 7, 7, 7, 7]);
    // The oldest day's first key in key order is its latest row in time.
    expect(whole[0]?.bounds).toMatchObject({ firstKey: ['k50', '1'], lastKey: ['k56', '1'] });
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

  it('groups a month table’s rows by month, up to the month before the cut-off’s', async () => {
    // Act
    const whole = await wholeSpans(db.client, shape, cutoff, 'month', 1000, 100);
    const expected = await objectByObject(db, shape, cutoff, 'month', 1000);

    // Assess
    expect(whole).toEqual(expected);
    expect(whole.every((o) => o.day.endsWith('-01'))).toBe(true);
  });
});
