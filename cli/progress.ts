import { isRetryableError } from '../lambdas/shared/errors/step-errors.js';
import type { StepEvent } from '../local/workflow.js';
import { print, printable, redrawn, type SafeText, safeJsonLine, safeLine, writeStdout } from './output.js';
import { formatEta, RestoreProgress } from './restore-progress.js';

/** One thing worth showing while a local command runs; also the shape of each JSON line off a terminal. */
export interface ProgressEvent {
  type: 'batch' | 'table' | 'archive' | 'retry' | 'error';
  database: string;
  table: string;
  /** Rows so far (batch: archived by this table; archive: restored into it). */
  rows: number;
  /** Batches archived, or archives restored, so far. */
  batches: number;
  /** Restore: the archives selected, the rate so far and the time left (restore-progress.ts). */
  of?: number;
  rowsPerSecond?: number;
  etaSeconds?: number;
  status?: string;
  /** Table: the batch budget ended its run with rows left for the next one. */
  budgetReached?: boolean;
  /** Error name only: messages could be long, and the summary prints them. */
  error?: string;
}

type Payload = {
  database?: string;
  table?: string;
  action?: string;
};

/**
 * What a finished step means for the display: a committed batch (delete), a table's end (lock release), a failure.
 * Restore steps are followed by RestoreProgress (ProgressDisplay.onStep). Everything else is not shown.
 */
export function progressEventFrom(event: StepEvent): ProgressEvent | undefined {
  const payload = (event.payload ?? {}) as Payload;
  const label = { database: payload.database ?? '', table: payload.table ?? '' };
  if (event.error) {
    return {
      // A transient error the state machine retries is not a failure yet: the table's end tells how it went.
      type: isRetryableError(event.error.name) ? 'retry' : 'error',
      ...label,
      rows: 0,
      batches: 0,
      status: event.functionName,
      error: event.error.name,
    };
  }
  if (event.functionName === 'delete') {
    const { progress } = event.result as { progress: { batches: number; rows: number } };
    return { type: 'batch', ...label, rows: progress.rows, batches: progress.batches };
  }
  if (event.functionName === 'lock' && payload.action === 'release') {
    const result = event.result as { status: string };
    const { progress, budgetReached } = event.payload as {
      progress: { batches: number; rows: number };
      budgetReached?: boolean;
    };
    return {
      type: 'table',
      ...label,
      rows: progress.rows,
      batches: progress.batches,
      status: result.status,
      ...(budgetReached ? { budgetReached } : {}),
    };
  }
  return undefined;
}

const formatCount = (n: number) => n.toLocaleString('en-US');
const SPINNER = ['|', '/', '-', '\\'];

export interface BarState {
  label: string;
  rows: number;
  batches: number;
  /** Rows expected, when known: the bar fills towards it; otherwise it shows activity only. */
  totalRows?: number;
  /** A restore's archives selected: the bar fills by archives, and shows the rate and the time left. */
  of?: number;
  rowsPerSecond?: number;
  etaSeconds?: number;
  status?: string;
  /** The work is all done (a restore's archives, or a table that succeeded with nothing left): the bar is full. */
  complete?: boolean;
  /** What is going on meanwhile (a step being retried), shown without ending the bar as a status does. */
  note?: string;
  tick: number;
  /** The bar's first event (ms) and its rows: a table's rate and time left are measured from there. */
  startedAt?: number;
  rowsAtStart?: number;
}

/**
 * One line, fitted to `width` columns: `label [#####.....]  42% 12,000 rows 3 batches`, or for a restore
 * `label [#####.....]  42% 12,000 rows 3/7 archives 9,000 rows/s 0:04 left`. The label (a table's name) and the
 * status are made printable before the line is fitted, so an escaped name takes the width it shows in.
 */
