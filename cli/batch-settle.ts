import { pipeline } from 'node:stream/promises';
import { createLinesGunzip, LineMeter } from '../lambdas/shared/archive/stream.js';
import {
  deleteOutcome,
  recordCommitted,
  settleDelete,
  withdrawBatch,
} from '../lambdas/shared/batch/batch.js';
import { batchTotals } from '../lambdas/shared/batch/batch-objects.js';
import { type ResolvedTable, resolveTable } from '../lambdas/shared/config/resolved-table.js';
import { inReadOnlyTransaction } from '../lambdas/shared/database/db.js';
import { describeTable, type TableShape } from '../lambdas/shared/database/table-shape.js';
import { quoteIdent, rowSourceSql } from '../lambdas/shared/database/table-sql.js';
import { BatchOutcomeUnknownError, DeleteInProgressError } from '../lambdas/shared/errors/step-errors.js';
import type { BatchObject, InFlight, Lease } from '../lambdas/shared/lock-table/table-state.js';
import type { StepDeps } from '../lambdas/shared/step/step-deps.js';
import { appendAuditEvent, auditEventId } from '../lambdas/shared/telemetry/audit-trail.js';
import { type InterruptHooks, releasingOnInterrupt } from './interrupt.js';
import { auditLeaseBroken, isOperatorOwner, operatorOwner } from './leases.js';

/** What settling a batch uses: the steps' own stores and database access, who acts, and the holder check. */
export type SettleContext = Pick<
  StepDeps,
  'config' | 'locks' | 'inventory' | 'store' | 'database' | 'telemetry' | 'now'
> & {
  actor: string;
  /** As for `lease break`: whether the execution holding the table's lease may still run. */
  holderRunning(owner: string): Promise<boolean>;
  /** Tests only: the signals that stop the command, and how it ends. */
  interrupts?: InterruptHooks;
};

export type SettleOutcome =
  | { settled: true; as: 'committed' | 'aborted'; objects: number; rows: number }
  | { settled: false; reason: string };

/** Archived keys looked up per query. */
const KEYS_PER_QUERY = 5_000;

/**
 * Settles a batch whose delete's outcome no step can establish (BatchOutcomeUnknownError), as the operator decides
 * after the runbook's checks, or one whose outcome the server tells, as it tells (no run settles the batch of a table
 * under a legal hold):
 *
 * - `committed`: its archives are entered in the inventory and the batch is cleared, as the delete's commit does.
 *   No row can be lost this way: a row the delete did not remove stays in the table, and a later run archives it
 *   again (it is then in two archives, never in none).
 * - `aborted`: its archives are withdrawn and the next run archives the rows as they are. Refused unless every
 *   archived row's key is still in the table: withdrawing an archive whose rows are gone would lose them.
 *
 * The table's lease is taken for the duration (refused while a running execution holds it), so no run acts on the
 * batch meanwhile, and every write is conditioned on it as the steps' writes are.
 */
