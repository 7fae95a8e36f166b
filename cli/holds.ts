import { PutObjectLegalHoldCommand, type S3Client } from '@aws-sdk/client-s3';
import { listArchives, sidecarKeyFor } from '../lambdas/shared/archive/catalog.js';
import { spanLastDay, tablePrefix } from '../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../lambdas/shared/archive/store.js';
import { tableLocation } from '../lambdas/shared/batch/batch.js';
import { resolveTable } from '../lambdas/shared/config/resolved-table.js';
import type { ArchiverConfig } from '../lambdas/shared/config/schema.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import type { Hold, LegalHolds } from '../lambdas/shared/lock-table/legal-holds.js';
import { isConditionFailure } from '../lambdas/shared/lock-table/table-client.js';
import { appendAuditEvent, auditEventId } from '../lambdas/shared/telemetry/audit-trail.js';
import { requireCalendarDays } from './archives.js';
import { type SafeText, safeJson, safeLine, safeLines } from './output.js';

/** What the hold commands act on: the lock table the steps read holds from, and the bucket of the audit trail. */
export interface HoldContext {
  config: ArchiverConfig;
  holds: LegalHolds;
  store: ArchiveStore;
  /** Who acts, recorded with the hold and in the audit trail. */
  actor: string;
  now?: () => Date;
}

/** Every hold change and Object Lock legal hold leaves an audit event (never row values: names and counts). */
async function audit(
  ctx: HoldContext,
  database: string,
  table: string,
  details: Record<string, string | number | null>,
  id?: string,
): Promise<void> {
  await appendAuditEvent(
    ctx.store,
    { prefix: ctx.config.s3.prefix, kmsKeyId: ctx.config.s3.kmsKeyId },
    {
      ...(id ? { id } : {}),
      kind: 'legal-hold-changed',
      time: (ctx.now?.() ?? new Date()).toISOString(),
      actor: ctx.actor,
      database,
      table,
      details,
    },
  );
}

/**
 * Puts a table under legal hold (an item in the lock table): the next lock step skips it as `held`, and a run
 * already going starts no further batch (the batch in flight finishes: its rows are already in a verified archive).
 */
export async function setHold(
  ctx: HoldContext,
  database: string,
  table: string,
  reason: string,
): Promise<Hold> {
  resolveTable(ctx.config, database, table);
  if (reason.trim() === '') throw new ConfigError('--reason must not be empty: a hold says why');
  // A table has one hold item: another case's hold would replace this one, and a clear for either lift both.
  const held = await ctx.holds.get(database, table);
  if (held && held.reason !== reason)
    throw new ConfigError(
      `${database}/${table} is already under legal hold: ${held.reason} (set ${held.setAt} by ${held.setBy ?? '-'}); it stays held. To hold it for another reason too, clear it and set it again with both reasons in one --reason`,
    );
  const hold: Hold = {
    database,
    table,
    reason,
    setBy: ctx.actor,
    setAt: (ctx.now?.() ?? new Date()).toISOString(),
  };
  await ctx.holds.set(hold);
  await audit(ctx, database, table, { action: 'hold-set', scope: 'table', reason });
  return hold;
}

/** The legal hold the config itself puts on a table (its reason), which no command lifts; undefined when none. */
export const configHold = (config: ArchiverConfig, database: string, table: string): string | undefined =>
  resolveTable(config, database, table).governance.configHold;

/**
 * Lifts an operator's hold; a hold written in the config stays until the config changes. The event is written before
 * the hold goes: cleared first, a clear whose event could not be written left no hold for the command run again to
 * find, and so no trace in the trail. A clear that fails after its event leaves the table held, and run again writes
 * the same event (the hold's id), which readers list once; run by another operator, it names them too.
 */
export async function clearHold(ctx: HoldContext, database: string, table: string): Promise<boolean> {
  resolveTable(ctx.config, database, table);
  const held = await ctx.holds.get(database, table);
  if (!held) return false;
  await audit(
    ctx,
    database,
    table,
    { action: 'hold-cleared', scope: 'table', reason: null },
    auditEventId('hold-cleared', database, table, held.setAt),
  );
  try {
    return await ctx.holds.clear(database, table, held.setAt);
  } catch (error) {
    // Cleared and set again since it was read: the new hold is not the one this clear recorded lifting.
    if (isConditionFailure(error))
      throw new Error(
        `the legal hold on ${database}/${table} changed while it was being cleared (set again since ${held.setAt}); it stays: run hold list, then hold clear again`,
      );
    throw error;
  }
}

