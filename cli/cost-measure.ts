import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { spanCutoff, tablePrefix } from '../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../lambdas/shared/archive/store.js';
import { retentionCutoff } from '../lambdas/shared/config/governance.js';
import { resolveTable } from '../lambdas/shared/config/resolved-table.js';
import { type ArchiverConfig, tableRef } from '../lambdas/shared/config/schema.js';
import { resolveConnection } from '../lambdas/shared/database/credentials.js';
import { inReadOnlyTransaction, sessionSetupSql, tlsOption } from '../lambdas/shared/database/db.js';
import { findRelation, TABLE_RELATIONS_SQL } from '../lambdas/shared/database/table-shape.js';
import {
  EARLIEST_ELIGIBLE,
  localTimeInstantSql,
  quoteIdent,
  rowSourceSql,
} from '../lambdas/shared/database/table-sql.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { boundedRequests } from '../lambdas/shared/runtime/aws-requests.js';
import {
  DAYS_PER_MONTH,
  DEFAULT_ARCHIVE_BYTES_PER_ROW,
  DEFAULT_COMPRESSION_RATIO,
  type TableMeasurement,
} from './cost-model.js';

/** `cost`'s live measurement: the configured tables from PostgreSQL's statistics, and their archives in a bucket. */

const DAY_MS = 86_400_000;
const startOfUtcDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;

/** Every configured table measured, one connection per database (credentials as the config gives them). */
export async function measureAll(config: ArchiverConfig, store?: ArchiveStore): Promise<TableMeasurement[]> {
  const needsSecrets = config.databases.some((db) => 'secretArn' in db.credentials);
  const secrets = needsSecrets ? new SecretsManagerClient({ requestHandler: boundedRequests() }) : undefined;
  const measured = [];
  for (const db of config.databases) {
    const settings = await resolveConnection(db, { env: process.env, secrets });
    const client = new pg.Client({ ...settings, ssl: tlsOption(db.tls), connectionTimeoutMillis: 10_000 });
    // A connection the server drops fails the query under way; the event alone must not crash the process.
    client.on('error', () => undefined);
    await client.connect();
    try {
      // The steps' own settings (search_path pinned to pg_catalog): what it measures cannot be skewed by planted objects.
      await client.query(sessionSetupSql(config.defaults));
      // Each table read in a transaction of its own that pins the settings (SET LOCAL): behind a transaction pooler
      // the session's SET may not reach the next statement.
      for (const table of db.tables)
        measured.push(
          await inReadOnlyTransaction(client, () =>
            measureTable(client, config, db.name, tableRef(table), { store }),
          ),
        );
    } finally {
      await client.end();
    }
  }
  return measured;
}

/**
 * Row counts from PostgreSQL's statistics: the table's estimated rows, and the timestamp column's histogram
 * (equal-frequency buckets) for the share older than the cut-off and the share of the last 30 days. Without
 * statistics (never analyzed) it counts, which reads the table once.
 */
