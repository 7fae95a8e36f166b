import type { StepDeps } from '../shared/deps.js';
import type { TableOutcome } from '../shared/locks.js';
import type { LockInput, LockOutput } from './schema.js';

/** Keeps the cause short and free of anything but the error's own text (which never carries row values). */
const summarizeCause = (cause: string | undefined): string | undefined => {
  if (!cause) return undefined;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    return (parsed.errorMessage ?? cause).slice(0, 500);
  } catch {
    return cause.slice(0, 500);
  }
};

/**
 * Lock: acquires the table's lease (a second execution finds it held and the table is skipped with that status),
 * or releases it and records the table's outcome for the run summary. Release runs on every path, failure included.
 */
export async function lockTable(input: LockInput, deps: StepDeps): Promise<LockOutput> {
  const finishedAt = deps.now().toISOString();
  if (input.action === 'acquire') {
    const result = await deps.locks.acquire(
      input.database,
      input.table,
      input.owner,
      deps.config.defaults.leaseSeconds,
    );
    if (!result.acquired) {
      const reason = `locked by ${result.holder} until ${new Date(result.expiresAt).toISOString()}`;
      deps.telemetry.metric('TablesSkippedLocked', 'Count', 1, {
        database: input.database,
        table: input.table,
      });
      deps.telemetry.warn('table skipped: lease held by another execution', {
        database: input.database,
        table: input.table,
        reason,
      });
      await deps.locks.recordOutcome(input.runId, {
        database: input.database,
        table: input.table,
        status: 'skipped',
        reason,
        rowsArchived: 0,
        bytesArchived: 0,
        batches: 0,
        budgetReached: false,
        finishedAt,
      });
    }
    return result;
  }
  const released = await deps.locks.release(input.database, input.table, input.lease);
  const status = input.error ? ('failed' as const) : ('succeeded' as const);
  const outcome: TableOutcome = {
    database: input.database,
    table: input.table,
    status,
    rowsArchived: input.progress.rows,
    bytesArchived: input.progress.bytes,
    batches: input.progress.batches,
    budgetReached: input.budgetReached,
    durationSeconds: input.startedAt
      ? (deps.now().getTime() - Date.parse(input.startedAt)) / 1000
      : undefined,
    error: input.error ? `${input.error.Error}: ${summarizeCause(input.error.Cause) ?? ''}` : undefined,
    finishedAt,
  };
  await deps.locks.recordOutcome(input.runId, outcome);
  return { released, status };
}
