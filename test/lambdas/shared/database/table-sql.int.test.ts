import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CopyToArchiveLines } from '../../../../lambdas/shared/archive/copy-to-lines.js';
import { RowDigest } from '../../../../lambdas/shared/archive/row-digest.js';
import { digestBatchInDatabase } from '../../../../lambdas/shared/batch/batch.js';
import { sessionSetupSql } from '../../../../lambdas/shared/database/db.js';
import { describeTable } from '../../../../lambdas/shared/database/table-shape.js';
import {
  keyOrderSql,
  rowLineSql,
  rowSourceSql,
  rowValuesCopySql,
} from '../../../../lambdas/shared/database/table-sql.js';
import { readCopyObjects } from '../../../support/copy-lines.js';
import {
  createTestDatabase,
  resolvedTable,
  seedEvents,
  type TestDatabase,
} from '../../../support/fixtures.js';
import { archiveLineRows } from '../../../support/sql.js';

/** Export's lines of every row of `shape`: its COPY (rowValuesCopySql) through CopyToArchiveLines. */
async function exportedLines(client: pg.ClientBase, shape: Awaited<ReturnType<typeof describeTable>>) {
  const objects = await readCopyObjects(
    client.query(copyTo(rowValuesCopySql(shape, ['true']))),
    new CopyToArchiveLines(shape.columns.map((c) => c.name)),
  );
  return Buffer.concat(objects.map((o) => o.lines))
    .toString('utf8')
    .split('\n')
    .slice(0, -1);
}

/** rowLineSql's lines of every row of `shape`, in key order: what export must write, byte for byte. */
async function jsonObjectLines(client: pg.ClientBase, shape: Awaited<ReturnType<typeof describeTable>>) {
  const result = await client.query<{ line: string }>(
    `SELECT ${rowLineSql(shape)} AS line FROM ${rowSourceSql(shape)} AS t ORDER BY ${keyOrderSql(shape)}`,
  );
  return result.rows.map((r) => r.line);
}

/** Every character from 1 to 127 (NUL cannot be in text); another column holds characters of 2, 3 and 4 bytes. */
const EVERY_ASCII = `pg_catalog.string_agg(pg_catalog.chr(g), '') FROM generate_series(1, 127) AS g`;

