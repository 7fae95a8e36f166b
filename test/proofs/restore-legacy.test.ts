import { createHash, randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { listCommand, validateCommand } from '../../cli/archives.js';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalRestore } from '../../local/run.js';
import { archiverTestbed, putLegacyAuditLogs, putObjects } from '../support/fixtures.js';
import { type LegacyArchive, writeLegacyArchive } from '../support/legacy-archive.js';
import { recordProof } from '../support/proof-ledger.js';

const COLUMNS = `id bigint PRIMARY KEY, created_at timestamptz NOT NULL, naive timestamp, amount numeric(12,4),
  ratio float8, big bigint, raw blob, doc jsonb, doc_json json, tags text[], grid int[], ok boolean, day date,
  uid uuid, ip inet, note text`;

/** Two rows in the Python tool's JSON form (its value encodings and quirks), and the same rows as SQL. */
const LEGACY_ROWS = [
  {
    id: 1,
    created_at: '2025-01-02T03:04:05.123456+00:00',
    naive: '2025-01-02T03:04:05.5Z',
    amount: '12.5000',
    ratio: Number.NaN,
    big: 9007199254740993n,
    raw: Buffer.from([0, 255, 16]).toString('base64'),
    doc: '{"a": 1, "b": [true, null]}',
    doc_json: '{"x" :  1}',
    tags: ['a', null, 'b"c\\d'],
    grid: [
      [1, 2],
      [3, null],
    ],
    ok: true,
    day: '2025-01-02',
    uid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    ip: '10.0.0.1',
    note: 'line\u2028sep é 😀',
  },
  {
    id: 2,
    created_at: '2025-01-02T00:00:00+00:00',
    naive: '2025-01-02T00:00:00Z',
    amount: null,
    ratio: Number.POSITIVE_INFINITY,
    big: -1,
    raw: null,
    doc: 'null',
    doc_json: null,
    tags: [],
    grid: null,
    ok: false,
    day: null,
    uid: null,
    ip: '::1',
    note: null,
  },
];
const EXPECTED_SQL = `INSERT INTO public.expected VALUES
  (1, '2025-01-02 03:04:05.123456+00', '2025-01-02 03:04:05.5', 12.5, 'NaN', 9007199254740993, '\\x00ff10',
   '{"a": 1, "b": [true, null]}', '{"x" :  1}', ARRAY['a', NULL, 'b"c\\d'], '{{1,2},{3,NULL}}', true,
   '2025-01-02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1', E'line\\u2028sep é 😀'),
  (2, '2025-01-02 00:00:00+00', '2025-01-02 00:00:00', NULL, 'Infinity', -1, NULL, 'null', NULL, '{}', NULL, false,
   NULL, NULL, '::1', NULL)`;

