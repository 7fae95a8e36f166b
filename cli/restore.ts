import type { SFNClient } from '@aws-sdk/client-sfn';
import { formatIssues } from '../lambdas/shared/config/config.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import type { RestoreFileResult } from '../lambdas/shared/lock-table/restore-records.js';
import { type RestoreRequestInput, RestoreRequestSchema } from '../lambdas/shared/restore/restore-task.js';
import { requireLegacyDatabase } from './archives.js';
import { type HistoryEvent, startAndFollow } from './execution-history.js';
import { executionExitCode } from './exit-codes.js';
import { type SafeText, safeJson, safeLine, safeLines, type Write } from './output.js';
import { formatNumber } from './report.js';
import { formatRestoreProgress, RestoreProgress } from './restore-progress.js';

export interface RestoreOptions {
  database: string;
  table: string;
  key?: string;
  from?: string;
  to?: string;
  strategy: 'skip' | 'overwrite' | 'fail';
  target?: string;
  dryRun: boolean;
  ignoreWatermark: boolean;
  drift: 'strict' | 'lenient';
  requireInventory?: boolean;
  unlistedArchives?: 'refuse' | 'skip' | 'restore';
  allowMissingArchives?: boolean;
  legacyDatabase?: string;
  legacyPrefix?: string;
  json: boolean;
}

/** The execution input these options stand for, validated by the same schema the state machine's plan uses. */
export function restoreRequest(options: RestoreOptions): RestoreRequestInput {
  requireLegacyDatabase(options);
  if (options.key && (options.from || options.to))
    throw new ConfigError(
      '--key restores one archive: leave out --from and --to (or --key, to restore the days)',
    );
  const request: RestoreRequestInput = {
    database: options.database,
    table: options.table,
    mode: options.key ? 'key' : options.from || options.to ? 'range' : 'table',
    ...(options.key ? { key: options.key } : {}),
    ...(options.from ? { fromDay: options.from } : {}),
    ...(options.to ? { toDay: options.to } : {}),
    strategy: options.strategy,
    ...(options.target ? { targetTable: options.target } : {}),
    dryRun: options.dryRun,
    ignoreWatermark: options.ignoreWatermark,
    drift: options.drift,
    ...(options.requireInventory ? { requireInventory: true } : {}),
    ...(options.unlistedArchives && options.unlistedArchives !== 'refuse'
      ? { unlistedArchives: options.unlistedArchives }
      : {}),
    ...(options.allowMissingArchives ? { allowMissingArchives: true } : {}),
    ...(options.legacyDatabase
      ? {
          legacy: {
            database: options.legacyDatabase,
            ...(options.legacyPrefix !== undefined ? { prefix: options.legacyPrefix } : {}),
          },
        }
      : {}),
  };
  const parsed = RestoreRequestSchema.safeParse(request);
  if (!parsed.success) {
    // By the option the operator typed, not the execution input's field it fills.
    const lines = formatIssues(parsed.error)
      .split('\n')
      .map((line) => line.replace(/^([A-Za-z]+)(?=[.:])/, (field) => OPTION_OF_FIELD[field] ?? field));
    throw new ConfigError(`restore request is invalid:\n${lines.join('\n')}`);
  }
  return request;
}

/** The option of each execution input field a restore's options fill. */
const OPTION_OF_FIELD: Record<string, string> = {
  database: '--database',
  table: '--table',
  key: '--key',
  fromDay: '--from',
  toDay: '--to',
  targetTable: '--target',
  legacy: '--legacy-database',
};

/** How a restore's row counts read: what it did, or for a dry run (rolled back) what it would have done. */
function rowWords(dryRun: boolean, inserted: number, skipped: number, overwritten: number): string {
  return dryRun
    ? `${formatNumber(inserted)} would be restored, ${formatNumber(skipped)} skipped, ${formatNumber(overwritten)} overwritten; nothing written`
    : `${formatNumber(inserted)} restored, ${formatNumber(skipped)} skipped, ${formatNumber(overwritten)} overwritten`;
}

/**
 * Per-archive lines and totals; failures first-class, so a partial restore can never read as a complete one, and a
 * dry run never as a restore.
 */
export function formatRestoreResults(
  results: RestoreFileResult[],
  { dryRun, seconds }: { dryRun: boolean; seconds?: number },
): SafeText {
  const lines: string[] = [];
  const sum = (pick: (r: RestoreFileResult) => number) => results.reduce((n, r) => n + pick(r), 0);
  // Every archive when few; otherwise only those that need attention, so failures never scroll away.
  const shown = results.length <= 20 ? results : results.filter((r) => r.error || r.warnings.length > 0);
  for (const r of shown) {
    const figures = `${formatNumber(r.rows)} rows: ${rowWords(r.status === 'dry-run', r.inserted, r.skipped, r.overwritten)}`;
    lines.push(`  ${r.status.padEnd(16)} ${r.key}${r.status === 'failed' ? '' : `  (${figures})`}`);
    if (r.error) lines.push(`      error: ${r.error}`);
    for (const warning of r.warnings) lines.push(`      warning: ${warning}`);
  }
  const failed = results.filter((r) => r.status === 'failed').length;
  lines.push(
    `Archives: ${results.length} (${failed} failed, ${results.filter((r) => r.status === 'already-restored').length} already restored); rows: ${rowWords(
      dryRun,
      sum((r) => r.inserted),
      sum((r) => r.skipped),
      sum((r) => r.overwritten),
    )}${seconds ? `; ${formatNumber(Math.round(sum((r) => (r.status === 'already-restored' ? 0 : r.rows)) / seconds))} rows/s over ${seconds.toFixed(1)} s` : ''}`,
  );
  // Keys, errors and warnings name tables and carry the database's messages: each stays one line.
  return safeLines(lines);
}

