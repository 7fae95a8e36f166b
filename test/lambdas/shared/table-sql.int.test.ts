import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { digestBatchInDatabase } from '../../../lambdas/shared/batch.js';
import { sessionSetupSql } from '../../../lambdas/shared/db.js';
import { TableNotUsableError } from '../../../lambdas/shared/errors.js';
import { RowDigest } from '../../../lambdas/shared/row-digest.js';
import { describeTable } from '../../../lambdas/shared/table-sql.js';
import { createTestDatabase, resolvedTable, seedEvents, type TestDatabase } from '../../support/fixtures.js';
import { archiveLineRows } from '../../support/sql.js';

describe('table checks and SQL digests', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 300);
    await db.client.query(`
      CREATE TABLE nokey (created_at timestamptz, v text);
      CREATE VIEW events_view AS SELECT * FROM events;
      CREATE TABLE datecol (id int PRIMARY KEY, created_on date);
      CREATE TABLE nullable_key (id int UNIQUE, created_at timestamptz);
      CREATE TABLE not_unique (id int NOT NULL, created_at timestamptz);
      CREATE TABLE local_time (id int PRIMARY KEY, created_at timestamp);
      CREATE TABLE parent_table (id int PRIMARY KEY, created_at timestamptz);
      CREATE TABLE child_table (id int PRIMARY KEY, parent_id int REFERENCES parent_table ON DELETE CASCADE);
      CREATE TABLE included (id int, note text, created_at timestamptz, CONSTRAINT included_pk PRIMARY KEY (id) INCLUDE (note));
      CREATE TABLE parted (id int NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
      CREATE TABLE parted_all PARTITION OF parted DEFAULT;`);
  });

  afterAll(async () => db?.drop());

  it.each([
    [
      'missing',
      { name: 'missing', timestampColumn: 'created_at' },
      /table "public"."missing" in database app does not exist/,
    ],
    [
      'a view',
      { name: 'events_view', timestampColumn: 'created_at' },
      /is a view; only tables can be archived/,
    ],
    [
      'no primary key',
      { name: 'nokey', timestampColumn: 'created_at' },
      /has no primary key; set keyColumns/,
    ],
    ['a missing column', { name: 'events', timestampColumn: 'nope' }, /has no column "nope"/],
    [
      'a date column',
      { name: 'datecol', timestampColumn: 'created_on' },
      /is date; it must be timestamptz or timestamp/,
    ],
    [
      'a nullable key',
      { name: 'nullable_key', timestampColumn: 'created_at', keyColumns: ['id'] },
      /key column "id" .* must be NOT NULL/,
    ],
    [
      'a key without unique index',
      { name: 'not_unique', timestampColumn: 'created_at', keyColumns: ['id'] },
      /are not covered by a primary key or unique index/,
    ],
    [
      'a table whose deletes cascade',
      { name: 'parent_table', timestampColumn: 'created_at' },
      /is referenced by foreign key "child_table_parent_id_fkey" of child_table with ON DELETE CASCADE/,
    ],
    ['an integer timestamp column', { name: 'datecol', timestampColumn: 'id' }, /is integer/],
    [
      'an unknown time zone',
      { name: 'local_time', timestampColumn: 'created_at', timestampTimeZone: 'Mars/Olympus' },
      /"Mars\/Olympus" is not a known time zone/,
    ],
  ])('refuses %s with a clear TableNotUsableError', async (_case, spec, message) => {
    // Act
    const attempt = describeTable(db.client, resolvedTable(spec));

    // Assess
    await expect(attempt).rejects.toThrow(TableNotUsableError);
    await expect(attempt).rejects.toThrow(message);
  });

  it('takes only the key columns of a primary key, not its INCLUDE columns', async () => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'included', timestampColumn: 'created_at' }),
    );

    // Assess
    expect(shape.keyColumns.map((c) => c.name)).toEqual(['id']);
  });

  it('accepts a partitioned table through its parent', async () => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'parted', timestampColumn: 'created_at' }),
    );

    // Assess
    expect(shape.keyColumns.map((c) => c.name)).toEqual(['id', 'created_at']);
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

  it('digests the UTF-8 bytes the archive holds, also on a LATIN1 database', async () => {
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
    await latin1.query(`CREATE TABLE accents (id int PRIMARY KEY, created_at timestamptz, v text);
      INSERT INTO accents VALUES (1, now(), 'café'), (2, now(), 'naïve Ünïcødé ÿ')`);
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
    await latin1.end();
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  });
});
