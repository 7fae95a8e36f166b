import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { ColumnSchema, canonicalJson } from '../archive/format.js';
import { LeaseLostError } from '../errors/step-errors.js';
import { isConditionFailure, type LockTableClient } from './table-client.js';
import {
  type AcquireResult,
  type InFlight,
  InFlightSchema,
  keptAsLastColumns,
  type Lease,
  type TableState,
} from './table-state.js';

/**
 * Per-table leases with fencing tokens, the batch in flight and the totals, all on one item per table. Every write
 * after `acquire` is conditioned on the lease (owner and token), which is what keeps a stale invocation out.
 */
export class LeaseStore {
  constructor(private readonly lockTable: LockTableClient) {}

  /** Key of a table's lease/progress item. */
  static stateKey(database: string, table: string) {
    return { pk: `TABLE#${database}#${table}`, sk: 'STATE' };
  }

  /**
   * Takes the lease when it is free or expired (checked here: TTL deletion is not timely), adding one to the fencing
   * token; one already ours is renewed under the same token. Step Functions invokes a Lambda at least once: a
   * duplicate of this execution's acquire must neither fence the execution out of its own lease (a new token) nor,
   * landing after the release, take the lease for an execution that has ended (`releasedBy`).
   */
  async acquire(
    database: string,
    table: string,
    owner: string,
    leaseSeconds: number,
  ): Promise<AcquireResult> {
    const now = this.lockTable.now();
    const expiresAt = now + leaseSeconds * 1000;
    const update = (
      expression: string,
      condition: string,
      names: Record<string, string>,
      values: Record<string, unknown>,
    ) =>
      this.lockTable.call(() =>
        this.lockTable.ddb.send(
          new UpdateCommand({
            TableName: this.lockTable.tableName,
            Key: LeaseStore.stateKey(database, table),
            UpdateExpression: expression,
            ConditionExpression: condition,
            ExpressionAttributeNames: { '#owner': 'owner', ...names },
            ExpressionAttributeValues: { ':owner': owner, ':expiresAt': expiresAt, ':now': now, ...values },
            ReturnValues: 'ALL_NEW',
          }),
        ),
      );
    const attempts = [
      () =>
        update(
          'SET #owner = :owner, expiresAt = :expiresAt, acquiredAt = :now ADD #token :one',
          '(attribute_not_exists(#owner) OR expiresAt < :now) AND (attribute_not_exists(releasedBy) OR releasedBy <> :owner)',
          { '#token': 'token' },
          { ':one': 1 },
        ),
      () => update('SET expiresAt = :expiresAt', '#owner = :owner AND expiresAt >= :now', {}, {}),
    ];
    for (const attempt of attempts) {
      try {
        const result = await attempt();
        return { acquired: true, lease: { owner, token: Number(result.Attributes?.token) }, expiresAt };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    }
    const state = await this.get(database, table);
    return {
      acquired: false,
      holder: state.owner ?? 'unknown',
      expiresAt: state.expiresAt ?? 0,
      ...(state.releasedBy === owner ? { releasedByCaller: true } : {}),
    };
  }

  /**
   * The tables that have a batch in flight, by the names their items are keyed by (whatever the config lists now):
   * a Scan of the whole table, for `status`, which shows the batches a renamed config entry left behind.
   */
  async tablesWithBatchInFlight(): Promise<{ database: string; table: string }[]> {
    const items = await this.lockTable.scanAll({
      expression: 'sk = :state AND attribute_exists(inFlight) AND begins_with(pk, :prefix)',
      values: { ':state': 'STATE', ':prefix': 'TABLE#' },
    });
    return items.flatMap((item) => {
      // TABLE#<database>#<table>: a database name holds no '#' (config schema), a table's name may.
      const [, database, ...table] = String(item.pk).split('#');
      return database && table.length > 0 ? [{ database, table: table.join('#') }] : [];
    });
  }

  async get(database: string, table: string): Promise<TableState> {
    return LeaseStore.stateOf((await this.lockTable.getItem(LeaseStore.stateKey(database, table))) ?? {});
  }

  /** The table's state as its lease item holds it. */
  private static stateOf(item: Record<string, unknown>): TableState {
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
      releasedBy: item.releasedBy as string | undefined,
      inventorySince: item.inventorySince === undefined ? undefined : Number(item.inventorySince),
    };
  }