/** The holds as lines for a person, or with `json` as one JSON array (empty when there is none) for a script. */
export function formatHolds(holds: Hold[], { json = false }: { json?: boolean } = {}): SafeText {
  if (json) return safeJson(holds);
  if (holds.length === 0) return safeLine('No legal holds in the lock table.');
  // A reason is an operator's text, a table name the database's: no control character reaches the terminal.
  return safeLines(
    holds.map((h) => `${h.database}/${h.table}: ${h.reason} (set ${h.setAt} by ${h.setBy ?? '-'})`),
  );
}

export interface LegalHoldOptions {
  fromDay?: string;
  toDay?: string;
}

/**
 * S3 Object Lock legal hold on every archive (data object and manifest) of a table, optionally a day range. The
 * bucket must have Object Lock enabled. Repeating it is harmless: the status is set, not toggled.
 */
export async function setObjectLegalHold(
  ctx: HoldContext & { s3: Pick<S3Client, 'send'> },
  database: string,
  table: string,
  status: 'ON' | 'OFF',
  options: LegalHoldOptions = {},
): Promise<{ archives: number; objects: number }> {
  requireCalendarDays({ from: options.fromDay, to: options.toDay });
  const resolved = resolveTable(ctx.config, database, table);
  if (status === 'OFF') {
    // Object Lock's legal hold is what keeps a held table's archives from the lifecycle's expiry (expireAfterDays):
    // lifted while the table is held, the very rows the hold is for could be deleted from the bucket.
    const held = resolved.governance.configHold ?? (await ctx.holds.get(database, table))?.reason;
    if (held !== undefined)
      throw new ConfigError(
        `${database}/${table} is under legal hold (${held}): its archives keep their Object Lock legal hold until the table's hold is cleared (hold clear, or legalHold taken out of the config); nothing was lifted`,
      );
  }
  const location = tableLocation(ctx.config, resolved);
  const refs = [];
  for await (const ref of listArchives(ctx.store, { format: 'native', location }, options)) refs.push(ref);
  // A month object holds every day of its month: placing a hold on some of its days holds them all, which is safe;
  // lifting it for some days would lift it on the others too, which another hold may still need.
  const wider = refs.filter(
    (ref) =>
      (options.fromDay !== undefined && ref.day < options.fromDay) ||
      (options.toDay !== undefined && spanLastDay(ref.day, ref.span) > options.toDay),
  );
  // Object Lock holds objects that exist: a hold on none protects nothing, and must not be recorded as placed.
  if (refs.length === 0) {
    throw new ConfigError(
      `no archives of ${table} in ${database}${options.fromDay || options.toDay ? ` between ${options.fromDay ?? 'the first day'} and ${options.toDay ?? 'the last day'}` : ''} (under ${tablePrefix(location)}): no legal hold was ${status === 'ON' ? 'placed' : 'lifted'}`,
    );
  }
  if (status === 'OFF' && wider.length > 0) {
    throw new ConfigError(
      `${wider.length} month archive(s) reach beyond ${options.fromDay ?? 'the first day'}..${options.toDay ?? 'the last day'} (${wider[0]?.key}): lifting their hold would lift it on days outside the range; give whole months`,
    );
  }
  let archives = 0;
  let objects = 0;
  for (const ref of refs) {
    for (const key of [ref.key, sidecarKeyFor(ref)]) {
      await ctx.s3.send(
        new PutObjectLegalHoldCommand({ Bucket: ctx.store.bucket, Key: key, LegalHold: { Status: status } }),
      );
      objects += 1;
    }
    archives += 1;
  }
  await audit(ctx, database, table, {
    action: status === 'ON' ? 'object-legal-hold-placed' : 'object-legal-hold-lifted',
    scope: 'objects',
    fromDay: options.fromDay ?? null,
    toDay: options.toDay ?? null,
    archives,
    objects,
  });
  return { archives, objects };
}
