import type pg from 'pg';
import type { ArchiverConfig, DatabaseConfig } from '../config/schema.js';
import { APPLICATION_NAME } from '../database/db.js';
import type { TableShape } from '../database/table-shape.js';
import { qualifiedName, quoteLiteral } from '../database/table-sql.js';
import { ReplicaLagError } from '../errors/step-errors.js';
import type { Progress } from '../step/table-task.js';
import type { Telemetry } from '../telemetry/powertools.js';

/**
 * Rows/s assumed for a table's first batch of an execution, before one was measured: the slowest export measured
 * on a loaded 2-core machine (bench), so a first batch sized by it ends well within its time budget.
 */
export const ASSUMED_ROWS_PER_SECOND = 2_000;

/**
 * Rows the next batch may hold: `batchSize`, or fewer when the rate of the table's last batch (export to committed
 * delete) says more would not finish within `timeBudgetShare` of the invocation's time. A slow table thus gets
 * smaller batches and the loop, not one invocation, carries the work; never fewer than one row.
 */
export function batchRowLimit(
  batchSize: number,
  defaults: ArchiverConfig['defaults'],
  remainingMs: number | undefined,
  progress: Progress | undefined,
): number {
  if (remainingMs === undefined) return batchSize;
  const rate = progress?.rowsPerSecond || ASSUMED_ROWS_PER_SECOND;
  const budgetSeconds = (remainingMs / 1000) * defaults.timeBudgetShare;
  return Math.max(1, Math.min(batchSize, Math.floor(rate * budgetSeconds)));
}

/** Longest pause yieldToLoad sets: a batch timed long (a slow run) never holds its table for hours. */
export const LOAD_PAUSE_MAX_SECONDS = 900;

/**
 * Seconds to wait before the next batch: at least `pauseBetweenBatchesSeconds`, long enough that the batch's rows over
 * its time plus the pause stay within `maxRowsPerSecond`, and, when the application kept the server busy while the
 * batch was exported (`busySessions`, see ApplicationLoad), long enough that the batch took at most
 * `yieldToLoad.share` of its time plus the pause (at most LOAD_PAUSE_MAX_SECONDS). Whole seconds, as a Wait state
 * takes them.
 */
export function pauseAfterBatch(
  rows: number,
  seconds: number,
  defaults: ArchiverConfig['defaults'],
  busySessions?: number,
): number {
  const forRate = defaults.maxRowsPerSecond ? rows / defaults.maxRowsPerSecond - seconds : 0;
  const { yieldToLoad } = defaults;
  const busy = yieldToLoad && busySessions !== undefined && busySessions >= yieldToLoad.busySessions;
  const forLoad = busy ? Math.min(LOAD_PAUSE_MAX_SECONDS, seconds * (1 / yieldToLoad.share - 1)) : 0;
  return Math.max(defaults.pauseBetweenBatchesSeconds, Math.ceil(Math.max(0, forRate, forLoad)));
}

/** Least time between two samples of ApplicationLoad: a sample costs a round trip and a read of every session. */
export const LOAD_SAMPLE_INTERVAL_MS = 500;

/**
 * The application's load on the server while a batch is exported: the mean number of other client sessions with a
 * transaction under way, sampled from pg_stat_activity before each COPY export starts and once its COPYs ended, at
 * most once per `intervalMs` (a sample before each of a batch's hundreds of small objects took a sixth of export's
 * time). A short batch is judged from one or two readings. A session counts while it runs a
 * statement, and while it is idle in a transaction for at most `idleInTransactionSeconds`: an OLTP client spends
 * most of its transaction between statements, so `active` alone would miss it, but an application that left a
 * transaction open must not throttle the archiver for ever. The archiver's own sessions (other tables of the run) do
 * not count. A role without `pg_read_all_stats` does not see other roles' sessions' state (nor their queries, which
 * may hold personal data, so the archiver does not ask for it): such a session counts while it holds a transaction
 * id or a snapshot, which every role sees: writing, or running a statement.
 */
export class ApplicationLoad {
  private samples = 0;
  private busyTotal = 0;
  private lastSampleAt: number | undefined;
  private readonly idleInTransactionSeconds: number;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(options: { idleInTransactionSeconds?: number; intervalMs?: number; now?: () => number } = {}) {
    this.idleInTransactionSeconds = options.idleInTransactionSeconds ?? 10;
    this.intervalMs = options.intervalMs ?? LOAD_SAMPLE_INTERVAL_MS;
    this.now = options.now ?? Date.now;
  }

