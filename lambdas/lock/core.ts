import { activeHold } from '../shared/batch/holds.js';
import { resolveTableIfConfigured } from '../shared/config/resolved-table.js';
import { ConfigError } from '../shared/errors/step-errors.js';
import type { TableOutcome } from '../shared/lock-table/run-records.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import { auditEventId, recordAuditEvent } from '../shared/telemetry/audit-trail.js';
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

/** The table's legal hold, if any: a table the config no longer lists (a deployment during the run) has none there. */
const tableHold = (deps: Pick<StepDeps, 'config' | 'holds'>, input: LockInput) =>
  activeHold(
    deps,
    input.database,
    input.table,
    resolveTableIfConfigured(deps.config, input.database, input.table)?.governance.configHold,
  );

/**
 * Refuses a table execution that claims a run which did not start it for the table. Whoever may start the per-table
 * state machine writes its input, run id included: one started with a running run's id would otherwise record the
 * table's outcome in that run, over the outcome of the run's own execution (a failure read as a success), or for a
 * table the run never planned (standing in for one of its tables that recorded nothing), and the run's summary would
 * count it. A run records the name of each execution it starts (its plan step); a run that recorded none (an
 * execution started by hand under an id of its own) records as before.
 */
async function assertRunsChild(deps: Pick<StepDeps, 'runRecords'>, input: LockInput & { action: 'acquire' }) {
  const started = await deps.runRecords.childOf(input.runId, input.database, input.table);
  if (started === undefined) return;
  // An execution's id (its ARN) ends in its name, which holds no ':'.
  const name = input.owner.slice(input.owner.lastIndexOf(':') + 1);
  if (name !== started)
    throw new ConfigError(
      `execution ${name} is not the one run ${input.runId} started for table ${input.table} of database ${input.database} (${started ?? 'the run does not archive it'}): it may not act or record an outcome in that run; nothing was done`,
    );
}

/**
 * Records the outcome of an acquire that did not take the lease for the run summary, unless the table has one in the
 * run already, and appends the outcome recorded to the audit trail (counts and status only). A late duplicate of an
 * acquire, once the lease went on to other executions, finds it held: its execution recorded how the table ended (a
 * failure, rows archived), which a `skipped` would replace. The event of an outcome recorded before is written again
 * as it was (the same object), in case its writer stopped short of it.
 */
async function recordAcquireOutcome(
  deps: Pick<StepDeps, 'config' | 'store' | 'runRecords'>,
  runId: string,
  outcome: TableOutcome,
): Promise<void> {
  await auditOutcome(deps, runId, await deps.runRecords.recordFirstOutcome(runId, outcome));
}

async function auditOutcome(
  deps: Pick<StepDeps, 'config' | 'store'>,
  runId: string,
  outcome: TableOutcome,
): Promise<void> {
  await recordAuditEvent(deps, {
    id: auditEventId('table-outcome', runId, outcome.database, outcome.table, outcome.status),
    kind: 'table-outcome',
    time: outcome.finishedAt,
    runId,
    database: outcome.database,
    table: outcome.table,
    actor: 'step:lock',
    details: {
      status: outcome.status,
      rowsArchived: outcome.rowsArchived,
      bytesArchived: outcome.bytesArchived,
      batches: outcome.batches,
      budgetReached: outcome.budgetReached,
      ...(outcome.durationSeconds === undefined ? {} : { durationSeconds: outcome.durationSeconds }),
      ...(outcome.reason ? { reason: outcome.reason } : {}),
      ...(outcome.error ? { error: outcome.error } : {}),
    },
  });
}

/** Two outcomes of a table that say the same but when it ended and how long it took. */
function sameOutcome(a: TableOutcome, b: TableOutcome): boolean {
  const said = ({ finishedAt: _end, durationSeconds: _took, ...rest }: TableOutcome) =>
    JSON.stringify(
      Object.entries(rest)
        .filter(([, value]) => value !== undefined)
        .sort(),
    );
  return said(a) === said(b);
}

export type LockDeps = Pick<
  StepDeps,
  'config' | 'store' | 'locks' | 'holds' | 'runRecords' | 'telemetry' | 'now'
>;

/** Batches withdrawn in a run that archived nothing, from which the table fails rather than succeeds. */
const WITHDRAWALS_THAT_FAIL = 3;

