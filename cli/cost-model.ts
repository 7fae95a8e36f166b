import {
  type ObjectSpan,
  SMALL_OBJECT_BYTES,
  suggestedObjectSpan,
} from '../lambdas/shared/archive/format.js';
import type { DeploymentConfig } from '../lambdas/shared/config/deployment-schema.js';
import {
  COLD_STORAGE_CLASSES,
  isColdStorageClass,
  type StorageClass,
  WRITABLE_STORAGE_CLASSES,
} from '../lambdas/shared/config/storage-classes.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { type ClassPrice, type PricedRegion, S3_PRICES } from './cost-prices.js';
import { formatNumber } from './report.js';

/**
 * The cost model of `audit-archiver cost`: a workload (a backlog, then a monthly inflow) priced under each storage
 * plan over a horizon, from the price table in cost-prices.ts. Pure: no database, no S3; commands/cost.ts builds the
 * workload from options or from live measurements (cost-measure.ts) and prints the report.
 */

export const GIB = 1024 ** 3;
/** The model's month; a cohort is the archives written in one. */
export const DAYS_PER_MONTH = 30;
/**
 * Archive bytes per row measured on the benchmark table (JSON lines at the default gzip level 3: 75.2 to 75.3 in
 * `npm run bench`), used until archives exist.
 */
export const DEFAULT_ARCHIVE_BYTES_PER_ROW = 75;
/** Raw PostgreSQL row width to archive bytes: the benchmark table's average row width (180) over its 75 a row. */
export const DEFAULT_COMPRESSION_RATIO = 2.4;
/** A manifest sidecar is about this size (columns, figures, bounds); it is written once per archive. */
const MANIFEST_BYTES = 2_500;
/** PUT-class requests per archive: staging multipart (create, part, complete), copy to its key, manifest. */
const STAGING_PUTS = 3;
const PUBLISH_PUTS = 2;
/** GET-class requests per archive: verify re-reads the object and its manifest, delete checks the object again. */
const VERIFY_GETS = 3;
/** The bucket's lifecycle never transitions smaller objects (S3's default minimum transition size). */
const TRANSITION_MIN_BYTES = 128 * 1024;

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
  /** One archive a day, or (`month`) one a month. */
  objectSpan: ObjectSpan;
  /** Archives already in the bucket: they are stored (and billed) too. */
  archived: { bytes: number; objects: number };
}

/** How many objects `days` consecutive days of a table make at least: one a day, or one a month. */
export const spannedObjects = (objectSpan: ObjectSpan, days: number): number =>
  objectSpan === 'month' ? Math.ceil(days / DAYS_PER_MONTH) : days;
const spans = (t: Pick<TableMeasurement, 'objectSpan'>, days: number): number =>
  spannedObjects(t.objectSpan, days);

/**
 * The size of a table's objects, with `objectSpan: month` suggested where its day objects are small (each object is
 * billed as 128 KiB at least in Standard-IA and Glacier Instant Retrieval): the cost of either span follows from
 * running `cost` again with the table's objectSpan changed.
 */
export function objectSpanNote(t: TableMeasurement): string {
  const rowsPerDay = t.monthlyRows / DAYS_PER_MONTH;
  const suggested = suggestedObjectSpan(rowsPerDay, t.archiveBytesPerRow);
  const kib = (bytes: number) => `${formatNumber(Math.max(1, Math.round(bytes / 1024)))} KiB`;
  if (t.objectSpan === 'month')
    return `1 object a month of about ${kib(suggested.dayObjectBytes * DAYS_PER_MONTH)} (objectSpan: month)`;
  const days = `${DAYS_PER_MONTH} objects a month of about ${kib(suggested.dayObjectBytes)}`;
  return suggested.span === 'month'
    ? `${days}: objectSpan: month would write 1 of about ${kib(suggested.dayObjectBytes * DAYS_PER_MONTH)} instead (billed as ${kib(SMALL_OBJECT_BYTES)} at least each)`
    : days;
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
      objects: sum(
        (t) => t.archived.objects + archiveObjects(t.eligibleRows, t.batchSize, spans(t, t.eligibleDays)),
      ),
    },
    monthly: {
      rows: sum((t) => t.monthlyRows),
      bytes: sum((t) => t.monthlyRows * t.archiveBytesPerRow),
      objects: sum((t) => archiveObjects(t.monthlyRows, t.batchSize, spans(t, DAYS_PER_MONTH))),
    },
    basis: `PostgreSQL statistics; bytes per row from ${sources.join(', ')}`,
  };
}
