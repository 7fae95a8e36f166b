import { PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { closeProcessDatabases } from '../../lambdas/shared/runtime/deps.js';
import { type LocalEnvironment, runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  readLiveArchives,
  resolvedTable,
  s3ClientFor,
  type TestDatabase,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { COMMA_DECIMAL_LOCALE } from '../support/locales.js';
import { recordProof } from '../support/proof-ledger.js';

/** Every session the archiver opens from now on gets this value of `setting`, as a database's own setting gives it. */
async function setDatabaseDefault(db: TestDatabase, setting: string, value: string): Promise<void> {
  await db.client.query(
    `ALTER DATABASE ${pg.escapeIdentifier(db.name)} SET ${setting} = ${pg.escapeLiteral(value)}`,
  );
  await closeProcessDatabases();
}

/** Records an operator's threat as held when the restored values are the archived ones, and asserts they are. */
function assertKept(attack: string, before: unknown, after: unknown): void {
  recordProof({
    kind: 'threat',
    actor: 'operator',
    attack,
    held: JSON.stringify(after) === JSON.stringify(before),
  });
  expect(after).toEqual(before);
}

const archiveTable = (local: LocalEnvironment, table: string) =>
  runLocalArchive(local, { tables: [table] }, { retryIntervalScale: 0 });

const restoreTable = (
  local: LocalEnvironment,
  table: string,
  targetTable: string,
  request: Record<string, unknown> = {},
) => runLocalRestore(local, { database: 'app', table, targetTable, ...request }, { retryIntervalScale: 0 });

/** Money at its edges. */
const AMOUNTS = ['12.34', '1234.56', '-0.01', '0', '-92233720368547758.08', '92233720368547758.07'];
/** Amounts below a thousand, which a comma-decimal locale reads from C's text without an error: "$12.34" as 1234. */
const SMALL_AMOUNTS = ['12.34', '-0.01', '0', '999.99', '5.10'];

/**
 * Money is the one type whose text depends on a setting the archiver did not pin: lc_monetary, which a database or
 * role may set. An archive written under one and restored under another read "$12.34" as 1234 where "," is the decimal
 * separator: a silent change of every value.
 */
describe('money keeps its value across the locales of export and restore', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      // The locale must exist on the server and write money otherwise than C (a C library may accept any name).
      const written = await db.client
        .query<{ text: string }>(
          `SELECT pg_catalog.set_config('lc_monetary', $1, true), 1234.56::numeric::money::text AS text`,
          [COMMA_DECIMAL_LOCALE],
        )
        .then((result) => result.rows[0]?.text)
        .catch((error: unknown) => String(error));
      if (!written?.includes('1.234,56'))
        throw new Error(
          `the test server cannot write money as ${COMMA_DECIMAL_LOCALE} does (${written}): the test setup compiles it with localedef from the Debian package locales`,
        );
      for (const [table, amounts] of [
        ['written_in_c', SMALL_AMOUNTS],
        ['written_in_comma_locale', AMOUNTS],
      ] as const)
        await db.client.query(
          `CREATE TABLE ${table} (id int PRIMARY KEY, created_at timestamptz NOT NULL, amount money NOT NULL);
           INSERT INTO ${table}
           SELECT n, now() - interval '100 days' + n * interval '1 minute', a::numeric::money
             FROM unnest('{${amounts.join(',')}}'::text[]) WITH ORDINALITY AS u(a, n)`,
        );
    },
    [spec('written_in_c'), spec('written_in_comma_locale')],
  );
  const databaseDefault = (locale: string) => setDatabaseDefault(bed.db, 'lc_monetary', locale);
  const amounts = async (table: string) =>
    (await bed.db.client.query(`SELECT amount::numeric::text AS a FROM ${table} ORDER BY id`)).rows.map(
      (r) => r.a,
    );

  it('archives money as C writes it, whatever the database’s locale, and restores it under another', async () => {
    // Prepare: archived under the comma locale, restored under C.
    await databaseDefault(COMMA_DECIMAL_LOCALE);
    const before = await amounts('written_in_comma_locale');

    // Act
    const archived = await archiveTable(bed.local, 'public.written_in_comma_locale');
    await databaseDefault('C');
    const restored = await restoreTable(
      bed.local,
      'public.written_in_comma_locale',
      'public.restored_from_comma',
    );

    // Assess
    expect(archived.execution.status).toBe('SUCCEEDED');
    expect(restored.execution.error).toBeUndefined();
    expect(restored.execution.status).toBe('SUCCEEDED');
    const [archive] = await readLiveArchives(bed.local, 'public', 'written_in_comma_locale');
    expect(archive?.lines.map((line) => JSON.parse(line).amount)).toContain('$12.34');
    expect(await amounts('restored_from_comma')).toEqual(before);
  });

  it('restores money archived under C into a database whose locale reads "," as the decimal separator', async () => {
    // Prepare: archived under C, restored under the comma locale.
    await databaseDefault('C');
    const before = await amounts('written_in_c');

    // Act
    const archived = await archiveTable(bed.local, 'public.written_in_c');
    await databaseDefault(COMMA_DECIMAL_LOCALE);
    const restored = await restoreTable(bed.local, 'public.written_in_c', 'public.restored_from_c');
    await databaseDefault('C');

    // Assess
    const after = await amounts('restored_from_c');
    expect(archived.execution.status).toBe('SUCCEEDED');
    expect(restored.execution.error).toBeUndefined();
    expect(restored.execution.status).toBe('SUCCEEDED');
    assertKept('restore into a database whose lc_monetary reads money otherwise', before, after);
  });

  it('puts money back under the archive’s locale when the target holds the rows (COPY refused, then merged row by row)', async () => {
    // Prepare: the rows restored above, changed since; the database's locale reads "," as the decimal separator.
    const before = await amounts('restored_from_c');
    await bed.db.client.query(`UPDATE restored_from_c SET amount = '0'::numeric::money`);
    await databaseDefault(COMMA_DECIMAL_LOCALE);

    // Act
    const restored = await restoreTable(bed.local, 'public.written_in_c', 'public.restored_from_c', {
      ignoreWatermark: true,
      strategy: 'overwrite',
    });
    await databaseDefault('C');

    // Assess
    expect(restored.execution.error).toBeUndefined();
    expect(restored.results.every((r) => r.overwritten > 0)).toBe(true);
    expect(await amounts('restored_from_c')).toEqual(before);
  });

  it('refuses an archive whose manifest a bucket writer stripped of its lcMonetary, writing nothing of it', async () => {
    // Prepare
    const [archive] = await readLiveArchives(bed.local, 'public', 'written_in_c');
    if (!archive) throw new Error('no archive of written_in_c');
    const { lcMonetary, ...stripped } = archive.manifest;
    expect(lcMonetary).toBe('C');
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: manifestKeyFor(archive.key),
        Body: JSON.stringify(stripped, null, 2),
      }),
    );
    await databaseDefault(COMMA_DECIMAL_LOCALE);

    // Act
    const restored = await restoreTable(bed.local, 'public.written_in_c', 'public.restored_stripped');
    await databaseDefault('C');

    // Assess
    const [result] = restored.results;
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'strip the lcMonetary a manifest records, so money reads under another locale',
      held: result?.status === 'failed' && result.inserted === 0,
    });
    expect(result).toMatchObject({ status: 'failed', inserted: 0 });
    expect(result?.error).toMatch(/^ArchiveIntegrityError: .*lcMonetary: recorded C, sidecar says undefined/);
  });
});