  /** Takes a sample unless the last one is less than the interval old. */
  async sample(client: pg.ClientBase): Promise<void> {
    const now = this.now();
    if (this.lastSampleAt !== undefined && now - this.lastSampleAt < this.intervalMs) return;
    this.lastSampleAt = now;
    // pg_stat_activity is read once per transaction unless the snapshot is cleared: export samples in one transaction.
    // Both statements go in one round trip (a simple query, so the number is written into it: it is ours, not input).
    const results = (await client.query(
      `SELECT pg_catalog.pg_stat_clear_snapshot();
       SELECT count(*) FILTER (WHERE CASE
                WHEN state IS NULL THEN backend_xid IS NOT NULL OR backend_xmin IS NOT NULL
                ELSE state = 'active' OR (state LIKE 'idle in transaction%'
                  AND state_change > pg_catalog.clock_timestamp() - ${Number(this.idleInTransactionSeconds)}::float8 * interval '1 second')
              END)::int AS busy
         FROM pg_catalog.pg_stat_activity
        WHERE pid <> pg_catalog.pg_backend_pid() AND application_name IS DISTINCT FROM ${quoteLiteral(APPLICATION_NAME)}
          -- Another role's session shows its role but not its backend type to a role without pg_read_all_stats.
          AND (backend_type = 'client backend' OR (backend_type IS NULL AND usesysid IS NOT NULL))`,
    )) as unknown as pg.QueryResult<{ busy: number }>[];
    this.samples += 1;
    this.busyTotal += results[1]?.rows[0]?.busy ?? 0;
  }

  /** Mean busy sessions over the samples (undefined before the first). */
  busySessions(): number | undefined {
    return this.samples > 0 ? this.busyTotal / this.samples : undefined;
  }
}

interface ReplicaRow {
  name: string;
  lag_seconds: number | null;
}

/**
 * Throws ReplicaLagError while any named replica replays more than `maxLagSeconds` behind, or is not connected (its
 * lag is then unknown). `replay_lag` is measured by the primary from the replica's feedback; an idle primary reports
 * NULL once the replica caught up, which counts as no lag.
 */
export async function checkReplicaLag(
  client: pg.ClientBase,
  replicaLag: DatabaseConfig['replicaLag'],
): Promise<void> {
  if (!replicaLag) return;
  const result = await client.query<ReplicaRow>(
    `SELECT application_name AS name, extract(epoch FROM replay_lag)::float8 AS lag_seconds
       FROM pg_catalog.pg_stat_replication WHERE application_name = ANY ($1::text[])`,
    [replicaLag.replicas],
  );
  const problems = replicaLagProblems(result.rows, replicaLag);
  if (problems.length > 0) {
    throw new ReplicaLagError(`pausing before the next batch: ${problems.join('; ')}`);
  }
}

/** What is wrong with the named replicas' lag, empty when every one is connected and within the limit. */
export function replicaLagProblems(
  rows: ReplicaRow[],
  replicaLag: NonNullable<DatabaseConfig['replicaLag']>,
): string[] {
  return replicaLag.replicas.flatMap((name) => {
    const lags = rows.filter((r) => r.name === name).map((r) => r.lag_seconds ?? 0);
    if (lags.length === 0) return [`replica "${name}" is not connected`];
    const worst = Math.max(...lags);
    return worst > replicaLag.maxLagSeconds
      ? [`replica "${name}" lags ${worst.toFixed(1)} s (limit ${replicaLag.maxLagSeconds} s)`]
      : [];
  });
}

/**
 * `VACUUM (ANALYZE)` after a table's run: reclaims the deleted rows' space for reuse and refreshes the planner's
 * statistics. The rows are archived already, so a failure (e.g. statement timeout) is reported, never fatal. So is a
 * VACUUM that ends with a warning: PostgreSQL skips a table the role may not maintain (neither its owner nor, from
 * 17, granted MAINTAIN) with a WARNING, not an error. Warnings are told by SQLSTATE class 01, not by their severity's
 * text, which lc_messages translates; their text is not logged: ANALYZE runs the functions of expression indexes on
 * sampled rows, and such a function may raise a warning holding a value.
 */
export async function vacuumTable(
  client: pg.ClientBase,
  shape: Pick<TableShape, 'schema' | 'name'>,
  telemetry: Telemetry,
  label: { database: string; table: string },
): Promise<void> {
  const started = Date.now();
  const warnings: string[] = [];
  const onNotice = (notice: { code?: string }) => {
    if (notice.code?.startsWith('01')) warnings.push(notice.code);
  };
  client.on('notice', onNotice);
  try {
    await client.query(`VACUUM (ANALYZE) ${qualifiedName(shape)}`);
    if (warnings.length === 0) telemetry.info('table vacuumed', { ...label, ms: Date.now() - started });
    else {
      telemetry.metric('VacuumFailures', 'Count', 1, label);
      telemetry.warn(
        'VACUUM (ANALYZE) ended with a warning: the table may not be vacuumed (PostgreSQL skips one the role may not maintain with a warning); the archived rows stay deleted',
        { ...label, codes: warnings },
      );
    }
  } catch (error) {
    telemetry.metric('VacuumFailures', 'Count', 1, label);
    telemetry.warn('VACUUM (ANALYZE) failed; the archived rows stay deleted', {
      ...label,
      error: (error as Error).name,
      code: (error as { code?: string }).code,
    });
  } finally {
    client.off('notice', onNotice);
  }
}
