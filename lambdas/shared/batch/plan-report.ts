import type pg from 'pg';
import { z } from 'zod';
import { OBJECT_SPANS, type ObjectSpan, SMALL_OBJECT_BYTES, suggestedObjectSpan } from '../archive/format.js';
import type { ResolvedTable, TableGovernance } from '../config/resolved-table.js';
import type { ArchiverConfig } from '../config/schema.js';
import { inReadOnlyTransaction } from '../database/db.js';
import { describeTable, type TableShape } from '../database/table-shape.js';
import {
  eligibleWindowSql,
  qualifiedName,
  rowLineSql,
  rowSourceSql,
  timestampAsInstantSql,
} from '../database/table-sql.js';
import { valueRefusal } from '../database/value-refusal.js';
import { ArchiverError } from '../errors/step-errors.js';
import type { StepDeps } from '../step/step-deps.js';
import { batchesForDays } from './batch-objects.js';
import { activeHold, refuseHeldPartition } from './holds.js';

/**
 * Compressed/uncompressed size assumed for gzip of JSON lines when a table has no archive yet to measure. 0.15 is
 * conservative for audit rows (the predecessor tool measured about 0.1 at level 6 on its benchmark table).
 */
export const ASSUMED_COMPRESSION_RATIO = 0.15;
/** Rows sampled for the average line width; enough for an estimate, cheap on any table. */
const WIDTH_SAMPLE_ROWS = 1000;

/** What one table's archive run would do, and why it might not start. Counts and names only, never row values. */
export const TablePlanSchema = z.object({
  database: z.string(),
  table: z.string(),
  /**
   * `archive`: would archive; `nothing`: no eligible row; `held`/`locked`: would be skipped; `unusable`: refused;
   * `uncounted`: its count did not end within the plan step's time (see PLAN_RETURN_MARGIN_MS).
   */
  action: z.enum(['archive', 'nothing', 'held', 'locked', 'unusable', 'uncounted']),
  cutoff: z.string(),
  eligibleRows: z.number().int().nonnegative(),
  /** Batches export would cut (batch-objects.ts batchesForDays): days in turn up to the batch size. */
  batches: z.number().int().nonnegative(),
  /** Batches beyond maxBatchesPerRun are left to later runs. */
  runsNeeded: z.number().int().nonnegative(),
  estimatedBytes: z.number().nonnegative(),
  /** How estimatedBytes was reached: `measured` (bytes/row of this table's archives) or `assumed` compression. */
  bytesBasis: z.enum(['measured', 'assumed', 'none']),
  bytesNote: z.string(),
  /** The table's `objectSpan`, and what its objects would weigh, with the span suggested when another fits better. */
  objectSpan: z.enum(OBJECT_SPANS),
  objectSpanNote: z.string(),
  /** ISO UTC timestamp of the oldest eligible row. */
  oldestRow: z.string().nullable(),
  /** Whether the count could use an index on the timestamp column or had to scan the table. */
  countMethod: z.enum(['index', 'sequential-scan', 'none']),
  lock: z.string(),
  legalHold: z.string().nullable(),
  retention: z.string(),
  encryption: z.string(),
  error: z.string().optional(),
});
export type TablePlan = z.infer<typeof TablePlanSchema>;

export const PlanReportSchema = z.object({
  runId: z.string(),
  plannedAt: z.string(),
  tables: z.array(TablePlanSchema),
});
export type PlanReport = z.infer<typeof PlanReportSchema>;

export interface PlannedTable {
  table: ResolvedTable;
  cutoff: string;
}

export type PlanReportDeps = Pick<
  StepDeps,
  'config' | 'locks' | 'holds' | 'database' | 'now' | 'remainingTimeMs'
>;

/**
 * What a dry run keeps of its invocation's time to return the report. A count runs under a statement_timeout that ends
 * it this long before the function would: in AWS the plan function has a minute, a big table's count can take longer,
 * and a count the function's end left running would go on in PostgreSQL beside each retry's. A table whose count does
 * not end in time is reported `uncounted`, and the others are still counted.
 */
export const PLAN_RETURN_MARGIN_MS = 5_000;
/** Less time than this left for a count: the table is reported `uncounted` without starting one. */
const MIN_COUNT_MS = 1_000;

/**
 * Dry run: what an archive run would do per table, from reads only (catalog, counts through the timestamp index,
 * the lock item, the config). It takes no lease, writes no object or item and changes no row.
 */
export async function buildPlanReport(
  deps: PlanReportDeps,
  runId: string,
  tables: PlannedTable[],
): Promise<PlanReport> {
  const report: TablePlan[] = [];
  for (const planned of tables) report.push(await planTable(deps, planned));
  return { runId, plannedAt: deps.now().toISOString(), tables: report };
}