export function renderBar(state: BarState, width: number): string {
  const pace = `${state.rowsPerSecond !== undefined ? ` ${formatCount(state.rowsPerSecond)} rows/s` : ''}${state.etaSeconds !== undefined && !state.status ? ` ${formatEta(state.etaSeconds)} left` : ''}`;
  const count =
    state.of !== undefined
      ? `${formatCount(state.batches)}/${formatCount(state.of)} archives${pace}`
      : `${formatCount(state.batches)} batches${pace}`;
  const figures = printable(
    `${formatCount(state.rows)} rows ${count}${state.status ? ` ${state.status}` : state.note ? ` (${state.note})` : ''}`,
  );
  const label = printable(state.label);
  const barWidth = Math.max(10, Math.min(30, width - label.length - figures.length - 10));
  let bar: string;
  let percent = '';
  const [done, total] = state.of !== undefined ? [state.batches, state.of] : [state.rows, state.totalRows];
  if (total !== undefined && total > 0) {
    const ratio = Math.min(1, done / total);
    const filled = Math.round(ratio * barWidth);
    bar = `${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}`;
    percent = ` ${String(Math.floor(ratio * 100)).padStart(3)}%`;
  } else if (state.status) {
    // Ended: full only when nothing is left; a failed, held or budget-stopped table shows no fill it has not earned.
    bar = (state.complete ? '#' : '.').repeat(barWidth);
  } else {
    const at = state.tick % barWidth;
    bar = `${'.'.repeat(at)}${SPINNER[state.tick % SPINNER.length]}${'.'.repeat(barWidth - at - 1)}`;
  }
  const line = `${label} [${bar}]${percent} ${figures}`;
  return line.length > width ? `${line.slice(0, Math.max(0, width - 1))}…` : line;
}

export interface ProgressOutput {
  write(text: SafeText): void;
  isTTY?: boolean;
  columns?: number;
}

export type ProgressMode = 'bars' | 'json' | 'quiet';

/** Bars on a terminal; JSON lines otherwise and with --verbose (they sit among the JSON logs); nothing with --quiet. */
export function progressMode(
  options: { quiet?: boolean; verbose?: boolean; json?: boolean },
  isTTY: boolean,
): ProgressMode {
  if (options.quiet || options.json) return 'quiet';
  return options.verbose || !isTTY ? 'json' : 'bars';
}

/**
 * Shows progress per table: bars redrawn in place (cursor moved up over the previous drawing) on a terminal, or one
 * JSON object per event. `totals` gives the rows expected per "database/table" when known.
 */
