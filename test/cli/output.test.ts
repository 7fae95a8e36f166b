import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatRunOutcome } from '../../cli/aws-run.js';
import { formatDoctor } from '../../cli/doctor.js';
import { formatHolds } from '../../cli/holds.js';
import { formatStatuses, type TableStatus } from '../../cli/leases.js';
import { redrawn, safeJson, safeLine, safeLines } from '../../cli/output.js';
import { formatPlanReport } from '../../cli/plan.js';
import { ProgressDisplay, renderBar } from '../../cli/progress.js';
import { formatExecutionFailure, formatRestoreResults } from '../../cli/restore.js';
import type { PlanReport } from '../../lambdas/shared/batch/plan-report.js';
import type { RestoreFileResult } from '../../lambdas/shared/lock-table/restore-records.js';

/** Erases the screen, forges a line of its own, and turns the rest of its line around. */
const HOSTILE = 'ev\u001b[2J\nOK: no errors\u2028\u202eil\u009b\u007f';
const SHOWN = 'ev\\u001b[2J\\u000aOK: no errors\\u2028\\u202eil\\u009b\\u007f';

/** Anything a terminal acts on or reorders by, except the line breaks between lines. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

describe('the one way commands write to the terminal', () => {
  it('a line escapes every control character, line breaks included; lines stay as many as given', () => {
    // Act
    const line = safeLine(`table ${HOSTILE}`);
    const lines = safeLines(['first', `  ${HOSTILE}`, 'last']);

    // Assess
    expect(line).toBe(`table ${SHOWN}`);
    expect(lines.split('\n')).toEqual(['first', `  ${SHOWN}`, 'last']);
  });

  it('JSON stays valid and parses to the very same value, with nothing in it a terminal acts on', () => {
    // Prepare
    const value = { table: HOSTILE, nested: [{ reason: `\\u0041 ${HOSTILE} "q"` }], n: 1, none: null };

    // Act
    const indented = safeJson(value);
    const oneLine = safeJson(value, 0);

    // Assess
    for (const text of [indented, oneLine]) {
      expect(text).not.toMatch(CONTROL);
      expect(JSON.parse(text)).toEqual(value);
    }
    expect(oneLine).not.toContain('\n');
    expect(indented.split('\n')).toHaveLength(JSON.stringify(value, null, 2).split('\n').length);
  });

  it('bars redrawn in place carry the display’s own cursor movements and nothing else', () => {
    // Act
    const text = redrawn(2, [`a ${HOSTILE}`, 'b']);

    // Assess
    expect(text).toBe(`\x1b[2A\r\x1b[2Ka ${SHOWN}\n\r\x1b[2Kb\n`);
  });

  it('no file of the CLI writes to the terminal but through cli/output.ts', () => {
    // Prepare
    const root = join(import.meta.dirname, '../../cli');
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)],
      );

    // Act
    const offenders = files(root)
      .filter((file) => file.endsWith('.ts') && relative(root, file) !== 'output.ts')
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .map((text, i) => ({ where: `${relative(root, file)}:${i + 1}`, text }))
          .filter(({ text }) =>
            /\bconsole\.\w+\(|process\.std(out|err)\.write\b|\.write\(\s*`\\x1b/.test(text),
          ),
      );

    // Assess
    expect(offenders).toEqual([]);
  });
});

describe('a hostile table name in each report', () => {
  const noForgedLine = (text: string) => {
    expect(text).not.toMatch(CONTROL);
    expect(text).not.toMatch(/^OK: no errors/m);
    expect(text).toContain(SHOWN);
  };

  it('plan', () => {
    // Prepare
    const table = {
      database: 'app',
      table: `public.${HOSTILE}`,
      action: 'unusable',
      error: `table public.${HOSTILE} has no usable key`,
      eligibleRows: 0,
      countMethod: 'none',
      oldestRow: null,
      cutoff: '2026-01-01T00:00:00.000Z',
      batches: 0,
      runsNeeded: 0,
      estimatedBytes: 0,
      lock: 'free',
      legalHold: `${HOSTILE} reason`,
      retention: '90 days',
      encryption: 'SSE-S3',
    } as unknown as PlanReport['tables'][number];
    const report = { runId: 'r', plannedAt: '2026-01-01T00:00:00.000Z', tables: [table] } as PlanReport;

    // Act
    const text = formatPlanReport(report);

    // Assess
    noForgedLine(text);
    expect(text.split('\n')).toHaveLength(7);
  });

  it('restore results and a restore’s failure', () => {
    // Prepare
    const failed = {
      key: `app/public.${HOSTILE}/2026-01-01.jsonl.gz`,
      status: 'failed',
      rows: 0,
      inserted: 0,
      skipped: 0,
      overwritten: 0,
      error: `duplicate key value violates unique constraint "${HOSTILE}_pkey"`,
      warnings: [`column ${HOSTILE} dropped`],
    } as unknown as RestoreFileResult;

    // Act
    const text = formatRestoreResults([failed], { dryRun: false });
    const failure = formatExecutionFailure({
      executionName: 'x',
      error: { name: 'RestoreFailed', message: `1 archive of ${HOSTILE} failed` },
    });

    // Assess
    noForgedLine(text);
    expect(text.split('\n')).toHaveLength(4);
    noForgedLine(failure);
    expect(failure).not.toContain('\n');
  });

  it('progress bars and JSON progress lines', () => {
    // Prepare
    const writes: string[] = [];
    const bars = new ProgressDisplay(
      { write: (t) => void writes.push(t), isTTY: true, columns: 200 },
      'bars',
    );
    const lines: string[] = [];
    const json = new ProgressDisplay({ write: (t) => void lines.push(t), isTTY: false }, 'json');
    const event = {
      type: 'error' as const,
      database: 'app',
      table: `public.${HOSTILE}`,
      rows: 0,
      batches: 0,
      status: 'export',
      error: HOSTILE,
    };

    // Act
    bars.show(event);
    json.show(event);
    const bar = renderBar({ label: `app/${HOSTILE}`, rows: 1, batches: 1, tick: 0, status: HOSTILE }, 60);

    // Assess
    expect(writes).toHaveLength(1);
    expect(writes[0]?.startsWith('\r\x1b[2K')).toBe(true);
    noForgedLine(writes[0]?.slice('\r\x1b[2K'.length) ?? '');
    expect(writes[0]?.split('\n')).toHaveLength(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(CONTROL);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ table: `public.${HOSTILE}`, error: HOSTILE });
    // Fitted to the width it shows in: the escaped name counts for what it takes on the screen.
    expect(bar).not.toMatch(CONTROL);
    expect(bar.length).toBeLessThanOrEqual(60);
  });

  it('status, hold list, doctor and an AWS run’s outcome', () => {
    // Prepare
    const status = {
      database: 'app',
      table: `public.${HOSTILE}`,
      lease: { state: 'held', owner: HOSTILE, expiresAt: '2026-01-01T00:00:00.000Z' },
      legalHold: HOSTILE,
      archived: { rows: 1, bytes: 1, batches: 1 },
    } as unknown as TableStatus;
    const hold = {
      database: 'app',
      table: `public.${HOSTILE}`,
      reason: HOSTILE,
      setAt: 'now',
      setBy: HOSTILE,
    };

    // Act
    const texts = [
      formatStatuses([status]),
      formatHolds([hold]),
      formatDoctor([
        { check: 'table', status: 'critical', subject: `app/public.${HOSTILE}`, detail: HOSTILE },
      ]),
      formatRunOutcome({
        executionArn: 'arn',
        status: 'FAILED',
        error: 'States.TaskFailed',
        cause: HOSTILE,
        summary: {
          runId: 'r',
          tables: 1,
          succeeded: 0,
          skipped: 0,
          held: 0,
          failed: 1,
          rowsArchived: 0,
          bytesArchived: 0,
          batches: 0,
          perTable: [
            {
              database: 'app',
              table: `public.${HOSTILE}`,
              status: 'failed',
              rowsArchived: 0,
              bytesArchived: 0,
              batches: 0,
              budgetReached: false,
              error: HOSTILE,
            },
          ],
          perTableTruncated: false,
        },
      }),
    ];

    // Assess
    for (const text of texts) noForgedLine(text);
    const holdsJson = formatHolds([hold], { json: true });
    expect(holdsJson).not.toMatch(CONTROL);
    expect(JSON.parse(holdsJson)).toEqual([hold]);
  });
});
