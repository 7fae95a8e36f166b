import type { TableOutcome } from '../lambdas/shared/lock-table/run-records.js';
import type { StepEvent } from '../local/workflow.js';
import { type SafeText, safeLines } from './output.js';

const formatBytes = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

export const formatNumber = (n: number) => n.toLocaleString('en-US');

/**
 * The batches of a local run that were withdrawn, per "database/table", counted from its steps as it goes: a delete
 * that ends in RowsChangedError (rows changed under the verified batch, or its archive changed) deleted nothing, and
 * the state machine counts it in the table's `progress.batches` all the same (CountWithdrawnBatch), so that a
 * table whose rows keep changing cannot loop past its batch budget. The outcome a table records carries that count;
 * the batches it committed are that count less these. Once the outcome itself counts committed batches only (a
 * withdrawal counter beside `progress.batches` in the ASL, read by the lock step), this goes:
 * test/cli/commands/withdrawn-batches.int.test.ts compares the summary with `status` and fails on a count taken twice.
 */
export class WithdrawnBatches {
  private readonly counts = new Map<string, number>();

  /** Pass as (part of) a workflow's onStep. */
  readonly onStep = (event: StepEvent): void => {
    if (event.functionName !== 'delete' || event.error?.name !== 'RowsChangedError') return;
    const { database = '', table = '' } = (event.payload ?? {}) as { database?: string; table?: string };
    const key = `${database}/${table}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  };

  of(database: string, table: string): number {
    return this.counts.get(`${database}/${table}`) ?? 0;
  }

  /** The outcome with `batches` the batches it committed, and how many were withdrawn when any were. */
  committed(outcome: TableOutcome): TableOutcome & { withdrawnBatches?: number } {
    const withdrawn = Math.min(outcome.batches, this.of(outcome.database, outcome.table));
    return withdrawn === 0
      ? outcome
      : { ...outcome, batches: outcome.batches - withdrawn, withdrawnBatches: withdrawn };
  }
}

export interface TableReport {
  /** `batches` counts the batches committed; `withdrawnBatches` those withdrawn (WithdrawnBatches.committed). */
  outcome: TableOutcome & { withdrawnBatches?: number };
  rowsKept?: number;
  archiveLocation?: string;
}

export function formatSummary(reports: TableReport[], seconds: number): SafeText {
  const lines = [`Summary (${seconds.toFixed(1)} s in all):`];
  for (const { outcome, rowsKept, archiveLocation } of reports) {
    const duration = outcome.durationSeconds ?? seconds;
    const rate = duration > 0 ? Math.round(outcome.rowsArchived / duration) : 0;
    lines.push(
      `  ${outcome.database}/${outcome.table}: ${outcome.status}${outcome.reason ? ` (${outcome.reason})` : ''}`,
    );
    lines.push(
      `    archived ${formatNumber(outcome.rowsArchived)} rows in ${outcome.batches} batches${outcome.withdrawnBatches ? ` (${outcome.withdrawnBatches} more withdrawn: rows or archives changed under them, nothing deleted)` : ''}, ${formatBytes(outcome.bytesArchived)}` +
        (rowsKept === undefined ? '' : `; kept ${formatNumber(rowsKept)} rows`) +
        ` in ${duration.toFixed(1)} s (${formatNumber(rate)} rows/s)${outcome.budgetReached ? '; batch budget reached, the next run continues' : ''}`,
    );
    if (outcome.error) lines.push(`    error: ${outcome.error}`);
    if (archiveLocation) lines.push(`    archives: ${archiveLocation}`);
  }
  return safeLines(lines);
}
