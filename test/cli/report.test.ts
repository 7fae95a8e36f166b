import { describe, expect, it } from 'vitest';
import { printable } from '../../cli/output.js';
import { formatSummary } from '../../cli/report.js';

describe('the local run summary', () => {
  it('counts batches, not objects: a batch holds one archive object per day it spans', () => {
    // Prepare
    const outcome = {
      database: 'shop',
      table: 'public.audit_logs',
      status: 'succeeded' as const,
      rowsArchived: 135_499,
      bytesArchived: 10.3 * 1024 * 1024,
      batches: 6,
      budgetReached: false,
      durationSeconds: 22.3,
      finishedAt: '2026-12-03T00:00:00.000Z',
    };

    // Act
    const text = formatSummary([{ outcome, rowsKept: 39_501 }], 23.1);

    // Assess
    expect(text).toContain('archived 135,499 rows in 6 batches, 10.3 MiB; kept 39,501 rows in 22.3 s');
  });
});

describe('text from the database or an operator on the terminal', () => {
  it('escapes line breaks, ANSI escapes, C1 controls and bidirectional overrides, and leaves the rest as it is', () => {
    // Act
    const shown = printable('a\nb\u001b[2Jc\u009bd\u202ee Événements ✓ "q"');

    // Assess
    expect(shown).toBe('a\\u000ab\\u001b[2Jc\\u009bd\\u202ee Événements ✓ "q"');
  });
});