export async function measureTable(
  client: pg.ClientBase,
  config: ArchiverConfig,
  database: string,
  ref: string,
  { store, now = Date.now() }: { store?: ArchiveStore; now?: number } = {},
): Promise<TableMeasurement> {
  const table = resolveTable(config, database, ref);
  const relation = await findRelation(client, table);
  if (!relation) throw new ConfigError(`table ${ref} of database ${database} does not exist`);
  const kind = await timestampKind(client, relation.oid, table.timestampColumn);
  const instant = (value: string) =>
    kind === 'timestamptz' ? value : localTimeInstantSql(value, table.timestampTimeZone);
  const stats = await client.query<{
    reltuples: string | null;
    width: string | null;
    bounds: (string | null)[] | null;
  }>(
    // Rows of the relations that hold them: ANALYZE of a partitioned table (autovacuum never runs it, an operator does)
    // gives the table itself its partitions' rows as reltuples, which summed with theirs would count every row twice.
    `SELECT (SELECT sum(pc.reltuples) FILTER (WHERE pc.reltuples > 0 AND pc.relkind <> 'p')
               FROM pg_catalog.pg_class c, unnest(${TABLE_RELATIONS_SQL}) AS r(oid)
               JOIN pg_catalog.pg_class pc ON pc.oid = r.oid
              WHERE c.oid = $1)::text AS reltuples,
            (SELECT sum(s.avg_width) FROM pg_catalog.pg_stats s
              WHERE s.schemaname = $2 AND s.tablename = $3 AND s.inherited = $5)::text AS width,
            (SELECT array_agg((extract(epoch FROM ${instant(`u.b::${kind}`)}) * 1000)::text ORDER BY u.ord)
               FROM pg_catalog.pg_stats s, unnest(s.histogram_bounds::text::text[]) WITH ORDINALITY AS u(b, ord)
              WHERE s.schemaname = $2 AND s.tablename = $3 AND s.attname = $4 AND s.inherited = $5) AS bounds`,
    // The statistics of the rows a run reads: a plain table's own (ONLY), a partitioned table's over its partitions. A
    // plain table with inheritance children has both sets: summed and merged, its children's rows and widths counted.
    [relation.oid, table.schema, table.name, table.timestampColumn, relation.relkind === 'p'],
  );
  const s = stats.rows[0];
  let rows = Number(s?.reltuples ?? 0);
  let eligible: number;
  let monthly: number;
  let oldestDays: number;
  // Only instants a run can archive: sentinels (-infinity, infinity, BC dates) stay in the table, and a BC bound would
  // date the oldest row millennia back, each day since an object to write.
  const earliest = Date.parse(EARLIEST_ELIGIBLE);
  const times = (s?.bounds ?? [])
    .map((bound) => (bound === null ? Number.NaN : Number(bound)))
    .filter((t) => Number.isFinite(t) && t >= earliest);
  // Where the rows a run started now would take end (plan's cut-off, for a month table the first of its month), so
  // eligible rows and days agree with `plan` and the run.
  const cutoff = Date.parse(spanCutoff(retentionCutoff(now, table.retentionDays), table.objectSpan));
  const monthAgo = Date.parse(retentionCutoff(now, DAYS_PER_MONTH));
  const rowSource = rowSourceSql({ ...table, partitioned: relation.relkind === 'p' });
  if (rows > 0 && times.length >= 2) {
    // The histogram is as old as the last ANALYZE, which a run's deletes seldom bring about (10% of the rows must
    // change): the rows a run archived since are still in it. The oldest row left, where an index finds it at once,
    // leaves them out; without one, the histogram's own oldest bound stands.
    const oldest = await oldestIndexedRow(client, relation.oid, table.timestampColumn, rowSource, instant);
    const first = oldest === undefined ? (times[0] ?? now) : (oldest ?? Number.POSITIVE_INFINITY);
    eligible =
      first >= cutoff
        ? 0
        : Math.round(rows * Math.max(0, histogramShare(times, cutoff) - histogramShare(times, first)));
    monthly = Math.round(rows * (1 - histogramShare(times, monthAgo)));
    oldestDays = eligible === 0 ? 0 : Math.max(0, (now - first) / 86_400_000);
  } else {
    const column = instant(`t.${quoteIdent(table.timestampColumn)}`);
    const archivable = `${column} >= '${EARLIEST_ELIGIBLE}'::timestamptz AND ${column} < 'infinity'::timestamptz`;
    const counted = await client.query<{
      rows: string;
      eligible: string;
      monthly: string;
      oldest: string | null;
    }>(
      `SELECT count(*)::text AS rows,
              count(*) FILTER (WHERE ${archivable} AND ${column} < $1::timestamptz)::text AS eligible,
              count(*) FILTER (WHERE ${archivable} AND ${column} >= $2::timestamptz)::text AS monthly,
              extract(epoch FROM $3::timestamptz - min(${column}) FILTER (WHERE ${archivable}))::text AS oldest
         FROM ${rowSource} AS t`,
      [new Date(cutoff).toISOString(), new Date(monthAgo).toISOString(), new Date(now).toISOString()],
    );
    const c = counted.rows[0];
    rows = Number(c?.rows ?? 0);
    eligible = Number(c?.eligible ?? 0);
    monthly = Number(c?.monthly ?? 0);
    oldestDays = Number(c?.oldest ?? 0) / 86_400;
  }
  const measured = store
    ? await measureArchives(store, config, database, table.schema, table.name)
    : undefined;
  const width = Number(s?.width ?? 0);
  const [perRow, source]: [number, TableMeasurement['bytesPerRowSource']] = measured?.bytesPerRow
    ? [measured.bytesPerRow, 'measured archives']
    : width > 0
      ? [width / DEFAULT_COMPRESSION_RATIO, 'row width']
      : [DEFAULT_ARCHIVE_BYTES_PER_ROW, 'assumed'];
  return {
    database,
    table: ref,
    rows,
    eligibleRows: eligible,
    monthlyRows: monthly,
    retentionDays: table.retentionDays,
    // The UTC days from the oldest row's up to the cut-off (a UTC midnight): one archive each at least.
    eligibleDays: Math.max(0, Math.ceil((cutoff - startOfUtcDay(now - oldestDays * DAY_MS)) / DAY_MS)),
    archiveBytesPerRow: perRow,
    bytesPerRowSource: source,
    batchSize: table.batchSize,
    objectSpan: table.objectSpan,
    archived: { bytes: measured?.bytes ?? 0, objects: measured?.objects ?? 0 },
  };
}

