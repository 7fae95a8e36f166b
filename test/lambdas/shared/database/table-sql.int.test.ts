import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RowDigest } from '../../../../lambdas/shared/archive/row-digest.js';
import { digestBatchInDatabase } from '../../../../lambdas/shared/batch/batch.js';
import { sessionSetupSql } from '../../../../lambdas/shared/database/db.js';
import { describeTable } from '../../../../lambdas/shared/database/table-shape.js';
import { rowSourceSql } from '../../../../lambdas/shared/database/table-sql.js';
import {
  createTestDatabase,
  resolvedTable,
  seedEvents,
  type TestDatabase,
} from '../../../support/fixtures.js';
import { archiveLineRows } from '../../../support/sql.js';

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
    await latin1.end();
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  });
});