describe('restore of archives written by the Python "Audit Table Archiver"', () => {
  const bed = archiverTestbed(
    async (db) => {
      // A domain over bytea: its values are base64 in the old format, as bytea's are.
      await db.client.query('CREATE DOMAIN public.blob AS bytea');
      await db.client.query(`CREATE TABLE public.legacy_audit (${COLUMNS})`);
      await db.client.query(`CREATE TABLE public.expected (${COLUMNS})`);
      await db.client.query(EXPECTED_SQL);
    },
    [{ schema: 'public', name: 'legacy_audit', timestampColumn: 'created_at' }],
  );

  const upload = (archive: LegacyArchive) => putObjects(bed.local, archive.files);
  const legacyArchive = (batch: number, rows: typeof LEGACY_ROWS, runStamp = '20250301T020304Z') =>
    writeLegacyArchive({
      prefix: 'archive/',
      database: bed.db.name,
      schema: 'public',
      table: 'legacy_audit',
      runStamp,
      batch,
      rows,
    });

  it('restores its rows exactly as the source table had them, checked against its SHA-256s', async () => {
    // Prepare: its layout under the same bucket and prefix, one batch per row.
    await upload(legacyArchive(1, LEGACY_ROWS.slice(0, 1)));
    await upload(legacyArchive(2, LEGACY_ROWS.slice(1)));

    // Act
    const result = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.legacy_audit', legacy: { database: bed.db.name } },
      { retryIntervalScale: 0 },
    );

    // Assess: row for row, compared as text (NaN, Infinity, big integers, bytea, json whitespace, jsonb null).
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.results.map((r) => [r.status, r.inserted])).toEqual([
      ['restored', 1],
      ['restored', 1],
    ]);
    const comparison = await compareRows(
      bed.db.client,
      'SELECT * FROM public.expected',
      'SELECT * FROM public.legacy_audit',
    );
    expect(comparison).toEqual({ rows: 2, missing: 0, extra: 0 });
  });

  it('refuses a file whose bytes do not match its metadata, writing nothing of it', async () => {
    // Prepare: a later batch whose data was replaced after its metadata was written.
    const genuine = legacyArchive(
      1,
      [{ ...LEGACY_ROWS[1], id: 3 }] as typeof LEGACY_ROWS,
      '20250302T000000Z',
    );
    const forged = legacyArchive(1, [{ ...LEGACY_ROWS[1], id: 4 }] as typeof LEGACY_ROWS, '20250302T000000Z');
    genuine.files.set(genuine.dataKey, forged.files.get(forged.dataKey) ?? Buffer.alloc(0));
    await upload(genuine);

    // Act
    const result = await runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.legacy_audit',
        mode: 'key',
        key: genuine.dataKey,
        legacy: { database: bed.db.name },
      },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results[0]?.error).toMatch(/^ArchiveIntegrityError: .*contentSha256/);
    const ids = await bed.db.client.query(
      `SELECT array_agg(id ORDER BY id)::text AS ids FROM public.legacy_audit`,
    );
    expect(ids.rows[0].ids).toBe('{1,2}');
  });

  it('validate checks its archives too, and names the forged one', async () => {
    // Act
    const lines: string[] = [];
    const code = await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { legacyDatabase: bed.db.name, json: false, strict: false },
      (line) => lines.push(line),
    );

    // Assess: the two genuine files verify (2 rows); the forged one is the only error.
    expect(code).toBe(1);
    expect(lines[0]).toBe('app/public.legacy_audit: 3 archives, 2 rows verified');
    expect(lines.filter((line) => line.includes('ERROR'))).toEqual([
      expect.stringMatching(
        /ERROR corrupt: .*legacy_audit_20250302T000000Z_batch_001\.jsonl\.gz: .*contentSha256/,
      ),
    ]);
  });
});

