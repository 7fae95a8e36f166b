import type pg from 'pg';
import { z } from 'zod';
import { tablePrefix } from '../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../lambdas/shared/archive/store.js';
import { formatIssues } from '../lambdas/shared/config/config.js';
import type { DeploymentConfig } from '../lambdas/shared/config/deployment-schema.js';
import { retentionCutoff } from '../lambdas/shared/config/governance.js';
import { resolveTable } from '../lambdas/shared/config/resolved-table.js';
import type { ArchiverConfig } from '../lambdas/shared/config/schema.js';
import {
  COLD_STORAGE_CLASSES,
  isColdStorageClass,
  type StorageClass,
  WRITABLE_STORAGE_CLASSES,
} from '../lambdas/shared/config/storage-classes.js';
import { findRelation } from '../lambdas/shared/database/table-shape.js';
import { quoteIdent, quoteLiteral, rowSourceSql } from '../lambdas/shared/database/table-sql.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { type ClassPrice, type PricedRegion, S3_PRICES } from './cost-prices.js';
import { formatNumber } from './report.js';

const GIB = 1024 ** 3;
const DAYS_PER_MONTH = 30;
const DAY_MS = 86_400_000;
const startOfUtcDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;
/** Archive bytes per row measured on the benchmark table (JSON lines, gzip level 6), used until archives exist. */
export const DEFAULT_ARCHIVE_BYTES_PER_ROW = 72;
/** Raw PostgreSQL row width to archive bytes: the benchmark table's average row width over its 72 bytes per row. */
export const DEFAULT_COMPRESSION_RATIO = 2.5;
/** A manifest sidecar is about this size (columns, figures, bounds); it is written once per archive. */
const MANIFEST_BYTES = 2_500;
/** PUT-class requests per archive: staging multipart (create, part, complete), copy to its key, manifest. */
const STAGING_PUTS = 3;
const PUBLISH_PUTS = 2;
/** GET-class requests per archive: verify re-reads the object and its manifest, delete checks the object again. */
const VERIFY_GETS = 3;
/** The bucket's lifecycle never transitions smaller objects (S3's default minimum transition size). */
const TRANSITION_MIN_BYTES = 128 * 1024;

// ----- inputs ------------------------------------------------------------------------------------------------------

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KIB|MB|MIB|GB|GIB|TB|TIB)?$/i;
const UNITS: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "120GB", "1.5TiB", "900MB": sizes in the binary units S3 bills in (1 GB = 2^30 bytes). */
export function parseSize(text: string): number {
  const match = SIZE.exec(text.trim());
  if (!match) throw new ConfigError(`--size: "${text}" is not a size such as 120GB, 1.5TB or 900MB`);
  const unit = (match[2] ?? 'B').toUpperCase().charAt(0);
  return Number(match[1]) * (UNITS[unit] ?? 1);
}

export const CostOptionsSchema = z
  .object({
    size: z.string().optional(),
    compressionRatio: z.coerce.number().min(1, 'must be at least 1 (raw size / archive size)').optional(),
    rows: z.coerce.number().int().min(0).optional(),
    avgRowBytes: z.coerce.number().positive('must be a positive number of bytes').optional(),
    monthlyRows: z.coerce.number().int().min(0).optional(),
    months: z.coerce.number().int().min(1).max(600).default(36),
    region: z.string().default('us-east-1'),
    json: z.boolean().default(false),
  })
  .refine((o) => !(o.size !== undefined && o.rows !== undefined), {
    path: ['size'],
    message: 'give either --size or --rows, not both',
  })
  .refine((o) => o.avgRowBytes === undefined || o.rows !== undefined, {
    path: ['avgRowBytes'],
    message: 'needs --rows',
  });
export type CostOptions = z.infer<typeof CostOptionsSchema>;

export function parseCostOptions(raw: unknown): CostOptions {
  const parsed = CostOptionsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`cost options are invalid:\n${formatIssues(parsed.error)}`);
  return parsed.data;
}

export function pricesFor(region: string): Record<StorageClass, ClassPrice> {
  const prices = (S3_PRICES.regions as Record<string, Record<StorageClass, ClassPrice>>)[region];
  if (!prices) {
    throw new ConfigError(
      `--region: no prices for "${region}"; the table (${S3_PRICES.source}, taken ${S3_PRICES.takenOn}) has ${Object.keys(S3_PRICES.regions).join(', ')}`,
    );
  }
  return prices;
}

