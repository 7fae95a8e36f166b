import { randomUUID } from 'node:crypto';
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { ArchiveStore } from '../lambdas/shared/archive/store.js';
import { batchSpan, batchTotals } from '../lambdas/shared/batch/batch-objects.js';
import { activeHold } from '../lambdas/shared/batch/holds.js';
import { didYouMean, resolveTable, tablesNamedLike } from '../lambdas/shared/config/resolved-table.js';
import { type ArchiverConfig, type DatabaseConfig, tableRef } from '../lambdas/shared/config/schema.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import type { LeaseStore } from '../lambdas/shared/lock-table/lease-store.js';
import type { LegalHolds } from '../lambdas/shared/lock-table/legal-holds.js';
import type { LatestOutcomes, RunRecords } from '../lambdas/shared/lock-table/run-records.js';
import { appendAuditEvent, auditEventId } from '../lambdas/shared/telemetry/audit-trail.js';
import { type SafeText, safeLines } from './output.js';
import { formatNumber } from './report.js';

/** What `status` and `lease break` read and change: the lock table of local mode or of the deployed stack. */
export interface LeaseContext {
  config: ArchiverConfig;
  leases: LeaseStore;
  holds: LegalHolds;
  runRecords: RunRecords;
  store: ArchiveStore;
  /** Who acts, for the audit trail. */
  actor: string;
  /**
   * Whether the execution that holds a lease (its ARN, the lease's owner) may still be running: Step Functions'
   * DescribeExecution in AWS. Local mode answers false: the command holds the state dir, so no local run is going.
   */
  holderRunning(owner: string): Promise<boolean>;
  now?: () => Date;
}

/** One table as `status` shows it. Counts, names and times only, never row values. */
export interface TableStatus {
  database: string;
  table: string;
  /**
   * The config lists no such table (its database entry or table was renamed or removed) while its lease item still
   * holds a batch in flight: no run finishes that batch until the entry is back.
   */
  notConfigured?: true;
  lease: { state: 'free' } | { state: 'held' | 'expired'; owner: string; expiresAt: string };
  /** The batch between export and a committed delete, which the next run finishes or undoes first. */
  inFlight?: { stage: string; objects: number; rows: number; firstDay: string; lastDay: string };
  legalHold?: string;
  archived: { rows: number; bytes: number; batches: number };
  last?: OutcomeBrief;
  lastSucceeded?: OutcomeBrief;
}

interface OutcomeBrief {
  runId: string;
  status: string;
  finishedAt: string;
  rowsArchived: number;
  budgetReached: boolean;
  reason?: string;
  error?: string;
}

const brief = (outcome: LatestOutcomes['last']): OutcomeBrief | undefined =>
  outcome && {
    runId: outcome.runId,
    status: outcome.status,
    finishedAt: outcome.finishedAt,
    rowsArchived: outcome.rowsArchived,
    budgetReached: outcome.budgetReached,
    ...(outcome.reason ? { reason: outcome.reason } : {}),
    ...(outcome.error ? { error: outcome.error } : {}),
  };

/**
 * Every configured table in scope (one database, some tables), as `status` shows it; and every table in scope whose
 * item holds a batch in flight under a name the config no longer lists (named ones only, when tables are named).
 */
export async function tableStatuses(
  ctx: Pick<LeaseContext, 'config' | 'leases' | 'holds' | 'runRecords' | 'now'>,
  scope: { database?: string; tables?: string[] } = {},
): Promise<TableStatus[]> {
  const inScope = ctx.config.databases.filter((db) => !scope.database || db.name === scope.database);
  const configured = (ref: string) =>
    inScope.some((db) => db.tables.some((entry) => tableRef(entry) === ref));
  const listed = (t: { database: string; table: string }) =>
    ctx.config.databases.some((d) => d.name === t.database && d.tables.some((e) => tableRef(e) === t.table));
  const left = (await ctx.leases.tablesWithBatchInFlight()).filter(
    (t) =>
      (!scope.database || t.database === scope.database) &&
      !listed(t) &&
      (!scope.tables || scope.tables.includes(t.table)),
  );
  // Every name asked for must be configured or hold a batch in flight: one left out of the list without a word reads
  // as a table with no news.
  const unknown = (scope.tables ?? []).filter(
    (ref) => !configured(ref) && !left.some((t) => t.table === ref),
  );
  if (unknown.length > 0) throw noMatch(scope.database, inScope, unknown);
  const statuses: TableStatus[] = [];
  for (const db of inScope) {
    for (const entry of db.tables) {
      const ref = tableRef(entry);
      if (scope.tables && !scope.tables.includes(ref)) continue;
      const table = resolveTable(ctx.config, db.name, ref);
      statuses.push(await tableStatus(ctx, db.name, ref, table.governance.configHold));
    }
  }
  for (const t of left)
    statuses.push({ ...(await tableStatus(ctx, t.database, t.table)), notConfigured: true });
  if (statuses.length === 0) throw noMatch(scope.database, inScope, []);
  return statuses;
}