/**
 * A local execution that failed, in one line (stderr): its error's message names tables and carries the database's
 * messages, so a line break in it is escaped too.
 */
export function formatExecutionFailure(execution: {
  executionName: string;
  error?: { name?: string; message?: string };
}): SafeText {
  return safeLine(
    `Execution ${execution.executionName} failed: ${execution.error?.name}: ${execution.error?.message}`,
  );
}

export interface AwsRestoreOutcome {
  executionArn: string;
  status: string;
  output?: unknown;
  error?: string;
  cause?: string;
  /** Rows restored (or measured, dry run) over the execution's wall time, once it ended. */
  rowsPerSecond?: number;
}

/**
 * Starts the deployed restore state machine and follows it to its end, printing archives and rows done, the rate
 * and the time left as groups of archives finish (RestoreProgress, read from the execution history). The same input
 * the console takes.
 */
export async function runAwsRestore(
  sfn: Pick<SFNClient, 'send'>,
  stateMachineArn: string,
  request: RestoreRequestInput,
  options: { write: Write; pollMs?: number; now?: () => number },
): Promise<AwsRestoreOutcome> {
  const progress = new RestoreProgress(options.now);
  let finish: unknown;
  const { executionArn, execution } = await startAndFollow(sfn, stateMachineArn, request, {
    write: options.write,
    pollMs: options.pollMs,
    onEvent: (event) => {
      finish = followRestore(progress, event) ?? finish;
    },
    progress: () => {
      const line = formatRestoreProgress(progress.snapshot());
      // Printed when archives or rows moved, not for a new rate alone.
      return { line, key: line.replace(/, [^,]* rows\/s.*$/, '') };
    },
  });
  const { rows } = progress.snapshot();
  const seconds =
    execution.startDate && execution.stopDate
      ? (execution.stopDate.getTime() - execution.startDate.getTime()) / 1000
      : undefined;
  return {
    executionArn,
    status: execution.status ?? 'UNKNOWN',
    // A restore with failed archives ends in a Fail state, which has no output: its summary is Finish's.
    output: execution.output ? JSON.parse(execution.output) : finish,
    error: execution.error,
    cause: execution.cause,
    ...(seconds ? { rowsPerSecond: Math.round(rows / seconds) } : {}),
  };
}

/**
 * `restore`: the deployed restore state machine started with the options' request and followed to its end; the
 * execution's summary (or error) and status printed, or with --json its outcome alone, as one JSON document, the
 * progress lines (the execution's ARN first) going to `writeProgress`; its exit code.
 */
export async function restoreOnAws(
  sfn: Pick<SFNClient, 'send'>,
  stateMachineArn: string,
  options: RestoreOptions,
  { write, writeProgress, pollMs }: { write: Write; writeProgress: Write; pollMs?: number },
): Promise<number> {
  // Under --json the ARN still reaches the operator (on stderr): following can fail while the restore runs on.
  const outcome = await runAwsRestore(sfn, stateMachineArn, restoreRequest(options), {
    write: options.json ? writeProgress : write,
    pollMs,
  });
  const exitCode = executionExitCode(outcome.status, outcome.error);
  if (options.json) {
    write(safeJson(outcome));
    return exitCode;
  }
  write(safeJson(outcome.output ?? { error: outcome.error, cause: outcome.cause }));
  const rate = outcome.rowsPerSecond !== undefined ? ` (${formatNumber(outcome.rowsPerSecond)} rows/s)` : '';
  write(safeLine(`Execution ${outcome.executionArn}: ${outcome.status}${rate}`));
  return exitCode;
}

/**
 * Feeds one history event of a restore execution to its progress: the plan (archives selected, target), each
 * group's results, each archive that failed for good. Returns the Finish step's summary when the event carries it.
 */
function followRestore(progress: RestoreProgress, event: HistoryEvent): unknown {
  const exited = event.stateExitedEventDetails;
  if (!exited?.output) return undefined;
  const output = JSON.parse(exited.output) as Record<string, unknown>;
  if (exited.name === 'PlanRestore')
    progress.planned(output.plan as Parameters<RestoreProgress['planned']>[0]);
  // A group caught after its retries exits without results; its archives are then followed one at a time.
  if (
    (exited.name === 'RestoreArchives' || exited.name === 'RestoreArchive') &&
    Array.isArray(output.results)
  )
    progress.finished(output.results as { status: string; rows: number }[]);
  if (exited.name === 'ArchiveFailed')
    progress.finished((output.archives as unknown[]).map(() => ({ status: 'failed', rows: 0 })));
  return exited.name === 'Finish' ? output : undefined;
}
