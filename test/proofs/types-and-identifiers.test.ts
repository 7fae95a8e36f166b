import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  listKeys,
  readLiveArchives,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';

const SCHEMA = 'Weird "Schema";--';
const TABLE = 'Audit Log; DROP TABLE x;--';
const LOCAL_SCHEMA = 'UPPER';
const LOCAL_TABLE = 'MixedCase';
const q = pg.escapeIdentifier;
const typed = `${q(SCHEMA)}.${q(TABLE)}`;

/** Values at every edge the archive format promises to keep exactly. */
const EDGE_ROWS = `
  INSERT INTO ${typed} VALUES
  (1, 1, now() - interval '100 days',
   123456789012345678901234567890.123456789012345678901234567890, 'NaN', '-0', '\\x00ff00', '{1,NULL,3}',
   '{{a,NULL},{"b\\\\c","d\\"e"}}', 'null', '{"a" : 1,  "b":[1,2]}', '0001-01-01 00:00:00', 'infinity', '9999-12-31',
   E'back\\\\slash "quote" \\n newline \\u2028 tab\\t emoji 😀', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '1 year 2 mons -3 days 04:05:06.789', '10.0.0.1/32', true, '{"k": [true, null]}'),
  (1, 2, now() - interval '100 days',
   'NaN', 'Infinity', '-Infinity', '', '{}', '{}', NULL, NULL, '9999-12-31 23:59:59.999999', '-infinity', '-infinity',
   '', NULL, '-178000000 years', '10.0.0.0/8', false, NULL),
  (2, 1, now() - interval '99 days',
   '-0.000100', '-0', '1.17549435e-38', NULL, '{{1,2},{3,NULL}}', '{}', '"\\u00e9"', '[]', 'infinity',
   '0001-01-01 00:00:00+00', '0001-01-01 BC', NULL, '00000000-0000-0000-0000-000000000000', '0', '::1', NULL,
   '{"nested": {"null": null}}'),
  (3, 1, NULL, 1, 1, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'null timestamp: never archived', NULL, NULL, NULL, NULL, NULL),
  (4, 1, now(), 1, 1, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'new: kept', NULL, NULL, NULL, NULL, NULL)`;

