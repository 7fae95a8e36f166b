import { describe, expect, it } from 'vitest';
import { printable } from '../../cli/output.js';
import { formatSummary, WithdrawnBatches } from '../../cli/report.js';
import type { StepEvent } from '../../local/workflow.js';

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

describe('the local run summary with withdrawn batches', () => {
  const step = (table: string, error?: string): StepEvent => ({
    functionName: 'delete',
    payload: { database: 'app', table },
    ...(error ? { error: Object.assign(new Error('x'), { name: error }) } : { result: {} }),
    durationMs: 1,
  });

  it('counts the batches committed, and says how many were withdrawn (a delete ended in RowsChangedError)', () => {
    // Prepare: the outcome counts as the state machine's progress does, 45 = 21 committed + 24 withdrawn.
    const withdrawn = new WithdrawnBatches();
    for (let i = 0; i < 21; i++) withdrawn.onStep(step('public.audit_logs'));
    for (let i = 0; i < 24; i++) withdrawn.onStep(step('public.audit_logs', 'RowsChangedError'));
    // Neither another table's withdrawal, nor another error (retried, or the table's failure), nor another step's.
    withdrawn.onStep(step('public.other', 'RowsChangedError'));
    withdrawn.onStep(step('public.audit_logs', 'DatabaseUnavailableError'));
    withdrawn.onStep({ ...step('public.audit_logs', 'RowsChangedError'), functionName: 'export' });
    const outcome = {
      database: 'app',
      table: 'public.audit_logs',
      status: 'succeeded' as const,
      rowsArchived: 1_050_000,
      bytesArchived: 1024 * 1024,
      batches: 45,
      budgetReached: false,
      durationSeconds: 10,
      finishedAt: '2026-12-03T00:00:00.000Z',
    };

    // Act
    const committed = withdrawn.committed(outcome);
    const text = formatSummary([{ outcome: committed }], 10);
    const none = formatSummary([{ outcome: new WithdrawnBatches().committed(outcome) }], 10);

    // Assess
    expect(committed).toMatchObject({ batches: 21, withdrawnBatches: 24 });
    expect(text).toContain(
      'archived 1,050,000 rows in 21 batches (24 more withdrawn: rows or archives changed under them, nothing deleted), 1.0 MiB',
    );
    expect(none).toContain('archived 1,050,000 rows in 45 batches, 1.0 MiB');
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