/**
 * xml values are stored as written, documents or content fragments, and read back through xml's input, which follows
 * xmloption: a database or role set to DOCUMENT refuses a fragment. Content reads both (a DOCTYPE too, on the
 * supported releases), and is PostgreSQL's default.
 */
describe('xml keeps every value whatever the database’s xmloption', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE markup (id int PRIMARY KEY, created_at timestamptz NOT NULL, doc xml NOT NULL);
        SET xmloption = content;
        INSERT INTO markup VALUES
          (1, now() - interval '100 days', 'a fragment <b>of</b> content'),
          (2, now() - interval '100 days', '<!DOCTYPE note><note>a document</note>'),
          (3, now() - interval '100 days', '<?xml version="1.0"?><note/>');`);
    },
    [{ schema: 'public', name: 'markup', timestampColumn: 'created_at' }],
  );

  it('restores content fragments into a database whose xmloption is DOCUMENT', async () => {
    // Prepare
    const before = (await bed.db.client.query(`SELECT doc::text AS d FROM markup ORDER BY id`)).rows;
    const archived = await archiveTable(bed.local, 'public.markup');
    await setDatabaseDefault(bed.db, 'xmloption', 'document');

    // Act
    const restored = await restoreTable(bed.local, 'public.markup', 'public.markup_restored');

    // Assess
    expect(archived.execution.status).toBe('SUCCEEDED');
    expect(restored.execution.error).toBeUndefined();
    const after = await bed.db.client
      .query(`SELECT doc::text AS d FROM markup_restored ORDER BY id`)
      .then((result) => result.rows)
      .catch(() => []);
    assertKept('restore into a database whose xmloption is DOCUMENT', before, after);
  });
});

/**
 * An array's NULL element is written as an unquoted NULL (a text element "NULL" is quoted); with array_nulls off,
 * which a database or role may set, array input reads the unquoted NULL as the text "NULL".
 */
describe('arrays keep their NULL elements whatever the database’s array_nulls', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE tagged (id int PRIMARY KEY, created_at timestamptz NOT NULL, tags text[] NOT NULL);
        INSERT INTO tagged VALUES
          (1, now() - interval '100 days', ARRAY['a', NULL, 'NULL']),
          (2, now() - interval '100 days', ARRAY[NULL]::text[]);`);
    },
    [{ schema: 'public', name: 'tagged', timestampColumn: 'created_at' }],
  );

  it('restores NULL elements as NULL into a database whose array_nulls is off', async () => {
    // Prepare
    const elements = (table: string) =>
      bed.db.client
        .query(`SELECT id, array_to_json(tags)::text AS tags FROM ${table} ORDER BY id`)
        .then((result) => result.rows);
    const before = await elements('tagged');
    const archived = await archiveTable(bed.local, 'public.tagged');
    await setDatabaseDefault(bed.db, 'array_nulls', 'off');

    // Act
    const restored = await restoreTable(bed.local, 'public.tagged', 'public.tagged_restored');

    // Assess
    expect(archived.execution.status).toBe('SUCCEEDED');
    expect(restored.execution.error).toBeUndefined();
    expect(before).toEqual([
      { id: 1, tags: '["a",null,"NULL"]' },
      { id: 2, tags: '[null]' },
    ]);
    const after = await elements('tagged_restored');
    assertKept('restore into a database whose array_nulls is off', before, after);
  });
});

