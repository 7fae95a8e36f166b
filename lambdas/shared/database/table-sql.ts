import pg from 'pg';
import { type BatchBounds, type ObjectSpan, spanCutoff } from '../archive/format.js';
import { findRelation, type TableShape } from './table-shape.js';

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
 * Locks the relations a run reads of `table` (the table ONLY, or a partitioned table with its partitions) in `mode`,
 * held to the end of the transaction: taken before the table is described, no ALTER TABLE (a column renamed, a type
 * changed) comes between the description and the statements that rely on it. Nothing is locked when `table` is no
 * table; describing it then refuses it by name.
 */
export async function lockRowSource(
  client: pg.ClientBase,
  table: { schema: string; name: string },
  mode: 'ACCESS SHARE' | 'ROW EXCLUSIVE',
): Promise<void> {
  const relation = await findRelation(client, table);
  if (relation?.relkind !== 'r' && relation?.relkind !== 'p') return;
  await client.query(
    `LOCK TABLE ${rowSourceSql({ ...table, partitioned: relation.relkind === 'p' })} IN ${mode} MODE`,
  );
}

/**
 * The archived text of the column `name`'s value `value` (NULL stays NULL): `::text`, which is the type's output
 * function for every type the archiver accepts (table-shape.ts refuses other casts to text), except for `character`
 * without a length, whose cast to text drops the trailing blanks the value holds: its output function keeps them. A
 * column whose type may hold a value its input refuses or reads as another (readBackColumns) has its text read back
 * through its type as it is written: the same text, or an error where a restore would meet one or change the value.
 */
function valueTextSql(
  shape: Pick<TableShape, 'blankKeepingColumns' | 'readBackColumns'>,
  name: string,
  value: string,
): string {
  if (shape.blankKeepingColumns.includes(name)) return `pg_catalog.textin(pg_catalog.bpcharout(${value}))`;
  const readBack = shape.readBackColumns.find((c) => c.name === name);
  if (!readBack) return `${value}::text`;
  // A text the input refuses fails here; one it reads as another value (its text then differs) fails the cast of a
  // text that holds only its length, with 22P02: not a constant, so the planner cannot fail every statement with it.
  const text = `${value}::text`;
  return `CASE WHEN ${text}::${readBack.type}::text OPERATOR(pg_catalog.=) ${text} THEN ${text}
               ELSE ('reads back as another value: ' OPERATOR(pg_catalog.||) pg_catalog.length(${text}))::pg_catalog.int4::pg_catalog.text END`;
}

/**
 * The archive line of a row, as PostgreSQL computes it: a JSON object with every column's text representation
 * (SQL NULL as JSON null). Text output is exact for every type under the session settings in db.ts, so restore
 * reproduces each value with the type's own input function, and SQL can digest the very bytes the archive holds.
 * Export writes the same bytes in its own process from the values' text (rowValuesCopySql, copy-to-lines.ts).
 */
export function rowLineSql(shape: TableShape, alias = 't'): string {
  const keys = shape.columns.map((c) => quoteLiteral(c.name)).join(', ');
  const values = shape.columns
    .map((c) => valueTextSql(shape, c.name, `${alias}.${quoteIdent(c.name)}`))
    .join(', ');
  return `pg_catalog.json_object(ARRAY[${keys}]::text[], ARRAY[${values}]::text[])::text`;
}

/**
 * Export's COPY of the rows each of `predicates` selects (over alias `t`), one archive object's rows per predicate:
 * each row's object index `o` (the predicate's position), its values as text, its timestamp as an instant and its row
 * version's identity (rowVersionSql), in one statement and so one snapshot, so the version digest names exactly the
 * tuples whose lines the archive holds. copy-to-lines.ts writes each row's line around the values, the very bytes
 * rowLineSql would give. Each object's rows come together and in key order: a branch of UNION ALL per object, each
 * sorted before its values are rendered (above the Append), which returns its branches in turn; export turns off
 * parallel plans for it (a Parallel Append would interleave them, and copy-to-lines refuses rows out of order). Rows
 * stream out as PostgreSQL renders them; each branch sorts its rows when the one before it is exhausted. Columns go
 * by positional names (c0…cN, ts, v), so no column of the table can shadow another.
 */
