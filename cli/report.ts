import type { TableOutcome } from '../lambdas/shared/lock-table/run-records.js';

const formatBytes = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

export const formatNumber = (n: number) => n.toLocaleString('en-US');

// C0 and C1 controls and DEL, the Unicode line and paragraph separators, and the bidirectional marks and overrides.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from the database or an operator (table names, hold reasons, errors) made safe for a terminal or a comment
 * line: control characters (line breaks, ANSI escapes) and the invisible ones that reorder a line become `\uXXXX`.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export interface TableReport {
  outcome: TableOutcome;
  rowsKept?: number;
  archiveLocation?: string;
}

export function formatSummary(reports: TableReport[], seconds: number): string {
  const lines = [`Summary (${seconds.toFixed(1)} s in all):`];
  for (const { outcome, rowsKept, archiveLocation } of reports) {
    const duration = outcome.durationSeconds ?? seconds;
    const rate = duration > 0 ? Math.round(outcome.rowsArchived / duration) : 0;
    lines.push(
      `  ${outcome.database}/${outcome.table}: ${outcome.status}${outcome.reason ? ` (${outcome.reason})` : ''}`,
    );
    lines.push(
      `    archived ${formatNumber(outcome.rowsArchived)} rows in ${outcome.batches} batches, ${formatBytes(outcome.bytesArchived)}` +
        (rowsKept === undefined ? '' : `; kept ${formatNumber(rowsKept)} rows`) +
        ` in ${duration.toFixed(1)} s (${formatNumber(rate)} rows/s)${outcome.budgetReached ? '; batch budget reached, the next run continues' : ''}`,
    );
    if (outcome.error) lines.push(`    error: ${outcome.error}`);
    if (archiveLocation) lines.push(`    archives: ${archiveLocation}`);
  }
  return lines.map(printable).join('\n');
}