async function planTable(deps: PlanReportDeps, { table, cutoff }: PlannedTable): Promise<TablePlan> {
  const { database, ref } = table;
  const { config } = deps;
  const state = await deps.locks.get(database, ref);
  const hold = await activeHold(deps, database, ref, table.governance.configHold);
  const now = deps.now().getTime();
  const leased = state.owner !== undefined && (state.expiresAt ?? 0) > now;
  const base: TablePlan = {
    database,
    table: ref,
    action: 'nothing',
    cutoff,
    eligibleRows: 0,
    batches: 0,
    runsNeeded: 0,
    estimatedBytes: 0,
    bytesBasis: 'none',
    bytesNote: '',
    objectSpan: table.objectSpan,
    objectSpanNote: '',
    oldestRow: null,
    countMethod: 'none',
    lock: lockStatus(state, leased),
    legalHold: hold ?? null,
    retention: retentionStatus(table.governance),
    encryption: encryptionStatus(config, table.governance),
  };
  // From now: the secret's fetch and the connection count against the invocation's time too.
  const started = performance.now();
  const functionMs =
    deps.remainingTimeMs === undefined ? undefined : deps.remainingTimeMs() - PLAN_RETURN_MARGIN_MS;
  const statementMs = config.defaults.statementTimeoutSeconds * 1000;
  const countMs = functionMs === undefined ? undefined : Math.min(functionMs, statementMs);
  const deadline = countMs === undefined ? undefined : started + countMs;
  const uncounted: TablePlan = {
    ...base,
    // A table a run would skip anyway says so.
    action: hold ? 'held' : leased ? 'locked' : 'uncounted',
    error:
      countMs === functionMs
        ? `not counted within the plan step's time (${Math.max(0, Math.round((countMs ?? 0) / 1000))} s were left for it): plan this table alone, or from the CLI`
        : `not counted within defaults.statementTimeoutSeconds (${config.defaults.statementTimeoutSeconds} s): raise it for the dry run, or add an index on the timestamp column`,
  };
  if (countMs !== undefined && countMs < MIN_COUNT_MS) return uncounted;
  let counted: Awaited<ReturnType<typeof countEligible>> | undefined;
  try {
    const db = await deps.database(database);
    counted = await db.withConnection(async (client) => {
      // Before each statement that reads rows: what is left of the budget, not the budget again.
      const bound = async () => {
        if (deadline === undefined) return;
        const left = Math.max(1, Math.round(deadline - performance.now()));
        await client.query(`SET LOCAL statement_timeout = ${left}`);
      };
      try {
        // A held partition's rows the run would not take with this table's: it refuses the table (unusable).
        const refuse = (shape: TableShape) =>
          hold ? Promise.resolve() : refuseHeldPartition(deps, client, database, shape);
        return await inReadOnlyTransaction(client, () =>
          countEligible(client, table, cutoff, state, bound, refuse),
        );
      } catch (error) {
        // query_canceled: the budget's statement_timeout (or an operator's cancel) ended the count.
        if (deadline !== undefined && (error as { code?: string }).code === '57014') return undefined;
        throw error;
      }
    });
  } catch (error) {
    // A table the run would refuse: report why (named errors carry no row values) and go on with the others.
    if (!(error instanceof ArchiverError) || error.retryable) throw error;
    return { ...base, action: 'unusable', error: `${error.name}: ${error.message}` };
  }
  if (!counted) return uncounted;
  const maxBatches = config.defaults.maxBatchesPerRun;
  const action = hold ? 'held' : leased ? 'locked' : counted.eligibleRows > 0 ? 'archive' : 'nothing';
  return { ...base, ...counted, action, runsNeeded: Math.ceil(counted.batches / maxBatches) };
}

function lockStatus(state: Awaited<ReturnType<StepDeps['locks']['get']>>, leased: boolean): string {
  const inFlight = state.inFlight
    ? `; a batch is in flight (${state.inFlight.stage}), the next run settles it first`
    : '';
  if (leased)
    return `locked by ${state.owner} until ${new Date(state.expiresAt ?? 0).toISOString()}${inFlight}`;
  if (state.owner) return `free (lease of ${state.owner} expired)${inFlight}`;
  return `free${inFlight}`;
}

function retentionStatus(g: TableGovernance): string {
  const bounds =
    g.minRetentionDays === undefined && g.maxRetentionDays === undefined
      ? 'no policy bounds'
      : `policy ${g.minRetentionDays ?? 1}-${g.maxRetentionDays ?? '∞'} days`;
  return `${g.retentionDays} days, ${bounds}${g.classification ? ` (classification ${g.classification})` : ''}: ok`;
}

function encryptionStatus(config: ArchiverConfig, governance: TableGovernance): string {
  const written = config.s3.kmsKeyId ? `SSE-KMS (${config.s3.kmsKeyId})` : 'bucket default encryption';
  return governance.requiresKms ? `${written}; SSE-KMS required` : written;
}

