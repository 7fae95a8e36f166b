import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { LockTableClient } from './table-client.js';

/** An operator's legal hold on a table, kept in the lock table so it takes effect without a redeploy. */
export const HoldSchema = z.object({
  database: z.string(),
  table: z.string(),
  reason: z.string(),
  setBy: z.string().optional(),
  setAt: z.string(),
});
export type Hold = z.infer<typeof HoldSchema>;

/** Hold items share one partition so `list` is a single query; they never expire. */
const holdKey = (database: string, table: string) => ({ pk: 'HOLDS', sk: `${database}#${table}` });

/** Operators' legal holds (`audit-archiver hold`): the lock step reads them before a table starts a batch. */
export class LegalHolds {
  constructor(private readonly lockTable: LockTableClient) {}

  async set(hold: Hold): Promise<void> {
    const { pk, sk } = holdKey(hold.database, hold.table);
    await this.lockTable.put(pk, sk, { hold }, false);
  }

  /**
   * Removes the hold set at `setAt` (the one the caller read and recorded lifting); false when there is none. A hold
   * set again meanwhile (another `setAt`) is left in place: ConditionalCheckFailedException.
   */
  async clear(database: string, table: string, setAt: string): Promise<boolean> {
    const result = await this.lockTable.call(() =>
      this.lockTable.ddb.send(
        new DeleteCommand({
          TableName: this.lockTable.tableName,
          Key: holdKey(database, table),
          ConditionExpression: 'attribute_not_exists(pk) OR #hold.#setAt = :setAt',
          ExpressionAttributeNames: { '#hold': 'hold', '#setAt': 'setAt' },
          ExpressionAttributeValues: { ':setAt': setAt },
          ReturnValues: 'ALL_OLD',
        }),
      ),
    );
    return result.Attributes !== undefined;
  }

  async get(database: string, table: string): Promise<Hold | undefined> {
    const item = await this.lockTable.getItem(holdKey(database, table));
    return item ? HoldSchema.parse(item.hold) : undefined;
  }

  async list(): Promise<Hold[]> {
    return (await this.lockTable.queryAll('HOLDS')).map((item) => HoldSchema.parse(item.hold));
  }
}