describe('legacy archives restored into columns whose types narrowed since', () => {
  // Today's table: amount was numeric(12,4), code, tag, flag and label text, seen_at timestamptz and seen_tz
  // timestamp, score, fee, ratio and weight numeric (ratio double precision once), at_time timetz when the Python tool
  // archived it, and the arrays' elements likewise. weight is a domain over a domain over double precision, price one
  // over numeric(10,2); weights and prices arrays of them (numeric[] then).
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        `CREATE DOMAIN public.measure AS double precision;
         CREATE DOMAIN public.weight AS public.measure;
         CREATE DOMAIN public.price AS numeric(10,2);
         CREATE TABLE public.legacy_audit (id bigint PRIMARY KEY, created_at timestamptz NOT NULL,
           amount numeric(10,2), code varchar(3), seen_at timestamp, seen_on date, tag character(3),
           seen_tz timestamptz, seen_ats timestamp[], seen_ons date[], seen_tzs timestamptz[],
           score double precision, ratio real, scores double precision[], fee money, flag "char", label name,
           at_time time, weight public.weight, weights public.weight[], prices public.price[], ratios real[])`,
      );
    },
    [{ schema: 'public', name: 'legacy_audit', timestampColumn: 'created_at' }],
  );
  /**
   * Puts one archive of one row (the Python tool's layout) into the bucket, without its `.manifest.json` when
   * `uncommitted` (a batch whose delete the tool never recorded), its manifest listing `primaryKeys` when given, and
   * restores it alone.
   */
  const restoreOne = async (
    runStamp: string,
    values: Record<string, unknown>,
    { uncommitted = false, primaryKeys }: { uncommitted?: boolean; primaryKeys?: unknown[] } = {},
  ) => {
    const archive = writeLegacyArchive({
      prefix: 'archive/',
      database: bed.db.name,
      schema: 'public',
      table: 'legacy_audit',
      runStamp,
      batch: 1,
      rows: [{ id: 1, created_at: '2025-01-02T03:04:05+00:00', ...values }],
      primaryKeys,
    });
    await putObjects(
      bed.local,
      new Map([...archive.files].filter(([key]) => !uncommitted || key !== archive.manifestKey)),
    );
    const restored = await runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.legacy_audit',
        legacy: { database: bed.db.name },
        mode: 'key',
        key: archive.dataKey,
      },
      { retryIntervalScale: 0 },
    );
    return { ...restored, archive };
  };

  it.each([
    ['a value a numeric(10,2) would round', '20250301T010000Z', { amount: '12.3456' }, 'amount'],
    ['a value a varchar(3) would truncate', '20250302T010000Z', { code: 'abcdef' }, 'code'],
    ['a value a character(3) would truncate', '20250305T010000Z', { tag: 'abcd' }, 'tag'],
    [
      'a local time (a timestamp then) a timestamptz would read as UTC',
      '20250306T010000Z',
      { seen_tz: '2025-01-02T03:04:05Z' },
      'seen_tz',
    ],
    [
      'an offset a timestamp would drop',
      '20250303T010000Z',
      { seen_at: '2025-01-02T03:04:05-05:00' },
      'seen_at',
    ],
    [
      'a time of day a date would drop',
      '20250304T010000Z',
      { seen_on: '2025-01-02T03:04:05+00:00' },
      'seen_on',
    ],
    [
      'an array element of local time a timestamptz[] would read as UTC',
      '20250311T010000Z',
      {
        seen_tzs: [
          ['2025-01-02T03:04:05+00:00', null],
          ['2025-01-02T03:04:05Z', null],
        ],
      },
      'seen_tzs',
    ],
    [
      'an array element whose offset a timestamp[] would drop',
      '20250312T010000Z',
      { seen_ats: ['2025-01-02T03:04:05', '2025-01-02T03:04:05-05:00'] },
      'seen_ats',
    ],
    [
      'an array element whose time of day a date[] would drop',
      '20250313T010000Z',
      { seen_ons: ['2025-01-02', '2025-01-02T03:04:05+00:00'] },
      'seen_ons',
    ],
    [
      'a number a double precision would round (a numeric then)',
      '20250314T010000Z',
      { score: '12345678901234567.89' },
      'score',
    ],
    ['a number a real would round', '20250315T010000Z', { ratio: Math.PI }, 'ratio'],
    [
      'an array element a double precision[] would round',
      '20250316T010000Z',
      { scores: ['1.5', '0.30000000000000000001'] },
      'scores',
    ],
    ['a number a money would round', '20250317T010000Z', { fee: '12.345' }, 'fee'],
    ['a text a "char" would cut to its first byte', '20250318T010000Z', { flag: 'ab' }, 'flag'],
    ['a text a name would cut to 63 bytes', '20250319T010000Z', { label: 'x'.repeat(64) }, 'label'],
    ['an offset a time would drop', '20250321T010000Z', { at_time: '03:04:05+02:00' }, 'at_time'],
    [
      'a number a domain over a domain over double precision would round',
      '20250320T010000Z',
      { weight: '12345678901234567.89' },
      'weight',
    ],
    [
      'an array element a domain over a domain over double precision would round',
      '20250323T010000Z',
      { weights: ['0.5', '12345678901234567.89'] },
      'weights',
    ],
    [
      'an array element a domain over numeric(10,2) would round',
      '20250324T010000Z',
      { prices: ['1.25', '12.345'] },
      'prices',
    ],
  ])('refuses %s under strict drift, writing nothing', async (_case, runStamp, values, column) => {
    // Act
    const restored = await restoreOne(runStamp, values);
    const written = await bed.db.client.query('SELECT count(*)::int AS n FROM public.legacy_audit');

    // Assess
    expect(restored.results).toHaveLength(1);
    expect(restored.results[0]?.status).toBe('failed');
    expect(restored.results[0]?.error).toMatch(
      new RegExp(
        `^SchemaDriftError: column "${column}": 1 value\\(s\\) change when converted from the legacy archive's text`,
      ),
    );
    expect(written.rows[0]?.n).toBe(0);
  });

  it('restores values that fit the narrowed types exactly', async () => {
    // Act
    const restored = await restoreOne('20250309T010000Z', {
      amount: '12.30',
      code: 'ab',
      seen_at: '2025-01-02T03:04:05',
      seen_on: '2025-01-02',
      seen_ats: ['2025-01-02T03:04:05Z', null],
      seen_ons: [['2025-01-02'], ['2025-01-03T00:00:00+00:00']],
      seen_tzs: ['2025-01-02T03:04:05+00:00'],
      score: '1.500000',
      ratio: 0.1,
      scores: [0.1, 1e20, 'NaN', '-Infinity', null],
      fee: '12.340',
      flag: 'a',
      label: 'x'.repeat(63),
      at_time: '03:04:05.500000',
      weight: '0.25',
      weights: ['0.25', '1e20'],
      prices: ['12.340', null],
    });
    const written = await bed.db.client.query(
      `SELECT amount::text, code, seen_at::text, seen_on::text, seen_ats::text, seen_ons::text,
              seen_tzs::text, score::text, ratio::text, scores::text, fee::numeric::text AS fee,
              flag::text, label::text, at_time::text, weight::text,
              weights::text, prices::text FROM public.legacy_audit WHERE id = 1`,
    );

    // Assess
    expect(restored.results[0]?.status).toBe('restored');
    expect(written.rows).toEqual([
      {
        amount: '12.30',
        code: 'ab',
        seen_at: '2025-01-02 03:04:05',
        seen_on: '2025-01-02',
        seen_ats: '{"2025-01-02 03:04:05",NULL}',
        seen_ons: '{{2025-01-02},{2025-01-03}}',
        seen_tzs: '{"2025-01-02 03:04:05+00"}',
        score: '1.5',
        ratio: '0.1',
        scores: '{0.1,1e+20,NaN,-Infinity,NULL}',
        fee: '12.34',
        flag: 'a',
        label: 'x'.repeat(63),
        at_time: '03:04:05.5',
        weight: '0.25',
        weights: '{0.25,1e+20}',
        prices: '{12.34,NULL}',
      },
    ]);
  });

  it('restores a real column’s values as its driver gave them to the tool (each float4 widened to a double) under strict', async () => {
    // Prepare
    await bed.db.client.query('DELETE FROM public.legacy_audit');

    // Act: asyncpg hands the tool a real as the double of its value, which it wrote with Python's repr: 0.1 as
    // 0.10000000149011612. Read as a real, each is that very real again.
    const restored = await restoreOne('20250325T010000Z', {
      ratio: 0.10000000149011612,
      ratios: [1.100000023841858, 3.4028234663852886e38, -0.5, null],
    });
    const written = await bed.db.client.query(
      'SELECT ratio::text, ratios::text FROM public.legacy_audit WHERE id = 1',
    );

    // Assess
    expect([restored.results[0]?.status, restored.results[0]?.error]).toEqual(['restored', undefined]);
    expect(written.rows).toEqual([{ ratio: '0.1', ratios: '{1.1,3.4028235e+38,-0.5,NULL}' }]);
  });

  it('reads a committed batch’s .manifest.json of megabytes (every key the tool deleted) as committed', async () => {
    // Prepare
    await bed.db.client.query('DELETE FROM public.legacy_audit');
    const lines: string[] = [];

    // Act: a batch whose manifest lists 100,000 uuid keys (about 4.5 MB) restored, then validated
    const restored = await restoreOne(
      '20250311T010000Z',
      { code: 'ok' },
      { primaryKeys: Array.from({ length: 100_000 }, () => randomUUID()) },
    );
    const { archive } = restored;
    await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { legacyDatabase: bed.db.name, json: false, strict: false },
      (line) => lines.push(line),
    );

    // Assess
    expect(archive.files.get(archive.manifestKey)?.length).toBeGreaterThan(4 * 1024 * 1024);
    expect(restored.results.map((r) => r.status)).toEqual(['restored']);
    expect(restored.results[0]?.warnings.filter((w) => w.includes('manifest'))).toEqual([]);
    expect(lines.filter((line) => line.includes(archive.dataKey) && line.includes('uncommitted'))).toEqual(
      [],
    );
  });

  it('says of a file without its .manifest.json, in the restore’s result and in validate, that its batch’s delete was never recorded', async () => {
    // Prepare: a batch of the tool whose manifest never came (its delete failed, or the tool stopped)
    await bed.db.client.query('DELETE FROM public.legacy_audit');

    // Act
    const restored = await restoreOne('20250310T010000Z', { code: 'ok' }, { uncommitted: true });
    const lines: string[] = [];
    await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { legacyDatabase: bed.db.name, json: false, strict: false },
      (line) => lines.push(line),
    );

    // Assess
    expect(restored.results.map((r) => r.status)).toEqual(['restored']);
    expect(restored.results[0]?.warnings).toContain(
      "no .manifest.json of this batch: the Python tool never recorded this batch's delete as committed, so its rows may be older copies of rows still in the source table or archived again by a later run",
    );
    expect(lines.filter((line) => line.includes('uncommitted'))).toEqual([
      `  WARNING uncommitted: ${restored.results[0]?.key}: no .manifest.json of this batch: the Python tool never recorded this batch's delete as committed, so its rows may be older copies of rows still in the source table or archived again by a later run`,
    ]);
  });
});

