import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { type Manifest, manifestKeyFor } from '../../../lambdas/shared/archive/format.js';
import { BATCH_ID_METADATA, LOCK_TABLE_METADATA } from '../../../lambdas/shared/batch/batch.js';
import { manifestOf } from '../../../lambdas/shared/batch/batch-manifest.js';
import type { FaultPoint } from '../../../lambdas/shared/step/step-deps.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { batchThrough } from '../../support/batch-stages.js';
import { archiverTestbed, getObject, listKeys, s3ClientFor, seedEvents } from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';

const TABLES = [
  'published',
  'retried',
  'duplicated',
  'foreign',
  'planted',
  'legacy',
  'garbled',
  'emptied',
  'claimed',
];

describe('upload step', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(async (db) => {
    for (const name of TABLES) await seedEvents(db.client, name, 40);
  }, TABLES.map(spec));

  it('publishes each staged object of the batch write-once under its archive key, with its metadata and manifest', async () => {
    // Prepare: a batch of many days.
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.published', 'exported');
    expect(inFlight.objects.length).toBeGreaterThan(10);
    const staged = new Map<string, { data: Buffer; manifest: Manifest | undefined }>();
    for (const [index, object] of inFlight.objects.entries()) {
      staged.set(object.archiveKey, {
        data: await getObject(bed.local, object.stagingKey),
        manifest: manifestOf(inFlight, index),
      });
    }

    // Act
    const uploaded = await uploadBatch(task, deps);

    // Assess
    expect(uploaded).toEqual({ objects: inFlight.objects.length, created: inFlight.objects.length });
    const keys = await listKeys(bed.local, '');
    for (const object of inFlight.objects) {
      expect(await getObject(bed.local, object.archiveKey)).toEqual(staged.get(object.archiveKey)?.data);
      expect((await deps.store.head(object.archiveKey))?.metadata).toEqual({
        [BATCH_ID_METADATA]: inFlight.batchId,
        [LOCK_TABLE_METADATA]: bed.local.services.lockTable,
        'content-sha256': object.figures.contentSha256,
        'compressed-sha256': object.figures.compressedSha256,
        'row-count': String(object.figures.rowCount),
        'row-digest': object.figures.rowDigest,
      });
      const manifestKey = manifestKeyFor(object.archiveKey);
      expect(JSON.parse((await getObject(bed.local, manifestKey)).toString('utf8'))).toEqual(
        staged.get(object.archiveKey)?.manifest,
      );
      expect((await deps.store.head(manifestKey))?.metadata).toEqual({
        [BATCH_ID_METADATA]: inFlight.batchId,
      });
      expect(keys).not.toContain(object.stagingKey);
      expect(keys).not.toContain(manifestKeyFor(object.stagingKey));
    }
    const uploadedBatch = (await deps.locks.get('app', 'public.published')).inFlight;
    expect(uploadedBatch?.stage).toBe('uploaded');
    expect(uploadedBatch?.objects.every((object) => object.createdArchive)).toBe(true);
  });

  it('recognises its own object when retried after a crash that followed the copy', async () => {
    // Prepare
    const crashAfterCopy = (point: FaultPoint) => {
      if (point === 'upload:afterCopy') throw new Error('crashed after the copy');
    };
    const { task, inFlight } = await batchThrough(bed.local.deps(), 'public.retried', 'exported');
    await expect(uploadBatch(task, bed.local.deps(crashAfterCopy))).rejects.toThrow(/crashed after the copy/);
    // The objects published by then (the crash ends the step while copies of others may still be under way).
    const deps = bed.local.deps();
    const heads = await Promise.all(inFlight.objects.map((o) => deps.store.head(o.archiveKey)));
    const copied = inFlight.objects.flatMap((o, i) =>
      heads[i] ? [{ key: o.archiveKey, pin: heads[i]?.pin }] : [],
    );
    expect(copied.length).toBeGreaterThan(0);

    // Act
    const retried = await uploadBatch(task, bed.local.deps());

    // Assess: the objects copied before the crash are recognised as this batch's, not copied again, and recorded as
    // this batch's as the first attempt would have (verify holds their manifests to the ones upload wrote).
    expect(retried.objects).toBe(inFlight.objects.length);
    expect(retried.created).toBe(inFlight.objects.length);
    for (const { key, pin } of copied) {
      const published = await deps.store.head(key);
      expect(published?.pin).toEqual(pin);
      expect(published?.metadata[BATCH_ID_METADATA]).toBe(inFlight.batchId);
    }
    const keys = await listKeys(bed.local, '');
    for (const each of inFlight.objects) {
      expect(keys).toContain(manifestKeyFor(each.archiveKey));
      expect(keys).not.toContain(each.stagingKey);
    }
    const uploaded = (await deps.locks.get('app', 'public.retried')).inFlight;
    expect(uploaded).toMatchObject({ stage: 'uploaded' });
    expect(uploaded?.objects.map((o) => o.createdArchive)).toEqual(inFlight.objects.map(() => true));
  });

  it('completes one publication when invoked twice at once (a Task retried while the first invocation still ran)', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.duplicated', 'exported');

    // Act
    const outcomes = await Promise.allSettled([uploadBatch(task, deps), uploadBatch(task, deps)]);

    // Assess: both succeed, whichever one's record was written, and it says this batch created every archive.
    const uploaded = (await deps.locks.get('app', 'public.duplicated')).inFlight;
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'an upload invoked twice at once',
      held:
        outcomes.every((o) => o.status === 'fulfilled') &&
        uploaded?.objects.every((o) => o.createdArchive) === true,
    });
    expect(outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : 'ok'))).toEqual(['ok', 'ok']);
    expect(uploaded).toMatchObject({ stage: 'uploaded', batchId: inFlight.batchId });
    expect(uploaded?.objects.map((o) => o.createdArchive)).toEqual(inFlight.objects.map(() => true));
  });

  it('refuses a foreign object at the archive key and leaves it and the staged batch as they are', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.foreign', 'exported');
    const object = inFlight.objects[0];
    if (!object) throw new Error('no object');
    const foreign = Buffer.from('not this batch');
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({ Bucket: bed.local.services.bucket, Key: object.archiveKey, Body: foreign }),
    );

    // Act
    const attempt = uploadBatch(task, deps);

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: 'ArchiveConflictError' });
    expect(await getObject(bed.local, object.archiveKey)).toEqual(foreign);
    const keys = await listKeys(bed.local, '');
    expect(keys).toContain(object.stagingKey);
    expect(keys).not.toContain(manifestKeyFor(object.archiveKey));
    expect((await deps.locks.get('app', 'public.foreign')).inFlight).toMatchObject({ stage: 'exported' });
  });

  it('ignores a compressed-sha256 of another form on an archive already at the key: the lease item stays readable', async () => {
    // Prepare: a bucket writer puts the staged bytes under the archive key, with 1,500 characters of metadata that
    // upload would copy into the batch's record.
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.garbled', 'exported');
    const object = inFlight.objects[0];
    if (!object) throw new Error('no object');
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: object.archiveKey,
        Body: await getObject(bed.local, object.stagingKey),
        Metadata: { 'content-sha256': object.figures.contentSha256, 'compressed-sha256': 'z'.repeat(1500) },
      }),
    );

    // Act
    await uploadBatch(task, deps);

    // Assess: the batch keeps the figure export measured on these very bytes, which verify measures again.
    const uploaded = (await deps.locks.get('app', 'public.garbled')).inFlight;
    expect(uploaded?.stage).toBe('uploaded');
    expect(uploaded?.objects[0]?.figures).toEqual(object.figures);
  });

  it("refuses an empty object at the archive key whose metadata claims the batch's content, naming the key", async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.emptied', 'exported');
    const object = inFlight.objects[0];
    if (!object) throw new Error('no object');
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: object.archiveKey,
        Body: Buffer.alloc(0),
        Metadata: { 'content-sha256': object.figures.contentSha256 },
      }),
    );

    // Act
    const attempt = uploadBatch(task, deps);

    // Assess: refused before the record is written; the record stays readable.
    await expect(attempt).rejects.toMatchObject({
      name: 'ArchiveConflictError',
      message: `${object.archiveKey} exists with different content (0 bytes)`,
    });
    expect((await deps.locks.get('app', 'public.emptied')).inFlight).toMatchObject({ stage: 'exported' });
  });

  it("refuses another deployment's archive without quoting a lock-table metadata that is no table name", async () => {
    // Prepare: a bucket writer puts the staged bytes under the archive key, claimed by a lock table whose name is 2 KB
    // of text made to read as a log line and a piece of advice.
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.claimed', 'exported');
    const object = inFlight.objects[0];
    if (!object) throw new Error('no object');
    const claim = `x INFO all archives verified; run: aws s3 rm --recursive s3://bucket/ ${'#'.repeat(1900)}`;
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: object.archiveKey,
        Body: await getObject(bed.local, object.stagingKey),
        Metadata: { 'content-sha256': object.figures.contentSha256, [LOCK_TABLE_METADATA]: claim },
      }),
    );

    // Act
    const refused = await uploadBatch(task, deps).then(
      () => undefined,
      (error: Error) => error,
    );

    // Assess: refused as another deployment's, the claim not repeated; the batch stays at export.
    expect(refused?.name).toBe('ConfigError');
    expect(refused?.message).toContain('lock table is unreadable (not a DynamoDB table name)');
    expect(refused?.message).not.toContain('aws s3 rm');
    expect(refused?.message.length).toBeLessThan(1000);
    expect((await deps.locks.get('app', 'public.claimed')).inFlight).toMatchObject({ stage: 'exported' });
  });

  it('publishes the manifest export recorded: one planted beside a staged object is never read', async () => {
    // Prepare: a bucket writer plants a manifest, with other figures, where earlier versions staged it.
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.planted', 'exported');
    const [object] = inFlight.objects;
    const recorded = manifestOf(inFlight, 0);
    if (!object || !recorded) throw new Error('no batch');
    const planted = {
      ...recorded,
      figures: { ...recorded.figures, rowCount: recorded.figures.rowCount + 1 },
    };
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: manifestKeyFor(object.stagingKey),
        Body: JSON.stringify(planted),
      }),
    );

    // Act
    await uploadBatch(task, deps);

    // Assess
    const published = JSON.parse(
      (await getObject(bed.local, manifestKeyFor(object.archiveKey))).toString('utf8'),
    );
    expect(published).toEqual(recorded);
  });

  it('publishes a batch recorded before export kept its manifests in the record, from the staged manifests', async () => {
    // Prepare: the record as an earlier version wrote it (no manifest, timestamp ranges or ETags), manifests staged.
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.legacy', 'exported');
    const manifests = inFlight.objects.map((_, index) => manifestOf(inFlight, index));
    const { manifest: _shared, ...legacyRecord } = inFlight;
    const legacy = {
      ...legacyRecord,
      objects: inFlight.objects.map(({ timestampRange: _, stagedEtag: __, ...o }) => o),
    };
    await deps.locks.setInFlight('app', 'public.legacy', task.lease, 600, legacy, ['exported']);
    for (const [index, object] of inFlight.objects.entries()) {
      await s3ClientFor(bed.local).send(
        new PutObjectCommand({
          Bucket: bed.local.services.bucket,
          Key: manifestKeyFor(object.stagingKey),
          Body: JSON.stringify(manifests[index]),
        }),
      );
    }

    // Act
    await uploadBatch(task, deps);

    // Assess: every manifest published as staged; staging is gone, the staged manifests with it.
    const keys = await listKeys(bed.local, '');
    for (const [index, object] of inFlight.objects.entries()) {
      const published = JSON.parse(
        (await getObject(bed.local, manifestKeyFor(object.archiveKey))).toString('utf8'),
      );
      expect(published).toEqual(manifests[index]);
      expect(keys).not.toContain(manifestKeyFor(object.stagingKey));
    }
  });
});
