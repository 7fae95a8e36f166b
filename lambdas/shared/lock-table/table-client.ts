import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  GetCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { classifyAwsError, LockStoreUnavailableError } from '../errors/step-errors.js';

/** How long run outcomes and restore results stay before DynamoDB TTL removes them. */
export const OUTCOME_TTL_SECONDS = 90 * 24 * 3600;

/** BatchGetItem's and BatchWriteItem's limits of keys a request. */
const BATCH_GET_KEYS = 100;
const BATCH_WRITE_ITEMS = 25;
/** Rounds of a batch request for what DynamoDB left unprocessed under load, before it counts as unavailable. */
const BATCH_ATTEMPTS = 5;

/** Waits before another round of a batch request, or gives up on the items DynamoDB keeps leaving unprocessed. */
async function backOff(attempt: number, pending: number): Promise<void> {
  if (attempt === BATCH_ATTEMPTS)
    throw new LockStoreUnavailableError(`${pending} lock table items stayed unprocessed`);
  if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
}

/** How getItems keys what it found. */
export const itemKey = (pk: string, sk: string): string => `${pk}\u0000${sk}`;

/** A DynamoDB condition with its own placeholders (`#c…`, `:c…`, apart from those `put` gives the attributes). */
export interface WriteCondition {
  expression: string;
  names?: Record<string, string>;
  values?: Record<string, unknown>;
}

export const isConditionFailure = (error: unknown) =>
  (error as { name?: string }).name === 'ConditionalCheckFailedException';

/**
 * The single DynamoDB table (`pk`/`sk`) that the stores of each key area share: lease-store.ts, archive-inventory.ts,
 * legal-holds.ts, run-records.ts and restore-records.ts. lib/lock-table.ts grants the key areas one by one.
 */
export class LockTableClient {
  constructor(
    readonly ddb: DynamoDBDocumentClient,
    readonly tableName: string,
    readonly now: () => number = Date.now,
  ) {}

  /** A failed condition passes through unchanged (the caller knows what it means); other errors are classified. */
  async call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (isConditionFailure(error)) throw error;
      throw classifyAwsError(error, 'dynamodb');
    }
  }

  async getItem(key: { pk: string; sk: string }): Promise<Record<string, unknown> | undefined> {
    const result = await this.call(() =>
      this.ddb.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true })),
    );
    return result.Item;
  }

  /**
   * Reads many items at once (BatchGetItem, 100 keys a request, consistent), keyed `pk` NUL `sk` (itemKey); keys
   * DynamoDB leaves unprocessed under load are asked again, a few times, then the read fails as unavailable.
   */
  async getItems(keys: { pk: string; sk: string }[]): Promise<Map<string, Record<string, unknown>>> {
    const found = new Map<string, Record<string, unknown>>();
    for (let at = 0; at < keys.length; at += BATCH_GET_KEYS) {
      let pending: Record<string, unknown>[] = keys.slice(at, at + BATCH_GET_KEYS);
      for (let attempt = 0; pending.length > 0; attempt++) {
        await backOff(attempt, pending.length);
        const result = await this.call(() =>
          this.ddb.send(
            new BatchGetCommand({
              RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } },
            }),
          ),
        );
        for (const item of result.Responses?.[this.tableName] ?? [])
          found.set(itemKey(String(item.pk), String(item.sk)), item);
        pending = result.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    }
    return found;
  }

  /**
   * Writes whole items, 25 a request (BatchWriteItem): each item holds exactly `attributes`, and with `expires` the
   * TTL attribute, so it goes after 90 days. For items that hold nothing else (of two with one key, the later wins).
   * Items DynamoDB leaves unprocessed under load are sent again, a few times, then the write fails as unavailable.
   */
  async putItems(
    items: { pk: string; sk: string; attributes: Record<string, unknown> }[],
    expires = true,
  ): Promise<void> {
    const ttl = expires ? { ttl: Math.floor(this.now() / 1000) + OUTCOME_TTL_SECONDS } : {};
    // One request may not name a key twice.
    const byKey = new Map(items.map((item) => [itemKey(item.pk, item.sk), item]));
    const puts = [...byKey.values()].map(({ pk, sk, attributes }) => ({
      PutRequest: { Item: { ...attributes, pk, sk, ...ttl } },
    }));
    for (let at = 0; at < puts.length; at += BATCH_WRITE_ITEMS) {
      let pending: Record<string, unknown>[] = puts.slice(at, at + BATCH_WRITE_ITEMS);
      for (let attempt = 0; pending.length > 0; attempt++) {
        await backOff(attempt, pending.length);
        const result = await this.call(() =>
          this.ddb.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } })),
        );
        pending = result.UnprocessedItems?.[this.tableName] ?? [];
      }
    }
  }

  /**
   * Deletes items by key, 25 a request (BatchWriteItem); a key with no item is no error. Keys DynamoDB leaves
   * unprocessed under load are sent again, a few times, then the delete fails as unavailable.
   */
  async deleteItems(keys: { pk: string; sk: string }[]): Promise<void> {
    // One request may not name a key twice.
    const byKey = new Map(keys.map(({ pk, sk }) => [itemKey(pk, sk), { pk, sk }]));
    const deletes = [...byKey.values()].map((key) => ({ DeleteRequest: { Key: key } }));
    for (let at = 0; at < deletes.length; at += BATCH_WRITE_ITEMS) {
      let pending: Record<string, unknown>[] = deletes.slice(at, at + BATCH_WRITE_ITEMS);
      for (let attempt = 0; pending.length > 0; attempt++) {
        await backOff(attempt, pending.length);
        const result = await this.call(() =>
          this.ddb.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } })),
        );
        pending = result.UnprocessedItems?.[this.tableName] ?? [];
      }
    }
  }

  /**
   * Sets these attributes on an item; `expires` adds the TTL attribute, so the item goes after 90 days. A `condition`
   * (its names and values apart from the attributes') makes the write fail with ConditionalCheckFailedException.
   */
  async put(
    pk: string,
    sk: string,
    attributes: Record<string, unknown>,
    expires = true,
    condition?: WriteCondition,
  ): Promise<void> {
    const names: Record<string, string> = { ...condition?.names };
    const values: Record<string, unknown> = { ...condition?.values };
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
          ...(condition ? { ConditionExpression: condition.expression } : {}),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      ),
    );
  }

  /** Every item of a partition, page after page. */
  async queryAll(pk: string): Promise<Record<string, unknown>[]> {
    return this.allPages((startKey) =>
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
  }

  /**
   * Every item of the table `filter` keeps (a Scan: it reads the whole table, inventory included), for operator
   * commands only; no function is granted Scan.
   */
  async scanAll(filter: {
    expression: string;
    values: Record<string, unknown>;
  }): Promise<Record<string, unknown>[]> {
    return this.allPages((startKey) =>
      this.ddb.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: filter.expression,
          ExpressionAttributeValues: filter.values,
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      ),
    );
  }

  private async allPages(
    page: (
      startKey: Record<string, unknown> | undefined,
    ) => Promise<{ Items?: Record<string, unknown>[]; LastEvaluatedKey?: Record<string, unknown> }>,
  ): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await this.call(() => page(startKey));
      items.push(...(result.Items ?? []));
      startKey = result.LastEvaluatedKey;
    } while (startKey);
    return items;
  }
}