describe('legacy archives of same-named tables in two schemas, which share the layout’s folder', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query('CREATE SCHEMA billing');
      for (const schema of ['public', 'billing'])
        await db.client.query(
          `CREATE TABLE ${schema}.audit_log (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL)`,
        );
    },
    [
      { schema: 'public', name: 'audit_log', timestampColumn: 'created_at' },
      { schema: 'billing', name: 'audit_log', timestampColumn: 'created_at' },
    ],
  );
  const OTHER_SCHEMA_NOTE =
    /^ {2}NOTE left out legacy archives of the same-named table of another schema .*: 1 of "billing"\."audit_log"$/;

  // Prepare: one batch of each table, the same ids, in the folder the layout gives both ({db}/audit_log/).
  beforeAll(() =>
    putLegacyAuditLogs(
      bed.local,
      bed.db.name,
      [
        ['public', '20250301T020304Z'],
        ['billing', '20250301T020305Z'],
      ],
      [1, 2],
    ),
  );

  it('restores each table from its own archives only, the other schema’s left out', async () => {
    // Act
    const restored = [];
    for (const table of ['public.audit_log', 'billing.audit_log'])
      restored.push(
        await runLocalRestore(
          bed.local,
          { database: 'app', table, legacy: { database: bed.db.name } },
          { retryIntervalScale: 0 },
        ),
      );

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        "restores the Python tool's archives of a table whose same-named twin in another schema shares its folder",
      held: restored.every((r) => r.execution.status === 'SUCCEEDED' && r.results.length === 1),
    });
    expect(restored.map((r) => r.execution.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(restored.map((r) => r.results.map((result) => result.key))).toEqual([
      [expect.stringMatching(/audit_log_20250301T020304Z_batch_001\.jsonl\.gz$/)],
      [expect.stringMatching(/audit_log_20250301T020305Z_batch_001\.jsonl\.gz$/)],
    ]);
    for (const schema of ['public', 'billing']) {
      const rows = await bed.db.client.query(`SELECT actor FROM ${schema}.audit_log ORDER BY id`);
      expect(rows.rows.map((r) => r.actor)).toEqual([`${schema}-row`, `${schema}-row`]);
    }
  });

  it('validate verifies each table’s archives without error, noting the other schema’s', async () => {
    // Act
    const lines: string[] = [];
    const code = await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { legacyDatabase: bed.db.name, table: ['public.audit_log'], json: false, strict: true },
      (line) => lines.push(line),
    );

    // Assess
    expect(code).toBe(0);
    expect(lines).toEqual([
      'app/public.audit_log: 1 archives, 2 rows verified',
      expect.stringMatching(OTHER_SCHEMA_NOTE),
      'OK: no errors, 0 warning(s)',
    ]);
  });

  it('list counts each table’s own archives and rows, noting the other schema’s', async () => {
    // Act
    const lines: string[] = [];
    await listCommand(
      bed.local.deps().store,
      bed.local.config,
      { legacyDatabase: bed.db.name, table: ['public.audit_log'], json: false },
      (line) => lines.push(line),
    );

    // Assess
    expect(lines[0]).toMatch(/^app\/public\.audit_log: 1 archives, 2 rows, /);
    expect(lines[1]).toMatch(OTHER_SCHEMA_NOTE);
    expect(lines.slice(2)).toEqual([
      expect.stringMatching(/audit_log_20250301T020304Z_batch_001\.jsonl\.gz$/),
    ]);
  });
});