describe('table SQL and its digests', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 300);
    await db.client.query(`
      CREATE TABLE parted (id int NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
      CREATE TABLE parted_all PARTITION OF parted DEFAULT;
      CREATE TABLE inherited (id int PRIMARY KEY, created_at timestamptz);
      CREATE TABLE inheriting (extra text) INHERITS (inherited);`);
  });

  afterAll(async () => db?.drop());

  it('reads and deletes ONLY a table with inheritance children, and a partitioned table through its parent', async () => {
    // Act
    const inherited = await describeTable(
      db.client,
      resolvedTable({ name: 'inherited', timestampColumn: 'created_at' }),
    );
    const parted = await describeTable(
      db.client,
      resolvedTable({ name: 'parted', timestampColumn: 'created_at' }),
    );

    // Assess
    expect(rowSourceSql(inherited)).toBe('ONLY "public"."inherited"');
    expect(rowSourceSql(parted)).toBe('"public"."parted"');
  });

  it('writes in export exactly the lines json_object writes, for every type and every character', async () => {
    // Prepare: types whose ::text differs from their COPY output (bool, bpchar, inet), nested and user-defined ones,
    // and columns named like the COPY's own aliases.
    await db.client.query(`
      CREATE TYPE mood AS ENUM ('ok', 'we"ird\\');
      CREATE TYPE pair AS (a text, "b c" int[]);
      CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 1000);
      CREATE TABLE every_type (
        id int PRIMARY KEY, created_at timestamptz NOT NULL, "t" bool, "s" char(6), "v" inet, "ts" cidr, c0 text,
        "we""ird\\ name\n" text, " " text, x xml, m money, bits bit varying(8), tv tsvector, r int4range,
        p pair, ps pair[], e mood, dom short_text, j json, jb jsonb, ba bytea, f float8, tz timetz, iv interval);
      INSERT INTO every_type VALUES
        (1, '2024-01-01', true, 'ab', '10.0.0.1', '10.0.0.0/8', (SELECT ${EVERY_ASCII}), 'é ₪ 😀 \u2028', '',
         '<a b="c">d&amp;</a>', 12.34, B'1011', 'a:1 b:2', '[1,5)', ROW('x"y\\z', '{1,NULL}'),
         ARRAY[ROW('q', '{}')::pair, NULL], 'we"ird\\', 'd', '{"a" : "\\u0001\\n"}', '{"b": "\\t"}', '\\x00ff',
         'NaN', '23:59:59.999999+14', '-1 days 00:00:01'),
        (2, '2024-01-02', false, NULL, '::1', '::/0', (SELECT ${EVERY_ASCII.replace('1, 127', '1, 31')}), NULL, NULL,
         NULL, -0.01, B'', '', 'empty', ROW(NULL, NULL), '{}', 'ok', '', 'null', 'null', '\\x', '-0', NULL, NULL),
        (3, '2024-01-03', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL);`);
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'every_type', timestampColumn: 'created_at' }),
    );

    // Act
    const exported = await exportedLines(db.client, shape);

    // Assess
    expect(exported).toEqual(await jsonObjectLines(db.client, shape));
    expect(exported).toHaveLength(3);
  });

  it('keeps the trailing blanks of character without a length in export’s lines and rowLineSql alike, and writes character(n) as before', async () => {
    // Prepare: `::text` trims a bpchar's trailing blanks, which an unbounded column keeps (and a restore would lose);
    // a character(n) column pads them back itself, and its archives' bytes stay what they were.
    await db.client.query(`
      CREATE DOMAIN padded_code AS bpchar;
      CREATE TABLE blanks (id int PRIMARY KEY, created_at timestamptz NOT NULL, b bpchar, d padded_code, f char(4));
      INSERT INTO blanks VALUES (1, '2024-01-01', 'AB  ', ' x ', 'AB'), (2, '2024-01-02', '  ', '', NULL),
        (3, '2024-01-03', NULL, NULL, '');`);
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'blanks', timestampColumn: 'created_at' }),
    );

    // Act
    const exported = await exportedLines(db.client, shape);

    // Assess
    expect(exported).toEqual(await jsonObjectLines(db.client, shape));
    expect(exported.map((line) => JSON.parse(line))).toEqual([
      { id: '1', created_at: '2024-01-01 00:00:00+00', b: 'AB  ', d: ' x ', f: 'AB' },
      { id: '2', created_at: '2024-01-02 00:00:00+00', b: '  ', d: '', f: null },
      { id: '3', created_at: '2024-01-03 00:00:00+00', b: null, d: null, f: '' },
    ]);
  });

  it('reads several objects in one COPY: each object’s rows together, in key order, in the order the objects were given', async () => {
    // Prepare: rows of three days inserted out of key order; the objects are asked for newest day first.
    await db.client.query(`
      CREATE TABLE three_days (id int PRIMARY KEY, created_at timestamptz NOT NULL);
      INSERT INTO three_days VALUES (5, '2024-01-02 10:00Z'), (1, '2024-01-03 01:00Z'), (9, '2024-01-01 00:00Z'),
        (3, '2024-01-02 23:00Z'), (7, '2024-01-03 23:59Z'), (2, '2024-01-01 12:00Z'), (4, '2024-01-02 00:00Z');`);
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'three_days', timestampColumn: 'created_at' }),
    );
    const day = (date: string) =>
      `t.created_at >= '${date}T00:00Z' AND t.created_at < '${date}T00:00Z'::timestamptz + interval '1 day'`;

    // Act
    await db.client.query('BEGIN');
    await db.client.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const objects = await readCopyObjects(
      db.client.query(
        copyTo(rowValuesCopySql(shape, [day('2024-01-03'), day('2024-01-01'), day('2024-01-02')])),
      ),
      new CopyToArchiveLines(shape.columns.map((c) => c.name)),
    );
    await db.client.query('COMMIT');

    // Assess
    const ids = (lines: Buffer) =>
      lines
        .toString('utf8')
        .split('\n')
        .slice(0, -1)
        .map((line) => JSON.parse(line).id);
    expect(objects.map((o) => [o.figures.object, ids(o.lines)])).toEqual([
      [0, ['1', '7']],
      [1, ['2', '9']],
      [2, ['3', '4', '5']],
    ]);
    expect(objects.map((o) => [o.figures.minTimestamp, o.figures.maxTimestamp])).toEqual([
      ['2024-01-03T01:00:00.000000Z', '2024-01-03T23:59:00.000000Z'],
      ['2024-01-01T00:00:00.000000Z', '2024-01-01T12:00:00.000000Z'],
      ['2024-01-02T00:00:00.000000Z', '2024-01-02T23:00:00.000000Z'],
    ]);
  });

  it('computes in SQL exactly the digest the archive code computes over the same lines', async () => {
    // Prepare
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'events', timestampColumn: 'created_at' }),
    );
    const bounds = {
      from: '0001-01-01T00:00:00.000Z',
      to: '9999-01-01T00:00:00.000Z',
      firstKey: ['1'],
      lastKey: ['150'],
    };
    const local = new RowDigest();
    for (const line of await archiveLineRows(db.client, shape, 'id <= 150'))
      local.add(Buffer.from(line, 'utf8'));

    // Act
    const inSql = await digestBatchInDatabase(db.client, shape, bounds);

    // Assess
    expect(inSql).toEqual({ rows: 150, rowDigest: local.value() });
  });

  it('digests and exports the UTF-8 bytes the archive holds, also on a LATIN1 database', async () => {
    // Prepare
    const adminUrl = inject('postgresUrl');
    const name = `latin1_${Date.now()}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(
      `CREATE DATABASE ${name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`,
    );
    const latin1 = new pg.Client({ connectionString: adminUrl.replace(/\/[^/]*$/, `/${name}`) });
    await latin1.connect();
    await latin1.query(sessionSetupSql({ statementTimeoutSeconds: 30, lockTimeoutSeconds: 5 }));
    await latin1.query(`CREATE TABLE public.accents (id int PRIMARY KEY, created_at timestamptz, v text);
      INSERT INTO public.accents VALUES (1, now(), 'café'), (2, now(), 'naïve Ünïcødé ÿ')`);
    const shape = await describeTable(
      latin1,
      resolvedTable({ name: 'accents', timestampColumn: 'created_at' }),
    );
    const local = new RowDigest();
    for (const line of await archiveLineRows(latin1, shape, 'true')) local.add(Buffer.from(line, 'utf8'));

    // Act
    const inSql = await digestBatchInDatabase(latin1, shape, {
      from: '0001-01-01T00:00:00.000Z',
      to: '9999-01-01T00:00:00.000Z',
      firstKey: ['1'],
      lastKey: ['2'],
    });

    // Assess
    expect(inSql).toEqual({ rows: 2, rowDigest: local.value() });
    expect(await exportedLines(latin1, shape)).toEqual(await jsonObjectLines(latin1, shape));
    await latin1.end();
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  });
});
