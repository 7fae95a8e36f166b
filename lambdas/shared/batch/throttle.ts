import type pg from 'pg';
import type { ArchiverConfig, DatabaseConfig } from '../config/schema.js';
import type { TableShape } from '../database/table-shape.js';
import { qualifiedName } from '../database/table-sql.js';
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

/**
 * Seconds to wait before the next batch: at least `pauseBetweenBatchesSeconds`, and long enough that the batch's
 * rows over its time plus the pause stay within `maxRowsPerSecond`. Whole seconds, as a Wait state takes them.
 */
export function pauseAfterBatch(rows: number, seconds: number, defaults: ArchiverConfig['defaults']): number {
  const forRate = defaults.maxRowsPerSecond ? rows / defaults.maxRowsPerSecond - seconds : 0;
  return Math.max(defaults.pauseBetweenBatchesSeconds, Math.ceil(Math.max(0, forRate)));
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
 * statistics. The rows are archived already, so a failure (e.g. statement timeout) is reported, never fatal.
 */
export async function vacuumTable(
  client: pg.ClientBase,
  shape: Pick<TableShape, 'schema' | 'name'>,
  telemetry: Telemetry,
  label: { database: string; table: string },
): Promise<void> {
  const started = Date.now();
  try {
    await client.query(`VACUUM (ANALYZE) ${qualifiedName(shape)}`);
    telemetry.info('table vacuumed', { ...label, ms: Date.now() - started });
  } catch (error) {
    telemetry.metric('VacuumFailures', 'Count', 1, label);
    telemetry.warn('VACUUM (ANALYZE) failed; the archived rows stay deleted', {
      ...label,
      error: (error as Error).name,
      code: (error as { code?: string }).code,
    });
  }
}