export async function settleBatch(
  ctx: SettleContext,
  database: string,
  table: string,
  as: 'committed' | 'aborted',
): Promise<SettleOutcome> {
  const resolved = resolveTable(ctx.config, database, table);
  const state = await ctx.locks.get(database, table);
  const seen = state.inFlight;
  if (seen?.stage !== 'deleting') {
    return {
      settled: false,
      reason: seen
        ? `its batch is ${seen.stage}: the next run settles it`
        : `${database}/${table} has no batch in flight`,
    };
  }
  // A delete Lambda outlives a stopped or timed-out execution by up to its timeout: whoever holds the lease, expired
  // or not, must be over before anything is decided. Only an operator's command is over once its lease expired.
  const now = ctx.now().getTime();
  const expired = (state.expiresAt ?? 0) <= now;
  const holder = state.owner && !(expired && isOperatorOwner(state.owner)) ? state.owner : undefined;
  if (holder && (await ctx.holderRunning(holder)))
    return { settled: false, reason: `${holder} holds the table and is still running` };
  // A gone holder's lease that has not expired is broken, as `lease break` would, and recorded as such.
  let broken = '';
  if (state.owner && state.token !== undefined && !expired) {
    const lease = { owner: state.owner, token: state.token };
    // Recorded before it is released, as lease break records it.
    await auditLeaseBroken(ctx, database, table, { ...lease, inFlight: seen.stage }, ctx.now());
    if (await ctx.locks.release(database, table, lease)) {
      broken = `; the lease of ${lease.owner}, whose run is over, was broken all the same (in the audit trail)`;
    }
  }
  // A refusal after that says so: the table is free for the next run, which the operator may not expect.
  const refused = (reason: string): SettleOutcome => ({ settled: false, reason: `${reason}${broken}` });
  const owner = operatorOwner(ctx.actor);
  const taken = await ctx.locks.acquire(database, table, owner, ctx.config.defaults.leaseSeconds);
  if (!taken.acquired) return refused(`${taken.holder} took the table meanwhile`);
  // Stopped (Ctrl-C, SIGTERM) while it holds the lease, it gives it back: an operator's lease counts as running until
  // it expires, so one left behind would keep every run, `lease break` and another settle off the table until then.
  return releasingOnInterrupt(
    async () =>
      (await ctx.locks.release(database, table, taken.lease))
        ? `released the lease of ${database}/${table}; run status, then batch settle again`
        : undefined,
    () =>
      settleUnderLease(
        ctx,
        resolved,
        { table, seen, as, lease: taken.lease, runId: `settle-${now}` },
        refused,
      ),
    ctx.interrupts,
  );
}

/** The settlement itself, under the operator's lease, which it releases when it ends. */
async function settleUnderLease(
  ctx: SettleContext,
  resolved: ResolvedTable,
  {
    table,
    seen,
    as,
    lease,
    runId,
  }: { table: string; seen: InFlight; as: 'committed' | 'aborted'; lease: Lease; runId: string },
  refused: (reason: string) => SettleOutcome,
): Promise<SettleOutcome> {
  const { database } = resolved;
  const task = { runId, database, table, cutoff: seen.cutoff, lease };
  // Under our lease now: the batch must still be the one read, and the claim one its delete's outcome allows.
  const inFlight = (await ctx.locks.get(database, table)).inFlight;
  const refusal = await unsettleable(ctx, resolved, seen, inFlight, as);
  if (refusal || !inFlight) {
    await ctx.locks.release(database, table, lease);
    return refused(refusal ?? 'the batch went meanwhile');
  }
  try {
    if (as === 'aborted') {
      const missing = await archivedKeysMissing(ctx, resolved, inFlight);
      if (missing > 0) {
        return refused(
          `${missing} archived rows of the batch are not in the table: withdrawing its archives would lose them; settle it as committed`,
        );
      }
    }
    // Recorded before the batch is settled: settled first, a settle whose event could not be written left no batch
    // for the command run again to find, and so no trace of the operator's decision in the trail. Its id is the
    // batch's and the claim's: run again after a failure between the two, it is written again and read once.
    await appendAuditEvent(
      ctx.store,
      { prefix: ctx.config.s3.prefix, kmsKeyId: ctx.config.s3.kmsKeyId },
      {
        id: auditEventId('batch-settled', database, table, inFlight.batchId, as),
        kind: 'batch-settled',
        time: ctx.now().toISOString(),
        actor: ctx.actor,
        database,
        table,
        details: {
          batchId: inFlight.batchId,
          as,
          objects: inFlight.objects.length,
          rows: batchTotals(inFlight).rowCount,
        },
      },
    );
    if (as === 'aborted') await withdrawBatch(ctx, task, inFlight, 'rows-changed');
    else await recordCommitted(ctx, task, inFlight);
  } finally {
    await ctx.locks.release(database, table, lease);
  }
  return { settled: true, as, objects: inFlight.objects.length, rows: batchTotals(inFlight).rowCount };
}

/**
 * Why the batch may not be settled as claimed, if so: it changed since it was read, its delete is still running, or
 * its outcome can be established as a run establishes it, by the server (which knows how the transaction ended) or by
 * the rows (none or exactly the archived ones left), and the claim is the other one: it would lose rows (aborted) or
 * leave them both in the table and in a committed archive (committed). A claim that agrees is taken; an outcome no
 * step can establish is the operator's to decide.
 */