export function rowValuesCopySql(shape: TableShape, predicates: readonly string[]): string {
  const inner = shape.columns.map((c, i) => `t.${quoteIdent(c.name)} AS c${i}`).join(', ');
  const values = shape.columns.map((c, i) => valueTextSql(shape, c.name, `s.c${i}`)).join(', ');
  const branches = predicates.map(
    (
      predicate,
      i,
    ) => `(SELECT ${i}::int4 AS o, ${inner}, ${timestampAsInstantSql(shape)} AS ts, ${rowVersionSql()} AS v
                          FROM ${rowSourceSql(shape)} AS t WHERE ${predicate}
                         ORDER BY ${keyOrderSql(shape)} OFFSET 0)`,
  );
  return `COPY (SELECT s.o, ${values}, s.ts, s.v FROM (${branches.join(' UNION ALL ')}) AS s) TO STDOUT (FORMAT binary)`;
}

/**
 * Whether any row `predicates` select holds a `"char"` byte above 0x7f in a column that writes it bare (rawByteColumns):
 * the `"char"` to int4 cast is signed, so such a byte is negative.
 */
export function rawBytesSql(shape: TableShape, predicates: readonly string[]): string {
  const bytes = shape.rawByteColumns
    .map((c) => `t.${quoteIdent(c.name)}::pg_catalog."char"::pg_catalog.int4 < 0`)
    .join(' OR ');
  // The spans ORed inside parentheses of their own: AND binds tighter than OR, and would test the bytes of the last only.
  const rows = predicates.map((p) => `(${p})`).join(' OR ');
  return `SELECT EXISTS (SELECT FROM ${rowSourceSql(shape)} AS t WHERE (${rows}) AND (${bytes})) AS found`;
}

/**
 * The MD5 of a row's archive line as UTF-8 bytes: what the archive stores (the session's client encoding is UTF8),
 * whatever the server encoding, so the digest agrees between PostgreSQL and the archive.
 */
export function rowHashSql(shape: TableShape, alias = 't'): string {
  return `pg_catalog.md5(pg_catalog.convert_to(${rowLineSql(shape, alias)}, 'UTF8'))`;
}

/**
 * A 64-bit hash of a row version's identity: the partition holding it (tableoid), its slot (ctid) and the
 * transaction that wrote it (xmin). Export reads it in the COPY that reads the lines, delete in its RETURNING, and
 * each sums it (version-digest.ts). It costs a few integer-to-text conversions per row where the line digest
 * rendered every value as text and hashed it (issue 14: a 900k-row DELETE took 2.6–2.9 s with it, 6.9–9.8 s with
 * the line MD5, 2.0 s bare).
 *
 * Why equal count and equal sums mean the delete removed exactly the exported tuple versions (E, read by the
 * export's COPY under its snapshot Se) and nothing else (D, removed under the delete's later snapshot Sd):
 * - A tuple's content never changes in place. UPDATE writes a new version stamped with the updater's xmin; VACUUM,
 *   pruning and freezing change header bits only (freezing keeps the raw xmin since PostgreSQL 9.4) and never move
 *   a live tuple to another slot; VACUUM FULL and CLUSTER move tuples (new ctid, same xmin and tableoid); a dump and
 *   restore, pg_repack or ATTACH of a copy re-insert them (new xmin or another tableoid).
 * - Take t in D whose xmin committed before Se. Whatever deleted t is invisible to Sd, so it was to Se too: t was
 *   visible to the export. Its content is unchanged, and the batch predicate is immutable SQL of the content (literal
 *   bounds), so it matched then. If its tableoid is one the export read, the export read t: t is in E.
 *   Without tableoid, rows of a partition attached since export (old xmins, same ctids possible) would pass.
 * - Take t in D whose xmin did not commit before Se (in progress or later). Every version in E has an xmin that
 *   had committed, so t's identity differs from all of E's, and the multisets differ.
 * So equal multisets give D ⊆ E, and with |D| = |E|, D = E: the deleted rows are the rows whose lines the same
 * statement wrote to the archive verify then checked (content SHA-256). ctid is not needed by that argument; it
 * narrows the one way through it (below), and makes VACUUM FULL and CLUSTER roll a batch back, which is safe.
 * What would break it: (1) xid wraparound. xmin is 32 bits; a frozen exported tuple keeps its raw xmin, so after
 * the counter wraps a transaction begun after Se can carry the same value. It would also have to write a row that
 * matches the batch predicate into the very slot (same partition and ctid) of an exported tuple that meanwhile was
 * deleted and vacuumed away, with every other row unchanged: one chance in 2^32 per such row, and only if the
 * slot is reused. (2) A collision of the 64-bit sums of two different multisets, about 2^-64 for inputs the server
 * assigns. (3) A batch predicate that is not immutable can select rows the export did not; they sit in other slots,
 * so only a rewrite moving one, same xmin, into an exported tuple's old slot would pass: a key column's collation
 * changed by `ALTER COLUMN … COLLATE` (no row rewritten) and then VACUUM FULL can do exactly that, so the delete also
 * compares the table's reading digest (table-shape.ts READING_DIGEST_SQL: collations, enum labels, composite
 * attributes) with export's; a collation an OS upgrade changed under its name is not caught.
 */
