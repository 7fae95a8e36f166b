import type pg from 'pg';
import { type BatchBounds, type ObjectSpan, spanCutoff, spanEnd } from '../shared/archive/format.js';
import type { TableShape } from '../shared/database/table-shape.js';
import {
  dayWindowSql,
  EARLIEST_ELIGIBLE,
  eligibleWindowSql,
  keyOrderSql,
  keyTextSql,
  oldestDaySql,
  quoteIdent,
  rowSourceSql,
} from '../shared/database/table-sql.js';

/** One archive object's share of a batch: its first day, and the key range of the rows it takes of its span. */
export interface ObjectBounds {
  /** The object's day, or the first of its month for a month object. */
  day: string;
  bounds: BatchBounds;
  /** Rows in that range when it was chosen. Fewer than asked for: the object takes the rest of its span. */
  rows: number;
}

/**
 * The oldest eligible UTC day or month (`span`), at or after `after` when given (the end of the previous object's
 * window), and the key range of its first `batchSize` rows in key order. Month objects take only months that ended
 * before the cut-off (format.ts spanCutoff).
 */
export async function nextBatchBounds(
  client: pg.ClientBase,
  shape: TableShape,
  cutoff: string,
  span: ObjectSpan,
  batchSize: number,
  after?: string,
): Promise<ObjectBounds | undefined> {
  const end = spanCutoff(cutoff, span);
  const from = after ?? EARLIEST_ELIGIBLE;
  if (Date.parse(from) >= Date.parse(end)) return undefined;
  const oldest = await client.query<{ day: string | null }>(oldestDaySql(shape, from, end));
  const oldestDay = oldest.rows[0]?.day;
  if (!oldestDay) return undefined;
  const day = span === 'day' ? oldestDay : `${oldestDay.slice(0, 7)}-01`;
  const windowFrom = new Date(`${day}T00:00:00Z`).toISOString();
  const to = new Date(Math.min(Date.parse(spanEnd(day, span)), Date.parse(end))).toISOString();
  const keyColumns = shape.keyColumns.map((c) => `t.${quoteIdent(c.name)}`).join(', ');
  const range = await client.query<{ first: string[] | null; last: string[] | null; rows: number }>(
    `WITH batch AS MATERIALIZED (
       SELECT ${keyColumns} FROM ${rowSourceSql(shape)} AS t
        WHERE ${dayWindowSql(shape, windowFrom, to)}
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
    bounds: { from: windowFrom, to, firstKey: first, lastKey: last },
    rows: range.rows[0]?.rows ?? 0,
  };
}

/** The most rows `eligibleRowsLeft` counts: a backlog beyond it reads as this many, so the count stays bounded. */
export const BACKLOG_COUNT_CAP = 10_000_000;

/**
 * Eligible rows in the table under the caller's snapshot, up to `BACKLOG_COUNT_CAP`: the dashboard's backlog once a
 * run's batch budget ends it. Counted on the timestamp range, which an index on the column serves.
 */
export async function eligibleRowsCapped(
  client: pg.ClientBase,
  shape: TableShape,
  cutoff: string,
  span: ObjectSpan,
): Promise<number> {
  const counted = await client.query<{ rows: string }>(
    `SELECT count(*)::text AS rows FROM (
       SELECT 1 FROM ${rowSourceSql(shape)} AS t WHERE ${eligibleWindowSql(shape, cutoff, span)} LIMIT $1) AS eligible`,
    [BACKLOG_COUNT_CAP],
  );
  return Number(counted.rows[0]?.rows ?? 0);
}