function noMatch(database: string | undefined, inScope: DatabaseConfig[], unknown: string[]): ConfigError {
  const asked = [
    ...(database ? [`database ${database}`] : []),
    // A name without its schema (`-t audit_logs`) is the usual slip: name the configured tables it matches.
    ...(unknown.length > 0
      ? [`tables ${unknown.map((ref) => `${ref}${didYouMean(tablesNamedLike(inScope, ref))}`).join(', ')}`]
      : []),
  ];
  return new ConfigError(`no configured table matches ${asked.join(' and ')}`);
}

async function tableStatus(
  ctx: Pick<LeaseContext, 'leases' | 'holds' | 'runRecords' | 'now'>,
  database: string,
  ref: string,
  configHold?: string,
): Promise<TableStatus> {
  const now = (ctx.now?.() ?? new Date()).getTime();
  const [state, hold, latest] = await Promise.all([
    ctx.leases.get(database, ref),
    activeHold({ holds: ctx.holds }, database, ref, configHold),
    ctx.runRecords.latestOutcomes(database, ref),
  ]);
  const expiresAt = state.expiresAt ?? 0;
  const inFlight = state.inFlight;
  return {
    database,
    table: ref,
    lease: state.owner
      ? {
          state: expiresAt > now ? 'held' : 'expired',
          owner: state.owner,
          expiresAt: new Date(expiresAt).toISOString(),
        }
      : { state: 'free' },
    ...(inFlight
      ? {
          inFlight: {
            stage: inFlight.stage,
            objects: inFlight.objects.length,
            rows: batchTotals(inFlight).rowCount,
            ...(({ firstDay, lastDay }) => ({ firstDay, lastDay }))(batchSpan(inFlight)),
          },
        }
      : {}),
    ...(hold ? { legalHold: hold } : {}),
    archived: { rows: state.totalRows, bytes: state.totalBytes, batches: state.totalBatches },
    ...(latest.last ? { last: brief(latest.last) } : {}),
    ...(latest.lastSucceeded ? { lastSucceeded: brief(latest.lastSucceeded) } : {}),
  };
}

export function formatStatuses(statuses: TableStatus[]): SafeText {
  const lines: string[] = [];
  for (const s of statuses) {
    lines.push(`${s.database}/${s.table}${s.notConfigured ? ' (not in the config)' : ''}`);
    lines.push(
      `  lease: ${s.lease.state === 'free' ? 'free' : `${s.lease.state === 'held' ? 'held' : 'expired, free to take'} by ${s.lease.owner} until ${s.lease.expiresAt}`}`,
    );
    if (s.inFlight && s.notConfigured)
      lines.push(
        `  in flight: a batch ${s.inFlight.stage}, ${s.inFlight.objects} objects, ${formatNumber(s.inFlight.rows)} rows (${s.inFlight.firstDay} to ${s.inFlight.lastDay}), left under a name the config no longer lists: no run finishes or undoes it${s.inFlight.stage === 'deleting' ? ' (its delete may have committed: its rows may be only in its archives, which no restore finds in the inventory until then)' : ''}; put the entry back, with this database name and table, until a run has settled it`,
      );
    else if (s.inFlight)
      lines.push(
        `  in flight: a batch ${s.inFlight.stage}, ${s.inFlight.objects} objects, ${formatNumber(s.inFlight.rows)} rows (${s.inFlight.firstDay} to ${s.inFlight.lastDay}); the next run finishes or undoes it first${s.inFlight.stage === 'deleting' ? ', unless it fails with BatchOutcomeUnknownError: then `batch settle` (runbook)' : ''}`,
      );
    if (s.legalHold) lines.push(`  legal hold: ${s.legalHold}`);
    const outcome = (o: OutcomeBrief) =>
      `${o.status} at ${o.finishedAt} (run ${o.runId}), ${formatNumber(o.rowsArchived)} rows${o.budgetReached ? ', batch budget reached: rows left' : ''}${o.reason ? `; ${o.reason}` : ''}${o.error ? `; ${o.error}` : ''}`;
    lines.push(`  last run: ${s.last ? outcome(s.last) : 'none recorded'}`);
    if (s.last?.status !== 'succeeded')
      lines.push(`  last success: ${s.lastSucceeded ? outcome(s.lastSucceeded) : 'none recorded'}`);
    lines.push(
      `  archived so far: ${formatNumber(s.archived.rows)} rows in ${formatNumber(s.archived.batches)} batches`,
    );
  }
  // Table names, hold reasons and errors come from the database and operators: no control character reaches the terminal.
  return safeLines(lines);
}

