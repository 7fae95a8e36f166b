import type { SFNClient } from '@aws-sdk/client-sfn';
import type { PlanReport } from '../lambdas/shared/batch/plan-report.js';
import type { SummaryOutput } from '../lambdas/summary/schema.js';
import { startAndFollow } from './execution-history.js';
import { EXIT_FINDINGS, EXIT_OK, executionExitCode } from './exit-codes.js';
import { type SafeText, safeLines, type Write } from './output.js';
import { planExitCode } from './plan.js';
import { formatNumber } from './report.js';

/** What `run` starts: the archive state machine's input (the same a console "Start execution" takes). */
export interface ArchiveRunInput {
  database?: string;
  tables?: string[];
  dryRun?: boolean;
}

export interface AwsRunOutcome {
  executionArn: string;
  status: string;
  /** The Summary step's totals and per-table outcomes (also when the run failed, which ends in a Fail state). */
  summary?: SummaryOutput;
  /** A dry run's report. */
  plan?: PlanReport;
  error?: string;
  cause?: string;
}

/** Tables planned and done, as the execution history shows them. */
class RunProgress {
  tables?: number;
  done = 0;
  failed = 0;
  summary?: SummaryOutput;
  plan?: PlanReport;

  /** One history event: the plan's table count, each table's child execution ending, the summary, a dry run's report. */
  follow(event: { stateExitedEventDetails?: { name?: string; output?: string } }): void {
    const exited = event.stateExitedEventDetails;
    if (!exited?.output) return;
    const output = JSON.parse(exited.output) as Record<string, unknown>;
    if (exited.name === 'Plan' && typeof output.tableCount === 'number') this.tables = output.tableCount;
    if (exited.name === 'ArchiveTable') this.done += 1;
    if (exited.name === 'TableFailed') {
      this.done += 1;
      this.failed += 1;
    }
    if (exited.name === 'Summary')
      this.summary = (output.summary as { value?: SummaryOutput } | undefined)?.value;
    if (exited.name === 'PlanReport') this.plan = output as unknown as PlanReport;
  }

  line(): string {
    const failed = this.failed > 0 ? `, ${this.failed} failed` : '';
    return this.tables === undefined
      ? 'planning'
      : `${formatNumber(this.done)} of ${formatNumber(this.tables)} tables done${failed}`;
  }
}

/**
 * Starts the deployed archive state machine and follows it to its end, printing tables done as their executions
 * end, read from the new history events only (HistoryFollower). Returns the summary the Summary step wrote.
 */
export async function runAwsArchive(
  sfn: Pick<SFNClient, 'send'>,
  stateMachineArn: string,
  input: ArchiveRunInput,
  options: { write: Write; pollMs?: number },
): Promise<AwsRunOutcome> {
  const progress = new RunProgress();
  const { executionArn, execution } = await startAndFollow(sfn, stateMachineArn, input, {
    write: options.write,
    pollMs: options.pollMs,
    onEvent: (event) => progress.follow(event),
    progress: () => ({ line: progress.line() }),
  });
  return {
    executionArn,
    status: execution.status ?? 'UNKNOWN',
    ...(progress.summary ? { summary: progress.summary } : {}),
    ...(progress.plan ? { plan: progress.plan } : {}),
    ...(execution.error ? { error: execution.error } : {}),
    ...(execution.cause ? { cause: execution.cause } : {}),
  };
}

/** The outcome for a person: the execution's status, then per table what it did (the summary's lines). */
export function formatRunOutcome(outcome: AwsRunOutcome): SafeText {
  const lines = [`Execution ${outcome.executionArn}: ${outcome.status}`];
  if (outcome.error) lines.push(`  ${outcome.error}${outcome.cause ? `: ${outcome.cause}` : ''}`);
  const summary = outcome.summary;
  if (summary) {
    lines.push(
      `  ${summary.tables} tables: ${summary.succeeded} succeeded, ${summary.skipped} skipped, ${summary.held} held, ${summary.failed} failed; ${formatNumber(summary.rowsArchived)} rows archived in ${formatNumber(summary.batches)} batches`,
    );
    for (const t of summary.perTable) {
      lines.push(
        `  ${t.database}/${t.table}: ${t.status}${t.reason ? ` (${t.reason})` : ''}, ${formatNumber(t.rowsArchived)} rows${t.budgetReached ? '; batch budget reached, the next run continues' : ''}${t.error ? `; ${t.error}` : ''}`,
      );
    }
    if (summary.perTableTruncated) lines.push('  … more tables: `status` shows each');
  }
  return safeLines(lines);
}

/**
 * The exit code of a deployed run: its execution's, then a dry run's plan (1 when it would refuse a table), then 1
 * when it skipped a table whose lease another run held (only a run that skipped every table fails): a cron job must
 * not read a table left unarchived as done, as `local run` says too. A held table is not counted: it was asked for.
 */
export function runExitCode(outcome: AwsRunOutcome): number {
  if (outcome.status !== 'SUCCEEDED') return executionExitCode(outcome.status, outcome.error);
  if (outcome.plan) return planExitCode(outcome.plan);
  return (outcome.summary?.skipped ?? 0) > 0 ? EXIT_FINDINGS : EXIT_OK;
}
