/**
 * A bucket writer who reads the staged object can put an archive of the same bytes, and a manifest of their own,
 * under the archive key before upload copies it there: upload then takes the key as identical rows archived before.
 */

import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { archiveKey, ManifestSchema, manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { manifestSha256 } from '../../lambdas/shared/archive/integrity.js';
import { manifestOf } from '../../lambdas/shared/batch/batch-manifest.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import { batchThrough } from '../support/batch-stages.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  getObject,
  listKeys,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('an archive and manifest planted under the key before upload', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'ahead', 60, 33),
    [{ schema: 'public', name: 'ahead', timestampColumn: 'created_at' }],
  );

  it("has its manifest replaced by the batch's: the commit never binds a manifest that says otherwise", async () => {
    // Prepare: after export, the staged bytes go under the archive key with a manifest whose figures match, its
    // lcMonetary stripped and its key columns changed.
    const s3 = s3ClientFor(bed.local);
    const Bucket = bed.local.services.bucket;
    const table = resolvedTable({ schema: 'public', name: 'ahead', timestampColumn: 'created_at' });
    const original = await tableLines(bed.db.client, table);
    let planted: { key: string; sha256: string } | undefined;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== 'export' || planted) return;
      const inFlight = (await bed.local.deps().locks.get('app', 'public.ahead')).inFlight;
      const object = inFlight?.objects[0];
      const manifest = inFlight && manifestOf(inFlight, 0);
      if (!object || !manifest) throw new Error('setup: no batch in flight');
      const staged = await s3.send(new HeadObjectCommand({ Bucket, Key: object.stagingKey }));
      await s3.send(
        new PutObjectCommand({
          Bucket,
          Key: object.archiveKey,
          Body: await getObject(bed.local, object.stagingKey),
          Metadata: {
            'content-sha256': object.figures.contentSha256,
            'compressed-sha256': object.figures.compressedSha256,
          },
          ContentType: staged.ContentType,
          ContentEncoding: staged.ContentEncoding,
        }),
      );
      const { lcMonetary: _money, ...forged } = { ...manifest, keyColumns: ['actor'] };
      const text = JSON.stringify(forged, null, 2);
      await s3.send(new PutObjectCommand({ Bucket, Key: manifestKeyFor(object.archiveKey), Body: text }));
      planted = { key: object.archiveKey, sha256: manifestSha256(text) };
    };

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.ahead'] },
      { afterStep, retryIntervalScale: 0 },
    );

    // Assess
    await assessReplaced(
      bed,
      'ahead',
      run,
      planted,
      original,
      'puts the staged bytes under the archive key before upload, with a manifest of other meaning',
    );
  });
});

type Testbed = ReturnType<typeof archiverTestbed>;
type Planted = { key: string; sha256: string };

/**
 * Puts the oldest staged object's bytes under its archive key, as a bucket writer who reads the staging area can,
 * then waits into the next second: the batch's record comes in a later second than the object's date, as after a
 * batch of any size. Returns that key.
 */
async function copyOldestStagedUnderItsKey(bed: Testbed, name: string): Promise<string> {
  const [staged] = (await listKeys(bed.local, `${bed.local.config.s3.prefix}_staging/`))
    .filter((key) => key.endsWith('.jsonl.gz'))
    .sort();
  const day = staged?.match(/\/(\d{4}-\d{2}-\d{2})-[^/]*\.jsonl\.gz$/)?.[1];
  if (!staged || !day) throw new Error('setup: nothing staged');
  const bytes = await getObject(bed.local, staged);
  const contentSha256 = sha256(gunzipSync(bytes));
  const location = { prefix: bed.local.config.s3.prefix, database: 'app', schema: 'public', table: name };
  const key = archiveKey(location, day, contentSha256);
  await s3ClientFor(bed.local).send(
    new PutObjectCommand({
      Bucket: bed.local.services.bucket,
      Key: key,
      Body: bytes,
      Metadata: { 'content-sha256': contentSha256, 'compressed-sha256': sha256(bytes) },
      ContentType: 'application/x-ndjson',
      ContentEncoding: 'gzip',
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 1100 - (Date.now() % 1000)));
  return key;
}

/**
 * After export, a manifest beside the copied archive whose figures match the batch's first object, its lcMonetary
 * stripped and its key columns changed. `planted()` says what was put there.
 */
function forgeFirstManifestAfterExport(bed: Testbed, name: string, copied: () => string | undefined) {
  let planted: Planted | undefined;
  const afterStep = async (event: StepEvent) => {
    if (event.functionName !== 'export' || planted) return;
    const inFlight = (await bed.local.deps().locks.get('app', `public.${name}`)).inFlight;
    const manifest = inFlight && manifestOf(inFlight, 0);
    if (!manifest || inFlight.objects[0]?.archiveKey !== copied())
      throw new Error('setup: not the first object');
    const { lcMonetary: _money, ...forged } = { ...manifest, keyColumns: ['actor'] };
    const text = JSON.stringify(forged, null, 2);
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: manifestKeyFor(manifest.dataKey),
        Body: text,
      }),
    );
    planted = { key: manifest.dataKey, sha256: manifestSha256(text) };
  };
  return { afterStep, planted: () => planted };
}

