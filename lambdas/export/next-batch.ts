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

/** One archive object's share of a batch: its day, and the key range of the rows it takes of that day. */
export interface ObjectBounds {
  day: string;
  bounds: BatchBounds;
  /** Rows in that range when it was chosen. Fewer than asked for: the object takes the rest of its day. */
  rows: number;
}

/**
 * The oldest eligible UTC day (after `afterDay`, when given), and the key range of its first `batchSize` rows in key
 * order.
 */
export async function nextBatchBounds(
  client: pg.ClientBase,
  shape: TableShape,
  cutoff: string,
  batchSize: number,
  afterDay?: string,
): Promise<ObjectBounds | undefined> {
  const cutoffIso = new Date(cutoff).toISOString();
  const from = afterDay ? new Date(Date.parse(`${afterDay}T00:00:00Z`) + DAY_MS).toISOString() : EARLIEST;
  if (Date.parse(from) >= Date.parse(cutoffIso)) return undefined;
  const oldest = await client.query<{ day: string | null }>(oldestDaySql(shape, from, cutoffIso));
  const day = oldest.rows[0]?.day;
  if (!day) return undefined;
  const dayStart = Date.parse(`${day}T00:00:00Z`);
  const dayFrom = new Date(dayStart).toISOString();
  const to = new Date(Math.min(dayStart + DAY_MS, Date.parse(cutoffIso))).toISOString();
  const keyColumns = shape.keyColumns.map((c) => `t.${quoteIdent(c.name)}`).join(', ');
  const range = await client.query<{ first: string[] | null; last: string[] | null; rows: number }>(
    `WITH batch AS MATERIALIZED (
       SELECT ${keyColumns} FROM ${rowSourceSql(shape)} AS t
        WHERE ${dayWindowSql(shape, dayFrom, to)}
        ORDER BY ${keyOrderSql(shape)} LIMIT $1)
     SELECT (SELECT ${keyTextSql(shape, 'b')} FROM batch AS b ORDER BY ${keyOrderSql(shape, 'ASC', 'b')} LIMIT 1) AS first,
            (SELECT ${keyTextSql(shape, 'b')} FROM batch AS b ORDER BY ${keyOrderSql(shape, 'DESC', 'b')} LIMIT 1) AS last,
            (SELECT count(*)::int FROM batch) AS rows`,
    [batchSize],
  );
  const first = range.rows[0]?.first;
  const last = range.rows[0]?.last;
  if (!first || !last) return undefined;
  return {
    day,
    bounds: { from: dayFrom, to, firstKey: first, lastKey: last },
    rows: range.rows[0]?.rows ?? 0,
  };
}