/** What gets archived: a backlog written at once, then a steady inflow per month. */
export interface Workload {
  backlog: { rows: number; bytes: number; objects: number };
  monthly: { rows: number; bytes: number; objects: number };
  /** Where the bytes per row came from: measured archives, a given size, or an assumption. */
  basis: string;
}

/** Archives needed for `rows`: batches of at most batchSize rows, and never fewer than the days they span. */
export function archiveObjects(rows: number, batchSize: number, days = 1): number {
  if (rows <= 0) return 0;
  return Math.max(Math.ceil(rows / batchSize), Math.min(days, rows));
}

/** A workload from --size or --rows (no database). */
export function workloadFromOptions(options: CostOptions, batchSize: number): Workload {
  let rows: number;
  let bytes: number;
  let basis: string;
  if (options.size !== undefined) {
    const given = parseSize(options.size);
    bytes = options.compressionRatio ? given / options.compressionRatio : given;
    rows = Math.round(bytes / DEFAULT_ARCHIVE_BYTES_PER_ROW);
    basis = options.compressionRatio
      ? `${options.size} raw / compression ratio ${options.compressionRatio}`
      : `${options.size} of archives`;
  } else if (options.rows !== undefined) {
    rows = options.rows;
    const perRow = options.avgRowBytes
      ? options.avgRowBytes / (options.compressionRatio ?? DEFAULT_COMPRESSION_RATIO)
      : DEFAULT_ARCHIVE_BYTES_PER_ROW;
    bytes = rows * perRow;
    basis = options.avgRowBytes
      ? `${options.avgRowBytes} bytes/row raw / compression ratio ${options.compressionRatio ?? DEFAULT_COMPRESSION_RATIO}`
      : `${DEFAULT_ARCHIVE_BYTES_PER_ROW} bytes/row (measured gzip 6 archives of the benchmark table)`;
  } else {
    throw new ConfigError('cost needs --size, --rows, or a database to measure (--config or --demo)');
  }
  const perRow = rows > 0 ? bytes / rows : DEFAULT_ARCHIVE_BYTES_PER_ROW;
  const monthlyRows = options.monthlyRows ?? 0;
  return {
    backlog: { rows, bytes, objects: archiveObjects(rows, batchSize) },
    monthly: {
      rows: monthlyRows,
      bytes: monthlyRows * perRow,
      objects: archiveObjects(monthlyRows, batchSize, DAYS_PER_MONTH),
    },
    basis,
  };
}

// ----- the model ---------------------------------------------------------------------------------------------------

/** Where archives live over their life: the class they are written in, lifecycle transitions, expiry. */
export interface StoragePlan {
  label: string;
  writeClass: StorageClass;
  transitions: { storageClass: StorageClass; afterDays: number }[];
  expireAfterDays?: number;
}

export interface PlanEstimate {
  plan: string;
  /** Storage of the backlog in its first month, and of everything archived by the last month. */
  firstMonthStorage: number;
  lastMonthStorage: number;
  /** Writing (PUTs, verify reads), lifecycle transition requests and Intelligent-Tiering monitoring. */
  requests: number;
  /** Charges for leaving a class (transition or expiry) before its minimum storage duration. */
  earlyDeletion: number;
  /** Storage + requests + early deletion over the horizon. */
  cumulative: number;
  /** Reading every archive back once at the end of the horizon (a full restore), retrieval and requests. */
  restoreAll: number;
  minStorageDays: number;
}

interface Cohort {
  writtenMonth: number;
  bytes: number;
  objects: number;
}

/** The class an archive of age `day` is in under `plan` (undefined once expired). */
function classAt(plan: StoragePlan, day: number): StorageClass | undefined {
  if (plan.expireAfterDays !== undefined && day >= plan.expireAfterDays) return undefined;
  let current = plan.writeClass;
  for (const t of plan.transitions) if (day >= t.afterDays) current = t.storageClass;
  return current;
}

