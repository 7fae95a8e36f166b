import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

const TABLE_SQL = fileURLToPath(new URL('../bench/audit_logs.sql', import.meta.url));

/**
 * Creates the shared synthetic `audit_logs` table (bench/audit_logs.sql, the table every tool's benchmark figures
 * use) with `rows` rows spread over the last 400 days. The script's psql variable is filled in, and its statements
 * run one at a time because VACUUM cannot run inside a multi-statement query.
 */
export async function createAuditLogsTable(client: pg.ClientBase, rows: number): Promise<void> {
  const script = readFileSync(TABLE_SQL, 'utf8')
    .replace(/^--.*$/gm, '')
    .replaceAll(':rows', String(Math.max(1, Math.round(rows))));
  for (const statement of script
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter(Boolean)) {
    await client.query(statement);
  }
}
