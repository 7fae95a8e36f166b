import { createHash } from 'node:crypto';
import { z } from 'zod';
import { RestoreIncompleteError } from '../errors/step-errors.js';
import { attributeBytes, ITEM_LIMIT_BYTES } from './item-size.js';
import { itemKey, type LockTableClient, OUTCOME_TTL_SECONDS } from './table-client.js';

/** What one archive gave a restore; `failed` carries the error, never row values. */
export const RestoreFileResultSchema = z.object({
  key: z.string(),
  status: z.enum(['restored', 'already-restored', 'dry-run', 'failed']),
  rows: z.number().int().nonnegative(),
  inserted: z.number().int().nonnegative(),
  /** Rows left as they were because the target already had their key (strategy `skip`). */
  skipped: z.number().int().nonnegative(),
  /** Rows that replaced an existing row with the same key (strategy `overwrite`). */
  overwritten: z.number().int().nonnegative(),
  warnings: z.array(z.string()),
  error: z.string().optional(),
});
export type RestoreFileResult = z.infer<typeof RestoreFileResultSchema>;

/** An archive that wrote nothing, with why: a short message (it travels in a page of results), never row values. */
export function failedRestoreResult(key: string, error: string): RestoreFileResult {
  return {
    key,
    status: 'failed',
    rows: 0,
    inserted: 0,
    skipped: 0,
    overwritten: 0,
    warnings: [],
    error: error.slice(0, 1000),
  };
}

/**
 * Where a restore's plan recorded the keys of the archives it found (recordPlan): the digest of the keys, which names
 * the items, and how many items hold them.
 */
export const PlannedKeysSchema = z
  .object({ digest: z.string().min(1), parts: z.number().int().positive() })
  .strict();
export type PlannedKeys = z.infer<typeof PlannedKeysSchema>;

/** An item of a plan's keys as read back (its partition key and TTL besides). */
const PlanPartSchema = z.object({ sk: z.string(), keys: z.array(z.string()) });

/** Bytes of keys one item of a plan holds at most: DynamoDB's item limit, less room for its key and TTL. */
const PLAN_PART_BYTES = ITEM_LIMIT_BYTES - 4 * 1024;

export interface RestoredMark {
  restoreId: string;
  /** The start of the restore execution that wrote it (`$$.Execution.StartTime`; absent on older marks). */
  startedAt?: string;
  restoredAt: string;
  rows: number;
  /** What the restore did with the rows, so a retry of the same restore reports it (absent on older marks). */
  written?: Pick<RestoreFileResult, 'inserted' | 'skipped' | 'overwritten'>;
  /**
   * The target's rows in the archive's time window and the digest of their keys when the restore committed: while
   * both are the same, the archive's rows are still there (absent on older marks, and where the target cannot read the
   * window).
   */
  window?: { rows: number; digest: string };
  /**
   * The restore transaction that wrote the rows, on a mark written before its COMMIT (and written again without it
   * once committed): the mark answers only when that transaction committed on this very server, otherwise `previous`,
   * the mark that answered before it, does. A lock-table write that fails after the COMMIT so leaves no committed rows
   * without a mark, which a retry under `fail` would take for a conflict.
   */
  commit?: { xid: string; server?: string; previous?: RestoredMark };
}

/** What restores leave behind: each archive's result (expires after 90 days) and the watermarks (never expire). */
export class RestoreRecords {
  constructor(private readonly lockTable: LockTableClient) {}

  /**
   * Records a page of per-archive results, one item each, in requests of 25 (a page's items never crowd the state).
   * `startedAt` is the execution's start: Step Functions gives a name again 90 days after its execution ended, before
   * TTL may have removed that execution's results, so each result says which execution of the name it belongs to.
   */
  async recordResults(restoreId: string, results: RestoreFileResult[], startedAt?: string): Promise<void> {
    await this.lockTable.putItems(
      results.map((result) => ({
        pk: `RESTORE#${restoreId}`,
        sk: result.key,
        attributes: startedAt ? { result, startedAt } : { result },
      })),
    );
  }

