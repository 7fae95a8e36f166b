import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { describeTable } from '../../lambdas/shared/database/table-shape.js';
import { LeaseStore } from '../../lambdas/shared/lock-table/lease-store.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  moveToStorageClass,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const q = pg.escapeIdentifier;
/** With id and created_at, 2 short of PostgreSQL's most columns. */
const COLUMNS = 1590;
const DOMAIN = 'd'.repeat(63);
/** 63 bytes, the longest name PostgreSQL keeps. */
const columnName = (i: number) => `${String(i).padStart(4, '0')}${'c'.repeat(59)}`;
const spec = {
  schema: 'public',
  name: 'widest',
  timestampColumn: 'created_at',
  batchSize: 10,
  onSchemaDrift: 'fail' as const,
};
/** Ten rows an hour apart, 40 days back from today's UTC midnight: past the 30-day retention at any hour. */
const insertRows = (from: number) =>
  `INSERT INTO public.widest (id, created_at)
   SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 hour' FROM generate_series(${from}, ${from + 9}) g`;

/**
 * The table's lease item holds a batch's columns; it also kept the last archive's, for the schema drift check. Two
 * copies of ~1,600 long-named columns left no room for a batch's objects: the first batch committed and every later
 * one failed, naming the keys.
 */
describe('a table of nearly PostgreSQL’s most columns, each of the longest name and of a long-named domain', () => {
  const table = resolvedTable(spec);
  const bed = archiverTestbed(
    async (db) => {
      const columns = Array.from({ length: COLUMNS }, (_, i) => `${q(columnName(i))} public.${q(DOMAIN)}`);
      await db.client.query(`CREATE DOMAIN public.${q(DOMAIN)} AS text`);
      await db.client.query(
        `CREATE TABLE public.widest (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, ${columns.join(', ')})`,
      );
      await db.client.query(`${insertRows(1)}; ${insertRows(11)}; ${insertRows(21)}`);
    },
    [spec],
  );
  const leaseItem = async () => (await bed.local.deps().locks.get('app', 'public.widest')) ?? {};
  /** Every row the table ever held: what the archives and the table hold together after each run. */
  const everyRow = new Set<string>();
  const archive = async () => {
    for (const line of await tableLines(bed.db.client, table)) everyRow.add(line);
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    return { original: [...everyRow], run };
  };

  it('archives batch after batch', { timeout: 300_000 }, async () => {
    // Act
    const { original, run } = await archive();

    // Assess
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original).catch(
      (error: Error) => error,
    );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'archives a table of 1,592 columns, each of a 63-byte name and of a long-named domain, batch after batch',
      held: run.outcomes[0]?.error === undefined && !(counts instanceof Error),
    });
    if (counts instanceof Error) throw counts;
    expect(run.outcomes[0]?.error).toBeUndefined();
    expect(run.outcomes[0]?.batches).toBe(3);
    expect((await leaseItem()).lastColumns).toBeUndefined();
  });

  it('archives again when an earlier version kept the columns on the item', {
    timeout: 300_000,
  }, async () => {
    // Prepare: the item as an earlier version left it, with the columns of the last archive.
    const { columns } = await describeTable(bed.db.client, table);
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: bed.local.services.dynamoEndpoint }),
    );
    await ddb.send(
      new UpdateCommand({
        TableName: bed.local.services.lockTable,
        Key: LeaseStore.stateKey('app', 'public.widest'),
        UpdateExpression: 'SET lastColumns = :columns',
        ExpressionAttributeValues: { ':columns': columns },
      }),
    );
    ddb.destroy();
    await bed.db.client.query(insertRows(31));

    // Act
    const { original, run } = await archive();

    // Assess
    expect(run.outcomes[0]?.error).toBeUndefined();
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect((await leaseItem()).lastColumns).toBeUndefined();
  });

  it('still finds a column dropped since the last archive', { timeout: 300_000 }, async () => {
    // Prepare
    await bed.db.client.query(insertRows(41));
    await bed.db.client.query(`ALTER TABLE public.widest DROP COLUMN ${q(columnName(7))}`);

    // Act
    const { run } = await archive();

    // Assess: the last archive's manifest stands in for the columns the item no longer keeps.
    expect(run.outcomes[0]?.error).toMatch(/^SchemaChangedError: .*removed 0007c/);
    expect(Number((await bed.db.client.query('SELECT count(*) FROM public.widest')).rows[0].count)).toBe(10);
  });
});

/**
 * Such a table's columns are read from its last archive's manifest: a manifest of about 1,600 long-named columns is
 * several hundred KB, above the size below which the archive lifecycle keeps objects in their class, so it moves to
 * cold storage once the table is archived no more for a while. Drift that only informs (`continue`) is then not
 * checked for that batch (with a warning), rather than every export failing until the manifest is restored.
 */
describe('a table of nearly PostgreSQL’s most columns whose last manifest is in cold storage', () => {
  const coldSpec = { ...spec, name: 'widest_cold', onSchemaDrift: 'continue' as const };
  const table = resolvedTable(coldSpec);
  const bed = archiverTestbed(
    async (db) => {
      const columns = Array.from({ length: COLUMNS }, (_, i) => `${q(columnName(i))} public.${q(DOMAIN)}`);
      await db.client.query(`CREATE DOMAIN public.${q(DOMAIN)} AS text`);
      await db.client.query(
        `CREATE TABLE public.widest_cold (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, ${columns.join(', ')})`,
      );
      await db.client.query(insertRows(1).replace('public.widest', 'public.widest_cold'));
    },
    [coldSpec],
  );

  it('archives the next batch, the drift unchecked, rather than failing every run', {
    timeout: 300_000,
  }, async () => {
    // Prepare: one batch archived; its manifest moved to GLACIER, as a lifecycle transition would; more old rows.
    const first = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    const { lastArchiveKey } = await bed.local.deps().locks.get('app', 'public.widest_cold');
    if (!lastArchiveKey) throw new Error('nothing archived');
    await moveToStorageClass(bed.local, manifestKeyFor(lastArchiveKey), 'GLACIER');
    await bed.db.client.query(insertRows(11).replace('public.widest', 'public.widest_cold'));
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(first.outcomes[0]?.error).toBeUndefined();
    expect(run.outcomes[0]?.error).toBeUndefined();
    expect(Number((await bed.db.client.query('SELECT count(*) FROM public.widest_cold')).rows[0].count)).toBe(
      0,
    );
    expect(original).toHaveLength(10);
  });
});
