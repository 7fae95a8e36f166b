import type { TableOutcome } from '../shared/lock-table/run-records.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import { auditEventId, recordAuditEvent } from '../shared/telemetry/audit-trail.js';
import { runNotifications } from '../shared/telemetry/notifications.js';
import type { SummaryInput, SummaryOutput } from './schema.js';

const MAX_TABLES_IN_SUMMARY = 100;

/**
 * Sends the run's notifications through the injected publisher. A publish that fails (after the SDK's own retries)
 * is logged, not thrown: the run's work is done and recorded, and a failed run still raises the execution alarm.
 */
async function notify(
  summary: SummaryOutput,
  deps: Pick<StepDeps, 'config' | 'publisher' | 'telemetry' | 'now'>,
): Promise<void> {
  if (!deps.publisher) return;
  const { send, suppressed } = runNotifications(summary, deps.config.notifications, deps.now());
  if (suppressed > 0)
    deps.telemetry.info('notifications held back: quiet hours', { runId: summary.runId, suppressed });
  for (const message of send) {
    try {
      await deps.publisher.publish(message);
    } catch (error) {
      deps.telemetry.warn('notification not sent', {
        runId: summary.runId,
        scope: message.scope,
        error: (error as Error).name,
      });
    }
  }
}

export type SummaryDeps = Pick<
  StepDeps,
  'config' | 'store' | 'runRecords' | 'telemetry' | 'now' | 'publisher'
>;

/**
 * Whether the run ends as a success: the rule of the archive state machine's `AnyTableFailed?` choice, which reads
 * this summary (no table failed, and not every table that could run found its lease held).
 */
const runSucceeds = (summary: SummaryOutput): boolean =>
  summary.failed === 0 && !(summary.succeeded === 0 && summary.skipped > 0);

/**
 * The outcomes, a table whose iteration of the run's Map failed counted as failed whatever it recorded. A child's name
 * is no secret (it digests the run's name and start, with the table's place in the plan): whoever may start the
 * per-table state machine can take it first, with the run's id and a cut-off that finds nothing, and record the table
 * succeeded; the run's own StartExecution then meets ExecutionAlreadyExists. A StartExecution retried after its own
 * child ended meets it too and cannot tell the two apart: the table fails, and the next run archives what is left.
 */
function countFailedIterations(
  input: SummaryInput,
  recorded: { outcome: TableOutcome; child?: string }[],
): TableOutcome[] {
  const failed = new Map<string, boolean>(
    (input.laneResults ?? [])
      .flat()
      .flatMap((result) =>
        result.status === 'FAILED'
          ? [[`${input.childKey}-${result.n}`, result.nameTaken === true] as const]
          : [],
      ),
  );
  return recorded.map(({ outcome, child }) => {
    const nameTaken = child === undefined ? undefined : failed.get(child);
    if (nameTaken === undefined || outcome.status === 'failed') return outcome;
    const why = nameTaken
      ? 'could not start: an execution of its name already existed (one the run did not start, or its own, ended before a retried start)'
      : 'failed';
    return {
      ...outcome,
      status: 'failed',
      error: `the run's execution ${child} for the table ${why}; the ${outcome.status} outcome recorded does not count`,
    };
  });
}

/**
 * Summary: totals of the run from the outcomes each table recorded since it started. A table that recorded nothing
 * (its execution died before releasing its lease) counts as failed, and so does one whose child execution the run did
 * not see succeed, so a run can never look cleaner than it was.
 */
export async function summarizeRun(input: SummaryInput, deps: SummaryDeps): Promise<SummaryOutput> {
  const outcomes = countFailedIterations(
    input,
    await deps.runRecords.listOutcomesByChild(input.runId, input.startedAt),
  );
  const count = (status: string) => outcomes.filter((o) => o.status === status).length;
  const missing = Math.max(0, input.tableCount - outcomes.length);
  const failedFirst = [...outcomes].sort(
    (a, b) => Number(b.status === 'failed') - Number(a.status === 'failed'),
  );
  const summary: SummaryOutput = {
    runId: input.runId,
    tables: input.tableCount,
    succeeded: count('succeeded'),
    skipped: count('skipped'),
    held: count('held'),
    failed: count('failed') + missing,
    rowsArchived: outcomes.reduce((sum, o) => sum + o.rowsArchived, 0),
    bytesArchived: outcomes.reduce((sum, o) => sum + o.bytesArchived, 0),
    batches: outcomes.reduce((sum, o) => sum + o.batches, 0),
    perTable: failedFirst.slice(0, MAX_TABLES_IN_SUMMARY).map((o) => ({
      database: o.database,
      table: o.table,
      status: o.status,
      rowsArchived: o.rowsArchived,
      bytesArchived: o.bytesArchived,
      batches: o.batches,
      budgetReached: o.budgetReached,
      durationSeconds: o.durationSeconds,
      reason: o.reason,
      error: o.error,
    })),
    perTableTruncated: outcomes.length > MAX_TABLES_IN_SUMMARY,
  };
  deps.telemetry.info('run summary', { ...summary, perTable: undefined });
  await recordAuditEvent(deps, {
    id: auditEventId('run-finished', input.runId),
    kind: 'run-finished',
    time: deps.now().toISOString(),
    runId: input.runId,
    actor: 'step:summary',
    details: {
      tables: summary.tables,
      succeeded: summary.succeeded,
      skipped: summary.skipped,
      held: summary.held,
      failed: summary.failed,
      rowsArchived: summary.rowsArchived,
      bytesArchived: summary.bytesArchived,
      batches: summary.batches,
    },
  });
  await notify(summary, deps);
  // What the no-successful-run alarm watches (lib/monitoring.ts). Step Functions' ExecutionsSucceeded would count a
  // dry run too, which succeeds having archived nothing: runs by hand would hide a schedule that starts none.
  if (runSucceeds(summary)) deps.telemetry.runMetric('RunsSucceeded', 'Count', 1);
  return summary;
}
