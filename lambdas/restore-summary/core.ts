import type pg from 'pg';
import { inTransaction } from '../shared/database/db.js';
import { quoteIdent } from '../shared/database/table-sql.js';
import { failedRestoreResult, type RestoreFileResult } from '../shared/lock-table/restore-records.js';
import { advanceSequences, type SequenceAdvance } from '../shared/restore/restore-sql.js';
import { type RestoreTask, type RestoreTotals, restoreTargetLabel } from '../shared/restore/restore-task.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import { auditEventId, recordAuditEvent } from '../shared/telemetry/audit-trail.js';
import type { GroupOutcome, RestoreSummary, RestoreSummaryInput, RestoreSummaryOutput } from './schema.js';

const MAX_FAILURES_SHOWN = 20;

export type RestoreSummaryDeps = Pick<
  StepDeps,
  'config' | 'store' | 'restoreRecords' | 'database' | 'telemetry' | 'now'
>;

export async function restoreSummaryStep(
  input: RestoreSummaryInput,
  deps: RestoreSummaryDeps,
): Promise<RestoreSummaryOutput> {
  return input.action === 'tally'
    ? { totals: await tally(input.restoreId, input.results, input.totals, deps, input.startedAt) }
    : finish(input.task, input.totals, deps, input.planned);
}

/** Lambda puts `{"errorType", "errorMessage", "trace"}` in a Catch's Cause; keep only the message. */
function causeMessage(cause: string | undefined): string {
  if (!cause) return '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // Not JSON: the cause is the message itself (as the local interpreter reports it).
  }
  return cause;
}

/** A group's per-archive results; every archive of a group (of one) that failed for good fails with its error. */
const archiveResults = (outcome: GroupOutcome): RestoreFileResult[] => {
  if ('outcomes' in outcome) return outcome.outcomes.flatMap(archiveResults);
  if ('results' in outcome) return outcome.results;
  return outcome.archives.map((archive) =>
    failedRestoreResult(archive.key, `${outcome.error}: ${causeMessage(outcome.cause)}`),
  );
};

/** Records a page of per-archive results (one item each) and adds them to the running totals. */
export async function tally(
  restoreId: string,
  outcomes: GroupOutcome[],
  totals: RestoreTotals,
  deps: Pick<StepDeps, 'restoreRecords'>,
  startedAt?: string,
): Promise<RestoreTotals> {
  const next = { ...totals };
  const results = outcomes.flatMap(archiveResults);
  // One item per archive, 25 a request: a page's items one request each took most of a second.
  await deps.restoreRecords.recordResults(restoreId, results, startedAt);
  for (const result of results) {
    next.files += 1;
    if (result.status === 'failed') next.failedFiles += 1;
    if (result.status === 'restored' || result.status === 'dry-run') next.restoredFiles += 1;
    if (result.status === 'already-restored') next.alreadyRestoredFiles += 1;
    if (result.status !== 'already-restored') {
      next.rows += result.rows;
      next.inserted += result.inserted;
      next.skipped += result.skipped;
      next.overwritten += result.overwritten;
    }
  }
  return next;
}

/**
 * Finish: advances the target's sequences past the restored keys and reports. The state machine fails the execution
 * when any archive failed, so a partial restore is never mistaken for a complete one; so does an archive the plan
 * found that no page listed: it left the bucket since (a bucket writer, an expiry), and its rows were not restored,
 * which the plan would have refused had it been gone then. Every restore but a dry run
 * advances them, whatever its totals say: rows committed by an earlier attempt (a group that crashed after its COMMIT
 * and ran again, a re-run after a failed execution) count as skipped or already restored here, yet may be past the
 * sequence. Advancing never moves a sequence backwards, so a restore that wrote nothing leaves it where it was.
 */
