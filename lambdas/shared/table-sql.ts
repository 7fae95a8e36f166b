import pg from 'pg';
import type { BatchBounds } from './archive-format.js';
import type { ResolvedTable } from './config.js';
import { TableNotUsableError } from './errors.js';

/** Quotes an identifier for SQL; every schema, table and column name goes through here, never concatenated raw. */
export const quoteIdent = (name: string): string => pg.escapeIdentifier(name);
/** Quotes a string literal; used only where PostgreSQL accepts no bind parameters (COPY). */
export const quoteLiteral = (value: string): string => pg.escapeLiteral(value);

export interface ColumnInfo {
  name: string;
  /** format_type() output: a type name PostgreSQL itself quoted, safe to splice into a cast. */
  type: string;
  nullable: boolean;
  generated: boolean;
}

export type TimestampKind = 'timestamptz' | 'timestamp';

/** What the steps need to know about a table, read from the catalog and checked once per step. */
export interface TableShape {
  schema: string;
  name: string;
  columns: ColumnInfo[];
  keyColumns: ColumnInfo[];
  timestampColumn: ColumnInfo;
  timestampKind: TimestampKind;
  timestampTimeZone: string;
}

const timestampTypes: Record<string, TimestampKind> = {
  'timestamp with time zone': 'timestamptz',
  'timestamp without time zone': 'timestamp',
};

/** The primary key's column names of the relation `$1`, in key order: an empty array when it has none. */
const PRIMARY_KEY_SQL = `ARRAY(SELECT a.attname::text
       FROM pg_catalog.pg_index i
       CROSS JOIN LATERAL unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND i.indisprimary
      ORDER BY k.ord)`;

/**
 * Reads and checks the table: it exists and is a table, the timestamp column is a timestamp, and the key
 * columns are NOT NULL and unique (a primary key or a unique index without predicate or expressions).
 */