export const rowVersionSql = (alias = 't'): string =>
  `pg_catalog.hashtextextended(${alias}.tableoid::text || ':' || ${alias}.ctid::text || ':' || ${alias}.xmin::text, 0)`;

/**
 * The UTC day (YYYY-MM-DD) of the oldest row with the timestamp in [from, to) (`dayWindowSql`). It takes min() of the
 * bare column so the index on it serves the query, and converts only that one value. For a `timestamp` column read
 * in a zone with daylight saving the least local time is not always the least instant (a time in a spring-forward
 * gap reads an hour later than the first time after the gap), but it is a row of the window, so its day holds rows.
 */
export function oldestDaySql(shape: TableShape, from: string, to: string): string {
  const oldest = `SELECT min(t.${quoteIdent(shape.timestampColumn.name)}) AS v FROM ${rowSourceSql(shape)} AS t WHERE ${dayWindowSql(shape, from, to)}`;
  const instant =
    shape.timestampKind === 'timestamptz'
      ? 'o.v'
      : `(o.v AT TIME ZONE ${quoteLiteral(shape.timestampTimeZone)})`;
  return `SELECT to_char(${instant} AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day FROM (${oldest}) AS o`;
}

/**
 * A local time (`timestamp`) read in `zone` as an instant, or NULL within two days of the ends of the type's range:
 * there the instant may lie outside `timestamptz`'s (294276 AD read west of UTC, 4714 BC east of it), and converting
 * it would fail the whole statement. A run takes no such row (one lies in the future, the other before year 1), so
 * what measures a table (`cost`, `wizard`) reads it as having no instant, as it reads NULL.
 */
export const localTimeInstantSql = (value: string, zone: string): string =>
  `CASE WHEN ${value} > '4714-11-26 00:00:00 BC'::timestamp AND ${value} < '294276-12-29 00:00:00'::timestamp
        THEN ${value} AT TIME ZONE ${quoteLiteral(zone)} END`;

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
  `(${shape.keyColumns.map((c, i) => `${quoteLiteral(values[i] ?? '')}::${c.boundType}`).join(', ')})`;

export const keyOrderSql = (shape: TableShape, direction: 'ASC' | 'DESC' = 'ASC', alias = 't'): string =>
  shape.keyColumns.map((c) => `${alias}.${quoteIdent(c.name)} ${direction}`).join(', ');

export const keyTextSql = (shape: TableShape, alias = 't'): string =>
  `ARRAY[${shape.keyColumns.map((c) => `${alias}.${quoteIdent(c.name)}::text`).join(', ')}]::text[]`;

/** `iso` moved by `hours`, no earlier than EARLIEST_ELIGIBLE (before it nothing is eligible, and year 0 is no year). */
const hoursFrom = (iso: string, hours: number): string =>
  new Date(Math.max(Date.parse(iso) + hours * 3_600_000, Date.parse(EARLIEST_ELIGIBLE))).toISOString();

/** Zones whose local time is UTC at every instant: a `timestamp` column read in one orders as its instants. */
const UTC_ZONE = /^(Etc\/)?(UTC|UCT|Zulu|Universal|GMT)$/i;