/**
 * The lease owner of an operator's command that acts on a table's batch (`batch settle`): unique per command, as an
 * execution's id is, since a lease records the owner that released it and refuses that owner's later acquire (a
 * duplicated invocation arriving late).
 */
export const operatorOwner = (actor: string): string => `operator:${actor}:${randomUUID()}`;
export const isOperatorOwner = (owner: string): boolean => owner.startsWith('operator:');

/**
 * Whether a Step Functions execution may still be running, as a lease holder check. An execution Step Functions no
 * longer knows (its history deleted) is not running; any other failure to tell stops the command rather than guess.
 * An operator's command is taken to run while its lease lasts: nothing else can tell, and one that died leaves a
 * lease that expires.
 */
export function executionRunning(sfn: Pick<SFNClient, 'send'>): (executionArn: string) => Promise<boolean> {
  return async (executionArn) => {
    if (isOperatorOwner(executionArn)) return true;
    // Any other owner that is no execution runs no more.
    if (!executionArn.startsWith('arn:')) return false;
    const { DescribeExecutionCommand } = await import('@aws-sdk/client-sfn');
    try {
      const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
      return execution.status === 'RUNNING' || execution.status === 'PENDING_REDRIVE';
    } catch (error) {
      if ((error as Error).name === 'ExecutionDoesNotExist') return false;
      throw error;
    }
  };
}

export type BreakOutcome =
  | { broken: true; owner: string; inFlight?: string }
  | { broken: false; reason: string };

/**
 * Releases a table's lease whose holder is gone (a run killed or timed out before it released it), so the next run
 * need not wait for it to expire. Refused while the holding execution may still run: a live holder would lose its
 * lease to the next run mid-batch. The release is conditioned on the very owner and fencing token read, so a lease
 * taken (or renewed by a new acquisition) meanwhile is left alone. A batch in flight stays recorded: the next run
 * finishes or undoes it before anything else, as after any crash.
 */
export async function breakLease(ctx: LeaseContext, database: string, table: string): Promise<BreakOutcome> {
  resolveTable(ctx.config, database, table);
  const now = ctx.now?.() ?? new Date();
  const state = await ctx.leases.get(database, table);
  if (!state.owner || state.token === undefined)
    return { broken: false, reason: `${database}/${table} has no lease to break` };
  if ((state.expiresAt ?? 0) <= now.getTime())
    return {
      broken: false,
      reason: `the lease of ${state.owner} expired at ${new Date(state.expiresAt ?? 0).toISOString()}: the next run takes it`,
    };
  if (await ctx.holderRunning(state.owner))
    return {
      broken: false,
      reason: `${state.owner} is still running: stop that execution first, or let it end (it releases the lease)`,
    };
  const inFlight = state.inFlight?.stage;
  // Recorded before it is released: released first, a break whose event could not be written left no lease for the
  // command run again to find, and so no trace in the trail (see auditLeaseBroken).
  await auditLeaseBroken(ctx, database, table, { owner: state.owner, token: state.token, inFlight }, now);
  const released = await ctx.leases.release(database, table, { owner: state.owner, token: state.token });
  if (!released)
    return { broken: false, reason: `the lease changed hands while it was being broken; run status again` };
  return { broken: true, owner: state.owner, ...(inFlight ? { inFlight } : {}) };
}

/**
 * The audit event of a lease released before it expired, its holder gone: `lease break`, or `batch settle`. Written
 * before the release, under an id of the lease (owner and fencing token): a command that fails between the two and
 * is run again writes the same event, which readers list once (two operators at once: one each). The release is
 * conditioned on that owner and token, and a holder found gone does not release it itself.
 */
export async function auditLeaseBroken(
  ctx: Pick<LeaseContext, 'store' | 'config' | 'actor'>,
  database: string,
  table: string,
  lease: { owner: string; token: number; inFlight: string | undefined },
  now: Date,
): Promise<void> {
  await appendAuditEvent(
    ctx.store,
    { prefix: ctx.config.s3.prefix, kmsKeyId: ctx.config.s3.kmsKeyId },
    {
      id: auditEventId('lease-broken', database, table, lease.owner, String(lease.token)),
      kind: 'lease-broken',
      time: now.toISOString(),
      actor: ctx.actor,
      database,
      table,
      details: { owner: lease.owner, token: lease.token, inFlight: lease.inFlight ?? null },
    },
  );
}