describe("legacy archives holding a bytea value of megabytes (an attachment), base64 in the Python tool's files", () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        'CREATE TABLE public.legacy_files (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, body bytea, parts bytea[])',
      );
    },
    [{ schema: 'public', name: 'legacy_files', timestampColumn: 'created_at' }],
  );
  /** 4 MiB of varied bytes: their base64 (5.6 MB) is longer than a regular expression of a repeated group can check. */
  const attachment = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < attachment.length; i++) attachment[i] = (i * 131 + (i >> 12)) & 0xff;
  const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');
  /** Puts one archive of one row (the Python tool's layout) with `values`, and restores it alone. */
  const restoreOne = async (runStamp: string, values: Record<string, unknown>) => {
    const archive = writeLegacyArchive({
      prefix: 'archive/',
      database: bed.db.name,
      schema: 'public',
      table: 'legacy_files',
      runStamp,
      batch: 1,
      rows: [{ id: 1, created_at: '2025-01-02T03:04:05+00:00', ...values }],
    });
    await putObjects(bed.local, archive.files);
    return runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.legacy_files',
        legacy: { database: bed.db.name },
        mode: 'key',
        key: archive.dataKey,
      },
      { retryIntervalScale: 0 },
    );
  };

  it('restores it byte for byte, in a column and as an array element', async () => {
    // Act
    const base64 = attachment.toString('base64');
    const restored = await restoreOne('20250301T010000Z', { body: base64, parts: [base64, null] });
    const written = await bed.db.client.query(
      'SELECT md5(body) AS body, md5(parts[1]) AS part, parts[2] IS NULL AS second FROM public.legacy_files',
    );

    // Assess
    const [result] = restored.results;
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        "restores the Python tool's archives of a table holding a bytea value of megabytes (base64 in its files)",
      held: result?.status === 'restored' && written.rows[0]?.body === md5(attachment),
    });
    expect([result?.status, result?.error]).toEqual(['restored', undefined]);
    expect(written.rows).toEqual([{ body: md5(attachment), part: md5(attachment), second: true }]);
  });

  it('still refuses a value of megabytes that is not base64, naming the column and never the value', async () => {
    // Prepare
    await bed.db.client.query('DELETE FROM public.legacy_files');

    // Act: one character no base64 has, at the end of megabytes that are
    const restored = await restoreOne('20250302T010000Z', { body: `${attachment.toString('base64')}*` });
    const written = await bed.db.client.query('SELECT count(*)::int AS n FROM public.legacy_files');

    // Assess
    expect(restored.results.map((r) => r.status)).toEqual(['failed']);
    expect(restored.results[0]?.error).toMatch(
      /^ArchiveIntegrityError: archive .*legacy_files_20250302T010000Z_batch_001\.jsonl\.gz: row 1 of the file cannot be converted: column "body" \(bytea\): value is not valid base64$/,
    );
    expect(written.rows[0]?.n).toBe(0);
  });
});

