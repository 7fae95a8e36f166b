import type pg from 'pg';
import type { BatchBounds } from '../shared/archive/format.js';
import type { TableShape } from '../shared/database/table-shape.js';
import {
  dayWindowSql,
  keyOrderSql,
  keyTextSql,
  oldestDaySql,
  quoteIdent,
  rowSourceSql,
} from '../shared/database/table-sql.js';

const DAY_MS = 86_400_000;
/** Rows before year 1 AD or at -infinity have no calendar day to partition by; they are never eligible. */
const EARLIEST = '0001-01-01T00:00:00Z';

/** The oldest eligible UTC day, and the key range of its first `batchSize` rows in key order. */
export async function nextBatchBounds(
  client: pg.ClientBase,
  shape: TableShape,
  cutoff: string,
  batchSize: number,
): Promise<{ day: string; bounds: BatchBounds } | undefined> {
  const cutoffIso = new Date(cutoff).toISOString();
  const oldest = await client.query<{ day: string | null }>(oldestDaySql(shape, EARLIEST, cutoffIso));
  const day = oldest.rows[0]?.day;
  if (!day) return undefined;
  const dayStart = Date.parse(`${day}T00:00:00Z`);
  const from = new Date(dayStart).toISOString();
  const to = new Date(Math.min(dayStart + DAY_MS, Date.parse(cutoffIso))).toISOString();
  const keyColumns = shape.keyColumns.map((c) => `t.${quoteIdent(c.name)}`).join(', ');
  const range = await client.query<{ first: string[] | null; last: string[] | null }>(
    `WITH batch AS MATERIALIZED (
       SELECT ${keyColumns} FROM ${rowSourceSql(shape)} AS t
        WHERE ${dayWindowSql(shape, from, to)}
        ORDER BY ${keyOrderSql(shape)} LIMIT $1)
     SELECT (SELECT ${keyTextSql(shape, 'b')} FROM batch AS b ORDER BY ${keyOrderSql(shape, 'ASC', 'b')} LIMIT 1) AS first,
            (SELECT ${keyTextSql(shape, 'b')} FROM batch AS b ORDER BY ${keyOrderSql(shape, 'DESC', 'b')} LIMIT 1) AS last`,
    [batchSize],
  );
  const first = range.rows[0]?.first;
  const last = range.rows[0]?.last;
  if (!first || !last) return undefined;
  return { day, bounds: { from, to, firstKey: first, lastKey: last } };
}
