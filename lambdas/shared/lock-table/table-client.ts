import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { classifyAwsError } from '../errors/step-errors.js';

/** How long run outcomes and restore results stay before DynamoDB TTL removes them. */
const OUTCOME_TTL_SECONDS = 90 * 24 * 3600;

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

  /** Sets these attributes on an item; `expires` adds the TTL attribute, so the item goes after 90 days. */
  async put(pk: string, sk: string, attributes: Record<string, unknown>, expires = true): Promise<void> {
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

  /** Every item of a partition, page after page. */
  async queryAll(pk: string): Promise<Record<string, unknown>[]> {
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