/**
 * Upload took the planted manifest beside an archive no commit records for a leftover and wrote the batch's own in its
 * place: the commit binds the batch's manifest (its key columns, its lcMonetary), and no row is lost.
 */
async function assessReplaced(
  bed: Testbed,
  name: string,
  run: Awaited<ReturnType<typeof runLocalArchive>>,
  planted: Planted | undefined,
  original: string[],
  attack: string,
) {
  if (!planted) throw new Error('setup: nothing planted');
  const inventory = bed.local.deps().inventory;
  const entry = (await inventory.entries('app', `public.${name}`, [planted.key])).get(planted.key);
  const bound = ManifestSchema.parse(
    JSON.parse((await getObject(bed.local, manifestKeyFor(planted.key))).toString('utf8')),
  );
  recordProof({
    kind: 'threat',
    actor: 'bucket writer',
    attack,
    held: entry !== undefined && entry.manifestSha256 !== planted.sha256,
  });
  expect(run.execution.status).toBe('SUCCEEDED');
  expect(entry?.manifestSha256).toBeDefined();
  expect(entry?.manifestSha256).not.toBe(planted.sha256);
  expect([bound.keyColumns, bound.lcMonetary]).toEqual([['id'], 'C']);
  const table = resolvedTable({ schema: 'public', name, timestampColumn: 'created_at' });
  await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
}

describe('an archive planted under the key while export still stages the table first batch', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'early', 60, 33),
    [{ schema: 'public', name: 'early', timestampColumn: 'created_at' }],
  );

  it('is dated after the inventory began: upload replaces a manifest that says otherwise than the batch', async () => {
    // Prepare: once export has staged the batch and before it records it (the table's first, which starts the
    // inventory), the oldest staged object's bytes go under its archive key; after export, a forged manifest.
    const table = resolvedTable({ schema: 'public', name: 'early', timestampColumn: 'created_at' });
    const original = await tableLines(bed.db.client, table);
    let archive: string | undefined;
    const fault = async (point: FaultPoint) => {
      if (point === 'export:afterStaging' && !archive)
        archive = await copyOldestStagedUnderItsKey(bed, 'early');
    };
    const forgery = forgeFirstManifestAfterExport(bed, 'early', () => archive);

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.early'] },
      { fault, afterStep: forgery.afterStep, retryIntervalScale: 0 },
    );

    // Assess
    await assessReplaced(
      bed,
      'early',
      run,
      forgery.planted(),
      original,
      'puts the staged bytes under the archive key while export stages the first batch, with a manifest of other meaning',
    );
  });
});

describe("a manifest rewritten after upload without its types' definitions", () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`CREATE TYPE mood AS ENUM ('low', 'high')`);
      await db.client.query(
        `CREATE TABLE typed (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, mood mood NOT NULL)`,
      );
      await db.client.query(
        `INSERT INTO typed (created_at, mood)
         SELECT ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 hour', (ARRAY['low', 'high'])[1 + g % 2]::mood
           FROM generate_series(1, 30) AS g`,
      );
    },
    [{ schema: 'public', name: 'typed', timestampColumn: 'created_at' }],
  );

  it('fails verification naming them: the commit never binds a manifest restore could not check its types by', async () => {
    // Prepare: right after upload, the first manifest loses what restore checks a target's types against (so a label
    // swapped since archiving would restore other values), its figures intact.
    const s3 = s3ClientFor(bed.local);
    const Bucket = bed.local.services.bucket;
    const table = resolvedTable({ schema: 'public', name: 'typed', timestampColumn: 'created_at' });
    const original = await tableLines(bed.db.client, table);
    let struck: string | undefined;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== 'upload' || struck) return;
      const key = (await bed.local.deps().locks.get('app', 'public.typed')).inFlight?.objects[0]?.archiveKey;
      if (!key) throw new Error('setup: no batch in flight');
      const manifest = JSON.parse((await getObject(bed.local, manifestKeyFor(key))).toString('utf8'));
      if (!manifest.enumLabels || !manifest.typeDefinitions) throw new Error('setup: no types recorded');
      const { enumLabels: _labels, typeDefinitions: _definitions, ...stripped } = manifest;
      await s3.send(
        new PutObjectCommand({ Bucket, Key: manifestKeyFor(key), Body: JSON.stringify(stripped) }),
      );
      struck = key;
    };

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.typed'] },
      { afterStep, retryIntervalScale: 0 },
    );

    // Assess
    const committed = await bed.local.deps().inventory.list('app', 'public.typed');
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: "strips a manifest's type definitions and enum labels between upload and verify",
      held: run.execution.status === 'FAILED' && committed.length === 0,
    });
    expect(struck).toBeDefined();
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(
      /^ArchiveIntegrityError: archive .* failed verification: manifest is not the one upload wrote \(typeDefinitions, enumLabels differ\)/,
    );
    expect(committed).toEqual([]);
    expect(await tableLines(bed.db.client, table)).toEqual(original);
  });
});

