/**
 * Migrations that change a table's columns without rewriting a row (PostgreSQL 11 and later): every row version stays
 * the one export read, so only the columns tell a batch's archives apart from the table.
 */
export const COLUMN_CHANGES = [
  { table: 'column_added', ddl: `ADD COLUMN region text NOT NULL DEFAULT 'eu'` },
  { table: 'column_renamed', ddl: 'RENAME COLUMN actor TO principal' },
] as const;
