import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { tablePrefix } from '../archive/format.js';
import { type InventoryEntry, InventoryEntrySchema } from '../archive/inventory.js';
import { ArchiveConflictError } from '../errors/step-errors.js';
import { RestoreRecords } from './restore-records.js';
import { isConditionFailure, itemKey, type LockTableClient } from './table-client.js';

/** The inventory of committed archives: what validate and restore trust an archive object against. */
export class ArchiveInventory {
  private readonly restoreRecords: RestoreRecords;

  constructor(private readonly lockTable: LockTableClient) {
    this.restoreRecords = new RestoreRecords(lockTable);
  }

  /**
   * The lock table this inventory lives in: the deployment's identity, which upload writes on every archive it
   * creates, since another deployment's commits are in an inventory this one cannot read.
   */
  get lockTableName(): string {
    return this.lockTable.tableName;
  }

  /** Inventory items of a table share one partition: validate reads them with one query. */
  static key(database: string, table: string, archiveKey: string) {
    return { pk: `ARCHIVES#${database}#${table}`, sk: archiveKey };
  }

  /**
   * Records a committed archive: only a batch whose delete committed is recorded (a fact of the database, which no
   * stale invocation can change), and never over an entry of other content. A later commit of the same content takes
   * the entry over: the same rows restored into the table and archived again, whose object may have been re-created
   * meanwhile (its predecessor expired or deleted), with another pin and manifest that restore must check it against.
   * An earlier commit recorded late (a retried record of a settled batch) leaves a later one's entry as it is. A batch
   * recorded again, however late, carries the same time (its in-flight record's `deleteAt`), so it writes the same entry.
   */
  async record(database: string, table: string, entry: InventoryEntry): Promise<void> {
    const key = ArchiveInventory.key(database, table, entry.archiveKey);
    try {
      await this.lockTable.call(() =>
        this.lockTable.ddb.send(
          new UpdateCommand({
            TableName: this.lockTable.tableName,
            Key: key,
            UpdateExpression: 'SET #archive = :entry',
            ConditionExpression:
              'attribute_not_exists(#archive) OR (#archive.figures.contentSha256 = :sha AND #archive.committedAt <= :committedAt)',
            ExpressionAttributeNames: { '#archive': 'archive' },
            ExpressionAttributeValues: {
              ':entry': entry,
              ':sha': entry.figures.contentSha256,
              ':committedAt': entry.committedAt,
            },
          }),
        ),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const recorded = (await this.lockTable.getItem(key))?.archive as InventoryEntry | undefined;
      if (recorded?.figures.contentSha256 === entry.figures.contentSha256) return;
      throw new ArchiveConflictError(`the inventory records other content under ${entry.archiveKey}`);
    }
  }

  /**
   * A committed batch deleted the rows of these archives from `table`: the restore watermarks that say the table
   * received them (RestoreRecords.forgetRestored) no longer hold, whichever identity of the table they name. Rows
   * restored into the table and archived again go back under the same content-addressed keys, and a later restore
   * must write them again instead of reporting them already restored.
   */
  async forgetRestored(database: string, table: string, archiveKeys: readonly string[]): Promise<void> {
    await this.restoreRecords.forgetRestored(database, table, archiveKeys);
  }

  /** The entries of these archives of one table, by archive key (absent: not in the inventory), in one read. */
  async entries(
    database: string,
    table: string,
    archiveKeys: string[],
  ): Promise<Map<string, InventoryEntry>> {
    const items = await this.lockTable.getItems(
      archiveKeys.map((key) => ArchiveInventory.key(database, table, key)),
    );
    const entries = new Map<string, InventoryEntry>();
    for (const key of archiveKeys) {
      const { pk, sk } = ArchiveInventory.key(database, table, key);
      const item = items.get(itemKey(pk, sk));
      if (item) entries.set(key, InventoryEntrySchema.parse(item.archive));
    }
    return entries;
  }

  async list(database: string, table: string): Promise<InventoryEntry[]> {
    const { pk } = ArchiveInventory.key(database, table, '');
    return (await this.lockTable.queryAll(pk)).map((item) => InventoryEntrySchema.parse(item.archive));
  }

  /**
   * One table's committed archives: the entries of its partition whose key lies in its folder, under any prefix. The
   * partition is named "schema.name", which "a"."b.c" and "a.b"."c" share (one configured after the other); their
   * folders differ, and one table's archives must not count as the other's (missing from its folder).
   */
  async listTable(database: string, table: { schema: string; name: string }): Promise<InventoryEntry[]> {
    const folder = tablePrefix({ prefix: '', database, schema: table.schema, table: table.name });
    return (await this.list(database, `${table.schema}.${table.name}`)).filter(
      (entry) => entry.archiveKey.startsWith(folder) || entry.archiveKey.includes(`/${folder}`),
    );
  }
}
