import type pg from 'pg';
import type { TableShape } from '../../lambdas/shared/database/table-shape.js';
import { qualifiedName, rowLineSql } from '../../lambdas/shared/database/table-sql.js';

/** Archive lines of the rows matching a test-written condition. */
export async function archiveLineRows(
  client: pg.Client,
  shape: TableShape,
  condition: string,
): Promise<string[]> {
  const result = await client.query<{ line: string }>(
    `SELECT ${rowLineSql(shape)} AS line FROM ${qualifiedName(shape)} AS t WHERE ${condition}`,
  );
  return result.rows.map((r) => r.line);
}