describe('every type and hostile identifiers survive the archive exactly', () => {
  const typedSpec = { schema: SCHEMA, name: TABLE, timestampColumn: 'When' };
  const localSpec = {
    schema: LOCAL_SCHEMA,
    name: LOCAL_TABLE,
    timestampColumn: 'Created',
    timestampTimeZone: 'America/New_York',
    keyColumns: ['Id'],
  };

  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`CREATE SCHEMA ${q(SCHEMA)}`);
      await db.client.query(`
        CREATE TABLE ${typed} (
          "Tenant ID" int NOT NULL, "ëvent id" bigint NOT NULL, "When" timestamptz,
          n numeric, f8 float8, f4 real, b bytea, ia int[], ta2 text[], j jsonb, jn json, ts timestamp,
          tstz timestamptz, d date, "T" text, u uuid, iv interval, ip inet, bo bool, jb2 jsonb,
          PRIMARY KEY ("Tenant ID", "ëvent id"))`);
      await db.client.query(EDGE_ROWS);
      await db.client.query(`CREATE SCHEMA ${q(LOCAL_SCHEMA)}`);
      await db.client.query(`
        CREATE TABLE ${q(LOCAL_SCHEMA)}.${q(LOCAL_TABLE)} ("Id" bigint NOT NULL UNIQUE, "Created" timestamp NOT NULL, v text);
        INSERT INTO ${q(LOCAL_SCHEMA)}.${q(LOCAL_TABLE)}
        SELECT g, (${TODAY_UTC_SQL} AT TIME ZONE 'America/New_York') - g * interval '1 hour', 'v' || g FROM generate_series(1, 2000) g;`);
    },
    [typedSpec, localSpec],
    { prefix: 'tenant-a/' },
  );

  it('archives and restores every value of every type exactly, through the real workflows', async () => {
    // Prepare
    await bed.db.client.query(`CREATE TABLE public.original AS SELECT * FROM ${typed}`);
    const table = resolvedTable(typedSpec);
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: [`${SCHEMA}.${TABLE}`] },
      { retryIntervalScale: 0 },
    );

    // Assess: old rows left the table, the NULL-timestamp and new rows stayed.
    expect(run.execution.status).toBe('SUCCEEDED');
    const left = await bed.db.client.query(`SELECT "T" FROM ${typed} ORDER BY "Tenant ID"`);
    expect(left.rows.map((r) => r.T)).toEqual(['null timestamp: never archived', 'new: kept']);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);

    // Act: the restore workflow brings them back into a new table created like the source.
    const restore = await runLocalRestore(
      bed.local,
      { database: 'app', table: { schema: SCHEMA, name: TABLE }, targetTable: 'public.restored' },
      { retryIntervalScale: 0 },
    );

    // Assess: each restored row equals the original (compared as text, which tells -0 from 0, NaN, infinities,
    // json whitespace and jsonb null from SQL NULL).
    expect(restore.execution.status).toBe('SUCCEEDED');
    expect(restore.results.map((r) => [r.status, r.inserted])).toEqual([
      ['restored', 2],
      ['restored', 1],
    ]);
    const comparison = await compareRows(
      bed.db.client,
      `SELECT * FROM public.original WHERE "When" < ${cutoff}`,
      'SELECT * FROM public.restored',
    );
    expect(comparison).toEqual({ rows: 3, missing: 0, extra: 0 });
    const jsonNulls = await bed.db.client.query(
      `SELECT "ëvent id" AS id, j IS NULL AS sql_null, j::text AS j FROM public.restored WHERE "Tenant ID" = 1 ORDER BY 1`,
    );
    expect(jsonNulls.rows).toEqual([
      { id: '1', sql_null: false, j: 'null' },
      { id: '2', sql_null: true, j: null },
    ]);
  });

  it('keeps every key under the configured prefix, whatever the identifiers', async () => {
    // Act
    const keys = await listKeys(bed.local, '');

    // Assess
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key.startsWith('tenant-a/')).toBe(true);
      expect(key.split('/')).not.toContain('..');
    }
    expect(
      keys.some((k) =>
        k.startsWith('tenant-a/app/Weird%20%22Schema%22%3B--.Audit%20Log%3B%20DROP%20TABLE%20x%3B--/year='),
      ),
    ).toBe(true);
  });

  it('archives a timestamp-without-time-zone column by the configured zone, with a unique key that is not the primary key', async () => {
    // Prepare
    const table = resolvedTable(localSpec);
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: [`${LOCAL_SCHEMA}.${LOCAL_TABLE}`] },
      { retryIntervalScale: 0 },
    );

    // Assess: "Created" holds New York wall-clock time; rows older than 30 days in that zone are gone.
    expect(run.execution.status).toBe('SUCCEEDED');
    const remaining = await bed.db.client.query(
      `SELECT min("Created" AT TIME ZONE 'America/New_York') >= ${cutoff} AS ok, count(*)::int AS n FROM ${q(LOCAL_SCHEMA)}.${q(LOCAL_TABLE)}`,
    );
    expect(remaining.rows[0]).toEqual({ ok: true, n: expect.any(Number) });
    expect(remaining.rows[0].n).toBeGreaterThan(700);
    expect(remaining.rows[0].n).toBeLessThan(730);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    for (const archive of await readLiveArchives(bed.local, LOCAL_SCHEMA, LOCAL_TABLE, bed.db.client)) {
      expect(archive.manifest.timestampRange.min.slice(0, 10)).toBe(archive.manifest.day);
      expect(archive.manifest.timestampType).toBe('timestamp');
    }
  });
});