describe('a legacy archive of one line of a hundred MiB and more, planted among a table’s legacy archives', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        'CREATE TABLE public.legacy_notes (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, note text, tags int[])',
      );
    },
    [{ schema: 'public', name: 'legacy_notes', timestampColumn: 'created_at' }],
  );
  const MiB = 1024 * 1024;
  /** One row's archive in the Python tool's layout: batch `batch` of the run at `runStamp`. */
  const archive = (runStamp: string, batch: number, values: Record<string, unknown>) =>
    writeLegacyArchive({
      prefix: 'archive/',
      database: bed.db.name,
      schema: 'public',
      table: 'legacy_notes',
      runStamp,
      batch,
      rows: [{ id: batch, created_at: '2025-01-02T03:04:05+00:00', ...values }],
    });

  it('is refused by name before it is converted, which would hold it about five times; the others restore', async () => {
    // Prepare: a genuine archive, and one of a single line of 136 MiB (its metadata truthful; about 140 KiB of gzip),
    // which converting to a canonical line held five times over: 1.1 GB at 200 MiB, past the restore function's memory.
    const genuine = archive('20250301T010000Z', 1, { note: 'kept' });
    const planted = archive('20250301T010000Z', 2, { note: 'a'.repeat(136 * MiB) });
    await putObjects(bed.local, new Map([...genuine.files, ...planted.files]));

    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.legacy_notes', legacy: { database: bed.db.name } },
      { retryIntervalScale: 0 },
    );
    const written = await bed.db.client.query('SELECT id::int, note FROM public.legacy_notes ORDER BY id');

    // Assess
    const bomb = restored.results.find((r) => r.key === planted.dataKey);
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack:
        "plants a Python-tool archive of one line of a hundred MiB and more (a few hundred KiB of gzip) among a table's legacy archives",
      held: bomb?.status === 'failed' && written.rows.length === 1,
    });
    expect(planted.files.get(planted.dataKey)?.length).toBeLessThan(MiB);
    expect([bomb?.status, bomb?.error]).toEqual([
      'failed',
      expect.stringMatching(
        new RegExp(
          `^ArchiveIntegrityError: archive ${planted.dataKey}: row 1 is a line of more than \\d+ bytes`,
        ),
      ),
    ]);
    expect(restored.results.find((r) => r.key === genuine.dataKey)?.status).toBe('restored');
    expect(written.rows).toEqual([{ id: 1, note: 'kept' }]);
  });

  it('refuses by name a line of a few MiB whose values number millions, which parsing would hold as objects', async () => {
    // Prepare: a row whose array has 2 million elements, 4 MiB of text (a few KiB of gzip); parsing kept each as an
    // object of its own, some 150 bytes apiece: 16 MiB of them took 1.3 GB, past the restore function's memory.
    await bed.db.client.query('DELETE FROM public.legacy_notes');
    const genuine = archive('20250302T010000Z', 1, { note: 'kept', tags: [1, 2] });
    const planted = archive('20250302T010000Z', 2, { tags: Array.from({ length: 2_000_000 }, () => 1) });
    await putObjects(bed.local, new Map([...genuine.files, ...planted.files]));

    // Act
    const restored = await runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.legacy_notes',
        legacy: { database: bed.db.name },
        mode: 'range',
        fromDay: '2025-03-02',
        toDay: '2025-03-02',
      },
      { retryIntervalScale: 0 },
    );
    const written = await bed.db.client.query(
      'SELECT id::int, tags::text FROM public.legacy_notes ORDER BY id',
    );

    // Assess
    const dense = restored.results.find((r) => r.key === planted.dataKey);
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack:
        'plants a Python-tool archive of a row of millions of values (an array of 2 million elements, a few KiB of gzip)',
      held: dense?.status === 'failed' && written.rows.length === 1,
    });
    expect(planted.files.get(planted.dataKey)?.length).toBeLessThan(64 * 1024);
    expect([dense?.status, dense?.error]).toEqual([
      'failed',
      `ArchiveIntegrityError: archive ${planted.dataKey}: row 1 of the file cannot be converted: it holds more than 500000 values (array elements and members counted), more than restore converts within its memory`,
    ]);
    expect(restored.results.find((r) => r.key === genuine.dataKey)?.status).toBe('restored');
    expect(written.rows).toEqual([{ id: 1, tags: '{1,2}' }]);
  });
});