async function countEligible(
  client: pg.ClientBase,
  table: ResolvedTable,
  cutoff: string,
  state: { totalRows: number; totalBytes: number },
  bound: () => Promise<void>,
  refuse: (shape: TableShape) => Promise<void>,
) {
  await bound();
  const shape = await describeTable(client, table);
  await refuse(shape);
  await bound();
  const window = eligibleWindowSql(shape, cutoff, table.objectSpan);
  const instant = timestampAsInstantSql(shape);
  // Grouped by UTC day as export cuts batches; the WHERE is a range on the bare column, which its index serves.
  const days = await client.query<{ rows: string; oldest: string }>(
    `SELECT count(*)::text AS rows,
            to_char(min(${instant}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS oldest
       FROM ${rowSourceSql(shape)} AS t WHERE ${window}
      GROUP BY to_char(${instant} AT TIME ZONE 'UTC', 'YYYY-MM-DD')
      ORDER BY to_char(${instant} AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
  );
  let eligibleRows = 0;
  let oldestRow: string | null = null;
  for (const day of days.rows) {
    eligibleRows += Number(day.rows);
    if (oldestRow === null || day.oldest < oldestRow) oldestRow = day.oldest;
  }
  const rowsPerObject =
    table.objectSpan === 'day'
      ? days.rows.map((day) => Number(day.rows))
      : rowsByMonth(days.rows.map((day) => ({ day: day.oldest, rows: Number(day.rows) })));
  const batches = batchesForDays(rowsPerObject, table.batchSize);
  const countMethod = (await hasTimestampIndex(client, shape))
    ? ('index' as const)
    : ('sequential-scan' as const);
  await bound();
  const bytes = await estimateBytes(client, shape, window, eligibleRows, state);
  const bytesPerRow = eligibleRows > 0 ? bytes.estimatedBytes / eligibleRows : 0;
  const objectSpanNote =
    days.rows.length > 0 ? spanNote(table.objectSpan, eligibleRows / days.rows.length, bytesPerRow) : '';
  return { eligibleRows, batches, oldestRow, countMethod, ...bytes, objectSpanNote };
}

/** Rows per UTC month, oldest first, from rows per day (each day named by a timestamp in it). */
function rowsByMonth(days: { day: string; rows: number }[]): number[] {
  const months = new Map<string, number>();
  for (const { day, rows } of days) months.set(day.slice(0, 7), (months.get(day.slice(0, 7)) ?? 0) + rows);
  return [...months.values()];
}

const kib = (bytes: number): string => `${Math.max(1, Math.round(bytes / 1024))} KiB`;

/** What the table's objects weigh, and `objectSpan: month` suggested where day objects would be small. */
function spanNote(span: ObjectSpan, rowsPerDay: number, bytesPerRow: number): string {
  const suggested = suggestedObjectSpan(rowsPerDay, bytesPerRow);
  const day = `day objects of about ${kib(suggested.dayObjectBytes)} (${Math.round(rowsPerDay)} rows a day)`;
  if (span === 'month')
    return `month objects of about ${kib(suggested.dayObjectBytes * 30)}; ${day} otherwise`;
  return suggested.span === 'month'
    ? `${day}: objectSpan: month suggested (Standard-IA and Glacier bill an object as ${kib(SMALL_OBJECT_BYTES)} at least)`
    : day;
}

/**
 * Whether a plain (non-partial), valid index leads with the timestamp column, so the eligible range needs no full scan:
 * one a failed CREATE INDEX CONCURRENTLY left invalid is never used.
 */
async function hasTimestampIndex(client: pg.ClientBase, shape: TableShape): Promise<boolean> {
  const result = await client.query<{ indexed: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = $1::regclass AND a.attname = $2 AND i.indpred IS NULL AND i.indisvalid) AS indexed`,
    [qualifiedName(shape), shape.timestampColumn.name],
  );
  return result.rows[0]?.indexed === true;
}

async function estimateBytes(
  client: pg.ClientBase,
  shape: TableShape,
  window: string,
  eligibleRows: number,
  state: { totalRows: number; totalBytes: number },
): Promise<Pick<TablePlan, 'estimatedBytes' | 'bytesBasis' | 'bytesNote'>> {
  if (eligibleRows === 0) return { estimatedBytes: 0, bytesBasis: 'none', bytesNote: 'no eligible rows' };
  if (state.totalRows > 0) {
    const perRow = state.totalBytes / state.totalRows;
    return {
      estimatedBytes: Math.round(perRow * eligibleRows),
      bytesBasis: 'measured',
      bytesNote: `${perRow.toFixed(1)} bytes/row measured over the ${state.totalRows} rows archived so far`,
    };
  }
  // A value export would refuse is met here too: the table is reported as the run would find it.
  const sample = await client
    .query<{ width: number | null }>(
      `SELECT avg(octet_length(${rowLineSql(shape)}) + 1)::float8 AS width
         FROM (SELECT * FROM ${rowSourceSql(shape)} AS t WHERE ${window} LIMIT ${WIDTH_SAMPLE_ROWS}) AS t`,
    )
    .catch((error: unknown) => {
      throw valueRefusal(shape, error);
    });
  const width = sample.rows[0]?.width ?? 0;
  return {
    estimatedBytes: Math.round(width * ASSUMED_COMPRESSION_RATIO * eligibleRows),
    bytesBasis: 'assumed',
    bytesNote: `no archive yet: average line ${width.toFixed(0)} bytes × assumed gzip ratio ${ASSUMED_COMPRESSION_RATIO}`,
  };
}
