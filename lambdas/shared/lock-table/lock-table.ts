import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DeleteCommand, GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { BatchBoundsSchema, BatchFiguresSchema, type Column, ColumnSchema } from '../archive/format.js';
import { type InventoryEntry, InventoryEntrySchema } from '../archive/inventory.js';
import { ObjectPinSchema } from '../archive/store.js';
import { ArchiveConflictError, classifyAwsError, LeaseLostError } from '../errors/step-errors.js';

/** The lease a table's execution holds: owner (execution id) plus a fencing token that grows on every acquisition. */
export const LeaseSchema = z.object({ owner: z.string().min(1), token: z.number().int().positive() });
export type Lease = z.infer<typeof LeaseSchema>;

/**
 * The one batch of a table that may be between export and a committed delete. It lives on the lease item so
 * that every change to it is conditioned on the lease, and a new holder can finish or undo it after a crash.
 */
export const InFlightSchema = z.object({
  /** `withdrawing`: claimed for withdrawal; its objects are being removed (a crash there is finished next run). */
  stage: z.enum(['exported', 'uploaded', 'verified', 'deleting', 'withdrawing']),
  /** Unique per export; stored on the archive object so a withdrawal only ever removes this batch's object. */
  batchId: z.string(),
  runId: z.string(),
  day: z.string(),
  cutoff: z.string(),
  stagingKey: z.string(),
  archiveKey: z.string(),
  /** Set by upload when this batch wrote the archive object (rather than finding identical rows archived before). */
  createdArchive: z.boolean().optional(),
  bounds: BatchBoundsSchema,
  figures: BatchFiguresSchema,
  /** The stored object verify read and checked: delete and every later read accept only that object. */
  pin: ObjectPinSchema.optional(),
  /** Transaction id of the delete, written before COMMIT: pg_xact_status() tells later whether it committed. */
  deleteXid: z.string().optional(),
  /** The server (system identifier and timeline) that xid belongs to: another server's xids mean nothing. */
  deleteServer: z.string().optional(),
  /** The table's columns at export; they become the table's `lastColumns` when this batch's delete commits. */
  columns: z.array(ColumnSchema).optional(),
  /** When export started this batch (epoch ms): the batch's rows/s, which sizes the next batch and the throttle. */
  exportedAt: z.number().optional(),
});
export type InFlight = z.infer<typeof InFlightSchema>;

export interface TableState {
  owner?: string;
  token?: number;
  expiresAt?: number;
  inFlight?: InFlight;
  totalRows: number;
  totalBytes: number;
  totalBatches: number;
  /** Columns of the last committed archive: what schema drift is measured against (no S3 read needed). */
  lastColumns?: Column[];
  lastArchiveKey?: string;
  /** The batch last cleared from the lease item, and whether as committed: how a retried clear recognises itself. */
  lastCleared?: { batchId: string; committed: boolean };
}

export type AcquireResult =
  | { acquired: true; lease: Lease; expiresAt: number }
  | { acquired: false; holder: string; expiresAt: number };

export interface TableOutcome {
  database: string;
  table: string;
  /** `held`: a legal hold kept the table from starting (or from starting another batch); nothing else changed. */
  status: 'succeeded' | 'skipped' | 'held' | 'failed';
  reason?: string;
  rowsArchived: number;
  bytesArchived: number;
  batches: number;
  /** True when eligible rows may remain because the per-run batch budget was used up. */
  budgetReached: boolean;
  durationSeconds?: number;
  error?: string;
  finishedAt: string;
}

/** An operator's legal hold on a table, kept in the lock table so it takes effect without a redeploy. */
export const HoldSchema = z.object({
  database: z.string(),
  table: z.string(),
  reason: z.string(),
  setBy: z.string().optional(),
  setAt: z.string(),
});
export type Hold = z.infer<typeof HoldSchema>;

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

export interface RestoredMark {
  restoreId: string;
  restoredAt: string;
  rows: number;
}