/** Ages (days) at which the class changes: transitions and expiry. */
function boundaries(plan: StoragePlan): number[] {
  return [...plan.transitions.map((t) => t.afterDays), plan.expireAfterDays ?? Number.POSITIVE_INFINITY];
}

/** The model's per-class rules, with the few that differ from the table's plain fields. */
class PriceModel {
  constructor(
    readonly prices: Record<StorageClass, ClassPrice>,
    readonly region: PricedRegion,
  ) {}

  /** $ per GiB-month of an object of `objectBytes` in `storageClass` at `day` days since it entered it. */
  storageRate(storageClass: StorageClass, daysInClass: number, objectBytes: number): number {
    if (storageClass !== 'INTELLIGENT_TIERING') return this.prices[storageClass].storagePerGbMonth;
    const it = S3_PRICES.intelligentTiering[this.region];
    if (objectBytes < it.monitoredFromBytes) return this.prices.INTELLIGENT_TIERING.storagePerGbMonth;
    // Archives are never read after verify, so Intelligent-Tiering moves them down on its own.
    if (daysInClass >= it.archiveInstantAfterDays) return it.archiveInstantPerGbMonth;
    if (daysInClass >= it.infrequentAfterDays) return it.infrequentPerGbMonth;
    return this.prices.INTELLIGENT_TIERING.storagePerGbMonth;
  }

  /** Billed bytes of `objects` objects totalling `bytes` in a class: minimum object size, archive overhead. */
  billed(storageClass: StorageClass, bytes: number, objects: number): { cls: number; standard: number } {
    if (objects === 0) return { cls: 0, standard: 0 };
    const size = bytes / objects;
    const floor = Math.max(size, this.prices[storageClass].minBillableBytes) * objects;
    if (isColdStorageClass(storageClass)) {
      return {
        cls: floor + objects * S3_PRICES.archiveOverhead.classBytes,
        standard: objects * S3_PRICES.archiveOverhead.standardBytes,
      };
    }
    return { cls: floor, standard: 0 };
  }

  monitoring(storageClass: StorageClass, bytes: number, objects: number): number {
    if (storageClass !== 'INTELLIGENT_TIERING' || objects === 0) return 0;
    const it = S3_PRICES.intelligentTiering[this.region];
    return bytes / objects >= it.monitoredFromBytes ? (objects / 1000) * it.monitoringPer1000Objects : 0;
  }
}

/**
 * Cost of one cohort (archives written together) over the age window [from, to) days: storage day by day in the
 * class (and Intelligent-Tiering tier) of each age, then transition requests and early-deletion charges for each
 * class change inside the window.
 */
function cohortWindow(
  model: PriceModel,
  plan: StoragePlan,
  cohort: Cohort,
  from: number,
  to: number,
): { storage: number; requests: number; earlyDeletion: number } {
  const size = cohort.objects > 0 ? cohort.bytes / cohort.objects : 0;
  const write = model.prices[plan.writeClass];
  // Manifests stay in the class they were written in: objects under 128 KiB never transition.
  const manifests =
    Math.max(MANIFEST_BYTES, write.minBillableBytes) * cohort.objects * write.storagePerGbMonth;
  let storage = 0;
  let requests = 0;
  let earlyDeletion = 0;
  for (let day = from; day < to; day += 1) {
    const cls = classAt(plan, day);
    if (!cls) break;
    const rate = model.storageRate(cls, day - enteredAt(plan, day), size);
    const billed = model.billed(cls, cohort.bytes, cohort.objects);
    storage +=
      (billed.cls * rate + billed.standard * model.prices.STANDARD.storagePerGbMonth + manifests) /
      GIB /
      DAYS_PER_MONTH;
    requests += model.monitoring(cls, cohort.bytes, cohort.objects) / DAYS_PER_MONTH;
  }
  for (const change of boundaries(plan)) {
    if (change < from || change >= to) continue;
    const before = classAt(plan, change - 1);
    const after = classAt(plan, change);
    if (!before || before === after) continue;
    const daysIn = change - enteredAt(plan, change - 1);
    const min = model.prices[before].minDays;
    if (daysIn < min) {
      const billed = model.billed(before, cohort.bytes, cohort.objects);
      earlyDeletion +=
        (billed.cls / GIB) * model.prices[before].storagePerGbMonth * ((min - daysIn) / DAYS_PER_MONTH);
    }
    if (after && size >= TRANSITION_MIN_BYTES) {
      requests += (cohort.objects / 1000) * model.prices[after].transitionPer1000;
    }
  }
  return { storage, requests, earlyDeletion };
}

