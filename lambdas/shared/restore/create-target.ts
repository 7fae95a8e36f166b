import type pg from 'pg';
import { readExpectation } from '../archive/catalog.js';
import type { ArchiveStore } from '../archive/store.js';
import { quoteIdent } from '../database/table-sql.js';
import { TableNotUsableError } from '../errors/step-errors.js';
import { describeTarget, qualified, resolveTypeName, tableLabel } from './restore-sql.js';
import type { RestoreTask } from './restore-task.js';

/**
 * Creates a separate restore target: like the source (columns, constraints, indexes, identity, generated columns)
 * when the source exists, else from the first archive's manifest (columns with their types, NOT NULL, and its key
 * as primary key). Defaults are left out: a serial default would tie the copy to the source's sequence.
 */
export async function createTarget(
  client: pg.ClientBase,
  task: RestoreTask,
  firstArchive: string | undefined,
  store: ArchiveStore,
): Promise<void> {
  if (await describeTarget(client, task.source)) {
    await client.query(
      `CREATE TABLE ${qualified(task.target)} (LIKE ${qualified(task.source)} INCLUDING ALL EXCLUDING DEFAULTS)`,
    );
    return;
  }
  const manifest =
    firstArchive && task.format === 'native'
      ? (await readExpectation(store, { key: firstArchive, format: 'native' })).manifest
      : undefined;
  if (!manifest) {
    throw new TableNotUsableError(
      `cannot create ${tableLabel(task.target)}: the source ${tableLabel(task.source)} is gone and no archive describes its columns; create the target first`,
    );
  }
  const columns: string[] = [];
  for (const column of manifest.columns) {
    const resolved = await resolveTypeName(client, column.type);
    if (!resolved) throw new TableNotUsableError(`archived column type ${column.type} is unknown here`);
    columns.push(`${quoteIdent(column.name)} ${resolved}${column.nullable ? '' : ' NOT NULL'}`);
  }
  columns.push(`PRIMARY KEY (${manifest.keyColumns.map(quoteIdent).join(', ')})`);
  await client.query(`CREATE TABLE ${qualified(task.target)} (${columns.join(', ')})`);
}
