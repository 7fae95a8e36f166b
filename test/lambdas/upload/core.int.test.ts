import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../../lambdas/shared/archive/format.js';
import { BATCH_ID_METADATA } from '../../../lambdas/shared/batch/batch.js';
import type { FaultPoint } from '../../../lambdas/shared/step/step-deps.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { batchThrough } from '../../support/batch-stages.js';
import { archiverTestbed, getObject, listKeys, s3ClientFor, seedEvents } from '../../support/fixtures.js';

describe('upload step', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(
    async (db) => {
      for (const name of ['published', 'retried', 'foreign']) await seedEvents(db.client, name, 40);
    },
    [spec('published'), spec('retried'), spec('foreign')],
  );

  it('publishes the staged batch write-once under its archive key, with its metadata and manifest', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.published', 'exported');
    const stagedData = await getObject(bed.local, inFlight.stagingKey);
    const stagedManifest = (await getObject(bed.local, manifestKeyFor(inFlight.stagingKey))).toString('utf8');

    // Act
    const uploaded = await uploadBatch(task, deps);

    // Assess
    expect(uploaded).toEqual({
      archiveKey: inFlight.archiveKey,
      manifestKey: manifestKeyFor(inFlight.archiveKey),
      created: true,
    });
    expect(await getObject(bed.local, inFlight.archiveKey)).toEqual(stagedData);
    expect((await deps.store.head(inFlight.archiveKey))?.metadata).toEqual({
      [BATCH_ID_METADATA]: inFlight.batchId,
      'content-sha256': inFlight.figures.contentSha256,
      'compressed-sha256': inFlight.figures.compressedSha256,
      'row-count': String(inFlight.figures.rowCount),
      'row-digest': inFlight.figures.rowDigest,
    });
    expect(JSON.parse((await getObject(bed.local, uploaded.manifestKey)).toString('utf8'))).toEqual(
      JSON.parse(stagedManifest),
    );
    expect((await deps.store.head(uploaded.manifestKey))?.metadata).toEqual({
      [BATCH_ID_METADATA]: inFlight.batchId,
    });
    const keys = await listKeys(bed.local, '');
    expect(keys).not.toContain(inFlight.stagingKey);
    expect(keys).not.toContain(manifestKeyFor(inFlight.stagingKey));
    expect((await deps.locks.get('app', 'public.published')).inFlight).toMatchObject({
      stage: 'uploaded',
      createdArchive: true,
    });
  });

  it('recognises its own object when retried after a crash that followed the copy', async () => {
    // Prepare
    const crashAfterCopy = (point: FaultPoint) => {
      if (point === 'upload:afterCopy') throw new Error('crashed after the copy');
    };
    const { task, inFlight } = await batchThrough(bed.local.deps(), 'public.retried', 'exported');
    await expect(uploadBatch(task, bed.local.deps(crashAfterCopy))).rejects.toThrow(/crashed after the copy/);
    const copied = await bed.local.deps().store.head(inFlight.archiveKey);

    // Act
    const retried = await uploadBatch(task, bed.local.deps());

    // Assess
    expect(retried).toEqual({
      archiveKey: inFlight.archiveKey,
      manifestKey: manifestKeyFor(inFlight.archiveKey),
      created: false,
    });
    const deps = bed.local.deps();
    const published = await deps.store.head(inFlight.archiveKey);
    expect(published?.pin).toEqual(copied?.pin);
    expect(published?.metadata[BATCH_ID_METADATA]).toBe(inFlight.batchId);
    expect(await deps.store.head(retried.manifestKey)).toBeDefined();
    expect(await listKeys(bed.local, '')).not.toContain(inFlight.stagingKey);
    expect((await deps.locks.get('app', 'public.retried')).inFlight).toMatchObject({ stage: 'uploaded' });
  });

  it('refuses a foreign object at the archive key and leaves it and the staged batch as they are', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.foreign', 'exported');
    const foreign = Buffer.from('not this batch');
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({ Bucket: bed.local.services.bucket, Key: inFlight.archiveKey, Body: foreign }),
    );

    // Act
    const attempt = uploadBatch(task, deps);

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: 'ArchiveConflictError' });
    expect(await getObject(bed.local, inFlight.archiveKey)).toEqual(foreign);
    const keys = await listKeys(bed.local, '');
    expect(keys).toContain(inFlight.stagingKey);
    expect(keys).not.toContain(manifestKeyFor(inFlight.archiveKey));
    expect((await deps.locks.get('app', 'public.foreign')).inFlight).toMatchObject({ stage: 'exported' });
  });
});