  /**
   * The results of the restore `restoreId` started at `startedAt` (every result of the name without it). A result
   * without `startedAt` (written by an earlier version, for an execution in flight across the upgrade) counts when it
   * was written after this start, as its TTL tells: an earlier execution of the name ended 90 days before it.
   */
  async listResults(restoreId: string, startedAt?: string): Promise<RestoreFileResult[]> {
    const items = await this.lockTable.queryAll(`RESTORE#${restoreId}`);
    const since = startedAt ? Date.parse(startedAt) - UNDATED_RESULT_CLOCK_SLACK_MS : undefined;
    return items
      .filter(
        (item) =>
          since === undefined ||
          item.startedAt === startedAt ||
          (item.startedAt === undefined && writtenAt(item) >= since),
      )
      .map((item) => item.result as RestoreFileResult);
  }

  /**
   * Records the keys of the archives a restore's plan found, so its finish can tell by key which of them no page
   * reached: a count would let an archive committed since the plan stand in for one gone. The keys travel in as few
   * items as fit (a plan may find many thousands; the execution's state carries only the digest and the number of
   * items), one BatchWriteItem for some 25 of them; named by the digest of the keys, so a retried plan that found
   * others never mixes its keys with the first attempt's. They expire with the results.
   */
  async recordPlan(restoreId: string, keys: string[]): Promise<PlannedKeys> {
    const sorted = [...new Set(keys)].sort();
    const digest = planDigest(sorted);
    const parts: string[][] = [];
    let bytes = 0;
    for (const key of sorted) {
      const size = 1 + attributeBytes(key);
      const last = parts.at(-1);
      if (!last || bytes + size > PLAN_PART_BYTES) {
        parts.push([key]);
        bytes = size;
      } else {
        last.push(key);
        bytes += size;
      }
    }
    await this.lockTable.putItems(
      parts.map((part, at) => ({
        pk: planKey(restoreId),
        sk: planPartKey(digest, at),
        attributes: { keys: part },
      })),
    );
    return { digest, parts: parts.length };
  }

  /**
   * The keys a restore's plan recorded (recordPlan), in key order, read in one Query (a page per MB). Fails when they are not all there (the items
   * expired, or were removed): the finish cannot tell then which archives were restored, and must not say all were.
   */
  async plannedKeys(restoreId: string, planned: PlannedKeys): Promise<string[]> {
    const items = await this.lockTable.queryAll(planKey(restoreId));
    const parts = new Map(
      items.map((item) => PlanPartSchema.parse(item)).map((part) => [part.sk, part.keys] as const),
    );
    const keys = Array.from(
      { length: planned.parts },
      (_, at) => parts.get(planPartKey(planned.digest, at)) ?? [],
    ).flat();
    if (planDigest(keys) !== planned.digest)
      throw new RestoreIncompleteError(
        `the lock table no longer holds every key of the archives restore ${restoreId}'s plan found (${planKey(restoreId)}), so whether each was restored is unknown; restore again`,
      );
    return keys;
  }

  /**
   * Records what a group wrote of archives that get no watermark (restored in part, not in the inventory, or some of
   * their rows skipped), each as a mark naming the group's transaction, written before its COMMIT and expiring with the
   * results. Only the same restore reads them (groupWrites): a retry of a group that committed then reports what it
   * wrote instead of meeting its own rows, while other restores see the watermark alone.
   */
  async recordGroupWrites(
    restoreId: string,
    writes: { archiveKey: string; mark: RestoredMark }[],
  ): Promise<void> {
    await this.lockTable.putItems(
      writes.map(({ archiveKey, mark }) => ({
        pk: groupWritesKey(restoreId),
        sk: archiveKey,
        attributes: { mark },
      })),
    );
  }

  /** What earlier attempts of the restore `restoreId`'s groups recorded of these archives (recordGroupWrites). */
  async groupWrites(restoreId: string, archiveKeys: string[]): Promise<Map<string, RestoredMark>> {
    return marksByKey(this.lockTable, groupWritesKey(restoreId), archiveKeys);
  }

  /**
   * The restore watermark: which archives a target table already received, so a repeated restore skips them. These
   * archives' marks for one target, by archive key, in one read (a group's archives).
   */
  async restoredMarks(
    database: string,
    target: string,
    archiveKeys: string[],
  ): Promise<Map<string, RestoredMark>> {
    return marksByKey(this.lockTable, RestoreRecords.watermarkKey(database, target).pk, archiveKeys);
  }

