import type { TableOutcome } from '../lambdas/shared/lock-table/run-records.js';
import { type SafeText, safeLines } from './output.js';

const formatBytes = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

export const formatNumber = (n: number) => n.toLocaleString('en-US');

export interface TableReport {
  outcome: TableOutcome;
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
      `    archived ${formatNumber(outcome.rowsArchived)} rows in ${outcome.batches} batches${outcome.withdrawnBatches ? ` (${outcome.withdrawnBatches} more withdrawn: rows changed under them, nothing deleted)` : ''}, ${formatBytes(outcome.bytesArchived)}` +
        (rowsKept === undefined ? '' : `; kept ${formatNumber(rowsKept)} rows`) +
        ` in ${duration.toFixed(1)} s (${formatNumber(rate)} rows/s)${outcome.budgetReached ? '; batch budget reached, the next run continues' : ''}`,
    );
    if (outcome.error) lines.push(`    error: ${outcome.error}`);
    if (archiveLocation) lines.push(`    archives: ${archiveLocation}`);
  }
  return safeLines(lines);
}