export class ProgressDisplay {
  private readonly bars = new Map<string, BarState>();
  private readonly restores = new Map<string, RestoreProgress>();
  private drawnLines = 0;
  private lastDraw = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly out: ProgressOutput,
    private readonly mode: ProgressMode,
    private readonly options: { totals?: Map<string, number>; now?: () => number; redrawMs?: number } = {},
  ) {}

  /** Pass as a workflow's onStep. */
  readonly onStep = (event: StepEvent): void => {
    const progress = progressEventFrom(event) ?? this.restoreProgress(event);
    if (progress) this.show(progress);
  };

  /** A restore's plan, each group of archives restored, and its end: one bar per restore, named for its target. */
  private restoreProgress(event: StepEvent): ProgressEvent | undefined {
    const payload = (event.payload ?? {}) as {
      action?: string;
      restoreId?: string;
      task?: { restoreId: string };
    };
    const restoreId = payload.restoreId ?? payload.task?.restoreId;
    if (!restoreId || !event.functionName.startsWith('restore-')) return undefined;
    let restore = this.restores.get(restoreId);
    if (!restore) {
      restore = new RestoreProgress(this.options.now);
      this.restores.set(restoreId, restore);
    }
    const result = event.result as Record<string, unknown>;
    if (event.functionName === 'restore-plan' && payload.action === 'plan')
      restore.planned(result as Parameters<RestoreProgress['planned']>[0]);
    else if (event.functionName === 'restore-file')
      restore.finished((result as { results: { status: string; rows: number }[] }).results);
    else if (event.functionName === 'restore-summary' && payload.action === 'finish')
      restore.ended(String(result.status));
    else return undefined;
    const snapshot = restore.snapshot();
    return {
      type: 'archive',
      database: snapshot.database ?? '',
      table: `restore into ${snapshot.target ?? restoreId}`,
      rows: snapshot.rows,
      batches: snapshot.archives,
      ...(snapshot.totalArchives !== undefined ? { of: snapshot.totalArchives } : {}),
      rowsPerSecond: snapshot.rowsPerSecond,
      ...(snapshot.etaSeconds !== undefined ? { etaSeconds: snapshot.etaSeconds } : {}),
      ...(snapshot.status ? { status: snapshot.status } : {}),
    };
  }

  show(event: ProgressEvent): void {
    if (this.mode === 'quiet') return;
    const now = (this.options.now ?? Date.now)();
    if (this.mode === 'json') {
      this.out.write(safeJsonLine({ time: new Date(now).toISOString(), ...event }));
      return;
    }
    // A restore's bar is named for its target alone ("restore into …"), as the JSON line's table is.
    const label =
      event.database && event.type !== 'archive' ? `${event.database}/${event.table}` : event.table;
    const bar = this.bars.get(label) ?? {
      label,
      rows: 0,
      batches: 0,
      totalRows: this.options.totals?.get(label),
      tick: 0,
    };
    bar.rows = Math.max(bar.rows, event.rows);
    bar.batches = Math.max(bar.batches, event.batches);
    bar.of = event.of ?? bar.of;
    bar.startedAt ??= now;
    bar.rowsAtStart ??= bar.rows;
    bar.rowsPerSecond = event.rowsPerSecond ?? bar.rowsPerSecond;
    bar.etaSeconds = event.etaSeconds;
    // A table with a known total: its rate since its first batch, and the time the rest would take at that rate.
    if (bar.totalRows !== undefined && event.type === 'batch' && now > bar.startedAt) {
      bar.rowsPerSecond = Math.round(((bar.rows - (bar.rowsAtStart ?? 0)) * 1000) / (now - bar.startedAt));
      if (bar.rowsPerSecond > 0)
        bar.etaSeconds = Math.max(0, Math.ceil((bar.totalRows - bar.rows) / bar.rowsPerSecond));
    }
    bar.tick += 1;
    if (event.type === 'archive' && event.status) bar.status = event.status;
    if (event.type === 'table') {
      bar.status = event.budgetReached ? `${event.status}, batch budget reached (rows left)` : event.status;
      bar.complete = event.status === 'succeeded' && !event.budgetReached;
    }
    if (event.type === 'error') bar.status = `${event.status} failed: ${event.error}`;
    bar.note = event.type === 'retry' ? `${event.status}: ${event.error}, retrying` : undefined;
    this.bars.set(label, bar);
    // A table's end and failures always draw; batches at most every redrawMs, so the terminal is not flooded.
    if (event.type === 'batch' && now - this.lastDraw < (this.options.redrawMs ?? 100)) return;
    this.draw(now);
  }

  /** Draws the final state once more (nothing is left half-drawn before the summary). */
  finish(): void {
    if (this.mode === 'bars' && this.bars.size > 0) this.draw((this.options.now ?? Date.now)());
  }

  private draw(now: number): void {
    this.lastDraw = now;
    // A pseudo-terminal without a size reports 0 columns: draw at a usual width rather than cut every bar to nothing.
    const width = this.out.columns || 100;
    const lines = [...this.bars.values()].map((bar) => renderBar(bar, width));
    this.out.write(redrawn(this.drawnLines, lines));
    this.drawnLines = lines.length;
  }
}

export interface OutputOptions {
  quiet?: boolean;
  verbose?: boolean;
  /** The result as one JSON document on stdout, and nothing else there (no progress, no other lines). */
  json?: boolean;
}

/** A local command's output: `say` for its own lines (silent with --quiet), `display` for progress on stdout. */
export function commandOutput(
  options: OutputOptions,
  stdout: Pick<NodeJS.WriteStream, 'isTTY' | 'columns'> = process.stdout,
  totals?: Map<string, number>,
) {
  const display = new ProgressDisplay(
    { write: writeStdout, isTTY: stdout.isTTY, columns: stdout.columns },
    progressMode(options, stdout.isTTY === true),
    { totals },
  );
  return {
    display,
    say: (line: string) => {
      if (!options.quiet && !options.json) print(safeLine(line));
    },
  };
}

/** The would-be SNS messages of one run, as local mode wrote them (notifications.jsonl in the state dir). */
export function notificationsOfRun(fileText: string, runId: string): string[] {
  return fileText
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as { runId?: string; subject?: string; text?: string })
    .filter((message) => message.runId === runId)
    .map((message) => `${message.subject}\n${message.text}`);
}