/**
 * The Python tool archived a row, restored it, the application changed it, and a later run archived it again (every
 * run takes every row past its cut-off): its files of three runs hold the row in three versions. Its date folders are
 * the runs' dates, so the versions lie in different folders (partitions), which a native restore never orders against
 * each other: the legacy archives of a restore go one group at a time, newest run first under skip and fail, oldest
 * first under overwrite, so the version archived last wins.
 */
describe('a row the Python tool archived, restored, and archived again after a change, in three runs', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        'CREATE TABLE public.legacy_redacted (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text)',
      );
    },
    [{ schema: 'public', name: 'legacy_redacted', timestampColumn: 'created_at' }],
  );
  /** One run's file: the changing row 7 in the version `actor`, and a row `own` that only this run archived. */
  const run = (runStamp: string, actor: string, own: number) =>
    writeLegacyArchive({
      prefix: 'archive/',
      database: bed.db.name,
      schema: 'public',
      table: 'legacy_redacted',
      runStamp,
      batch: 1,
      rows: [
        { id: 7, created_at: '2025-01-02T03:04:05+00:00', actor },
        { id: own, created_at: '2025-01-03T00:00:00+00:00', actor: `only ${own}` },
      ],
    });
  let runs: LegacyArchive[] = [];

  beforeAll(async () => {
    // Prepare: the three runs' files, oldest first
    runs = [
      run('20250301T020304Z', 'alice', 101),
      run('20250402T020304Z', 'bob', 102),
      run('20250503T020304Z', 'REDACTED', 103),
    ];
    await putObjects(bed.local, new Map(runs.flatMap((archive) => [...archive.files])));
  });

  const restoreInto = (target: string, strategy: 'skip' | 'overwrite' | 'fail') =>
    runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.legacy_redacted',
        targetTable: `public.${target}`,
        strategy,
        legacy: { database: bed.db.name },
      },
      { retryIntervalScale: 0 },
    );
  const rowsOf = async (target: string) =>
    (await bed.db.client.query(`SELECT id::int AS id, actor FROM public.${target} ORDER BY id`)).rows;
  const expected = [
    { id: 7, actor: 'REDACTED' },
    { id: 101, actor: 'only 101' },
    { id: 102, actor: 'only 102' },
    { id: 103, actor: 'only 103' },
  ];

  it.each(['skip', 'overwrite'] as const)(
    'brings the row back as the last run archived it under %s, every file restored',
    async (strategy) => {
      // Act
      const target = `legacy_latest_${strategy}`;
      const result = await restoreInto(target, strategy);

      // Assess
      const rows = await rowsOf(target);
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `restores (${strategy}) the Python tool's files of three runs that hold a row in three versions`,
        held: result.execution.status === 'SUCCEEDED' && rows[0]?.actor === 'REDACTED',
      });
      expect(result.execution.status).toBe('SUCCEEDED');
      expect(rows).toEqual(expected);
      expect(result.results.map((r) => r.status)).toEqual(['restored', 'restored', 'restored']);
    },
  );

  it('under fail writes the newest version and refuses the older files, whose row is there already', async () => {
    // Act
    const result = await restoreInto('legacy_latest_fail', 'fail');

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(await rowsOf('legacy_latest_fail')).toEqual([
      { id: 7, actor: 'REDACTED' },
      { id: 103, actor: 'only 103' },
    ]);
    const status = (archive: LegacyArchive) => result.results.find((r) => r.key === archive.dataKey)?.status;
    expect(runs.map(status)).toEqual(['failed', 'failed', 'restored']);
  });
});

