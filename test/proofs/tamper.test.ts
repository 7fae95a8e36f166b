import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { validateCommand } from '../../cli/archives.js';
import { archiveKey, type Manifest, manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { MAX_ARCHIVE_LINE_BYTES, MAX_LINE_MEMBERS } from '../../lambdas/shared/archive/stream.js';
import { type LocalEnvironment, runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  asBeforeTheInventory,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  getObject,
  listKeys,
  metricRecorder,
  readLiveArchives,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * What a tampering case can reach: S3, the keys of the object it strikes (the last of its batch) and of the table's
 * earlier archive.
 */
interface Target {
  read(key: string): Promise<Buffer>;
  write(key: string, body: Buffer | string): Promise<void>;
  remove(key: string): Promise<void>;
  staging: string;
  archive: string;
  earlier: string;
}

interface TamperCase {
  name: string;
  /**
   * The step after which the bytes are changed: export (the staged objects), upload (the published ones, before
   * verify reads them) or verify (the published ones, before delete's COMMIT).
   */
  after: 'export' | 'upload' | 'verify';
  tamper(target: Target): Promise<void>;
  /** What the failure must say, after "ArchiveIntegrityError: ". */
  says: RegExp;
  /** The damaged archive (or staged object) is kept under _quarantine/ as evidence. */
  evidence?: 'archive' | 'staging';
}

const flipMiddleByte = (bytes: Buffer) => {
  const copy = Buffer.from(bytes);
  const at = Math.floor(copy.length / 2);
  copy[at] = (copy[at] ?? 0) ^ 0xff;
  return copy;
};
const editManifest = (text: string, from: RegExp, to: (match: string, ...groups: string[]) => string) => {
  const edited = text.replace(from, to);
  if (edited === text) throw new Error(`the manifest has nothing matching ${from}`);
  return edited;
};

const TAMPER_CASES: TamperCase[] = [
  {
    name: 'staged object altered (same size)',
    after: 'export',
    tamper: async (t) => t.write(t.staging, flipMiddleByte(await t.read(t.staging))),
    // Upload copies only the object export staged (its ETag): the altered one is never published.
    says: /staging object .* is not the object export wrote \(ETag/,
    evidence: 'staging',
  },
  {
    name: 'staged object truncated',
    after: 'export',
    tamper: async (t) => t.write(t.staging, (await t.read(t.staging)).subarray(0, 40)),
    says: /staging object .* is 40 bytes, expected \d+/,
  },
  {
    name: 'staged object deleted',
    after: 'export',
    tamper: (t) => t.remove(t.staging),
    says: /staging object .* is missing/,
  },
  {
    name: 'archive altered (a row value changed)',
    after: 'upload',
    tamper: async (t) => {
      const text = gunzipSync(await t.read(t.archive)).toString('utf8');
      await t.write(t.archive, gzipSync(text.replace(/"user_\d+"/, '"someone_else"')));
    },
    says: /failed verification: object differs from its manifest: .*contentSha256/,
    evidence: 'archive',
  },
  {
    name: 'archive truncated',
    after: 'upload',
    tamper: async (t) => {
      const bytes = await t.read(t.archive);
      await t.write(t.archive, bytes.subarray(0, bytes.length - 20));
    },
    says: /failed verification: object (cannot be decompressed|differs from its manifest)/,
    evidence: 'archive',
  },
  {
    name: 'archive replaced by another archive of the table',
    after: 'upload',
    tamper: async (t) => t.write(t.archive, await t.read(t.earlier)),
    says: /failed verification: object differs from its manifest/,
    evidence: 'archive',
  },
  {
    name: 'archive deleted',
    after: 'upload',
    tamper: (t) => t.remove(t.archive),
    says: /failed verification: object is missing/,
  },
  {
    name: 'manifest figures edited',
    after: 'upload',
    tamper: async (t) =>
      t.write(
        manifestKeyFor(t.archive),
        editManifest(
          (await t.read(manifestKeyFor(t.archive))).toString('utf8'),
          /("compressedSha256": ")([0-9a-f])/,
          (_, key, c) => `${key}${c === '0' ? '1' : '0'}`,
        ),
      ),
    says: /failed verification: manifest differs from the export: compressedSha256/,
  },
  {
    name: 'manifest naming another object',
    after: 'upload',
    tamper: async (t) =>
      t.write(
        manifestKeyFor(t.archive),
        editManifest(
          (await t.read(manifestKeyFor(t.archive))).toString('utf8'),
          /"dataKey": "([^"]*)"/,
          (_, key) => `"dataKey": "${key}.other"`,
        ),
      ),
    says: /failed verification: manifest names another object/,
  },
  {
    name: "manifest replaced by another archive's manifest",
    after: 'upload',
    tamper: async (t) => t.write(manifestKeyFor(t.archive), await t.read(manifestKeyFor(t.earlier))),
    says: /failed verification: manifest names another object/,
  },
  {
    name: 'manifest deleted',
    after: 'upload',
    tamper: (t) => t.remove(manifestKeyFor(t.archive)),
    says: /failed verification: manifest is missing/,
  },
  {
    name: 'manifest not JSON',
    after: 'upload',
    tamper: (t) => t.write(manifestKeyFor(t.archive), '{ not json'),
    says: /failed verification: manifest is not a valid manifest/,
  },
  {
    name: 'archive deleted after verification',
    after: 'verify',
    tamper: (t) => t.remove(t.archive),
    says: /changed after verification \([^)]*: object is missing\); rolled back, nothing deleted/,
  },
  {
    name: 'archive truncated after verification',
    after: 'verify',
    tamper: async (t) => {
      const bytes = await t.read(t.archive);
      await t.write(t.archive, bytes.subarray(0, bytes.length - 20));
    },
    says: /changed after verification \([^)]*: object is \d+ bytes, expected \d+\)/,
    evidence: 'archive',
  },
  {
    name: 'archive replaced by another archive after verification',
    after: 'verify',
    tamper: async (t) => t.write(t.archive, await t.read(t.earlier)),
    says: /changed after verification \([^)]*: object (is \d+ bytes, expected \d+|holds other content)\)/,
    evidence: 'archive',
  },
];

