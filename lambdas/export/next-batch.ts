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
  timestampAsInstantSql,
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
 * before the cut-off (format.ts spanCutoff). A span whose rows went away between the two queries (the application
 * deleted them) is passed over for the next: undefined means no eligible row is left, and export ends the table's
 * run on it.
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
  const keyColumns = shape.keyColumns.map((c) => `t.${quoteIdent(c.name)}`).join(', ');
  // Each pass starts at the end of the span before it, so it ends.
  for (let from = after ?? EARLIEST_ELIGIBLE; Date.parse(from) < Date.parse(end); ) {
    const oldest = await client.query<{ day: string | null }>(oldestDaySql(shape, from, end));
    const oldestDay = oldest.rows[0]?.day;
    if (!oldestDay) return undefined;
    const day = span === 'day' ? oldestDay : `${oldestDay.slice(0, 7)}-01`;
    const windowFrom = new Date(`${day}T00:00:00Z`).toISOString();
    const to = new Date(Math.min(Date.parse(spanEnd(day, span)), Date.parse(end))).toISOString();
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
    if (first && last) {
      return {
        day,
        bounds: { from: windowFrom, to, firstKey: first, lastKey: last },
        rows: range.rows[0]?.rows ?? 0,
      };
    }
    from = to;
  }
  return undefined;
}

/**
 * The spans (days or months) that lie whole among the oldest `batchSize` eligible rows, oldest first, at most
 * `maxSpans`, each with its key range and rows: one query where `nextBatchBounds` costs two per object. The rows are
 * taken in timestamp order, which the column's index serves, so every span but the last one the limit reached is
 * whole; that last one is left out for `nextBatchBounds`, which takes its first rows in key order.
 *
 * Only for `timestamptz` columns, whose order is their instants'. A `timestamp` column's local times do not order as
 * their instants where the zone's offset changes (02:30 in a spring-forward gap from 02:00 to 03:00 reads later than
 * 03:00): a span the limit cut could then look whole. Those tables keep `nextBatchBounds` alone.
 */
export async function wholeSpans(
  client: pg.ClientBase,
  shape: TableShape,
  cutoff: string,
  span: ObjectSpan,
  batchSize: number,
  maxSpans: number,
): Promise<ObjectBounds[]> {
  if (shape.timestampKind !== 'timestamptz') return [];
  const end = spanCutoff(cutoff, span);
  const key = shape.keyColumns.map((_, i) => `k${i}`);
  const keyText = (alias: string) => `ARRAY[${key.map((k) => `${alias}.${k}::text`).join(', ')}]::text[]`;
  // Key columns under positional names (a column may be called "span"); only each span's first and last key are
  // rendered as text, and every step sorts or groups narrow rows, which stay in memory.
  // A UTC day by arithmetic on the instant: date_bin counts whole 24-hour strides from a UTC midnight, in about 40% of
  // the time of date_trunc with a time zone, which resolves the zone for every row (measured on the bench's 50,000
  // rows: 14 against 36 ms). Months are no fixed stride. The origin is the earliest eligible instant, so no row lies
  // before it, where date_bin's rounding differs between PostgreSQL versions.
  const spanOf =
    span === 'day'
      ? `pg_catalog.date_bin('1 day'::interval, ${timestampAsInstantSql(shape)}, '${EARLIEST_ELIGIBLE}'::timestamptz)`
      : `pg_catalog.date_trunc('month', ${timestampAsInstantSql(shape)}, 'UTC')`;
  const scanned = `SELECT ${spanOf} AS span,
              ${shape.keyColumns.map((c, i) => `t.${quoteIdent(c.name)} AS k${i}`).join(', ')}
         FROM ${rowSourceSql(shape)} AS t WHERE ${dayWindowSql(shape, EARLIEST_ELIGIBLE, end)}
        ORDER BY t.${quoteIdent(shape.timestampColumn.name)} LIMIT $1`;
  const spanText = (alias: string) => `to_char(${alias}.span AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS span`;
  const [only] = shape.keyColumns;
  const spans = await client.query<{
    span: string;
    first: string[];
    last: string[];
    rows: number;
    scanned: number;
  }>(
    shape.keyColumns.length === 1 && only && MIN_MAX_KEY_TYPE.test(only.type)
      ? // One aggregate pass: a third of the time of the two sorts below, on a batch of 50,000 rows.
        `SELECT ${spanText('s')}, count(*)::int AS rows, (sum(count(*)) OVER ())::int AS scanned,
                ARRAY[pg_catalog.min(s.k0)::text]::text[] AS first, ARRAY[pg_catalog.max(s.k0)::text]::text[] AS last
           FROM (${scanned}) AS s GROUP BY s.span ORDER BY s.span`
      : `WITH scanned AS MATERIALIZED (${scanned}),
         counted AS (SELECT span, count(*)::int AS rows FROM scanned GROUP BY span),
         firsts AS (SELECT DISTINCT ON (span) * FROM scanned ORDER BY span, ${key.map((k) => `${k} ASC`).join(', ')}),
         lasts AS (SELECT DISTINCT ON (span) * FROM scanned ORDER BY span, ${key.map((k) => `${k} DESC`).join(', ')})
         SELECT ${spanText('c')}, c.rows, (SELECT sum(rows) FROM counted)::int AS scanned,
                ${keyText('f')} AS first, ${keyText('l')} AS last
           FROM counted AS c JOIN firsts AS f ON f.span = c.span JOIN lasts AS l ON l.span = c.span
          ORDER BY c.span`,
    [batchSize],
  );
  const whole = Number(spans.rows[0]?.scanned ?? 0) < batchSize ? spans.rows : spans.rows.slice(0, -1);
  return whole.slice(0, maxSpans).map((row) => {
    const from = new Date(`${row.span}T00:00:00Z`).toISOString();
    const to = new Date(Math.min(Date.parse(spanEnd(row.span, span)), Date.parse(end))).toISOString();
    return {
      day: row.span,
      bounds: { from, to, firstKey: row.first, lastKey: row.last },
      rows: Number(row.rows),
    };
  });
}

/**
 * Key types (as format_type names them) whose min() and max() order values as the key's ORDER BY does: the same
 * comparison, under the column's collation. Others (uuid and boolean have no min(); a domain or array may compare
 * otherwise) take the query with sorts.
 */
const MIN_MAX_KEY_TYPE =
  /^(smallint|integer|bigint|numeric(\(\d+(,\d+)?\))?|text|character varying(\(\d+\))?|date|timestamp(\(\d\))? with(out)? time zone)$/;

/** The most rows `eligibleRowsCapped` counts: a backlog beyond it reads as this many, so the count stays bounded. */
const BACKLOG_COUNT_CAP = 10_000_000;

/**
 * Eligible rows in the table, up to `BACKLOG_COUNT_CAP`: the dashboard's backlog once a run's batch budget ends it.
 * Counted on the timestamp range, which an index on the column serves.
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