  /**
   * Records the watermarks of a group's archives, 25 to a request; they never expire. `target` is the watermark's
   * target, the table and its identity (`schema.name@identity`); it is listed among the table's watermark targets
   * (targetsKey) first, in a request of its own, so that an archive committed later finds every mark it makes stale in
   * one query: a write cut short after some of the marks never leaves marks that no commit can find.
   */
  async markAllRestored(
    database: string,
    target: string,
    marks: { archiveKey: string; mark: RestoredMark }[],
  ): Promise<void> {
    if (marks.length === 0) return;
    await this.lockTable.putItems(
      [{ ...RestoreRecords.targetsKey(database, tableOfTarget(target)), sk: target, attributes: {} }],
      false,
    );
    await this.lockTable.putItems(
      marks.map(({ archiveKey, mark }) => ({
        ...RestoreRecords.watermarkKey(database, target),
        sk: archiveKey,
        attributes: { mark },
      })),
      false,
    );
  }

  /** The partition of a watermark target's marks (`schema.name@identity`), one item per archive it received. */
  static watermarkKey(database: string, target: string): { pk: string } {
    return { pk: `RESTORED#${database}#${target}` };
  }

  /**
   * The partition that lists a table's watermark targets (one item per identity it received archives under, the
   * target as sort key). Its key cannot be a watermark's: those end in `@` and an identity, digits and a dot.
   */
  static targetsKey(database: string, table: string): { pk: string } {
    return { pk: `RESTORED#${database}#${table}@targets` };
  }

  /**
   * Removes the watermarks of these archives in `table` as a restore target, under any identity of it: a committed
   * batch archived (back) into these keys rows that were restored into the table, so the table no longer holds them
   * and a restore must write them again. One query for the table's targets: nothing more when the table never was
   * a restore target; otherwise the marks are read by key (100 to a request) and those there deleted (25 to one).
   */
  async forgetRestored(database: string, table: string, archiveKeys: readonly string[]): Promise<void> {
    if (archiveKeys.length === 0) return;
    const targets = await this.lockTable.queryAll(RestoreRecords.targetsKey(database, table).pk);
    const keys = targets.flatMap((item) =>
      [...new Set(archiveKeys)].map((sk) => ({
        ...RestoreRecords.watermarkKey(database, String(item.sk)),
        sk,
      })),
    );
    if (keys.length === 0) return;
    const found = await this.lockTable.getItems(keys);
    await this.lockTable.deleteItems(keys.filter(({ pk, sk }) => found.has(itemKey(pk, sk))));
  }
}

/** The partition of the keys one restore's plan found: apart from its results, which are listed whole. */
const planKey = (restoreId: string): string => `RESTORE-PLAN#${restoreId}`;

const planPartKey = (digest: string, at: number): string => `${digest}#${at}`;

/** 128 bits of the SHA-256 of the sorted keys, as JSON (a key may hold any character). */
const planDigest = (sortedKeys: string[]): string =>
  createHash('sha256').update(JSON.stringify(sortedKeys)).digest('base64url').slice(0, 22);

/** The partition of one restore's group writes: apart from its results, which are listed whole. */
const groupWritesKey = (restoreId: string): string => `RESTORE-WRITES#${restoreId}`;

/** The marks of these archives in the partition `pk`, by archive key, in one read. */
async function marksByKey(
  lockTable: LockTableClient,
  pk: string,
  archiveKeys: string[],
): Promise<Map<string, RestoredMark>> {
  const items = await lockTable.getItems(archiveKeys.map((sk) => ({ pk, sk })));
  const marks = new Map<string, RestoredMark>();
  for (const key of archiveKeys) {
    const mark = items.get(itemKey(pk, key))?.mark;
    if (mark) marks.set(key, mark as RestoredMark);
  }
  return marks;
}

/** The table of a watermark target (`schema.name@identity`): an identity holds no `@`, so up to the last one. */
const tableOfTarget = (target: string): string => {
  const at = target.lastIndexOf('@');
  return at < 0 ? target : target.slice(0, at);
};

/**
 * How far behind Step Functions' clock a function's may run when its undated result is judged by its TTL: a day, far
 * more than clocks drift, far less than the 90 days between two executions of one name.
 */
const UNDATED_RESULT_CLOCK_SLACK_MS = 24 * 3600 * 1000;

/** When an item with the TTL attribute was written (milliseconds). */
const writtenAt = (item: Record<string, unknown>): number => (Number(item.ttl) - OUTCOME_TTL_SECONDS) * 1000;