/**
 * Rows whose timestamp, as an instant (`timestampAsInstantSql`), lies in [from, to): the eligible rows of one day, or
 * of every day before a cut-off. On a `timestamptz` column (or a `timestamp` read as UTC) a range of the bare column,
 * which its index serves.
 *
 * A `timestamp` column read in a zone with daylight saving or other offset changes holds local times, which do not
 * order as the instants PostgreSQL reads them as: a time in a fall-back overlap reads as its later instant, a time in
 * a spring-forward gap an hour later than the first time after the gap. A range of local times alone would hold rows
 * read as after its end: a cut-off at a UTC midnight inside Antarctica/Troll's overlap took local 01:00–01:59, read as
 * 01:00–01:59 UTC, and deleted those rows up to two hours before their retention ended. So each row's instant is
 * compared too, and the bare column's range (for the index) is widened at each end by how far the zone's offset moves
 * within 26 hours of it (nothing, nearly always), which keeps every local time that reads as an instant inside.
 */
export function dayWindowSql(shape: TableShape, from: string, to: string, alias = 't'): string {
  return timeWindowSql(
    `${alias}.${quoteIdent(shape.timestampColumn.name)}`,
    shape.timestampKind,
    shape.timestampTimeZone,
    from,
    to,
  );
}

/** `dayWindowSql` of any expression of a timestamp type; restore reads its rows' windows with it. */
export function timeWindowSql(
  column: string,
  kind: 'timestamptz' | 'timestamp',
  timeZone: string,
  from: string,
  to: string,
): string {
  const instant = (iso: string) => `${quoteLiteral(iso)}::timestamptz`;
  if (kind === 'timestamptz') return `${column} >= ${instant(from)} AND ${column} < ${instant(to)}`;
  if (UTC_ZONE.test(timeZone)) {
    return `${column} >= (${instant(from)} AT TIME ZONE 'UTC') AND ${column} < (${instant(to)} AT TIME ZONE 'UTC')`;
  }
  const zone = quoteLiteral(timeZone);
  // Every bound below is made of literals and immutable functions, so PostgreSQL computes it once, when it plans the
  // statement, and estimates the range as for literal bounds: no interval is added to a timestamptz (that is stable,
  // and would be computed again for every row); the instants 26 hours away are literals too.
  const local = (iso: string) => `(${instant(iso)} AT TIME ZONE ${zone})`;
  const offset = (iso: string) => `(${local(iso)} - (${instant(iso)} AT TIME ZONE 'UTC'))`;
  // How far the zone's offset 26 hours before and after the instant differs from its offset there: no real zone's
  // offset ever moved by more than 24 hours at once (Pacific/Apia, 2011), nor twice within two days.
  const swing = (iso: string) => {
    const [before, at, after] = [offset(hoursFrom(iso, -26)), offset(iso), offset(hoursFrom(iso, 26))];
    return `greatest(${before} - ${at}, ${at} - ${before}, ${after} - ${at}, ${at} - ${after})`;
  };
  // A local time at least the swing inside both bounds reads as an instant inside them: only the rows near a bound
  // (none, where the offset does not move there) are converted and compared as instants.
  const read = `(${column} AT TIME ZONE ${zone})`;
  return `${column} >= ${local(from)} - ${swing(from)} AND ${column} < ${local(to)} + ${swing(to)}
          AND CASE WHEN ${column} >= ${local(from)} + ${swing(from)} AND ${column} < ${local(to)} - ${swing(to)} THEN true
                   ELSE ${read} >= ${instant(from)} AND ${read} < ${instant(to)} END`;
}

/** Rows before year 1 AD or at -infinity have no calendar day to partition by; they are never eligible. */
export const EARLIEST_ELIGIBLE = '0001-01-01T00:00:00Z';

/**
 * Every row a run with this cut-off may archive: a month table's rows wait until their month has ended before the
 * cut-off (format.ts spanCutoff). A range on the bare column, which its index serves.
 */
export function eligibleWindowSql(shape: TableShape, cutoff: string, span: ObjectSpan, alias = 't'): string {
  return dayWindowSql(shape, EARLIEST_ELIGIBLE, spanCutoff(cutoff, span), alias);
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