/** The tampering strikes the second batch, so the table already has a committed archive to swap in. */
const STRIKE_BATCH = 2;
const tableName = (c: number) => `tamper_${c}`;
/** Batches of 12 rows over days of 10 span two days each and end mid-day. */
const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at', batchSize: 12 });

describe('tampering between steps is caught before any delete, with a named error and a metric', () => {
  const bed = archiverTestbed(
    async (db) => {
      // 10 rows a day over 33 days: 29 eligible rows on 3 days (9, 10, 10), cut into batches of 9+3, 7+5 and 5.
      for (const [c] of TAMPER_CASES.entries()) await seedEvents(db.client, tableName(c), 330, 33);
    },
    TAMPER_CASES.map((_, c) => spec(tableName(c))),
  );

  for (const [c, tamperCase] of TAMPER_CASES.entries()) {
    it(tamperCase.name, async () => {
      // Prepare
      const name = tableName(c);
      const ref = `public.${name}`;
      const table = resolvedTable(spec(name));
      const original = await tableLines(bed.db.client, table);
      const cutoff = await fixedCutoffSql(bed.db.client);
      const s3 = s3ClientFor(bed.local);
      const bucket = bed.local.services.bucket;
      const recorder = metricRecorder();
      let batches = 0;
      let struck = false;
      let archiveKey = '';
      let stagingKey = '';
      let struckDays: string[] = [];
      let deletesAfter = 0;
      const afterStep = async (event: StepEvent) => {
        if (event.functionName !== tamperCase.after || struck) return;
        const result = event.result as { status?: string };
        if (tamperCase.after === 'export' && result.status !== 'exported') return;
        if (++batches !== STRIKE_BATCH) return;
        const [earlier] = (await readLiveArchives(bed.local, 'public', name, bed.db.client)).map(
          (a) => a.key,
        );
        // The step results carry counts only; the batch's keys are on its in-flight record.
        const objects = (await bed.local.deps().locks.get('app', ref)).inFlight?.objects ?? [];
        // The last object: the ones before it pass their checks, and the batch must still stop.
        const last = objects.at(-1);
        if (!earlier || !last) throw new Error('nothing to tamper with');
        const staging = last.stagingKey;
        const archive = last.archiveKey;
        await tamperCase.tamper({
          read: (key) => getObject(bed.local, key),
          write: async (key, body) => {
            await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
          },
          remove: async (key) => {
            await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
          },
          staging,
          archive,
          earlier,
        });
        struck = true;
        archiveKey = archive;
        stagingKey = staging;
        struckDays = objects.map((o) => o.day);
      };
      const onStep = (event: StepEvent) => {
        // A delete that ran and failed (rolled back) deleted nothing; a successful one after the strike would have.
        if (event.functionName === 'delete' && struck && !event.error) deletesAfter += 1;
      };

      // Act
      const run = await runLocalArchive(
        bed.local,
        { tables: [ref] },
        { afterStep, onStep, deps: recorder.wrap, retryIntervalScale: 0 },
      );
      const between = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      const error = run.outcomes[0]?.error ?? '';
      const failures = recorder.count('VerificationFailures', ref);
      const caught =
        struck &&
        run.execution.status === 'FAILED' &&
        error.startsWith('ArchiveIntegrityError: ') &&
        tamperCase.says.test(error) &&
        failures > 0 &&
        deletesAfter === 0;
      recordProof({ kind: 'tamper', case: tamperCase.name, caught });
      const rerun = await runLocalArchive(bed.local, { tables: [ref] }, { retryIntervalScale: 0 });

      // Assess
      expect(struck).toBe(true);
      // The struck batch held several days' objects.
      expect(new Set(struckDays).size).toBeGreaterThanOrEqual(2);
      expect(run.execution.status).toBe('FAILED');
      expect(error).toMatch(/^ArchiveIntegrityError: /);
      expect(error).toMatch(tamperCase.says);
      // It names the struck object, the last of its batch.
      expect([archiveKey, stagingKey].some((key) => error.includes(key))).toBe(true);
      expect(failures).toBe(1);
      expect(deletesAfter).toBe(0);
      expect(between.inArchives).toBeGreaterThan(0);
      if (tamperCase.evidence) {
        const quarantined = await listKeys(bed.local, 'archive/_quarantine/');
        const kept = tamperCase.evidence === 'archive' ? archiveKey : stagingKey;
        expect(quarantined.some((k) => k.endsWith(kept.slice('archive/'.length)))).toBe(true);
      } // The next run exports the rows again and completes.
      expect(rerun.execution.status).toBe('SUCCEEDED');
      const after = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      expect(await listKeys(bed.local, `archive/_staging/app/${ref}/`)).toEqual([]);
      // No archive is left without its manifest (an orphan a later validate would report).
      const keys = await listKeys(bed.local, `archive/app/${ref}/`);
      const orphans = keys.filter((k) => k.endsWith('.jsonl.gz') && !keys.includes(manifestKeyFor(k)));
      expect(orphans).toEqual([]);
      expect(after.inArchives).toBeGreaterThan(between.inArchives);
      const stillOld = await bed.db.client.query(
        `SELECT count(*)::int AS n FROM ${ref} WHERE created_at < ${cutoff}`,
      );
      expect(stillOld.rows[0].n).toBe(0);
    });
  }
});