export async function describeTable(
  client: pg.ClientBase,
  table: Omit<ResolvedTable, 'onSchemaDrift'>,
): Promise<TableShape> {
  const where = `table "${table.schema}"."${table.name}" in database ${table.database}`;
  // One round trip for everything the checks below need: describeTable runs in every step that touches rows.
  const described = await client.query<{
    oid: number;
    relkind: string;
    columns: { name: string; type: string; notnull: boolean; generated: string }[];
    primary_key: string[];
    cascading: { name: string; child: string } | null;
  }>(
    `SELECT c.oid, c.relkind,
            (SELECT coalesce(json_agg(json_build_object('name', a.attname,
                      'type', pg_catalog.format_type(a.atttypid, a.atttypmod), 'notnull', a.attnotnull,
                      'generated', a.attgenerated::text) ORDER BY a.attnum), '[]')
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            ${PRIMARY_KEY_SQL.replace('$1', 'c.oid')} AS primary_key,
            (SELECT json_build_object('name', f.conname, 'child', f.conrelid::regclass::text)
               FROM pg_catalog.pg_constraint f
              WHERE f.contype = 'f' AND f.confrelid = c.oid AND f.confdeltype IN ('c', 'n', 'd')
              LIMIT 1) AS cascading
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  const relation = described.rows[0];
  if (!relation) throw new TableNotUsableError(`${where} does not exist`);
  if (relation.relkind !== 'r' && relation.relkind !== 'p') {
    const kinds: Record<string, string> = { v: 'a view', m: 'a materialized view', f: 'a foreign table' };
    throw new TableNotUsableError(
      `${where} is ${kinds[relation.relkind] ?? 'not a table'}; only tables can be archived`,
    );
  }
  const columns: ColumnInfo[] = relation.columns.map((c) => ({
    name: c.name,
    type: c.type,
    nullable: !c.notnull,
    generated: c.generated !== '',
  }));
  const byName = new Map(columns.map((c) => [c.name, c]));

  const timestampColumn = byName.get(table.timestampColumn);
  if (!timestampColumn) throw new TableNotUsableError(`${where} has no column "${table.timestampColumn}"`);
  const timestampKind = timestampTypes[timestampColumn.type];
  if (!timestampKind) {
    throw new TableNotUsableError(
      `column "${table.timestampColumn}" of ${where} is ${timestampColumn.type}; it must be timestamptz or timestamp`,
    );
  }
  if (timestampKind === 'timestamp') await checkTimeZone(client, table.timestampTimeZone);

  const keyNames = table.keyColumns ?? relation.primary_key;
  if (keyNames.length === 0) {
    throw new TableNotUsableError(
      `${where} has no primary key; set keyColumns to NOT NULL columns covered by a unique index`,
    );
  }
  const keyColumns = keyNames.map((name) => {
    const column = byName.get(name);
    if (!column) throw new TableNotUsableError(`${where} has no key column "${name}"`);
    if (column.nullable) throw new TableNotUsableError(`key column "${name}" of ${where} must be NOT NULL`);
    return column;
  });
  refuseCascadingReferences(relation.cascading, where);
  if (table.keyColumns && !(await isUnique(client, relation.oid, keyNames))) {
    throw new TableNotUsableError(
      `key columns (${keyNames.join(', ')}) of ${where} are not covered by a primary key or unique index`,
    );
  }
  return {
    schema: table.schema,
    name: table.name,
    columns,
    keyColumns,
    timestampColumn,
    timestampKind,
    timestampTimeZone: table.timestampTimeZone,
  };
}

/**
 * A foreign key that cascades or sets values when rows of this table are deleted would change other tables that
 * nothing archives: such a table is refused rather than silently losing its children's rows.
 */
function refuseCascadingReferences(cascading: { name: string; child: string } | null, where: string): void {
  if (cascading) {
    throw new TableNotUsableError(
      `${where} is referenced by foreign key "${cascading.name}" of ${cascading.child} with ON DELETE CASCADE/SET NULL/SET DEFAULT; deleting archived rows would change rows that are not archived`,
    );
  }
}

/** The relation named `schema`.`name` (its oid and kind), or undefined when there is none. */
export async function findRelation(
  client: pg.ClientBase,
  table: { schema: string; name: string },
): Promise<{ oid: number; relkind: string } | undefined> {
  const rel = await client.query<{ oid: number; relkind: string }>(
    `SELECT c.oid, c.relkind FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  return rel.rows[0];
}

/** The primary key's column names in key order; empty when the table has none. */
export async function primaryKey(client: pg.ClientBase, oid: number): Promise<string[]> {
  const result = await client.query<{ names: string[] }>(`SELECT ${PRIMARY_KEY_SQL} AS names`, [oid]);
  return result.rows[0]?.names ?? [];
}

/** True when some unique, non-partial, non-expression index uses only columns from `names`. */
export async function isUnique(client: pg.ClientBase, oid: number, names: string[]): Promise<boolean> {
  const result = await client.query<{ ok: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_catalog.pg_index i
        WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
          AND NOT EXISTS (
            SELECT 1 FROM unnest(i.indkey[0:i.indnkeyatts - 1]) AS k(attnum)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE a.attname <> ALL ($2::text[]))
     ) AS ok`,
    [oid, names],
  );
  return result.rows[0]?.ok === true;
}

async function checkTimeZone(client: pg.ClientBase, zone: string): Promise<void> {
  const result = await client.query('SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = $1', [zone]);
  if (result.rowCount === 0)
    throw new TableNotUsableError(`timestampTimeZone "${zone}" is not a known time zone`);
}

export const qualifiedName = (shape: { schema: string; name: string }): string =>
  `${quoteIdent(shape.schema)}.${quoteIdent(shape.name)}`;

/**
 * The archive line of a row, computed by PostgreSQL: a JSON object with every column's text representation
 * (SQL NULL as JSON null). Text output is exact for every type under the session settings in db.ts, so restore
 * reproduces each value with the type's own input function, and SQL can digest the very bytes the archive holds.
 */
export function rowLineSql(shape: TableShape, alias = 't'): string {
  const keys = shape.columns.map((c) => quoteLiteral(c.name)).join(', ');
  const values = shape.columns.map((c) => `${alias}.${quoteIdent(c.name)}::text`).join(', ');
  return `json_object(ARRAY[${keys}]::text[], ARRAY[${values}]::text[])::text`;
}

/**
 * The MD5 of a row's archive line as UTF-8 bytes: what the archive stores (the session's client encoding is UTF8),
 * whatever the server encoding, so the digest agrees between PostgreSQL and the archive.
 */
export function rowHashSql(shape: TableShape, alias = 't'): string {
  return `md5(convert_to(${rowLineSql(shape, alias)}, 'UTF8'))`;
}

/**
 * UTC day (YYYY-MM-DD) of the oldest row with the timestamp in [from, to). It takes min() of the bare column so the
 * index on it serves the query, and converts only that one value.
 */
export function oldestDaySql(shape: TableShape, from: string, to: string): string {
  const oldest = `(SELECT min(t.${quoteIdent(shape.timestampColumn.name)}) FROM ${qualifiedName(shape)} AS t WHERE ${dayWindowSql(shape, from, to)})`;
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