/** Share of rows before `ms`, read off equal-frequency histogram bounds by linear interpolation. */
export function histogramShare(bounds: number[], ms: number): number {
  const buckets = bounds.length - 1;
  if (buckets < 1) return 0;
  const first = bounds[0] ?? 0;
  const last = bounds[buckets] ?? 0;
  if (ms <= first) return 0;
  if (ms >= last) return 1;
  for (let i = 0; i < buckets; i += 1) {
    const lo = bounds[i] ?? 0;
    const hi = bounds[i + 1] ?? 0;
    if (ms < hi) return (i + (hi > lo ? (ms - lo) / (hi - lo) : 0)) / buckets;
  }
  return 1;
}

/**
 * The oldest archivable row's time (epoch ms; null when there is none), when an index leads with the timestamp column so
 * that min() reads one index entry; undefined without such an index (min() would read the whole table).
 */
async function oldestIndexedRow(
  client: pg.ClientBase,
  oid: number,
  column: string,
  source: string,
  instant: (value: string) => string,
): Promise<number | null | undefined> {
  // An index min() can read in order: valid (not left by a failed concurrent build) and of a method that orders (a
  // BRIN index, usual on an audit table's time, cannot: min() would read the table).
  const indexed = await client.query(
    `SELECT 1 FROM pg_catalog.pg_index i
       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
       JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = $1 AND a.attname = $2 AND i.indpred IS NULL AND i.indisvalid
        AND pg_catalog.pg_indexam_has_property(ic.relam, 'can_order')
      LIMIT 1`,
    [oid, column],
  );
  if (indexed.rowCount === 0) return undefined;
  // Of the rows a run can archive: sentinels (-infinity, BC dates) stay. min() of the column itself reads the index in
  // order, skipping the rows the filter leaves out; the zone applies to the one value it finds.
  const at = instant(`t.${quoteIdent(column)}`);
  const result = await client.query<{ oldest: string | null }>(
    `SELECT (extract(epoch FROM ${instant(`min(t.${quoteIdent(column)})`)}) * 1000)::text AS oldest FROM ${source} AS t
      WHERE ${at} >= '${EARLIEST_ELIGIBLE}'::timestamptz AND ${at} < 'infinity'::timestamptz`,
  );
  const oldest = result.rows[0]?.oldest;
  return oldest === null || oldest === undefined ? null : Number(oldest);
}

async function timestampKind(client: pg.ClientBase, oid: number, column: string): Promise<string> {
  const result = await client.query<{ type: string }>(
    `SELECT pg_catalog.format_type(atttypid, atttypmod) AS type FROM pg_catalog.pg_attribute
      WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped`,
    [oid, column],
  );
  return result.rows[0]?.type === 'timestamp with time zone' ? 'timestamptz' : 'timestamp';
}

/**
 * A table's existing archives: their total size and count, and bytes per row over the newest 50 (from the row count
 * each object carries in its metadata).
 */
async function measureArchives(
  store: ArchiveStore,
  config: ArchiverConfig,
  database: string,
  schema: string,
  name: string,
): Promise<{ bytes: number; objects: number; bytesPerRow?: number }> {
  const prefix = tablePrefix({ prefix: config.s3.prefix, database, schema, table: name });
  const data: { key: string; size: number }[] = [];
  for await (const object of store.list(prefix)) {
    if (
      object.key.endsWith('.jsonl.gz') &&
      !object.key.slice(object.key.lastIndexOf('/') + 1).startsWith('_')
    ) {
      data.push(object);
    }
  }
  let sampleBytes = 0;
  let rows = 0;
  for (const object of data.slice(-50)) {
    const head = await store.head(object.key);
    const count = Number(head?.metadata['row-count'] ?? 0);
    if (count > 0) {
      sampleBytes += object.size;
      rows += count;
    }
  }
  return {
    bytes: data.reduce((sum, object) => sum + object.size, 0),
    objects: data.length,
    bytesPerRow: rows > 0 ? sampleBytes / rows : undefined,
  };
}