/**
 * Plants a one-row archive beside `victim` (a genuine archive of the table): `gz` under the key its content names,
 * with the victim's manifest but figures stated truthfully. Read as an archive from before the inventory, as restore
 * reads those (since, it leaves out what none commits). Returns the planted key.
 */
async function plantOneRow(
  local: LocalEnvironment,
  victim: Awaited<ReturnType<typeof readLiveArchives>>[number],
  planted: { gz: Buffer; contentSha256: string; uncompressedBytes: number },
): Promise<string> {
  const { gz, contentSha256, uncompressedBytes } = planted;
  const { schema, table, day } = victim.manifest;
  const key = archiveKey(
    { prefix: local.config.s3.prefix, database: 'app', schema, table },
    day,
    contentSha256,
  );
  const manifest: Manifest = {
    ...victim.manifest,
    dataKey: key,
    figures: {
      rowCount: 1,
      contentSha256,
      compressedSha256: createHash('sha256').update(gz).digest('hex'),
      uncompressedBytes,
      compressedBytes: gz.length,
    },
  };
  const s3 = s3ClientFor(local);
  const bucket = local.services.bucket;
  await asBeforeTheInventory(local, `${schema}.${table}`);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: gz }));
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: manifestKeyFor(key), Body: JSON.stringify(manifest) }),
  );
  return key;
}

