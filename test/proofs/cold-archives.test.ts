import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  RestoreObjectCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { validateCommand } from '../../cli/archives.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  compareRows,
  fixedCutoffSql,
  moveToStorageClass,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const TABLE = { schema: 'public', name: 'cooled', timestampColumn: 'created_at' };

/**
 * Archives a lifecycle rule moved to GLACIER or DEEP_ARCHIVE (`aws.storage.transitions`) can be read only once S3
 * has restored them from cold storage. A restore that met them group by group would fail part way, after other
 * groups wrote their rows; the plan finds them first (one HEAD per cold archive: a listing gives the class, not the
 * restore status) and refuses before anything is written, naming them. The local S3 server keeps the class an object
 * was copied onto itself with and refuses to read it until RestoreObject, as S3 does (local/s3-server.mjs).
 */
describe('archives in cold storage', () => {
  const bed = archiverTestbed((db) => seedEvents(db.client, TABLE.name, 400, 80), [TABLE]);
  const table = resolvedTable(TABLE);
  let original: string[] = [];
  let coldKeys: string[] = [];

  const validate = async () => {
    const lines: string[] = [];
    const code = await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { table: [`public.${TABLE.name}`], json: false, strict: false },
      (line) => lines.push(line),
      bed.local.deps().inventory,
    );
    return { code, text: lines.join('\n') };
  };
  const rowCount = async () =>
    Number((await bed.db.client.query(`SELECT count(*) AS n FROM public.cooled`)).rows[0].n);

  it('archives the table, then a lifecycle rule moves two of its archives to GLACIER and DEEP_ARCHIVE', async () => {
    // Prepare
    original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local);
    const entries = await bed.local.deps().inventory.list('app', `public.${TABLE.name}`);
    coldKeys = entries
      .map((entry) => entry.archiveKey)
      .sort()
      .slice(1, 3);
    for (const [i, key] of coldKeys.entries())
      await moveToStorageClass(bed.local, key, i === 0 ? 'GLACIER' : 'DEEP_ARCHIVE');

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(coldKeys).toHaveLength(2);
    expect(await rowCount()).toBeLessThan(original.length);
  });

  it('refuses the restore and its dry run before writing anything, naming the cold archives; validate warns and checks the rest', async () => {
    // Prepare
    const before = await rowCount();
    const request = { database: 'app', table: `public.${TABLE.name}` };

    // Act
    const restored = await runLocalRestore(bed.local, request, { retryIntervalScale: 0 });
    const dryRun = await runLocalRestore(bed.local, { ...request, dryRun: true }, { retryIntervalScale: 0 });
    const validated = await validate();
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'restores a table some of whose archives a lifecycle rule moved to GLACIER or DEEP_ARCHIVE',
      held: restored.execution.status === 'FAILED' && restored.results.length === 0,
    });

    // Assess
    for (const run of [restored, dryRun]) {
      expect(run.execution.status).toBe('FAILED');
      expect(run.execution.error?.name).toBe('ArchiveInColdStorageError');
      const message = run.execution.error?.message ?? '';
      expect(message).toContain('2 archive(s) of "public"."cooled" are in GLACIER and DEEP_ARCHIVE');
      expect(message).toContain('(0 being restored now)');
      for (const key of coldKeys) expect(message).toContain(key);
      expect(message).toContain('nothing was written');
      expect(run.results).toEqual([]);
    }
    expect(await rowCount()).toBe(before);
    expect(validated.code).toBe(0);
    for (const key of coldKeys) {
      expect(validated.text).toMatch(
        new RegExp(`WARNING cold: ${key}: in (GLACIER|DEEP_ARCHIVE), not restored from cold storage`),
      );
    }
  });

  it('once the archives are restored in S3, validate checks them and the restore brings every row back', async () => {
    // Prepare
    const s3 = s3ClientFor(bed.local);
    for (const Key of coldKeys) {
      await s3.send(
        new RestoreObjectCommand({ Bucket: bed.local.services.bucket, Key, RestoreRequest: { Days: 2 } }),
      );
    }

    // Act
    const validated = await validate();
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: `public.${TABLE.name}` },
      { retryIntervalScale: 0 },
    );
    const present = await tableLines(bed.db.client, table);

    // Assess
    expect(validated.code).toBe(0);
    expect(validated.text).not.toContain('cold');
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(restored.results.filter((r) => coldKeys.includes(r.key)).map((r) => r.status)).toEqual([
      'restored',
      'restored',
    ]);
    expect(compareRows(original, present)).toEqual({ lost: 0, doubled: 0, extra: 0 });
  });

  it('refuses, unread, a cold archive a bucket writer replaced since its commit: the restored rows stay in the table', async () => {
    // Prepare: the restored copies expired and the archives are cold again; a bucket writer put other bytes under one
    // key, in GLACIER, with the archive's own metadata (what it held is kept, to put back afterwards).
    const s3 = s3ClientFor(bed.local);
    const Bucket = bed.local.services.bucket;
    const [Key = ''] = coldKeys;
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
    const archived = await (
      await s3.send(new GetObjectCommand({ Bucket, Key }))
    ).Body?.transformToByteArray();
    for (const [i, key] of coldKeys.entries())
      await moveToStorageClass(bed.local, key, i === 0 ? 'GLACIER' : 'DEEP_ARCHIVE');
    const put = (Body: Uint8Array) =>
      s3.send(
        new PutObjectCommand({
          Bucket,
          Key,
          Body,
          Metadata: head.Metadata,
          ContentType: head.ContentType,
          StorageClass: 'GLACIER',
        }),
      );
    // Same length and metadata, one byte changed: what upload reads of it (HEAD) is the archive's.
    const replaced = Uint8Array.from(archived ?? []);
    replaced[replaced.length >> 1] = (replaced[replaced.length >> 1] ?? 0) ^ 0xff;
    await put(replaced);
    const before = await rowCount();

    // Act; the archive is put back whatever happens, for the next test.
    let run: Awaited<ReturnType<typeof runLocalArchive>>;
    let after: number;
    try {
      run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
      after = await rowCount();
    } finally {
      await put(archived ?? new Uint8Array());
    }
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack:
        'replaces a committed archive that is in cold storage, whose rows were restored into the table, before the next run archives them again',
      held: run.execution.status !== 'SUCCEEDED' && after === before,
    });

    // Assess: the replaced object is not the one the inventory entry pins (another ETag), so it is not taken as
    // verified; the batch stops before its delete and no row leaves the table.
    expect(run.outcomes.map((outcome) => [outcome.status, outcome.error])).toEqual([
      ['failed', expect.stringMatching(/^ArchiveInColdStorageError: .* is in GLACIER/)],
    ]);
    expect(after).toBe(before);
  });

  it('archives the restored rows again once the archives they came from are cold again, without reading those', async () => {
    // Prepare: the restored copies expired (S3 removes them after the days asked for), and the next run meets the
    // archives of the restored rows, identical rows under the same keys, in GLACIER and DEEP_ARCHIVE again.
    for (const [i, key] of coldKeys.entries())
      await moveToStorageClass(bed.local, key, i === 0 ? 'GLACIER' : 'DEEP_ARCHIVE');
    const cutoff = await fixedCutoffSql(bed.db.client);
    const s3 = s3ClientFor(bed.local);

    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    const eligible = await bed.db.client.query(
      `SELECT count(*)::int AS n FROM public.${TABLE.name} WHERE created_at < ${cutoff}`,
    );
    const classes = [];
    for (const Key of coldKeys)
      classes.push(
        (await s3.send(new HeadObjectCommand({ Bucket: bed.local.services.bucket, Key }))).StorageClass,
      );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores rows into the archived table from archives restored from cold storage, whose restored copies expire before the next run archives the rows again',
      held: run.execution.status === 'SUCCEEDED',
    });

    // Assess: each committed archive is taken as its commit verified it (the very object its inventory entry pins,
    // with the entry's figures), unread; every eligible row is deleted again, and once the archives are restored
    // from cold storage every row is in the table or in exactly one live archive.
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(eligible.rows[0].n).toBe(0);
    expect(classes).toEqual(['GLACIER', 'DEEP_ARCHIVE']);
    for (const Key of coldKeys) {
      await s3.send(
        new RestoreObjectCommand({ Bucket: bed.local.services.bucket, Key, RestoreRequest: { Days: 2 } }),
      );
    }
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });
});
