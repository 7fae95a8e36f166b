import pg from 'pg';
import type { BatchBounds } from '../archive/format.js';
import type { TableShape } from './table-shape.js';

/** The SQL the steps run on a table, built from its shape (table-shape.ts). */

/** Quotes an identifier for SQL; every schema, table and column name goes through here, never concatenated raw. */
export const quoteIdent = (name: string): string => pg.escapeIdentifier(name);
/** Quotes a string literal; used only where PostgreSQL accepts no bind parameters (COPY). */
export const quoteLiteral = (value: string): string => pg.escapeLiteral(value);

export const qualifiedName = (shape: { schema: string; name: string }): string =>
  `${quoteIdent(shape.schema)}.${quoteIdent(shape.name)}`;

/**
 * The table's rows in FROM, COPY and DELETE: `ONLY` a plain table, so its inheritance children (other columns, other
 * rows, possibly the same keys) are never read or deleted with it; a partitioned table through its parent.
 */
export const rowSourceSql = (shape: { schema: string; name: string; partitioned: boolean }): string =>
  `${shape.partitioned ? '' : 'ONLY '}${qualifiedName(shape)}`;

/**
 * The archive line of a row, computed by PostgreSQL: a JSON object with every column's text representation
 * (SQL NULL as JSON null). Text output is exact for every type under the session settings in db.ts, so restore
 * reproduces each value with the type's own input function, and SQL can digest the very bytes the archive holds.
 */
export function rowLineSql(shape: TableShape, alias = 't'): string {
  const keys = shape.columns.map((c) => quoteLiteral(c.name)).join(', ');
  const values = shape.columns.map((c) => `${alias}.${quoteIdent(c.name)}::text`).join(', ');
  return `pg_catalog.json_object(ARRAY[${keys}]::text[], ARRAY[${values}]::text[])::text`;
}

/**
 * The MD5 of a row's archive line as UTF-8 bytes: what the archive stores (the session's client encoding is UTF8),
 * whatever the server encoding, so the digest agrees between PostgreSQL and the archive.
 */
export function rowHashSql(shape: TableShape, alias = 't'): string {
  return `pg_catalog.md5(pg_catalog.convert_to(${rowLineSql(shape, alias)}, 'UTF8'))`;
}

/**
 * UTC day (YYYY-MM-DD) of the oldest row with the timestamp in [from, to). It takes min() of the bare column so the
 * index on it serves the query, and converts only that one value.
 */
export function oldestDaySql(shape: TableShape, from: string, to: string): string {
  const oldest = `(SELECT min(t.${quoteIdent(shape.timestampColumn.name)}) FROM ${rowSourceSql(shape)} AS t WHERE ${dayWindowSql(shape, from, to)})`;
  const instant =
    shape.timestampKind === 'timestamptz'
      ? oldest
      : `(${oldest} AT TIME ZONE ${quoteLiteral(shape.timestampTimeZone)})`;
  return `SELECT to_char(${instant} AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day`;
}

/** The timestamp column compared with an instant given as ISO-8601 UTC text. */
function timestampBound(shape: TableShape, isoLiteral: string): string {
  const instant = `${isoLiteral}::timestamptz`;
  return shape.timestampKind === 'timestamptz'
    ? instant
    : `(${instant} AT TIME ZONE ${quoteLiteral(shape.timestampTimeZone)})`;
}

/** The timestamp column as a timestamptz, whatever its declared type. */
export function timestampAsInstantSql(shape: TableShape, alias = 't'): string {
  const column = `${alias}.${quoteIdent(shape.timestampColumn.name)}`;
  return shape.timestampKind === 'timestamptz'
    ? column
    : `(${column} AT TIME ZONE ${quoteLiteral(shape.timestampTimeZone)})`;
}

const keyTupleSql = (shape: TableShape, alias = 't'): string =>
  `(${shape.keyColumns.map((c) => `${alias}.${quoteIdent(c.name)}`).join(', ')})`;

const keyValueTupleSql = (shape: TableShape, values: string[]): string =>
  `(${shape.keyColumns.map((c, i) => `${quoteLiteral(values[i] ?? '')}::${c.type}`).join(', ')})`;

export const keyOrderSql = (shape: TableShape, direction: 'ASC' | 'DESC' = 'ASC', alias = 't'): string =>
  shape.keyColumns.map((c) => `${alias}.${quoteIdent(c.name)} ${direction}`).join(', ');

export const keyTextSql = (shape: TableShape, alias = 't'): string =>
  `ARRAY[${shape.keyColumns.map((c) => `${alias}.${quoteIdent(c.name)}::text`).join(', ')}]::text[]`;

/** Rows with the timestamp in [from, to): the eligible rows of one day. */
export function dayWindowSql(shape: TableShape, from: string, to: string, alias = 't'): string {
  const column = `${alias}.${quoteIdent(shape.timestampColumn.name)}`;
  return `${column} >= ${timestampBound(shape, quoteLiteral(from))} AND ${column} < ${timestampBound(shape, quoteLiteral(to))}`;
}

/** A batch: the rows of one day window whose key lies in [first, last]. Literals only, so COPY can use it too. */
export function batchPredicateSql(shape: TableShape, bounds: BatchBounds, alias = 't'): string {
  const key = keyTupleSql(shape, alias);
  return `${dayWindowSql(shape, bounds.from, bounds.to, alias)} AND ${key} >= ${keyValueTupleSql(shape, bounds.firstKey)} AND ${key} <= ${keyValueTupleSql(shape, bounds.lastKey)}`;
}

/** Count and order-independent digest (see row-digest.ts) of `lineSql` over the rows `fromSql` yields. */
export function digestSelectSql(hashesSql: string): string {
  return `SELECT count(*)::text AS rows,
                 coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text AS hi,
                 coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text AS lo
            FROM (${hashesSql}) AS hashes`;
}
