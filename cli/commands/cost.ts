import type { Command } from 'commander';
import { z } from 'zod';
import { OBJECT_SPANS } from '../../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../../lambdas/shared/archive/store.js';
import { formatIssues } from '../../lambdas/shared/config/config.js';
import {
  type DeploymentConfig,
  loadDeploymentConfigFile,
} from '../../lambdas/shared/config/deployment-schema.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { openArchiveStore, withLocalEnvironmentReadOnly } from '../context.js';
import {
  archiveObjects,
  type CostReport,
  costReport,
  DAYS_PER_MONTH,
  DEFAULT_ARCHIVE_BYTES_PER_ROW,
  DEFAULT_COMPRESSION_RATIO,
  GIB,
  objectSpanNote,
  plansFor,
  pricesFor,
  spannedObjects,
  type TableMeasurement,
  type Workload,
  workloadFromTables,
} from '../cost-model.js';
import { withDemoDatabase } from '../demo-database.js';
import { print, type SafeText, safeJson, safeLines } from '../output.js';
import { formatNumber } from '../report.js';
import { configureLogging, STATE_DIR_OPTION } from './common.js';

/** `cost`: the archives' S3 cost per storage plan, for a given size or row count, or measured live. */
export function registerCost(program: Command): void {
  program
    .command('cost')
    .description(
      'Estimate the monthly and cumulative S3 cost of the archives, per storage class and with the config’s lifecycle (transitions, expiry): storage, requests, early-deletion charges, and a full restore.',
    )
    .option(
      '--size <size>',
      'archive size, e.g. 120GB (binary units, as S3 bills); raw size with --compression-ratio',
    )
    .option(
      '--compression-ratio <n>',
      // The ratio the estimate divides --avg-row-bytes by unless given; a --size it never divides unasked.
      `raw size / archive size: with --size, the size is a raw one (a --size without it is the archives’ size); with --avg-row-bytes, default ${DEFAULT_COMPRESSION_RATIO}`,
    )
    .option('--rows <n>', 'rows to archive now')
    .option('--avg-row-bytes <n>', 'average raw row width in bytes (with --rows)')
    .option('--monthly-rows <n>', 'rows archived each month afterwards (with --size or --rows)', '0')
    .option(
      '--days <n>',
      'UTC days the rows of --size or --rows span, oldest to the cut-off: a run writes one archive a day (a month with --object-span month) at least; default: from --monthly-rows',
    )
    .option(
      '--object-span <span>',
      'with --size or --rows: day or month, as the tables’ objectSpan (default: day)',
    )
    .option(
      '-c, --config <file>',
      'config: its lifecycle (aws.storage), and, without --size/--rows, its tables measured live',
    )
    .option('--demo', 'measure the demo database of `npm start` and its archives', false)
    .option('--local', 'with --config: measure the archives in the local state dir', false)
    .option('--bucket <name>', 'with --config: measure the archives in this S3 bucket')
    .option(...STATE_DIR_OPTION)
    .option('--months <n>', 'horizon of the cumulative cost, in months', '36')
    .option('--region <region>', 'AWS region of the prices', 'us-east-1')
    .option('--json', 'print JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  audit-archiver cost --size 120GB --monthly-rows 5000000
  audit-archiver cost --rows 400000000 --avg-row-bytes 180 --days 730 -c archiver.yaml
  audit-archiver cost --demo
Prices: one dated table (cli/cost-prices.ts), us-east-1, from the Amazon S3 pricing page.`,
    )
    .action(runCost);
}

async function runCost(raw: Record<string, unknown>): Promise<void> {
  configureLogging(false);
  const options = parseCostOptions(raw);
  const stateDir = String(raw.stateDir);
  const report = async (
    config: DeploymentConfig | undefined,
    measure?: () => Promise<TableMeasurement[]>,
  ) => {
    const batchSize = config?.defaults.batchSize ?? 50_000;
    const tables =
      options.size === undefined && options.rows === undefined && measure ? await measure() : undefined;
    const workload = tables ? workloadFromTables(tables) : workloadFromOptions(options, batchSize);
    const result = costReport(workload, plansFor(config), options.months, options.region, tables);
    print(options.json ? safeJson(result) : formatCostReport(result));
  };
  // Loaded on use, and only to measure: pg and the database layer (see common.ts).
  const measureAll = async (config: DeploymentConfig, store?: ArchiveStore) =>
    (await import('../cost-measure.js')).measureAll(config, store);
  /** Measures against the local S3 state (archives written by local runs) of a config. */
  const reportLocally = (configPath: string) =>
    withLocalEnvironmentReadOnly(configPath, stateDir, (env) =>
      report(env.config, () => measureAll(env.config, env.deps().store)),
    );
  pricesFor(options.region);
  if (raw.demo) {
    await withDemoDatabase(stateDir, ({ configPath }) => reportLocally(configPath));
    return;
  }
  if (!raw.config) return report(undefined);
  const configPath = String(raw.config);
  if (raw.local) return reportLocally(configPath);
  const config = loadDeploymentConfigFile(configPath);
  // Without --bucket only the tables are measured: the config's bucket is not read unless named.
  const store = raw.bucket ? (await openArchiveStore(config, String(raw.bucket))).store : undefined;
  await report(config, () => measureAll(config, store));
}

/** 1 EiB of archives: more than any table, and well within what the price arithmetic handles. */
const MAX_ARCHIVE_BYTES = 2 ** 60;

// ----- options -----------------------------------------------------------------------------------------------------

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KIB|MB|MIB|GB|GIB|TB|TIB)?$/i;
const UNITS: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "120GB", "1.5TiB", "900MB": sizes in the binary units S3 bills in (1 GB = 2^30 bytes). */
export function parseSize(text: string): number {
  const match = SIZE.exec(text.trim());
  if (!match) throw new ConfigError(`--size: "${text}" is not a size such as 120GB, 1.5TB or 900MB`);
  const unit = (match[2] ?? 'B').toUpperCase().charAt(0);
  return Number(match[1]) * (UNITS[unit] ?? 1);
}

/** A size of zero bytes, however written ("0", "0GB", "0.0 TiB"); one that is no size parseSize names later. */
const isZeroSize = (text: string): boolean => {
  const match = SIZE.exec(text.trim());
  return match !== null && Number(match[1]) === 0;
};

export const CostOptionsSchema = z
  .object({
    size: z.string().optional(),
    compressionRatio: z.coerce.number().min(1, 'must be at least 1 (raw size / archive size)').optional(),
    rows: z.coerce.number().int().min(0).optional(),
    avgRowBytes: z.coerce.number().positive('must be a positive number of bytes').optional(),
    monthlyRows: z.coerce.number().int().min(0).optional(),
    days: z.coerce.number().int().min(1).optional(),
    objectSpan: z.enum(OBJECT_SPANS).optional(),
    months: z.coerce.number().int().min(1).max(600).default(36),
    region: z.string().default('us-east-1'),
    json: z.boolean().default(false),
  })
  // Zero rows now and none afterwards: every figure would be zero, a mistyped value rather than a question.
  .refine((o) => o.rows !== 0 || (o.monthlyRows ?? 0) > 0, {
    path: ['rows'],
    message: 'must be positive (0 only with --monthly-rows, for the rows archived afterwards alone)',
  })
  .refine((o) => o.size === undefined || !isZeroSize(o.size) || (o.monthlyRows ?? 0) > 0, {
    path: ['size'],
    message: 'must be positive (0 only with --monthly-rows, for the rows archived afterwards alone)',
  })
  .refine((o) => !(o.size !== undefined && o.rows !== undefined), {
    path: ['size'],
    message: 'give either --size or --rows, not both',
  })
  .refine((o) => o.avgRowBytes === undefined || o.rows !== undefined, {
    path: ['avgRowBytes'],
    message: 'needs --rows',
  })
  // Measured tables count their own days and objectSpan: either option would be ignored without --size or --rows.
  .refine((o) => o.days === undefined || o.size !== undefined || o.rows !== undefined, {
    path: ['days'],
    message: 'needs --size or --rows (measured tables count their own days)',
  })
  .refine((o) => o.objectSpan === undefined || o.size !== undefined || o.rows !== undefined, {
    path: ['objectSpan'],
    message: 'needs --size or --rows (measured tables have their own objectSpan)',
  })
  // Measured tables take their rows a month from the statistics: a figure given beside them would be dropped unsaid.
  // (Commander's default is "0", so only a positive figure is one the operator gave.)
  .refine((o) => !o.monthlyRows || o.size !== undefined || o.rows !== undefined, {
    path: ['monthlyRows'],
    message: 'needs --size or --rows (measured tables count their own rows a month)',
  })
  // The ratio divides a raw size: --size, or --rows' --avg-row-bytes; rows alone and measured tables have archive bytes.
  .refine((o) => o.compressionRatio === undefined || o.size !== undefined || o.avgRowBytes !== undefined, {
    path: ['compressionRatio'],
    message:
      'needs --size or --avg-row-bytes (a raw size to divide; without them bytes per row are archive bytes, measured or the benchmark’s)',
  });
export type CostOptions = z.infer<typeof CostOptionsSchema>;

export function parseCostOptions(raw: unknown): CostOptions {
  const parsed = CostOptionsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`cost options are invalid:\n${formatIssues(parsed.error)}`);
  return parsed.data;
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
      : `${DEFAULT_ARCHIVE_BYTES_PER_ROW} bytes/row (the benchmark table's archives at gzip level 3)`;
  } else {
    throw new ConfigError('cost needs --size, --rows, or a database to measure (--config or --demo)');
  }
  const perRow = rows > 0 ? bytes / rows : DEFAULT_ARCHIVE_BYTES_PER_ROW;
  const monthlyRows = options.monthlyRows ?? 0;
  // Past this the prices' arithmetic reaches Infinity ("$∞"): such input is a slip of the keyboard, said as one.
  for (const [what, size] of [
    [options.size !== undefined ? '--size' : '--rows × --avg-row-bytes', bytes],
    ['--monthly-rows', monthlyRows * perRow],
  ] as const) {
    if (!(size <= MAX_ARCHIVE_BYTES))
      throw new ConfigError(
        `${what}: ${Number.isFinite(size) ? gib(size) : 'an endless size'} of archives is more than 1 EiB, far beyond any table; check the figures`,
      );
  }
  const days = backlogDays(options, rows, monthlyRows);
  const span = options.objectSpan ?? 'day';
  return {
    backlog: {
      rows,
      bytes,
      objects: archiveObjects(rows, batchSize, spannedObjects(span, days.days)),
    },
    monthly: {
      rows: monthlyRows,
      bytes: monthlyRows * perRow,
      objects: archiveObjects(monthlyRows, batchSize, spannedObjects(span, DAYS_PER_MONTH)),
    },
    basis: rows > 0 ? `${basis}, over ${formatNumber(days.days)} days${days.from}` : basis,
  };
}

/**
 * The UTC days the backlog's rows span. A run writes one object per day (or month) of rows at least, however few, so
 * the span sets the object count, and with it requests and minimum billable sizes, as much as the rows do. Rows
 * arriving at --monthly-rows took rows / (monthly rows / 30) days to accumulate; without either it is not guessed.
 */
function backlogDays(
  options: CostOptions,
  rows: number,
  monthlyRows: number,
): { days: number; from: string } {
  if (options.days !== undefined) return { days: options.days, from: '' };
  if (rows === 0) return { days: 0, from: '' };
  if (monthlyRows > 0)
    return { days: Math.ceil(rows / (monthlyRows / DAYS_PER_MONTH)), from: ' (from --monthly-rows)' };
  throw new ConfigError(
    '--days: cost needs the UTC days the rows span (oldest row to the cut-off), or --monthly-rows to derive them: a run writes one archive per day (or month, --object-span month) at least',
  );
}

// ----- the report ------------------------------------------------------------------------------------------------

const usd = (value: number) => (value < 10 ? `$${value.toFixed(2)}` : `$${formatNumber(Math.round(value))}`);
const gib = (bytes: number) => `${(bytes / GIB).toFixed(bytes < GIB ? 3 : 1)} GiB`;

function formatCostReport(report: CostReport): SafeText {
  const w = report.workload;
  const lines = [
    `Archive: ${formatNumber(w.backlog.rows)} rows, ${gib(w.backlog.bytes)} in ${formatNumber(w.backlog.objects)} archives now; ` +
      `then ${formatNumber(w.monthly.rows)} rows (${gib(w.monthly.bytes)}) a month. Basis: ${w.basis}.`,
  ];
  for (const t of report.tables ?? []) {
    lines.push(
      `  ${t.database}/${t.table}: ${formatNumber(t.rows)} rows, ${formatNumber(t.eligibleRows)} older than ${t.retentionDays} days, ` +
        `${formatNumber(t.monthlyRows)} a month, ${t.archiveBytesPerRow.toFixed(1)} archive bytes/row (${t.bytesPerRowSource}), ` +
        `${formatNumber(t.archived.objects)} archives (${gib(t.archived.bytes)}) already; ${objectSpanNote(t)}`,
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
  // Database and table names come from the config and the database: each stays one line.
  return safeLines(lines);
}
