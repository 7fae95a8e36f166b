import { formatNumber } from './report.js';

/** What a restore step's result says about the work done: only counts, never row values. */
interface ArchiveOutcome {
  status: string;
  rows: number;
}

/** How far a restore is, as its steps report it. */
export interface RestoreSnapshot {
  /** The database and the target, `schema.name`, once the plan named them. */
  database?: string;
  target?: string;
  /** Archives finished (restored, already restored, failed), and how many the plan selected. */
  archives: number;
  totalArchives?: number;
  /** Rows written or (dry run) measured so far. */
  rows: number;
  rowsPerSecond: number;
  /** Seconds left at the rate of the archives so far; unknown before the first group ends. */
  etaSeconds?: number;
  status?: string;
}

/**
 * A restore's progress from the results its steps return, the same in local mode (step results) and AWS mode (the
 * execution history): the plan gives the archives selected; each group of archives its per-archive rows. The rate
 * is rows over wall time since the restore started; the time left scales the time so far by the archives left.
 */
export class RestoreProgress {
  private database: string | undefined;
  private target: string | undefined;
  private totalArchives: number | undefined;
  private archives = 0;
  private rows = 0;
  private status: string | undefined;
  private readonly started: number;

  constructor(private readonly now: () => number = Date.now) {
    this.started = now();
  }

  planned(plan: {
    archives: number;
    task: { database: string; target: { schema: string; name: string } };
  }): void {
    this.totalArchives = plan.archives;
    this.database = plan.task.database;
    this.target = `${plan.task.target.schema}.${plan.task.target.name}`;
  }

  finished(results: ArchiveOutcome[]): void {
    this.archives += results.length;
    for (const result of results) {
      if (result.status === 'restored' || result.status === 'dry-run') this.rows += result.rows;
    }
  }

  ended(status: string): void {
    this.status = status;
  }

  snapshot(): RestoreSnapshot {
    const seconds = Math.max(0.001, (this.now() - this.started) / 1000);
    const left =
      this.totalArchives !== undefined && this.archives > 0
        ? Math.max(0, Math.round((seconds * (this.totalArchives - this.archives)) / this.archives))
        : undefined;
    return {
      ...(this.database ? { database: this.database } : {}),
      ...(this.target ? { target: this.target } : {}),
      archives: this.archives,
      ...(this.totalArchives !== undefined ? { totalArchives: this.totalArchives } : {}),
      rows: this.rows,
      rowsPerSecond: Math.round(this.rows / seconds),
      ...(left !== undefined && !this.status ? { etaSeconds: left } : {}),
      ...(this.status ? { status: this.status } : {}),
    };
  }
}

/** `1:05` or `1:02:05`. */
export function formatEta(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** `120 of 377 archives, 285,000 rows, 47,500 rows/s, 0:25 left`: one line of an AWS-mode restore's progress. */
export function formatRestoreProgress(snapshot: RestoreSnapshot): string {
  const of = snapshot.totalArchives !== undefined ? ` of ${formatNumber(snapshot.totalArchives)}` : '';
  const eta = snapshot.etaSeconds !== undefined ? `, ${formatEta(snapshot.etaSeconds)} left` : '';
  return `${formatNumber(snapshot.archives)}${of} archives, ${formatNumber(snapshot.rows)} rows, ${formatNumber(snapshot.rowsPerSecond)} rows/s${eta}`;
}