/** The age (days) at which the archive entered the class it is in at `day`. */
function enteredAt(plan: StoragePlan, day: number): number {
  let entered = 0;
  for (const t of plan.transitions) if (day >= t.afterDays) entered = t.afterDays;
  return entered;
}

function writeCost(model: PriceModel, plan: StoragePlan, cohort: Cohort): number {
  const write = model.prices[plan.writeClass];
  const puts =
    (cohort.objects * STAGING_PUTS * model.prices.STANDARD.putPer1000 +
      cohort.objects * PUBLISH_PUTS * write.putPer1000) /
    1000;
  // Verify reads the archive back at once: in an infrequent-access class that read is a retrieval.
  const verify =
    (cohort.objects * VERIFY_GETS * write.getPer1000) / 1000 + (cohort.bytes / GIB) * write.retrievalPerGb;
  return puts + verify;
}

function restoreCost(model: PriceModel, plan: StoragePlan, cohort: Cohort, age: number): number {
  const cls = classAt(plan, age);
  if (!cls) return 0;
  const price = model.prices[cls];
  const perObject = (price.getPer1000 + price.restoreRequestPer1000) / 1000;
  return cohort.objects * perObject + (cohort.bytes / GIB) * price.retrievalPerGb;
}

/** Monthly and cumulative cost of a workload under one storage plan over `months` months. */
export function estimatePlan(
  workload: Workload,
  plan: StoragePlan,
  months: number,
  region: string,
): PlanEstimate {
  const model = new PriceModel(pricesFor(region), region as PricedRegion);
  const cohorts: Cohort[] = [{ writtenMonth: 0, ...workload.backlog }];
  for (let m = 0; m < months; m += 1) {
    if (workload.monthly.objects > 0) cohorts.push({ writtenMonth: m, ...workload.monthly });
  }
  let storageTotal = 0;
  let requests = 0;
  let earlyDeletion = 0;
  let firstMonthStorage = 0;
  let lastMonthStorage = 0;
  for (const cohort of cohorts) {
    if (cohort.objects === 0) continue;
    requests += writeCost(model, plan, cohort);
    for (let m = cohort.writtenMonth; m < months; m += 1) {
      const age = (m - cohort.writtenMonth) * DAYS_PER_MONTH;
      const window = cohortWindow(model, plan, cohort, age, age + DAYS_PER_MONTH);
      storageTotal += window.storage;
      requests += window.requests;
      earlyDeletion += window.earlyDeletion;
      if (m === 0 && cohort.writtenMonth === 0 && cohort === cohorts[0]) firstMonthStorage = window.storage;
      if (m === months - 1) lastMonthStorage += window.storage;
    }
  }
  const restoreAll = cohorts.reduce(
    (sum, c) => sum + restoreCost(model, plan, c, (months - c.writtenMonth) * DAYS_PER_MONTH),
    0,
  );
  return {
    plan: plan.label,
    firstMonthStorage,
    lastMonthStorage,
    requests,
    earlyDeletion,
    cumulative: storageTotal + requests + earlyDeletion,
    restoreAll,
    minStorageDays: Math.max(
      model.prices[plan.writeClass].minDays,
      ...plan.transitions.map((t) => model.prices[t.storageClass].minDays),
    ),
  };
}

/**
 * The plans compared: each class on its own (GLACIER and DEEP_ARCHIVE cannot be written directly, as verify must
 * read an archive at once, so they are reached by a transition at 30 days), then the config's own lifecycle.
 */