/**
 * standard_conforming_strings, which a database or role may turn off (an application from before 9.1), makes a plain
 * '…' literal read backslashes as escapes. The archiver writes key bounds into its SQL as literals (COPY takes no
 * parameters): a bound holding a backslash must still select the rows it names, in export, delete and restore.
 */
describe('text keys holding backslashes whatever the database’s standard_conforming_strings', () => {
  const spec = { schema: 'public', name: 'escaped_keys', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      // One old day of keys with backslashes and quotes, taken three at a time: every batch ends inside the day at
      // one of them.
      await db.client.query(
        `CREATE TABLE escaped_keys (k text PRIMARY KEY, created_at timestamptz NOT NULL, note text NOT NULL);
         INSERT INTO escaped_keys
         SELECT k, ${TODAY_UTC_SQL} - interval '40 days' + n * interval '1 minute', 'row ' || n
           FROM unnest(ARRAY[E'a\\\\', E'a\\\\\\\\', E'a\\\\n', E'a\\\\''b', E'a\\\\0', E'b\\\\x41', E'b\\\\\\\\''', 'b''c',
                             E'c\\\\u0041', E'c\\\\'])
                WITH ORDINALITY AS u(k, n)`,
      );
    },
    [spec],
    { defaults: { batchSize: 3 } },
  );

  it('archives and deletes exactly the rows of each batch, and restores them byte for byte', async () => {
    // Prepare
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);
    const keys = async (relation: string) =>
      (await bed.db.client.query(`SELECT k, note FROM ${relation} ORDER BY k COLLATE "C"`)).rows;
    const before = await keys('escaped_keys');
    await setDatabaseDefault(bed.db, 'standard_conforming_strings', 'off');
    const session = new pg.Client({ connectionString: bed.db.url });
    await session.connect();
    const setting = await session.query('SHOW standard_conforming_strings').finally(() => session.end());
    expect(setting.rows).toEqual([{ standard_conforming_strings: 'off' }]);

    // Act
    const archived = await archiveTable(bed.local, 'public.escaped_keys');
    const restored = await restoreTable(bed.local, 'public.escaped_keys', 'public.escaped_keys_restored');

    // Assess
    expect(archived.outcomes).toMatchObject([{ status: 'succeeded', rowsArchived: 10 }]);
    expect(archived.outcomes[0]?.batches).toBeGreaterThan(3);
    expect(restored.execution.error).toBeUndefined();
    expect(await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original)).toEqual({
      inDatabase: 0,
      inArchives: 10,
    });
    assertKept(
      'archive and restore under standard_conforming_strings off',
      before,
      await keys('escaped_keys_restored'),
    );
  });
});