export async function finish(
  task: RestoreTask,
  reached: RestoreTotals,
  deps: RestoreSummaryDeps,
  planned?: number,
): Promise<RestoreSummary> {
  const results =
    task.plannedKeys || reached.failedFiles > 0
      ? await deps.restoreRecords.listResults(task.restoreId, task.startedAt)
      : [];
  const { vanished, unplanned } = await unreached(task, reached, results, deps, planned);
  const totals = {
    ...reached,
    files: reached.files + vanished.count,
    failedFiles: reached.failedFiles + vanished.count,
  };
  const { advanced: sequences, warnings: sequenceWarnings } = !task.dryRun
    ? await (await deps.database(task.database)).withConnection((client) =>
        inTransaction(client, () => advanceTargetSequences(client, task.target)),
      )
    : { advanced: [], warnings: [] };
  const gone = `gone from the bucket since the plan: ${vanished.count} of the ${vanished.of} archive(s) the plan found were no longer in the bucket when their page was listed (deleted or expired since), so their rows were not restored; restore again, which finds what the bucket holds now`;
  const failures = [
    ...(vanished.keys
      ? vanished.keys.map((key) => ({ key, error: gone }))
      : vanished.count > 0
        ? [{ key: `${vanished.count} archive(s) the plan found`, error: gone }]
        : []),
    ...results.filter((r) => r.status === 'failed').map((r) => ({ key: r.key, error: r.error ?? 'failed' })),
  ].slice(0, MAX_FAILURES_SHOWN);
  const missing = task.missingArchives;
  const warnings = [
    ...(missing
      ? [
          `${missing.archives} committed archive(s) with ${missing.rows} rows were not in the bucket and were left out (allowMissingArchives): this target lacks their rows unless other archives hold them too`,
        ]
      : []),
    ...(task.inFlightArchives
      ? [
          `${task.inFlightArchives} archive(s) of the batch the source table had in flight when the restore was planned were left out: their rows were still in the source table, not yet deleted; restore again once the archive run has committed them`,
        ]
      : []),
    ...(unplanned > 0
      ? [
          `${unplanned} archive(s) the plan did not find were restored too: committed since it (the table's next batch, or the batch it had in flight), or written since under unlistedArchives "restore"`,
        ]
      : []),
    ...(task.unlistedArchivesLeftOut
      ? [
          `${task.unlistedArchivesLeftOut} archive(s) the inventory of committed archives does not list were left out (unlistedArchives "skip"): validate lists them as not-in-inventory`,
        ]
      : []),
    ...sequenceWarnings,
  ];
  const summary: RestoreSummary = {
    restoreId: task.restoreId,
    database: task.database,
    target: restoreTargetLabel(task),
    status: totals.failedFiles > 0 ? 'failed' : 'succeeded',
    dryRun: task.dryRun,
    totals,
    sequences,
    warnings,
    failures,
  };
  await recordAuditEvent(deps, {
    id: auditEventId('restore-finished', task.restoreId),
    kind: 'restore-finished',
    time: deps.now().toISOString(),
    runId: task.restoreId,
    database: task.database,
    table: summary.target,
    actor: 'step:restore-summary',
    details: {
      status: summary.status,
      dryRun: task.dryRun,
      ...totals,
      ...(sequenceWarnings.length > 0 ? { sequencesNotAdvanced: sequenceWarnings.length } : {}),
      ...(missing ? { missingArchives: missing.archives, missingRows: missing.rows } : {}),
    },
  });
  deps.telemetry.info('restore finished', { ...summary, failures: failures.length });
  for (const warning of sequenceWarnings) deps.telemetry.warn('restore left a sequence behind', { warning });
  return summary;
}

/**
 * The archives the plan found that no page reached (by key, from the plan's record), and how many the pages reached
 * that it did not find: the list steps list the bucket again, so an archive committed since the plan must not stand in
 * for one gone. A plan of an earlier version recorded only how many it found (`planned`): the difference is counted.
 */
async function unreached(
  task: RestoreTask,
  reached: RestoreTotals,
  results: RestoreFileResult[],
  deps: Pick<StepDeps, 'restoreRecords'>,
  planned: number | undefined,
): Promise<{ vanished: { count: number; of: number; keys?: string[] }; unplanned: number }> {
  if (!task.plannedKeys) {
    const count = planned === undefined ? 0 : Math.max(0, planned - reached.files);
    return { vanished: { count, of: planned ?? 0 }, unplanned: 0 };
  }
  const plannedKeys = await deps.restoreRecords.plannedKeys(task.restoreId, task.plannedKeys);
  const resulted = new Set(results.map((result) => result.key));
  const found = new Set(plannedKeys);
  const keys = plannedKeys.filter((key) => !resulted.has(key));
  return {
    vanished: { count: keys.length, of: plannedKeys.length, keys },
    unplanned: [...resulted].filter((key) => !found.has(key)).length,
  };
}

/**
 * What a sequence's failure to move means, by SQLSTATE (never the error's message: it holds the values). The rows are
 * committed by now; a sequence that could not be advanced is the operator's to fix, not a reason to fail the restore.
 */
const SEQUENCE_FAILURES: Record<string, string> = {
  '22003': 'the restored values lie beyond its MINVALUE..MAXVALUE',
  '42501': 'the role may not change it (it needs UPDATE on the sequence)',
};

/** Advances the target's sequences past the restored values; each that cannot move is a warning naming it and why. */
export async function advanceTargetSequences(
  client: pg.ClientBase,
  target: RestoreTask['target'],
): Promise<{ advanced: SequenceAdvance['advanced']; warnings: string[] }> {
  const { advanced, failed } = await advanceSequences(client, target);
  const warnings = failed.map(
    ({ column, sequence, code }) =>
      `sequence ${sequence} of column ${quoteIdent(column)} was not advanced past the restored values: ${SEQUENCE_FAILURES[code] ?? 'PostgreSQL refused'} (SQLSTATE ${code}); new rows may take values already there until it is moved past max(${quoteIdent(column)}) (ALTER SEQUENCE, then setval)`,
  );
  return { advanced, warnings };
}