describe("an archive planted from the staged bytes of a first batch's export that crashed before recording it", () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'crashed', 60, 33),
    [{ schema: 'public', name: 'crashed', timestampColumn: 'created_at' }],
  );

  it('is dated after the inventory began: upload replaces a manifest that says otherwise than the batch', async () => {
    // Prepare: the table's first export stages its batch and dies before recording it; the bucket writer copies the
    // oldest staged object under its archive key meanwhile. The next run's export stages the same rows a second later.
    const table = resolvedTable({ schema: 'public', name: 'crashed', timestampColumn: 'created_at' });
    const original = await tableLines(bed.db.client, table);
    let archive: string | undefined;
    const fault = async (point: FaultPoint) => {
      if (point !== 'export:afterStaging' || archive) return;
      archive = await copyOldestStagedUnderItsKey(bed, 'crashed');
      throw new Error('the export died before recording its batch');
    };
    const crashed = await runLocalArchive(
      bed.local,
      { tables: ['public.crashed'] },
      { fault, retryIntervalScale: 0 },
    );
    expect(crashed.execution.status).toBe('FAILED');
    const forgery = forgeFirstManifestAfterExport(bed, 'crashed', () => archive);

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.crashed'] },
      { afterStep: forgery.afterStep, retryIntervalScale: 0 },
    );

    // Assess
    await assessReplaced(
      bed,
      'crashed',
      run,
      forgery.planted(),
      original,
      'puts the staged bytes of a first export that died before recording its batch under the archive key, with a manifest of other meaning',
    );
  });
});

describe('a leftover archive of the same rows, then an enum label added', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`CREATE TYPE mood AS ENUM ('calm', 'glad')`);
      await db.client.query(
        'CREATE TABLE moods (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, m mood NOT NULL)',
      );
      await db.client.query(
        `INSERT INTO moods SELECT g, ${TODAY_UTC_SQL} - make_interval(days => 40) + g * interval '1 minute', 'calm'
           FROM generate_series(1, 20) AS g`,
      );
    },
    [{ schema: 'public', name: 'moods', timestampColumn: 'created_at' }],
  );

  it('archives the rows, its manifest replaced by the batch’s, instead of failing the table every run', async () => {
    // Prepare: a batch's archive and manifest left behind without a commit (as a stale upload leaves them once its
    // batch was withdrawn), then a label added to the enum: the same rows, the same key, other enumLabels.
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.moods', 'uploaded');
    await deps.locks.clearInFlight('app', 'public.moods', task.lease, inFlight);
    await deps.locks.release('app', 'public.moods', task.lease);
    await bed.db.client.query(`ALTER TYPE mood ADD VALUE 'sad'`);
    const table = resolvedTable({ schema: 'public', name: 'moods', timestampColumn: 'created_at' });
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.moods'] }, { retryIntervalScale: 0 });

    // Assess
    expect(run.outcomes.map((o) => `${o.status} ${o.error ?? ''}`.trim())).toEqual(['succeeded']);
    const [key] = inFlight.objects.map((object) => object.archiveKey);
    const bound = ManifestSchema.parse(
      JSON.parse((await getObject(bed.local, manifestKeyFor(key ?? ''))).toString('utf8')),
    );
    expect(bound.enumLabels).toEqual({ 'public.mood': ['calm', 'glad', 'sad'] });
    const { inArchives } = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(inArchives).toBe(20);
  });
});
