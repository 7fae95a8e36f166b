import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';

const q = pg.escapeIdentifier;
// 63 bytes each, PostgreSQL's longest names: keySegment() writes every byte outside [A-Za-z0-9_-] as %XX, so the key's
// "schema.table" folder is 189 + 1 + 189 = 379 characters, more than the 255 a file name may have on disk.
const SCHEMA = 'Бухгалтерия_и_финансы_отчётность__';
const TABLE = 'журнал_аудита_событий_пользоват____';

describe('a table whose schema and table names are the longest PostgreSQL allows, in Cyrillic', () => {
  const spec = { schema: SCHEMA, name: TABLE, timestampColumn: 'создано' };
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE SCHEMA ${q(SCHEMA)};
        CREATE TABLE ${q(SCHEMA)}.${q(TABLE)} (id int PRIMARY KEY, "создано" timestamptz NOT NULL, "текст" text);
        INSERT INTO ${q(SCHEMA)}.${q(TABLE)}
        SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 hour', 'т' || g FROM generate_series(1, 30) g;
        CREATE TABLE public.before AS SELECT * FROM ${q(SCHEMA)}.${q(TABLE)};`);
    },
    [spec],
  );

  it('archives and restores it in local mode, whose S3 server keeps keys as file paths', async () => {
    // Prepare
    expect(Buffer.byteLength(SCHEMA)).toBe(63);
    expect(Buffer.byteLength(TABLE)).toBe(63);
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: [`${SCHEMA}.${TABLE}`] },
      { retryIntervalScale: 0 },
    );

    // Assess
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(run.outcomes[0]?.error).toBeUndefined();
    expect(run.execution.status).toBe('SUCCEEDED');
    const restore = await runLocalRestore(
      bed.local,
      { database: 'app', table: { schema: SCHEMA, name: TABLE } },
      { retryIntervalScale: 0 },
    );
    expect(restore.execution.status).toBe('SUCCEEDED');
    expect(
      await compareRows(
        bed.db.client,
        'SELECT * FROM public.before',
        `SELECT * FROM ${q(SCHEMA)}.${q(TABLE)}`,
      ),
    ).toEqual({ rows: 30, missing: 0, extra: 0 });
  });
});