async function unsettleable(
  ctx: SettleContext,
  table: ResolvedTable,
  seen: InFlight,
  now: InFlight | undefined,
  as: 'committed' | 'aborted',
): Promise<string | undefined> {
  if (!now || now.batchId !== seen.batchId || now.stage !== 'deleting' || now.deleteXid !== seen.deleteXid)
    return 'the batch changed while it was being settled; run status again';
  const db = await ctx.database(table.database);
  // An outcome the server or the rows tell is settled as they tell it, by the next run or here: a run cannot come
  // while the table is under a legal hold, and a restore waits for the batch meanwhile.
  const contrary = (told: 'committed' | 'aborted', how: string) =>
    told === as ? undefined : `${how}: settle it --as ${told}, or let the next run settle it`;
  try {
    const status = await db.withConnection((client) => deleteOutcome(client, table, now));
    if (status !== 'unknown')
      return contrary(
        status === 'committed' ? 'committed' : 'aborted',
        `the server knows its delete ${status === 'committed' ? 'committed' : 'did not commit'}`,
      );
    const byRows = await db.withConnection((client) => settleDelete(client, ctx.store, table, now));
    return contrary(
      byRows === 'committed' ? 'committed' : 'aborted',
      `its rows tell its delete ${byRows === 'committed' ? 'committed (none is left)' : 'did not commit (all are in the table as archived)'}`,
    );
  } catch (error) {
    if (error instanceof DeleteInProgressError)
      return `its delete transaction ${now.deleteXid} is still open`;
    if (error instanceof BatchOutcomeUnknownError) return undefined;
    throw error;
  }
}

/** How many rows of the batch's verified archives have no row with their key in the table. */
async function archivedKeysMissing(
  ctx: SettleContext,
  table: ReturnType<typeof resolveTable>,
  inFlight: InFlight,
): Promise<number> {
  const db = await ctx.database(table.database);
  return db.withConnection((client) =>
    inReadOnlyTransaction(client, async () => {
      const shape = await describeTable(client, table);
      let missing = 0;
      for (const object of inFlight.objects) {
        for await (const keys of archivedKeys(ctx, shape, object)) {
          const arrays = shape.keyColumns.map((_, i) => keys.map((key) => key[i] ?? ''));
          const tuple = shape.keyColumns.map((c) => `t.${quoteIdent(c.name)}::text`).join(', ');
          const unnest = shape.keyColumns.map((_, i) => `$${i + 1}::text[]`).join(', ');
          const found = await client.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${rowSourceSql(shape)} AS t
              WHERE (${tuple}) IN (SELECT * FROM unnest(${unnest}))`,
            arrays,
          );
          missing += keys.length - (found.rows[0]?.n ?? 0);
        }
      }
      return missing;
    }),
  );
}

/**
 * The key values (text form, as archived) of an object's rows, in lists of `KEYS_PER_QUERY`; read whole from its
 * pinned object first (a CLI's memory, not a function's: one batch's keys).
 */
async function* archivedKeys(
  ctx: SettleContext,
  shape: TableShape,
  object: BatchObject,
): AsyncGenerator<string[][]> {
  const body = await ctx.store.getStream(object.archiveKey, object.pin);
  if (!body) throw new Error(`the batch's archive ${object.archiveKey} cannot be read`);
  const names = shape.keyColumns.map((c) => c.name);
  let keys: string[][] = [];
  const batches: string[][][] = [];
  const meter = new LineMeter(undefined, (parts) => {
    const row = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, string | null>;
    keys.push(names.map((name) => row[name] ?? ''));
    if (keys.length === KEYS_PER_QUERY) {
      batches.push(keys);
      keys = [];
    }
  });
  await pipeline(body, createLinesGunzip(), async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) meter.push(chunk);
  });
  meter.end();
  if (keys.length > 0) batches.push(keys);
  yield* batches;
}
