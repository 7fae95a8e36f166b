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

describe('the local run summary with withdrawn batches', () => {
  it('says how many batches were withdrawn beside those committed, and nothing when none was', () => {
    // Prepare: the outcome as the lock step records it, 21 committed and 24 withdrawn.
    const outcome = {
      database: 'app',
      table: 'public.audit_logs',
      status: 'succeeded' as const,
      rowsArchived: 1_050_000,
      bytesArchived: 1024 * 1024,
      batches: 21,
      withdrawnBatches: 24,
      budgetReached: false,
      durationSeconds: 10,
      finishedAt: '2026-12-03T00:00:00.000Z',
    };

    // Act
    const text = formatSummary([{ outcome }], 10);
    const none = formatSummary([{ outcome: { ...outcome, withdrawnBatches: undefined } }], 10);

    // Assess
    expect(text).toContain(
      'archived 1,050,000 rows in 21 batches (24 more withdrawn: rows changed under them, nothing deleted), 1.0 MiB',
    );
    expect(none).toContain('archived 1,050,000 rows in 21 batches, 1.0 MiB');
  });
});

describe('text from the database or an operator on the terminal', () => {
  it('escapes line breaks, ANSI escapes, C1 controls and bidirectional overrides, and leaves the rest as it is', () => {
    // Act
    const shown = printable('a\nb\u001b[2Jc\u009bd\u202ee Événements ✓ "q"');

    // Assess
    expect(shown).toBe('a\\u000ab\\u001b[2Jc\\u009bd\\u202ee Événements ✓ "q"');
  });

  it('escapes the invisible characters that make one name look like another, and the Arabic letter mark', () => {
    // Act: "events" with a zero-width space, a word joiner, a byte order mark and an Arabic letter mark in it
    const shown = printable('ev\u200bents ev\u2060ents \ufeffevents \u061c2026-12-07');

    // Assess: emoji joined by a zero-width joiner stay as they are
    expect(shown).toBe('ev\\u200bents ev\\u2060ents \\ufeffevents \\u061c2026-12-07');
    expect(printable('👩\u200d💻')).toBe('👩\u200d💻');
  });
});
