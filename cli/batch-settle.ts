import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { LineMeter } from '../lambdas/shared/archive/stream.js';
import { recordCommitted, withdrawBatch } from '../lambdas/shared/batch/batch.js';
import { batchTotals } from '../lambdas/shared/batch/batch-objects.js';
import { resolveTable } from '../lambdas/shared/config/resolved-table.js';
import { inReadOnlyTransaction } from '../lambdas/shared/database/db.js';
import { describeTable, type TableShape } from '../lambdas/shared/database/table-shape.js';
import { quoteIdent, rowSourceSql } from '../lambdas/shared/database/table-sql.js';
import type { BatchObject, InFlight } from '../lambdas/shared/lock-table/table-state.js';
import type { StepDeps } from '../lambdas/shared/step/step-deps.js';
import { appendAuditEvent } from '../lambdas/shared/telemetry/audit-trail.js';

/** What settling a batch uses: the steps' own stores and database access, who acts, and the holder check. */
export type SettleContext = Pick<
  StepDeps,
  'config' | 'locks' | 'inventory' | 'store' | 'database' | 'telemetry' | 'now'
> & {
  actor: string;
  /** As for `lease break`: whether the execution holding the table's lease may still run. */
  holderRunning(owner: string): Promise<boolean>;
};

export type SettleOutcome =
  | { settled: true; as: 'committed' | 'aborted'; objects: number; rows: number }
  | { settled: false; reason: string };

/** Archived keys looked up per query. */
const KEYS_PER_QUERY = 5_000;

/**
 * Settles a batch whose delete's outcome no step can establish (BatchOutcomeUnknownError), as the operator decides
 * after the runbook's checks:
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
  const inFlight = state.inFlight;
  if (inFlight?.stage !== 'deleting') {
    return {
      settled: false,
      reason: inFlight
        ? `its batch is ${inFlight.stage}: the next run settles it`
        : `${database}/${table} has no batch in flight`,
    };
  }
  const now = ctx.now().getTime();
  if (state.owner && (state.expiresAt ?? 0) > now) {
    if (await ctx.holderRunning(state.owner))
      return { settled: false, reason: `${state.owner} holds the table and is still running` };
    if (state.token !== undefined)
      await ctx.locks.release(database, table, { owner: state.owner, token: state.token });
  }
  const owner = `operator:${ctx.actor}`;
  const taken = await ctx.locks.acquire(database, table, owner, ctx.config.defaults.leaseSeconds);
  if (!taken.acquired) return { settled: false, reason: `${taken.holder} took the table meanwhile` };
  const task = { runId: `settle-${now}`, database, table, cutoff: inFlight.cutoff, lease: taken.lease };
  try {
    if (as === 'aborted') {
      const missing = await archivedKeysMissing(ctx, resolved, inFlight);
      if (missing > 0) {
        return {
          settled: false,
          reason: `${missing} archived rows of the batch are not in the table: withdrawing its archives would lose them; settle it as committed`,
        };
      }
      await withdrawBatch(ctx, task, inFlight, 'rows-changed');
    } else {
      await recordCommitted(ctx, task, inFlight);
    }
  } finally {
    await ctx.locks.release(database, table, taken.lease);
  }
  await appendAuditEvent(
    ctx.store,
    { prefix: ctx.config.s3.prefix, kmsKeyId: ctx.config.s3.kmsKeyId },
    {
      kind: 'batch-settled',
      time: new Date(now).toISOString(),
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
  return { settled: true, as, objects: inFlight.objects.length, rows: batchTotals(inFlight).rowCount };
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

/** The key values (text form, as archived) of an object's rows, `KEYS_PER_QUERY` at a time; read from its pinned object. */
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
  await pipeline(body, createGunzip(), async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) meter.push(chunk);
  });
  meter.end();
  if (keys.length > 0) batches.push(keys);
  yield* batches;
}