describe('a decompression bomb planted among the archives of a table is refused as it is read', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'bombed', 40, 40),
    [{ schema: 'public', name: 'bombed', timestampColumn: 'created_at' }],
  );

  it('restore and validate name it (one line past the longest export writes); restore writes nothing of it and restores the others', async () => {
    // Prepare: a genuine archive's manifest, the planted object's figures stated truthfully (the key names its
    // content). One line of 16 MiB over the bound: a few hundred KiB of gzip members, each a MiB of "a" compressed once.
    const archived = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    expect(archived.execution.status).toBe('SUCCEEDED');
    const genuine = await readLiveArchives(bed.local, 'public', 'bombed');
    const [victim] = genuine;
    if (!victim) throw new Error('nothing archived');
    const mib = MAX_ARCHIVE_LINE_BYTES / (1024 * 1024) + 16;
    const head = Buffer.from('{"id" : "');
    const tail = Buffer.from('"}\n');
    const block = Buffer.alloc(1024 * 1024, 0x61);
    const content = createHash('sha256').update(head);
    for (let i = 0; i < mib; i++) content.update(block);
    const contentSha256 = content.update(tail).digest('hex');
    const member = gzipSync(block);
    const gz = Buffer.concat([gzipSync(head), ...Array.from({ length: mib }, () => member), gzipSync(tail)]);
    const key = await plantOneRow(bed.local, victim, {
      gz,
      contentSha256,
      uncompressedBytes: head.length + mib * block.length + tail.length,
    });

    const recorder = metricRecorder();

    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.bombed', targetTable: 'public.bombed_copy' },
      { retryIntervalScale: 0, deps: recorder.wrap },
    );
    const copied = await bed.db.client.query('SELECT count(*)::int AS n FROM public.bombed_copy');
    const validated: string[] = [];
    const code = await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { table: ['public.bombed'], json: false, strict: false },
      (line) => validated.push(line),
      bed.local.deps().inventory,
    );

    // Assess
    const refusal = `archive ${key}: row 1 is a line of more than ${MAX_ARCHIVE_LINE_BYTES} bytes`;
    const bomb = restored.results.find((r) => r.key === key);
    expect(bomb?.status).toBe('failed');
    expect(bomb?.error).toMatch(new RegExp(`^ArchiveIntegrityError: ${refusal}`));
    // Counted where the alarm on refused archives looks, as a figure that differs is.
    expect(recorder.count('VerificationFailures', 'public.bombed_copy')).toBe(1);
    const others = restored.results.filter((r) => r.key !== key);
    expect(others.map((r) => r.status)).toEqual(genuine.map(() => 'restored'));
    expect(copied.rows[0].n).toBe(genuine.reduce((sum, archive) => sum + archive.lines.length, 0));
    expect(code).toBe(1);
    expect(validated.join('\n')).toContain(refusal);
  });
});

describe('an archive line of a million nested values planted among the archives of a table is refused unparsed', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'nested', 40, 40),
    [{ schema: 'public', name: 'nested', timestampColumn: 'created_at' }],
  );

  it('restore names it before PostgreSQL parses it (4 MiB of "{}," took a backend 880 MB, 16 MiB 3.4 GB), writes nothing of it and restores the others', async () => {
    // Prepare: a row of the table shaped as export writes it but for its jsonb column, an array of a million empty
    // objects (a few KiB of gzip), under a genuine archive's manifest, its figures stated truthfully.
    const archived = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    expect(archived.execution.status).toBe('SUCCEEDED');
    const genuine = await readLiveArchives(bed.local, 'public', 'nested');
    const [victim] = genuine;
    if (!victim?.lines[0]) throw new Error('nothing archived');
    const { created_at } = JSON.parse(victim.lines[0]) as { created_at: string };
    const line = `{"id":"1000000","created_at":${JSON.stringify(created_at)},"actor":"x","payload":[${'{},'.repeat(1024 * 1024)}{}]}\n`;
    const content = Buffer.from(line);
    const gz = gzipSync(content);
    const contentSha256 = createHash('sha256').update(content).digest('hex');
    const key = await plantOneRow(bed.local, victim, {
      gz,
      contentSha256,
      uncompressedBytes: content.length,
    });

    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.nested', targetTable: 'public.nested_copy' },
      { retryIntervalScale: 0 },
    );
    const copied = await bed.db.client.query('SELECT count(*)::int AS n FROM public.nested_copy');

    // Assess
    const planted = restored.results.find((r) => r.key === key);
    expect(planted?.status).toBe('failed');
    expect(planted?.error).toBe(
      `ArchiveIntegrityError: archive ${key}: row 1 is not a line export writes (one flat JSON object, no array or nested object, of at most ${MAX_LINE_MEMBERS} members), which restore does not parse; read no further`,
    );
    const others = restored.results.filter((r) => r.key !== key);
    expect(others.map((r) => r.status)).toEqual(genuine.map(() => 'restored'));
    expect(copied.rows[0].n).toBe(genuine.reduce((sum, archive) => sum + archive.lines.length, 0));
  });
});