describe("legacy archives of another PostgreSQL database's table of the same name, under the same prefix", () => {
  const spec = { schema: 'public', name: 'legacy_audit', timestampColumn: 'created_at' };
  const seed = async (db: { client: { query: (sql: string) => Promise<unknown> } }) => {
    await db.client.query(
      'CREATE TABLE public.legacy_audit (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, note text)',
    );
    await db.client.query(
      "INSERT INTO public.legacy_audit VALUES (1, '2025-01-01T00:00:00Z', 'this database''s row')",
    );
  };
  /** The Python tool's archive of otherdb.public.legacy_audit, truthful in every sidecar. */
  const otherDatabaseArchive = () =>
    writeLegacyArchive({
      prefix: 'archive/',
      database: 'otherdb',
      schema: 'public',
      table: 'legacy_audit',
      runStamp: '20250301T020304Z',
      batch: 1,
      rows: [
        { id: 1, created_at: '2025-01-02T00:00:00+00:00', note: "otherdb's row 1" },
        { id: 99, created_at: '2025-01-02T00:00:00+00:00', note: "otherdb's row 99" },
      ],
    });
  const restoreOther = (local: Parameters<typeof runLocalRestore>[0]) =>
    runLocalRestore(
      local,
      {
        database: 'app',
        table: 'public.legacy_audit',
        strategy: 'overwrite',
        legacy: { database: 'otherdb' },
      },
      { retryIntervalScale: 0 },
    );

  describe('named by the request alone', () => {
    const bed = archiverTestbed(seed, [spec]);

    it('refuses to read them into this database’s table, naming the name its archives carry', async () => {
      // Prepare
      await putObjects(bed.local, otherDatabaseArchive().files);

      // Act
      const result = await restoreOther(bed.local);
      const rows = await bed.db.client.query('SELECT id, note FROM public.legacy_audit ORDER BY id');
      recordProof({
        kind: 'threat',
        actor: 'execution starter',
        attack: "restores another database's legacy archives of a table of the same name (legacy.database)",
        held: result.execution.status === 'FAILED' && rows.rows.length === 1,
      });

      // Assess
      expect(result.execution.status).toBe('FAILED');
      expect(result.execution.error?.message).toContain(
        `legacy.database "otherdb" is not the database app restores from: its Python tool archives carry "${bed.db.name}"`,
      );
      expect(rows.rows).toEqual([{ id: '1', note: "this database's row" }]);
    });
  });

  describe('named by the config (the database was renamed since the Python tool archived it)', () => {
    const bed = archiverTestbed(seed, [spec], { database: { legacyDatabase: 'otherdb' } });

    it('restores them', async () => {
      // Prepare
      await putObjects(bed.local, otherDatabaseArchive().files);

      // Act
      const result = await restoreOther(bed.local);
      const rows = await bed.db.client.query('SELECT id, note FROM public.legacy_audit ORDER BY id');

      // Assess
      expect(result.execution.status).toBe('SUCCEEDED');
      expect(rows.rows).toEqual([
        { id: '1', note: "otherdb's row 1" },
        { id: '99', note: "otherdb's row 99" },
      ]);
    });
  });
});