  /**
   * Changes the in-flight batch, only while `lease` is still held and unexpired, and renews the lease.
   * `expect` guards against a stale step overwriting a later stage. Throws LeaseLostError otherwise.
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
    const now = this.lockTable.now();
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
    const applied = (state: TableState) => canonicalJson(state.inFlight) === canonicalJson(inFlight);
    await this.guarded(database, table, lease, applied, () =>
      this.lockTable.ddb.send(
        new UpdateCommand({
          TableName: this.lockTable.tableName,
          Key: LeaseStore.stateKey(database, table),
          // A new batch: from the first on, every archive of the table is committed through the inventory.
          UpdateExpression: `SET inFlight = :inFlight, expiresAt = :expiresAt${expect === 'none' ? ', inventorySince = if_not_exists(inventorySince, :now)' : ''}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
          ExpressionAttributeValues: values,
        }),
      ),
    );
  }

  /**
   * Extends the lease to `seconds` from now while it is still held and unexpired (LeaseLostError otherwise), and returns
   * the table's state as it left it. Every step renews it when it starts, so retry intervals and waits between steps
   * never outlast it.
   */
  async renew(database: string, table: string, lease: Lease, seconds: number): Promise<TableState> {
    const now = this.lockTable.now();
    let renewed: Record<string, unknown> | undefined;
    await this.guarded(database, table, lease, undefined, async () => {
      // The item as this renew left it: a step reads its state from it, not from a GetItem of its own.
      const { Attributes } = await this.lockTable.ddb.send(
        new UpdateCommand({
          TableName: this.lockTable.tableName,
          Key: LeaseStore.stateKey(database, table),
          UpdateExpression: 'SET expiresAt = :expiresAt',
          ConditionExpression: '#owner = :owner AND #token = :token AND expiresAt > :now',
          ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
          ExpressionAttributeValues: {
            ':owner': lease.owner,
            ':token': lease.token,
            ':now': now,
            ':expiresAt': now + seconds * 1000,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      renewed = Attributes;
    });
    if (!renewed) throw new Error(`renewing the lease on ${database}/${table} returned no item`);
    return LeaseStore.stateOf(renewed);
  }

  /**
   * Throws LeaseLostError unless `lease` is still held and unexpired with batch `batchId` in flight. Checked right
   * before an object is removed: an invocation that lost its lease (its execution stopped, the lease broken or taken
   * over) runs on up to its timeout, and must remove nothing the next holder may have published or adopted since.
   */
  async assertHolding(database: string, table: string, lease: Lease, batchId: string): Promise<void> {
    const state = await this.get(database, table);
    const held = state.owner === lease.owner && state.token === lease.token;
    if (!held || (state.expiresAt ?? 0) <= this.lockTable.now() || state.inFlight?.batchId !== batchId)
      throw this.leaseLost(database, table, lease, state);
  }

  /**
   * Dates the table's inventory from `since` unless it is dated already, while holding the lease: export calls it
   * before it stages the table's first batch, so that batch's staged bytes (an attempt's that dies before recording
   * it included), copied under an archive key by a bucket writer, are dated since (datedSinceInventory).
   */
  async startInventory(database: string, table: string, lease: Lease, since: number): Promise<void> {
    await this.guarded(database, table, lease, undefined, () =>
      this.lockTable.ddb.send(
        new UpdateCommand({
          TableName: this.lockTable.tableName,
          Key: LeaseStore.stateKey(database, table),
          UpdateExpression: 'SET inventorySince = if_not_exists(inventorySince, :since)',
          ConditionExpression: '#owner = :owner AND #token = :token',
          ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
          ExpressionAttributeValues: { ':owner': lease.owner, ':token': lease.token, ':since': since },
        }),
      ),
    );
  }

  /**
   * Drops `lastColumns` kept by a version that kept columns of any width (LAST_COLUMNS_MAX_BYTES), while holding the
   * lease: such an item had no room left for a batch. What they said stays in the last archive's manifest.
   */
  async forgetLastColumns(database: string, table: string, lease: Lease): Promise<void> {
    await this.guarded(database, table, lease, undefined, () =>
      this.lockTable.ddb.send(
        new UpdateCommand({
          TableName: this.lockTable.tableName,
          Key: LeaseStore.stateKey(database, table),
          UpdateExpression: 'REMOVE lastColumns',
          ConditionExpression: '#owner = :owner AND #token = :token',
          ExpressionAttributeNames: { '#owner': 'owner', '#token': 'token' },
          ExpressionAttributeValues: { ':owner': lease.owner, ':token': lease.token },
        }),
      ),
    );
  }

  /** Clears the in-flight batch (that batch only), while holding the lease. `committed` adds it to the totals. */
  async clearInFlight(
    database: string,
    table: string,
    lease: Lease,
    inFlight: Pick<InFlight, 'batchId' | 'objects' | 'columns'>,
    committed?: { rows: number; bytes: number },
  ): Promise<void> {
    const cleared: TableState['lastCleared'] = committed
      ? {
          batchId: inFlight.batchId,
          committed: true,
          token: lease.token,
          rows: committed.rows,
          bytes: committed.bytes,
          objects: inFlight.objects.length,
        }
      : { batchId: inFlight.batchId, committed: false };
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
        // The newest: the manifest schema drift falls back to when the item has no columns.
        ':archiveKey': inFlight.objects.at(-1)?.archiveKey,
      });
      if (inFlight.columns && keptAsLastColumns(inFlight.columns)) {
        update = update.replace(' ADD ', ', lastColumns = :columns ADD ');
        values[':columns'] = inFlight.columns;
      } else if (inFlight.columns) {
        // Too wide to keep: the drift check reads the last archive's manifest instead of older columns.
        update = update.replace('REMOVE inFlight', 'REMOVE inFlight, lastColumns');
      }
    }
    // A retry of a clear that was applied finds this batch gone and recorded as cleared the same way: done once.
    const applied = (state: TableState) =>
      state.inFlight?.batchId !== inFlight.batchId &&
      canonicalJson(state.lastCleared) === canonicalJson(cleared);
    await this.guarded(database, table, lease, applied, () =>
      this.lockTable.ddb.send(
        new UpdateCommand({
          TableName: this.lockTable.tableName,
          Key: LeaseStore.stateKey(database, table),
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
      await this.lockTable.call(() =>
        this.lockTable.ddb.send(
          new UpdateCommand({
            TableName: this.lockTable.tableName,
            Key: LeaseStore.stateKey(database, table),
            // An acquire of this owner arriving late (a duplicated invocation) must not take the lease again.
            UpdateExpression: 'REMOVE #owner, expiresAt SET releasedBy = :owner',
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
      await this.lockTable.call(operation);
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const state = await this.get(database, table);
      const ours = state.owner === lease.owner && state.token === lease.token;
      if (ours && applied?.(state)) return;
      throw this.leaseLost(database, table, lease, state);
    }
  }

  /** Why `lease` no longer covers a write, as `state` shows: taken over, expired, or another batch in flight. */
  private leaseLost(database: string, table: string, lease: Lease, state: TableState): LeaseLostError {
    if (state.owner !== lease.owner || state.token !== lease.token)
      return new LeaseLostError(
        `lease on ${database}/${table} is no longer held by this execution (token ${lease.token}, now ${state.owner ?? 'nobody'} with token ${state.token ?? '-'})`,
      );
    if ((state.expiresAt ?? 0) <= this.lockTable.now())
      return new LeaseLostError(`lease on ${database}/${table} expired before the step finished`);
    return new LeaseLostError(`in-flight batch of ${database}/${table} changed under this execution`);
  }
}