export function plansFor(config?: DeploymentConfig): StoragePlan[] {
  const plans: StoragePlan[] = WRITABLE_STORAGE_CLASSES.map((c) => ({
    label: c,
    writeClass: c,
    transitions: [],
  }));
  for (const cold of COLD_STORAGE_CLASSES) {
    plans.push({
      label: `${cold} (STANDARD, then lifecycle at 30 days)`,
      writeClass: 'STANDARD',
      transitions: [{ storageClass: cold, afterDays: 30 }],
    });
  }
  if (config) {
    const storage = config.aws.storage;
    const steps = [
      config.s3.storageClass,
      ...(storage?.transitions ?? []).map((t) => `${t.storageClass}@${t.afterDays}d`),
    ];
    plans.push({
      label: `config: ${steps.join(' → ')}${storage?.expireAfterDays ? `, expire@${storage.expireAfterDays}d` : ''}`,
      writeClass: config.s3.storageClass,
      transitions: storage?.transitions ?? [],
      expireAfterDays: storage?.expireAfterDays,
    });
  }
  return plans;
}

export interface CostReport {
  region: string;
  prices: { source: string; takenOn: string; currency: string };
  months: number;
  workload: Workload;
  tables?: TableMeasurement[];
  plans: PlanEstimate[];
}

export function costReport(
  workload: Workload,
  plans: StoragePlan[],
  months: number,
  region: string,
  tables?: TableMeasurement[],
): CostReport {
  return {
    region,
    prices: { source: S3_PRICES.source, takenOn: S3_PRICES.takenOn, currency: S3_PRICES.currency },
    months,
    workload,
    tables,
    plans: plans.map((plan) => estimatePlan(workload, plan, months, region)),
  };
}

const usd = (value: number) => (value < 10 ? `$${value.toFixed(2)}` : `$${formatNumber(Math.round(value))}`);
const gib = (bytes: number) => `${(bytes / GIB).toFixed(bytes < GIB ? 3 : 1)} GiB`;

