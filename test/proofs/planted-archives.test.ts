import { describe, expect, it } from 'vitest';
import { listCommand, validateCommand } from '../../cli/archives.js';
import { type Manifest, manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  type LiveArchive,
  putObjects,
  readLiveArchives,
  restoreAsShown,
  TODAY_UTC_SQL,
} from '../support/fixtures.js';
import { writeLegacyArchive } from '../support/legacy-archive.js';
import { changedLine, plantArchive } from '../support/planted-archives.js';
import { recordProof } from '../support/proof-ledger.js';

/** A personal value only a planted archive holds. */
const SENTINEL = 'private-person@example.com';

/**
 * A bucket writer plants archives the archiver never committed, with their figures stated truthfully: what an archive
 * written before the inventory looks like. Restore refuses what it cannot read by name, never quoting a value;
 * nothing planted shapes a target a restore creates; a padded sidecar cannot fail every read.
 */
describe('archives a bucket writer planted', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        `CREATE TABLE public.planted (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, q jsonpath,
           arr int[], doc jsonb, tq tsquery)`,
      );
      await db.client.query(
        `INSERT INTO public.planted
         SELECT g, ${TODAY_UTC_SQL} - make_interval(days => 40) + g * interval '1 hour', '$.a', ARRAY[g, g + 1],
                jsonb_build_object('n', g), 'a & b'
           FROM generate_series(1, 30) AS g`,
      );
    },
    [{ schema: 'public', name: 'planted', timestampColumn: 'created_at' }],
  );
  let genuine: LiveArchive[] = [];
  /** Restores the one archive under `key` into a new target. */
  const restoreKey = (key: string, targetTable: string, strategy: 'skip' | 'overwrite' = 'skip') =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.planted', mode: 'key', key, targetTable, strategy },
      { retryIntervalScale: 0 },
    );
  const first = () => {
    const archive = genuine[0];
    if (!archive) throw new Error('nothing archived');
    return archive;
  };

  it('archives the table first', async () => {
    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    genuine = await readLiveArchives(bed.local, 'public', 'planted');

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(genuine.length).toBeGreaterThan(0);
  });

  it('refuses a restore that meets an archive the inventory does not list, dated since it began, unless told', async () => {
    // Prepare: a row that was never in the table, in an archive no batch committed
    const planted = await plantArchive(
      bed.local,
      first(),
      `${changedLine(first(), { id: '900099' })}\n`,
      undefined,
      { beforeTheInventory: false },
    );
    const request = { database: 'app', table: 'public.planted' };
    const restoreInto = (targetTable: string, unlistedArchives?: 'skip' | 'restore') =>
      runLocalRestore(
        bed.local,
        { ...request, targetTable, ...(unlistedArchives ? { unlistedArchives } : {}) },
        { retryIntervalScale: 0 },
      );
    const planted900099 = async (target: string) =>
      (await bed.db.client.query(`SELECT count(*)::int AS n FROM ${target} WHERE id = 900099`)).rows[0]?.n;

    // Act
    const refused = await restoreInto('public.rt_unlisted_refused');
    const skipped = await restoreInto('public.rt_unlisted_skipped', 'skip');
    const restored = await restoreInto('public.rt_unlisted_restored', 'restore');
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'plants an archive the inventory does not list, dated after the table’s inventory began',
      held:
        refused.execution.status === 'FAILED' && (await planted900099('public.rt_unlisted_skipped')) === 0,
    });

    // Assess: refused by default, naming the archive; left out or restored (with a warning) only when told.
    expect(refused.execution.status).toBe('FAILED');
    expect(refused.execution.error?.message).toContain(planted.key);
    expect(skipped.execution.status).toBe('SUCCEEDED');
    expect(skipped.results.map((r) => r.key)).not.toContain(planted.key);
    expect(await planted900099('public.rt_unlisted_skipped')).toBe(0);
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(restored.results.find((r) => r.key === planted.key)?.warnings.join(' ')).toMatch(
      /not in the inventory/,
    );
    expect(await planted900099('public.rt_unlisted_restored')).toBe(1);
  });

  it.each([
    // Input functions that raise a syntax error (42601) quoting the value, not a data exception.
    ['a jsonpath it cannot read (42601)', 'rt_jsonpath', { id: '900001', q: `$.a ${SENTINEL}` }],
    ['a tsquery it cannot read (42601)', 'rt_tsquery', { id: '900002', tq: `${SENTINEL} & & x` }],
    // Limits (54000, 54001): no value quoted, but the archive must still be named.
    ['an int[] of 7 dimensions (54000)', 'rt_dims', { id: '900003', arr: '{{{{{{{1}}}}}}}' }],
    [
      'a jsonb nested past the stack (54001)',
      'rt_deep',
      { id: '900004', doc: `${'['.repeat(200_000)}${']'.repeat(200_000)}` },
    ],
  ])('refuses %s by name, never quoting the value', async (_case, target, changes) => {
    // Prepare
    const planted = await plantArchive(bed.local, first(), `${changedLine(first(), changes)}\n`);

    // Act
    const restored = await restoreKey(planted.key, `public.${target}`);
    const shown = restoreAsShown(restored);
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: `plants an archive holding ${_case}, whose message would quote it, then a restore reads it`,
      held: !shown.includes(SENTINEL) && restored.results[0]?.status === 'failed',
    });

    // Assess
    expect(restored.results).toHaveLength(1);
    expect(restored.results[0]?.status).toBe('failed');
    expect(restored.results[0]?.error).toMatch(
      /^SchemaDriftError: the target "public"\."rt_\w+" refused the archived rows: its column "\w+" \(\w+(\[\])?\) cannot read the archived values of at least one row \(SQLSTATE (42601|54000|54001)/,
    );
    expect(shown).not.toContain(SENTINEL);
  });

  it.each([
    [
      'an empty line between two rows',
      (a: string, b: string) => `${a}\n\n${b}\n`,
      /row 2 is not a line export writes/,
    ],
    ['a byte order mark', (a: string) => `\ufeff${a}\n`, /row 1 is not a line export writes/],
    [
      'lines ending in CRLF',
      (a: string, b: string) => `${a}\r\n${b}\r\n`,
      /row 1 is not a line export writes/,
    ],
    [
      'a last line without its newline',
      (a: string, b: string) => `${a}\n${b}`,
      /its last line has no newline/,
    ],
  ])('refuses an archive with %s in restore and validate, naming it', async (_case, lines, problem) => {
    // Prepare
    const a = changedLine(first(), { id: '900010' });
    const b = changedLine(first(), { id: '900011' });
    const planted = await plantArchive(bed.local, first(), lines(a, b));
    const validation: string[] = [];

    // Act
    const restored = await restoreKey(planted.key, 'public.rt_shape');
    await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { table: ['public.planted'], json: false, strict: false },
      (line) => validation.push(line),
    );

    // Assess
    expect(restored.results[0]?.status).toBe('failed');
    expect(restored.results[0]?.error).toMatch(/^ArchiveIntegrityError: /);
    expect(restored.results[0]?.error).toMatch(problem);
    expect(validation.find((line) => line.includes(planted.key) && line.includes('ERROR'))).toMatch(problem);
  });

  it('refuses an archive holding one key twice under overwrite as a conflict, by name', async () => {
    // Prepare
    const twice = `${changedLine(first(), { id: '900005' })}\n${changedLine(first(), { id: '900005', q: '$.b' })}\n`;
    const planted = await plantArchive(bed.local, first(), twice);

    // Act
    const restored = await restoreKey(planted.key, 'public.rt_twice', 'overwrite');

    // Assess
    expect(restored.results[0]?.status).toBe('failed');
    expect(restored.results[0]?.error).toMatch(
      /^RestoreConflictError: the target refused the archived rows \(SQLSTATE 21000\): they meet the same row of the target twice/,
    );
  });

  it('refuses a target whose key admits NULL, so a planted row without its key is not written again by every restore', async () => {
    // Prepare: the operator's target is keyed by a unique index on a nullable column; the planted row has no key.
    await bed.db.client.query(
      `CREATE TABLE public.rt_nullable_key (id bigint UNIQUE, created_at timestamptz NOT NULL, q jsonpath,
         arr int[], doc jsonb, tq tsquery)`,
    );
    const planted = await plantArchive(bed.local, first(), `${changedLine(first(), { id: null })}\n`);

    // Act: restored twice, as a repeated restore (or one meeting the watermark's short count) would
    const restored = [
      await restoreKey(planted.key, 'public.rt_nullable_key'),
      await restoreKey(planted.key, 'public.rt_nullable_key'),
    ];
    const written = await bed.db.client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.rt_nullable_key',
    );

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'plants an archive whose row has no key, restored into a target whose key admits NULL',
      held: written.rows[0]?.n === 0,
    });
    for (const r of restored) {
      expect(r.execution.status).toBe('FAILED');
      expect(r.results.map((a) => a.status)).toEqual(['failed']);
      expect(r.results[0]?.error).toMatch(
        /^SchemaDriftError: restore cannot recognise the archive's rows by the key \(id\) of "public"\."rt_nullable_key": its key column\(s\) "id" admit NULL/,
      );
    }
    expect(written.rows[0]?.n).toBe(0);
  });

  it.each([
    [
      'lists a column twice',
      (m: Manifest) => ({ ...m, columns: [...m.columns, ...m.columns.slice(0, 1)] }),
      'lists column "id" twice',
    ],
    [
      'names a key column it does not list',
      (m: Manifest) => ({ ...m, keyColumns: ['nowhere'] }),
      'names key column "nowhere", which it does not list',
    ],
    [
      'names a timestamp column it does not list',
      (m: Manifest) => ({ ...m, timestampColumn: 'nowhere' }),
      'names timestamp column "nowhere", which it does not list',
    ],
  ])(
    'refuses by name an archive whose manifest %s, before the database sees it',
    async (what, edit, says) => {
      // Prepare: one genuine line under a manifest edited so
      const planted = await plantArchive(
        bed.local,
        first(),
        `${changedLine(first(), { id: '900006' })}\n`,
        edit,
      );
      const lines: string[] = [];

      // Act
      const restored = await restoreKey(planted.key, 'public.rt_columns');
      await validateCommand(
        bed.local.deps().store,
        bed.local.config,
        { table: ['public.planted'], json: false, strict: false },
        (line) => lines.push(line),
        bed.local.deps().inventory,
      );

      // Assess
      const refusal = `manifest ${manifestKeyFor(planted.key)} ${says}`;
      recordProof({
        kind: 'threat',
        actor: 'bucket writer',
        attack: `plants an archive whose manifest ${what}`,
        held: restored.results[0]?.error === `ArchiveIntegrityError: ${refusal}`,
      });
      expect(restored.results.map((r) => [r.status, r.error])).toEqual([
        ['failed', `ArchiveIntegrityError: ${refusal}`],
      ]);
      expect(lines.filter((line) => line.includes(refusal))).toHaveLength(1);
    },
  );

  it('creates the target of a dropped table from its committed archives only, not from a planted newer manifest', async () => {
    // Prepare: the source is dropped, and a planted archive claims to be the newest, with other types and key
    const shapeOf = async (table: string) =>
      (
        await bed.db.client.query(
          `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
          [table],
        )
      ).rows;
    const committedShape = await shapeOf('public.planted');
    await bed.db.client.query('CREATE TABLE public.planted_kept AS TABLE public.planted');
    await bed.db.client.query('DROP TABLE public.planted');
    const planted = await plantArchive(
      bed.local,
      first(),
      `${changedLine(first(), { id: '900006' })}\n`,
      (m) => ({
        ...m,
        exportedAt: '2999-01-01T00:00:00.000Z',
        keyColumns: ['id', 'q'],
        columns: [
          ...m.columns.map((c) => (c.name === 'id' ? { ...c, type: 'text' } : c)),
          { name: 'planted', type: 'text', nullable: true, generated: false },
        ],
      }),
    );

    // Act
    const restored = await runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.planted',
        targetTable: 'public.planted_copy',
        requireInventory: true,
      },
      { retryIntervalScale: 0 },
    );
    const created = await shapeOf('public.planted_copy');
    const key = await bed.db.client.query(
      `SELECT pg_catalog.pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = 'public.planted_copy'::regclass AND contype = 'p'`,
    );
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack:
        'plants a manifest claiming to be the newest (other types, key and columns) before a restore creates the target of a dropped table',
      held: JSON.stringify(created) === JSON.stringify(committedShape),
    });

    // Assess: the planted archive refused, every committed one restored into a table of the committed shape
    expect(restored.results.find((r) => r.key === planted.key)?.status).toBe('failed');
    expect(restored.results.filter((r) => r.status === 'restored')).toHaveLength(genuine.length);
    expect(created).toEqual(committedShape);
    expect(key.rows[0]?.def).toBe('PRIMARY KEY (id)');
  });

  it('names a sidecar padded past any manifest in list, validate and restore, and reads the rest', async () => {
    // Prepare: a valid manifest followed by 5 MiB of blanks (JSON allows them)
    const planted = await plantArchive(bed.local, first(), `${changedLine(first(), { id: '900007' })}\n`);
    const padded = Buffer.alloc(5 * 1024 * 1024, 0x20);
    Buffer.from(JSON.stringify(planted.manifest), 'utf8').copy(padded);
    await putObjects(bed.local, new Map([[manifestKeyFor(planted.key), padded]]));
    const lines: string[] = [];
    const write = (line: string) => lines.push(line);
    const { store, inventory } = bed.local.deps();

    // Act
    await listCommand(store, bed.local.config, { table: ['public.planted'], json: false }, write);
    const validated = await validateCommand(
      store,
      bed.local.config,
      { table: ['public.planted'], json: false, strict: false },
      write,
      inventory,
    );
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.planted', targetTable: 'public.planted_padded' },
      { retryIntervalScale: 0 },
    );

    const named = restored.results.find((r) => r.key === planted.key)?.error ?? '';
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack:
        'pads a manifest past any the archiver writes, then list, validate and a restore read the table',
      held: validated === 1 && named.includes('longer than'),
    });

    // Assess
    expect(validated).toBe(1);
    expect(lines.find((line) => line.includes(planted.key) && line.includes('ERROR'))).toMatch(
      /longer than 4194304 bytes, more than any manifest/,
    );
    expect(restored.results.find((r) => r.key === planted.key)?.error).toMatch(
      /^ArchiveIntegrityError: object .*\.manifest\.json is longer than 4194304 bytes/,
    );
    expect(restored.results.filter((r) => r.status === 'restored').length).toBeGreaterThanOrEqual(
      genuine.length,
    );
  });
});

describe("the Python tool's .manifest.json, which says a batch's delete committed", () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        'CREATE TABLE public.legacy_note (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)',
      );
    },
    [{ schema: 'public', name: 'legacy_note', timestampColumn: 'created_at' }],
  );

  it('counts only a manifest of this batch: any other object there leaves the uncommitted warning', async () => {
    // Prepare: a batch whose delete was never recorded, and an object that is no manifest under the manifest's name
    const archive = writeLegacyArchive({
      prefix: 'archive/',
      database: bed.db.name,
      schema: 'public',
      table: 'legacy_note',
      runStamp: '20250301T020304Z',
      batch: 1,
      rows: [{ id: 1, created_at: '2025-01-02T03:04:05+00:00' }],
      withManifest: false,
    });
    await putObjects(
      bed.local,
      new Map([...archive.files, [archive.manifestKey, Buffer.from('not a manifest')]]),
    );
    const lines: string[] = [];

    // Act
    const restored = await runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.legacy_note',
        targetTable: 'public.legacy_copy',
        legacy: { database: bed.db.name },
      },
      { retryIntervalScale: 0 },
    );
    await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { table: ['public.legacy_note'], json: false, strict: false, legacyDatabase: bed.db.name },
      (line) => lines.push(line),
    );

    const warned =
      restored.results[0]?.warnings.some((w) => w.startsWith('no .manifest.json of this batch:')) ?? false;
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: "puts an object that is no manifest under a legacy batch's .manifest.json",
      held: warned,
    });

    // Assess
    expect(restored.results.map((r) => r.status)).toEqual(['restored']);
    expect(restored.results[0]?.warnings.some((w) => w.startsWith('no .manifest.json of this batch:'))).toBe(
      true,
    );
    expect(lines.some((line) => line.includes('uncommitted') && line.includes(archive.dataKey))).toBe(true);
  });
});