export const StoredConfigFingerprintSchema = z.object({
  hash: z.string(),
  paths: z.record(z.string(), z.string()),
  recordedAt: z.string(),
  runId: z.string(),
});
export type StoredConfigFingerprint = z.infer<typeof StoredConfigFingerprintSchema>;
const CONFIG_FINGERPRINT_KEY = { pk: 'CONFIG', sk: 'FINGERPRINT' };

const isConditionFailure = (error: unknown) =>
  (error as { name?: string }).name === 'ConditionalCheckFailedException';

/** JSON with sorted keys and without undefined values: a record compares equal to what was written for it. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
const OUTCOME_TTL_SECONDS = 90 * 24 * 3600;

/** DynamoDB lock/progress table: leases, in-flight batches, per-table totals and per-run outcomes. */
export class LockTable {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  private async call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (isConditionFailure(error)) throw error;
      throw classifyAwsError(error, 'dynamodb');
    }
  }

  /** Key of a table's lease/progress item. */
  static stateKey(database: string, table: string) {
    return { pk: `TABLE#${database}#${table}`, sk: 'STATE' };
  }

  /** Takes the lease when it is free, expired (checked here: TTL deletion is not timely) or already ours. */
  async acquire(
    database: string,
    table: string,
    owner: string,
    leaseSeconds: number,
  ): Promise<AcquireResult> {
    const now = this.now();
    const expiresAt = now + leaseSeconds * 1000;
    try {
      const result = await this.call(() =>
        this.ddb.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: LockTable.stateKey(database, table),
            UpdateExpression:
              'SET #owner = :owner, expiresAt = :expiresAt, acquiredAt = :now ADD #token :one',
            ConditionExpression: 'attribute_not_exists(#owner) OR expiresAt < :now OR #owner = :owner',
            ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
            ExpressionAttributeValues: { ':owner': owner, ':expiresAt': expiresAt, ':now': now, ':one': 1 },
            ReturnValues: 'ALL_NEW',
          }),
        ),
      );
      return { acquired: true, lease: { owner, token: Number(result.Attributes?.token) }, expiresAt };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const state = await this.get(database, table);
      return { acquired: false, holder: state.owner ?? 'unknown', expiresAt: state.expiresAt ?? 0 };
    }
  }

  async get(database: string, table: string): Promise<TableState> {
    const result = await this.call(() =>
      this.ddb.send(
        new GetCommand({
          TableName: this.tableName,
          Key: LockTable.stateKey(database, table),
          ConsistentRead: true,
        }),
      ),
    );
    const item = result.Item ?? {};
    return {
      owner: item.owner as string | undefined,
      token: item.token === undefined ? undefined : Number(item.token),
      expiresAt: item.expiresAt === undefined ? undefined : Number(item.expiresAt),
      inFlight: item.inFlight === undefined ? undefined : InFlightSchema.parse(item.inFlight),
      totalRows: Number(item.totalRows ?? 0),
      totalBytes: Number(item.totalBytes ?? 0),
      totalBatches: Number(item.totalBatches ?? 0),
      lastColumns: item.lastColumns === undefined ? undefined : z.array(ColumnSchema).parse(item.lastColumns),
      lastArchiveKey: item.lastArchiveKey as string | undefined,
      lastCleared: item.lastCleared as TableState['lastCleared'],
    };
  }

  /**
   * Changes the in-flight batch, only while `lease` is still held and unexpired, and renews the lease.
   * `expectStage` guards against a stale step overwriting a later stage. Throws LeaseLostError otherwise.
   */
  async setInFlight(
    database: string,
    table: string,
    lease: Lease,
    leaseSeconds: number,
    inFlight: InFlight,
    /**
     * What the current record must be: 'none' (no batch in flight), one of these stages of the same batch, or
     * exactly the record the caller read (`unchanged`), so that a stale invocation can never act on a newer state.
     */
    expect?: InFlight['stage'][] | 'none' | { unchanged: InFlight },
  ): Promise<void> {
    const now = this.now();
    const values: Record<string, unknown> = {
      ':owner': lease.owner,
      ':token': lease.token,
      ':now': now,
      ':expiresAt': now + leaseSeconds * 1000,
      ':inFlight': inFlight,
    };
    let condition = '#owner = :owner AND #token = :token AND expiresAt > :now';
    if (expect === 'none') {
      condition += ' AND attribute_not_exists(inFlight)';
    } else if (Array.isArray(expect)) {
      condition += ` AND inFlight.batchId = :batchId AND inFlight.stage IN (${expect.map((_, i) => `:stage${i}`).join(', ')})`;
      values[':batchId'] = inFlight.batchId;
      expect.forEach((stage, i) => {
        values[`:stage${i}`] = stage;
      });
    } else if (expect) {
      const read = expect.unchanged;
      condition += ' AND inFlight.batchId = :batchId AND inFlight.stage = :readStage';
      values[':batchId'] = read.batchId;
      values[':readStage'] = read.stage;
      if (read.deleteXid === undefined) {
        condition += ' AND attribute_not_exists(inFlight.deleteXid)';
      } else {
        condition += ' AND inFlight.deleteXid = :readXid';
        values[':readXid'] = read.deleteXid;
      }
    }
    // A request retried after its first attempt was applied (response lost) fails its condition: the record
    // already being exactly what this write sets, under this lease, means it was this write.
    const applied = (state: TableState) => canonical(state.inFlight) === canonical(inFlight);
    await this.guarded(database, table, lease, applied, () =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: LockTable.stateKey(database, table),
          UpdateExpression: 'SET inFlight = :inFlight, expiresAt = :expiresAt',
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
          ExpressionAttributeValues: values,
        }),
      ),
    );
  }

  /**
   * Extends the lease to `seconds` from now while it is still held and unexpired (LeaseLostError otherwise). Every
   * step renews it when it starts, so retry intervals and waits between steps never outlast it.
   */
  async renew(database: string, table: string, lease: Lease, seconds: number): Promise<void> {
    const now = this.now();
    await this.guarded(database, table, lease, undefined, () =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: LockTable.stateKey(database, table),
          UpdateExpression: 'SET expiresAt = :expiresAt',
          ConditionExpression: '#owner = :owner AND #token = :token AND expiresAt > :now',
          ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
          ExpressionAttributeValues: {
            ':owner': lease.owner,
            ':token': lease.token,
            ':now': now,
            ':expiresAt': now + seconds * 1000,
          },
        }),
      ),
    );
  }

  /** Clears the in-flight batch (that batch only), while holding the lease. `committed` adds it to the totals. */
  async clearInFlight(
    database: string,
    table: string,
    lease: Lease,
    inFlight: Pick<InFlight, 'batchId' | 'archiveKey' | 'columns'>,
    committed?: { rows: number; bytes: number },
  ): Promise<void> {
    const cleared = { batchId: inFlight.batchId, committed: committed !== undefined };
    const values: Record<string, unknown> = {
      ':owner': lease.owner,
      ':token': lease.token,
      ':batchId': inFlight.batchId,
      ':cleared': cleared,
    };
    let update = 'REMOVE inFlight SET lastCleared = :cleared';
    if (committed) {
      update += ', lastArchiveKey = :archiveKey ADD totalRows :rows, totalBytes :bytes, totalBatches :one';
      Object.assign(values, {
        ':rows': committed.rows,
        ':bytes': committed.bytes,
        ':one': 1,
        ':archiveKey': inFlight.archiveKey,
      });
      if (inFlight.columns) {
        update = update.replace(' ADD ', ', lastColumns = :columns ADD ');
        values[':columns'] = inFlight.columns;
      }
    }
    // A retry of a clear that was applied finds this batch gone and recorded as cleared the same way: done once.
    const applied = (state: TableState) =>
      state.inFlight?.batchId !== inFlight.batchId && canonical(state.lastCleared) === canonical(cleared);
    await this.guarded(database, table, lease, applied, () =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: LockTable.stateKey(database, table),
          UpdateExpression: update,
          ConditionExpression: '#owner = :owner AND #token = :token AND inFlight.batchId = :batchId',
          ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
          ExpressionAttributeValues: values,
        }),
      ),
    );
  }

  /** Gives the lease up if it is still ours; a lease already taken over is left alone. */
  async release(database: string, table: string, lease: Lease): Promise<boolean> {
    try {
      await this.call(() =>
        this.ddb.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: LockTable.stateKey(database, table),
            UpdateExpression: 'REMOVE #owner, expiresAt',
            ConditionExpression: '#owner = :owner AND #token = :token',
            ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
            ExpressionAttributeValues: { ':owner': lease.owner, ':token': lease.token },
          }),
        ),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      // Nobody holds it and no acquisition since (each adds to the token): a retry of this very release.
      const state = await this.get(database, table);
      return state.owner === undefined && state.token === lease.token;
    }
  }

  /**
   * Runs a write conditioned on the lease. When the condition fails, `applied` tells whether the item already is what
   * the write makes it (the SDK retried a request whose first attempt was applied); otherwise LeaseLostError.
   */
  private async guarded(
    database: string,
    table: string,
    lease: Lease,
    applied: ((state: TableState) => boolean) | undefined,
    operation: () => Promise<unknown>,
  ): Promise<void> {
    try {
      await this.call(operation);
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const state = await this.get(database, table);
      const ours = state.owner === lease.owner && state.token === lease.token;
      if (ours && applied?.(state)) return;
      if (!ours) {
        throw new LeaseLostError(
          `lease on ${database}/${table} is no longer held by this execution (token ${lease.token}, now ${state.owner ?? 'nobody'} with token ${state.token ?? '-'})`,
        );
      }
      if ((state.expiresAt ?? 0) <= this.now()) {
        throw new LeaseLostError(`lease on ${database}/${table} expired before the step finished`);
      }
      throw new LeaseLostError(`in-flight batch of ${database}/${table} changed under this execution`);
    }
  }

  /** Inventory items of a table share one partition: validate reads them with one query. */
  static inventoryKey(database: string, table: string, archiveKey: string) {
    return { pk: `ARCHIVES#${database}#${table}`, sk: archiveKey };
  }

  /**
   * Records a committed archive, write-once: only a batch whose delete committed is recorded (a fact of the
   * database, which no stale invocation can change), and an entry is never replaced by other figures.
   */
  async recordArchive(database: string, table: string, entry: InventoryEntry): Promise<void> {
    try {
      await this.call(() =>
        this.ddb.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: LockTable.inventoryKey(database, table, entry.archiveKey),
            UpdateExpression: 'SET #archive = if_not_exists(#archive, :entry)',
            ConditionExpression: 'attribute_not_exists(#archive) OR #archive.figures.contentSha256 = :sha',
            ExpressionAttributeNames: { '#archive': 'archive' },
            ExpressionAttributeValues: { ':entry': entry, ':sha': entry.figures.contentSha256 },
          }),
        ),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      throw new ArchiveConflictError(`the inventory records other content under ${entry.archiveKey}`);
    }
  }

  async inventoryEntry(
    database: string,
    table: string,
    archiveKey: string,
  ): Promise<InventoryEntry | undefined> {
    const result = await this.call(() =>
      this.ddb.send(
        new GetCommand({
          TableName: this.tableName,
          Key: LockTable.inventoryKey(database, table, archiveKey),
          ConsistentRead: true,
        }),
      ),
    );
    return result.Item ? InventoryEntrySchema.parse(result.Item.archive) : undefined;
  }

  async inventory(database: string, table: string): Promise<InventoryEntry[]> {
    const { pk } = LockTable.inventoryKey(database, table, '');
    return (await this.queryAll(pk)).map((item) => InventoryEntrySchema.parse(item.archive));
  }

  /** Hold items share one partition so `listHolds` is a single query; they never expire. */
  private static holdKey(database: string, table: string) {
    return { pk: 'HOLDS', sk: `${database}#${table}` };
  }

  async setHold(hold: Hold): Promise<void> {
    await this.put(
      LockTable.holdKey(hold.database, hold.table).pk,
      LockTable.holdKey(hold.database, hold.table).sk,
      { hold },
      false,
    );
  }

  /** Removes a hold; false when there was none. */
  async clearHold(database: string, table: string): Promise<boolean> {
    const result = await this.call(() =>
      this.ddb.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: LockTable.holdKey(database, table),
          ReturnValues: 'ALL_OLD',
        }),
      ),
    );
    return result.Attributes !== undefined;
  }

  async getHold(database: string, table: string): Promise<Hold | undefined> {
    const result = await this.call(() =>
      this.ddb.send(
        new GetCommand({
          TableName: this.tableName,
          Key: LockTable.holdKey(database, table),
          ConsistentRead: true,
        }),
      ),
    );
    return result.Item ? HoldSchema.parse(result.Item.hold) : undefined;
  }

  async listHolds(): Promise<Hold[]> {
    return (await this.queryAll('HOLDS')).map((item) => HoldSchema.parse(item.hold));
  }

  /** The fingerprint of the config the last run planned with (see config-fingerprint.ts); never expires. */
  async getConfigFingerprint(): Promise<StoredConfigFingerprint | undefined> {
    const result = await this.call(() =>
      this.ddb.send(
        new GetCommand({ TableName: this.tableName, Key: CONFIG_FINGERPRINT_KEY, ConsistentRead: true }),
      ),
    );
    return result.Item ? StoredConfigFingerprintSchema.parse(result.Item.fingerprint) : undefined;
  }

  async putConfigFingerprint(fingerprint: StoredConfigFingerprint): Promise<void> {
    await this.put(CONFIG_FINGERPRINT_KEY.pk, CONFIG_FINGERPRINT_KEY.sk, { fingerprint }, false);
  }

  async recordOutcome(runId: string, outcome: TableOutcome): Promise<void> {
    await this.put(`RUN#${runId}`, `${outcome.database}#${outcome.table}`, { outcome });
  }

  async listOutcomes(runId: string): Promise<TableOutcome[]> {
    return (await this.queryAll(`RUN#${runId}`)).map((item) => item.outcome as TableOutcome);
  }

  /** Records one archive's result in a restore (item per archive, so a page of results never crowds the state). */
  async recordRestoreResult(restoreId: string, result: RestoreFileResult): Promise<void> {
    await this.put(`RESTORE#${restoreId}`, result.key, { result });
  }

  async listRestoreResults(restoreId: string): Promise<RestoreFileResult[]> {
    return (await this.queryAll(`RESTORE#${restoreId}`)).map((item) => item.result as RestoreFileResult);
  }

  /** The restore watermark: which archives a target table already received, so a repeated restore skips them. */
  async restoredMark(
    database: string,
    target: string,
    archiveKey: string,
  ): Promise<RestoredMark | undefined> {
    const item = await this.call(() =>
      this.ddb.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: `RESTORED#${database}#${target}`, sk: archiveKey },
          ConsistentRead: true,
        }),
      ),
    );
    return item.Item?.mark as RestoredMark | undefined;
  }

  async markRestored(
    database: string,
    target: string,
    archiveKey: string,
    mark: RestoredMark,
  ): Promise<void> {
    await this.put(`RESTORED#${database}#${target}`, archiveKey, { mark }, false);
  }

  private async put(
    pk: string,
    sk: string,
    attributes: Record<string, unknown>,
    expires = true,
  ): Promise<void> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets = Object.entries(attributes).map(([name, value], i) => {
      names[`#a${i}`] = name;
      values[`:a${i}`] = value;
      return `#a${i} = :a${i}`;
    });
    if (expires) {
      names['#ttl'] = 'ttl';
      values[':ttl'] = Math.floor(this.now() / 1000) + OUTCOME_TTL_SECONDS;
      sets.push('#ttl = :ttl');
    }
    await this.call(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk, sk },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      ),
    );
  }

  private async queryAll(pk: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.call(() =>
        this.ddb.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': pk },
            ExclusiveStartKey: startKey,
            ConsistentRead: true,
          }),
        ),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return items;
  }
}