/**
 * Lock: acquires the table's lease (a second execution finds it held and the table is skipped with that status),
 * or releases it and records the table's outcome for the run summary. Release runs on every path, failure included.
 * A table under legal hold is never acquired: it is recorded as `held`.
 */
export async function lockTable(input: LockInput, deps: LockDeps): Promise<LockOutput> {
  const finishedAt = deps.now().toISOString();
  if (input.action === 'acquire') {
    await assertRunsChild(deps, input);
    // A late duplicate of this execution's own acquire, after its release: the execution has had its answer, and its
    // outcome is recorded (a hold set since must not overwrite it).
    const { releasedBy } = await deps.locks.get(input.database, input.table);
    if (releasedBy === input.owner) return { acquired: false, holder: input.owner, expiresAt: 0 };
    const hold = await tableHold(deps, input);
    if (hold) {
      deps.telemetry.warn('table skipped: legal hold', { database: input.database, table: input.table });
      await recordAcquireOutcome(deps, input.runId, {
        database: input.database,
        table: input.table,
        status: 'held',
        reason: hold,
        rowsArchived: 0,
        bytesArchived: 0,
        batches: 0,
        budgetReached: false,
        finishedAt,
      });
      return { acquired: false, holder: 'legal hold', expiresAt: 0 };
    }
    const result = await deps.locks.acquire(
      input.database,
      input.table,
      input.owner,
      deps.config.defaults.leaseSeconds,
    );
    // The same, released between the read above and the acquire.
    if (!result.acquired && result.releasedByCaller) return result;
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
      await recordAcquireOutcome(deps, input.runId, {
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
  // Every batch the budget allowed, and at least a few, was withdrawn (the application changes the table's old rows
  // faster than a batch goes through): no progress, which must not read as a success, so the table fails with the
  // last withdrawal's error. One or two (a budget that small) may be a late update that the next run gets past.
  const stuck =
    input.budgetReached &&
    input.progress.rows === 0 &&
    input.progress.batches >= WITHDRAWALS_THAT_FAIL &&
    input.rowsChanged;
  const error = input.error ?? (stuck ? input.rowsChanged : undefined);
  // A hold set during the run stopped export at a batch boundary (see export core): report it as held.
  const hold = error ? undefined : await tableHold(deps, input);
  const status = error ? ('failed' as const) : hold ? ('held' as const) : ('succeeded' as const);
  const computed: TableOutcome = {
    database: input.database,
    table: input.table,
    status,
    reason: hold,
    rowsArchived: input.progress.rows,
    bytesArchived: input.progress.bytes,
    batches: input.progress.batches - input.withdrawnBatches,
    ...(input.withdrawnBatches > 0 ? { withdrawnBatches: input.withdrawnBatches } : {}),
    budgetReached: input.budgetReached,
    durationSeconds: input.startedAt
      ? (deps.now().getTime() - Date.parse(input.startedAt)) / 1000
      : undefined,
    error: error ? `${error.Error}: ${summarizeCause(error.Cause) ?? ''}` : undefined,
    finishedAt,
  };
  // A retried release (its first attempt recorded the outcome, then timed out, or still runs) keeps the end time and
  // duration that attempt recorded, so its audit event reads as the same event. Only an outcome that says all else
  // alike counts (not the acquire's `held` of this run, recorded before a hold was cleared and the table archived),
  // and only one recorded since this execution started (Step Functions gives a name again after 90 days).
  const { startedAt } = input;
  const outcome = await deps.runRecords.settleOutcome(input.runId, input.database, input.table, (recorded) =>
    recorded !== undefined &&
    startedAt !== undefined &&
    Date.parse(recorded.finishedAt) >= Date.parse(startedAt) &&
    sameOutcome(recorded, computed)
      ? { ...computed, finishedAt: recorded.finishedAt, durationSeconds: recorded.durationSeconds }
      : computed,
  );
  await auditOutcome(deps, input.runId, outcome);
  // Per table: a success (its absence over days is a table not archived), and a run that left rows for the next one.
  const label = { database: input.database, table: input.table };
  if (status === 'succeeded') deps.telemetry.metric('TableRunsSucceeded', 'Count', 1, label);
  if (input.budgetReached) deps.telemetry.metric('TablesBudgetReached', 'Count', 1, label);
  return { released, status };
}
