import { describe, expect, it } from 'vitest';
import { runTotals } from '../../cli/commands/local-run.js';
import { ProgressDisplay, progressEventFrom, progressMode, renderBar } from '../../cli/progress.js';
import type { PlanReport } from '../../lambdas/shared/batch/plan-report.js';
import type { StepEvent } from '../../local/workflow.js';

const deleteStep = (table: string, rows: number, batches: number): StepEvent => ({
  functionName: 'delete',
  payload: { database: 'app', table },
  result: { progress: { rows, batches, bytes: 100 } },
  durationMs: 1,
});

function recorder(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, out: { write: (text: string) => writes.push(text), isTTY, columns: 80 } };
}

describe('renderBar', () => {
  it('fills towards the expected rows and shows the percentage, rows and batches', () => {
    // Act
    const line = renderBar({ label: 'app/public.t', rows: 500, batches: 2, totalRows: 1000, tick: 1 }, 80);
    // Assess
    expect(line).toMatch(/^app\/public\.t \[(#+)(\.+)\] {2}50% 500 rows 2 batches$/);
    const [, filled = '', empty = ''] = /\[(#*)(\.*)\]/.exec(line) ?? [];
    expect(filled.length).toBe(empty.length);
  });

  it('shows activity without a total, a full bar only when the work is done, and never exceeds the width', () => {
    // Act
    const moving = renderBar({ label: 't', rows: 10, batches: 1, tick: 3 }, 80);
    const done = renderBar(
      { label: 't', rows: 10, batches: 1, tick: 3, status: 'succeeded', complete: true },
      80,
    );
    const stopped = renderBar({ label: 't', rows: 10, batches: 1, tick: 3, status: 'failed' }, 80);
    const narrow = renderBar({ label: 'x'.repeat(60), rows: 1_234_567, batches: 99, tick: 0 }, 40);
    // Assess
    expect(moving).toMatch(/\[\.*\\\.*\] 10 rows 1 batches$/);
    expect(done).toMatch(/\[#+\] 10 rows 1 batches succeeded$/);
    expect(stopped).toMatch(/\[\.+\] 10 rows 1 batches failed$/);
    expect(narrow.length).toBeLessThanOrEqual(40);
  });

  it('ends a table the batch budget stopped without a full bar, saying rows are left', () => {
    // Prepare
    const { writes, out } = recorder(true);
    const display = new ProgressDisplay({ ...out, columns: 120 }, 'bars', { redrawMs: 0 });
    const release = (budgetReached: boolean): StepEvent => ({
      functionName: 'lock',
      payload: {
        database: 'app',
        table: 'public.t',
        action: 'release',
        progress: { rows: 40, batches: 2 },
        budgetReached,
      },
      result: { released: true, status: 'succeeded' },
      durationMs: 1,
    });

    // Act
    display.onStep(release(true));
    const budgetStopped = writes.at(-1) ?? '';
    display.onStep(release(false));
    const finished = writes.at(-1) ?? '';

    // Assess
    expect(budgetStopped).toMatch(/\[\.+\] 40 rows 2 batches succeeded, batch budget reached \(rows left\)/);
    expect(finished).toMatch(/\[#+\] 40 rows 2 batches succeeded$/m);
  });
});

describe('ProgressDisplay', () => {
  it('off a terminal writes one JSON object per progress event, and nothing for other steps', () => {
    // Prepare
    const { writes, out } = recorder(false);
    const display = new ProgressDisplay(out, progressMode({}, false), { now: () => Date.UTC(2025, 0, 2) });
    // Act
    display.onStep(deleteStep('public.t', 10, 1));
    display.onStep({
      functionName: 'export',
      payload: { database: 'app', table: 'public.t' },
      durationMs: 1,
    });
    display.onStep({
      functionName: 'lock',
      payload: { database: 'app', table: 'public.t', action: 'release', progress: { rows: 10, batches: 1 } },
      result: { released: true, status: 'succeeded' },
      durationMs: 1,
    });
    // Assess
    expect(writes.every((w) => w.endsWith('\n'))).toBe(true);
    expect(writes.map((w) => JSON.parse(w))).toEqual([
      {
        time: '2025-01-02T00:00:00.000Z',
        type: 'batch',
        database: 'app',
        table: 'public.t',
        rows: 10,
        batches: 1,
      },
      {
        time: '2025-01-02T00:00:00.000Z',
        type: 'table',
        database: 'app',
        table: 'public.t',
        rows: 10,
        batches: 1,
        status: 'succeeded',
      },
    ]);
  });

  it('on a terminal redraws every table in place, moving the cursor up over the last drawing', () => {
    // Prepare
    const { writes, out } = recorder(true);
    let now = 0;
    const display = new ProgressDisplay(out, progressMode({}, true), { now: () => now, redrawMs: 100 });
    // Act
    display.onStep(deleteStep('public.a', 10, 1));
    now = 200;
    display.onStep(deleteStep('public.b', 5, 1));
    now = 250;
    display.onStep(deleteStep('public.b', 9, 2)); // within redrawMs: not drawn yet
    display.finish();
    // Assess
    expect(writes).toHaveLength(3);
    expect(writes[0]).not.toContain('\x1b[1A');
    expect(writes[1]?.startsWith('\x1b[1A')).toBe(true);
    expect(writes[2]?.startsWith('\x1b[2A')).toBe(true);
    expect(writes[2]).toContain('app/public.b [');
    expect(writes[2]).toContain('9 rows 2 batches');
  });

  it('with a table’s total from the plan, shows the rate since its first batch and the time the rest would take', () => {
    // Prepare: 10,000 rows expected; 1,000 after the first batch, 3,000 three seconds later
    const { writes, out } = recorder(true);
    let now = 0;
    const display = new ProgressDisplay(out, progressMode({}, true), {
      now: () => now,
      redrawMs: 0,
      totals: new Map([['app/public.a', 10_000]]),
    });
    // Act
    display.onStep(deleteStep('public.a', 1_000, 1));
    now = 3_000;
    display.onStep(deleteStep('public.a', 3_000, 3));
    // Assess: 2,000 rows in 3 s is 667 rows/s; 7,000 rows left, 10.5 s, shown in whole seconds
    expect(writes.at(-1)).toContain(' 30% 3,000 rows 3 batches 667 rows/s 0:11 left');
  });

  it('runTotals: what each table’s run can take, from the dry run', () => {
    // Act
    const totals = runTotals({
      runId: 'dry',
      plannedAt: '',
      tables: [
        { database: 'app', table: 'public.a', action: 'archive', eligibleRows: 900, runsNeeded: 1 },
        { database: 'app', table: 'public.b', action: 'archive', eligibleRows: 900, runsNeeded: 3 },
        { database: 'app', table: 'public.c', action: 'locked', eligibleRows: 900, runsNeeded: 1 },
      ] as PlanReport['tables'],
    });
    // Assess
    expect([...totals]).toEqual([
      ['app/public.a', 900],
      ['app/public.b', 300],
    ]);
  });

  it('--quiet shows nothing; --verbose uses JSON lines even on a terminal', () => {
    // Prepare
    const { writes, out } = recorder(true);
    // Act
    new ProgressDisplay(out, progressMode({ quiet: true }, true)).onStep(deleteStep('public.t', 1, 1));
    // Assess
    expect(writes).toEqual([]);
    expect(progressMode({ verbose: true }, true)).toBe('json');
  });

  it('turns a failed step into an error event naming the error only', () => {
    // Act
    const event = progressEventFrom({
      functionName: 'verify',
      payload: { database: 'app', table: 'public.t' },
      error: Object.assign(new Error('long message'), { name: 'ArchiveIntegrityError' }),
      durationMs: 1,
    });
    // Assess
    expect(event).toEqual({
      type: 'error',
      database: 'app',
      table: 'public.t',
      rows: 0,
      batches: 0,
      status: 'verify',
      error: 'ArchiveIntegrityError',
    });
  });

  it('reports an error the state machine retries as a retry, and the bar says so until the table ends', () => {
    // Prepare
    const { writes, out } = recorder(true);
    const display = new ProgressDisplay({ ...out, columns: 120 }, 'bars', { redrawMs: 0 });
    const failed = (name: string): StepEvent => ({
      functionName: 'upload',
      payload: { database: 'app', table: 'public.t' },
      error: Object.assign(new Error('S3 unavailable: connect ECONNRESET'), { name }),
      durationMs: 1,
    });

    // Act
    const retried = progressEventFrom(failed('StorageUnavailableError'));
    display.onStep(failed('StorageUnavailableError'));

    // Assess
    expect(retried).toMatchObject({ type: 'retry', status: 'upload', error: 'StorageUnavailableError' });
    expect(progressEventFrom(failed('LeaseLostError'))?.type).toBe('error');
    // The bar keeps showing activity (a spinner, not a full bar) and names the retry; nothing says it failed.
    expect(writes.at(-1)).toMatch(
      /\[\.*[|/\\-]\.*\] 0 rows 0 batches \(upload: StorageUnavailableError, retrying\)/,
    );
    expect(writes.join('')).not.toContain('failed');
    display.onStep(deleteStep('public.t', 10, 1));
    expect(writes.at(-1)).not.toContain('retrying');
  });
});

describe('ProgressDisplay, following a restore', () => {
  const step = (functionName: string, payload: unknown, result: unknown): StepEvent => ({
    functionName: functionName as StepEvent['functionName'],
    payload,
    result,
    durationMs: 1,
  });
  const plan = step(
    'restore-plan',
    { action: 'plan', restoreId: 'r1' },
    {
      archives: 4,
      task: { restoreId: 'r1', database: 'app', target: { schema: 'public', name: 'restored' } },
    },
  );
  const group = (rows: number[]) =>
    step(
      'restore-file',
      { task: { restoreId: 'r1' }, archives: rows.map((_, i) => ({ key: `k${i}`, format: 'native' })) },
      { results: rows.map((n, i) => ({ key: `k${i}`, status: 'restored', rows: n })) },
    );

  it('draws one bar named for the target, filling by archives, with the rate and the time left; the end shows the status', () => {
    // Prepare
    const { writes, out } = recorder(true);
    let now = 0;
    const display = new ProgressDisplay({ ...out, columns: 120 }, progressMode({}, true), { now: () => now });

    // Act
    display.onStep(plan);
    now = 2000;
    display.onStep(group([1000, 1000]));
    const midway = writes.at(-1) ?? '';
    now = 4000;
    display.onStep(group([1000, 1000]));
    display.onStep(
      step('restore-summary', { action: 'finish', task: { restoreId: 'r1' } }, { status: 'succeeded' }),
    );
    display.finish();
    const end = writes.at(-1) ?? '';

    // Assess
    expect(midway).toMatch(
      /restore into public\.restored \[#+\.+\] +50% 2,000 rows 2\/4 archives 1,000 rows\/s 0:02 left/,
    );
    expect(end).toMatch(
      /restore into public\.restored \[#+\] 100% 4,000 rows 4\/4 archives 1,000 rows\/s succeeded/,
    );
    expect(end).not.toMatch(/left/);
  });

  it('names the database the restore targets on each JSON line', () => {
    // Prepare
    const { writes, out } = recorder(false);
    const display = new ProgressDisplay(out, progressMode({}, false), { now: () => 0 });

    // Act
    display.onStep(plan);
    display.onStep(group([10]));

    // Assess
    const lines = writes.map((line) => JSON.parse(line) as { database: string; table: string });
    expect(lines.map((line) => [line.database, line.table])).toEqual([
      ['app', 'restore into public.restored'],
      ['app', 'restore into public.restored'],
    ]);
  });

  it('draws whole bars on a terminal that reports no width (a pseudo-terminal without a size)', () => {
    // Prepare
    const { writes, out } = recorder(true);
    const display = new ProgressDisplay({ ...out, columns: 0 }, progressMode({}, true), { now: () => 0 });

    // Act
    display.onStep(plan);
    display.onStep(group([10]));

    // Assess
    expect(writes.at(-1)).toMatch(/restore into public\.restored \[#+\.+\] +25% 10 rows 1\/4 archives/);
  });
});