export function formatCostReport(report: CostReport): string {
  const w = report.workload;
  const lines = [
    `Archive: ${formatNumber(w.backlog.rows)} rows, ${gib(w.backlog.bytes)} in ${formatNumber(w.backlog.objects)} archives now; ` +
      `then ${formatNumber(w.monthly.rows)} rows (${gib(w.monthly.bytes)}) a month. Basis: ${w.basis}.`,
  ];
  for (const t of report.tables ?? []) {
    lines.push(
      `  ${t.database}/${t.table}: ${formatNumber(t.rows)} rows, ${formatNumber(t.eligibleRows)} older than ${t.retentionDays} days, ` +
        `${formatNumber(t.monthlyRows)} a month, ${t.archiveBytesPerRow.toFixed(1)} archive bytes/row (${t.bytesPerRowSource}), ` +
        `${formatNumber(t.archived.objects)} archives (${gib(t.archived.bytes)}) already`,
    );
  }
  lines.push('');
  const header = [
    'plan',
    'month 1',
    `month ${report.months}`,
    'requests',
    'early del.',
    `${report.months} months`,
    'restore all',
    'min days',
  ];
  const rows = report.plans.map((p) => [
    p.plan,
    usd(p.firstMonthStorage),
    usd(p.lastMonthStorage),
    usd(p.requests),
    usd(p.earlyDeletion),
    usd(p.cumulative),
    usd(p.restoreAll),
    String(p.minStorageDays),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  lines.push(line(header), ...rows.map(line));
  lines.push(
    '',
    `month 1 / month ${report.months}: storage per month; requests: writes, verify reads, transitions, monitoring; ` +
      'restore all: reading every archive back once at the end (Standard retrieval tier for GLACIER/DEEP_ARCHIVE).',
    `Prices: ${report.region}, ${report.prices.currency}, ${report.prices.source}, taken ${report.prices.takenOn}; ` +
      'storage at the first 50 TB tier; data transfer out of the region is not included.',
  );
  return lines.join('\n');
}

// ----- live tables -------------------------------------------------------------------------------------------------

export interface TableMeasurement {
  database: string;
  table: string;
  rows: number;
  eligibleRows: number;
  monthlyRows: number;
  retentionDays: number;
  /** Days between the oldest eligible row and the cut-off: archives never span two UTC days. */
  eligibleDays: number;
  archiveBytesPerRow: number;
  bytesPerRowSource: 'measured archives' | 'row width' | 'assumed';
  batchSize: number;
  /** Archives already in the bucket: they are stored (and billed) too. */
  archived: { bytes: number; objects: number };
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
  store?: ArchiveStore,
): Promise<TableMeasurement> {
  const table = resolveTable(config, database, ref);
  const relation = await findRelation(client, table);
  if (!relation) throw new ConfigError(`table ${ref} of database ${database} does not exist`);
  const kind = await timestampKind(client, relation.oid, table.timestampColumn);
  const instant = (value: string) =>
    kind === 'timestamptz' ? value : `(${value} AT TIME ZONE ${quoteLiteral(table.timestampTimeZone)})`;
  const stats = await client.query<{
    reltuples: string | null;
    width: string | null;
    bounds: string[] | null;
  }>(
    `SELECT (SELECT sum(c.reltuples) FILTER (WHERE c.reltuples > 0)
               FROM pg_catalog.pg_partition_tree($1::regclass) p JOIN pg_catalog.pg_class c ON c.oid = p.relid)::text AS reltuples,
            (SELECT sum(s.avg_width) FROM pg_catalog.pg_stats s WHERE s.schemaname = $2 AND s.tablename = $3)::text AS width,
            (SELECT array_agg((extract(epoch FROM ${instant(`u.b::${kind}`)}) * 1000)::text ORDER BY u.ord)
               FROM pg_catalog.pg_stats s, unnest(s.histogram_bounds::text::text[]) WITH ORDINALITY AS u(b, ord)
              WHERE s.schemaname = $2 AND s.tablename = $3 AND s.attname = $4) AS bounds`,
    [relation.oid, table.schema, table.name, table.timestampColumn],
  );
  const s = stats.rows[0];
  let rows = Number(s?.reltuples ?? 0);
  let eligible: number;
  let monthly: number;
  let oldestDays: number;
  const times = (s?.bounds ?? []).map(Number).filter(Number.isFinite);
  const now = Date.now();
  // The cut-off a run started now would take (plan's), so eligible rows and days agree with `plan` and the run.
  const cutoff = Date.parse(retentionCutoff(now, table.retentionDays));
  const monthAgo = Date.parse(retentionCutoff(now, DAYS_PER_MONTH));
  if (rows > 0 && times.length >= 2) {
    eligible = Math.round(rows * histogramShare(times, cutoff));
    monthly = Math.round(rows * (1 - histogramShare(times, monthAgo)));
    oldestDays = Math.max(0, (now - (times[0] ?? now)) / 86_400_000);
  } else {
    const column = instant(`t.${quoteIdent(table.timestampColumn)}`);
    const counted = await client.query<{
      rows: string;
      eligible: string;
      monthly: string;
      oldest: string | null;
    }>(
      `SELECT count(*)::text AS rows,
              count(*) FILTER (WHERE ${column} < $1::timestamptz)::text AS eligible,
              count(*) FILTER (WHERE ${column} >= $2::timestamptz)::text AS monthly,
              extract(epoch FROM now() - min(${column}))::text AS oldest
         FROM ${rowSourceSql({ ...table, partitioned: relation.relkind === 'p' })} AS t`,
      [new Date(cutoff).toISOString(), new Date(monthAgo).toISOString()],
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
export async function measureArchives(
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

/**
 * The workload of measured tables: the archives they already have plus their eligible rows now, and the rows each
 * month adds. Existing archives are counted as written now (their requests are counted once more: a small overstatement).
 */
export function workloadFromTables(tables: TableMeasurement[]): Workload {
  const sum = (pick: (t: TableMeasurement) => number) => tables.reduce((total, t) => total + pick(t), 0);
  const sources = [...new Set(tables.map((t) => t.bytesPerRowSource))];
  return {
    backlog: {
      rows: sum((t) => t.eligibleRows),
      bytes: sum((t) => t.archived.bytes + t.eligibleRows * t.archiveBytesPerRow),
      objects: sum((t) => t.archived.objects + archiveObjects(t.eligibleRows, t.batchSize, t.eligibleDays)),
    },
    monthly: {
      rows: sum((t) => t.monthlyRows),
      bytes: sum((t) => t.monthlyRows * t.archiveBytesPerRow),
      objects: sum((t) => archiveObjects(t.monthlyRows, t.batchSize, DAYS_PER_MONTH)),
    },
    basis: `PostgreSQL statistics; bytes per row from ${sources.join(', ')}`,
  };
}
