import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { exportBatch } from '../../../lambdas/export/core.js';
import { manifestKeyFor } from '../../../lambdas/shared/archive/format.js';
import { BATCH_ID_METADATA } from '../../../lambdas/shared/batch/batch.js';
import { retentionCutoff } from '../../../lambdas/shared/config/governance.js';
import type { InFlight } from '../../../lambdas/shared/lock-table/table-state.js';
import type { FaultPoint, StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../../lambdas/shared/step/table-task.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { archiverTestbed, getObject, listKeys, s3ClientFor, seedEvents } from '../../support/fixtures.js';

describe('upload step', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(
    async (db) => {
      for (const name of ['published', 'retried', 'foreign']) await seedEvents(db.client, name, 40);
    },
    [spec('published'), spec('retried'), spec('foreign')],
  );

  /** A table's batch exported under a fresh lease: the task and the in-flight record upload starts from. */
  async function exported(deps: StepDeps, table: string): Promise<{ task: TableTask; inFlight: InFlight }> {
    const acquired = await deps.locks.acquire('app', table, `exec-${table}`, 600);
    if (!acquired.acquired) throw new Error(`could not acquire ${table}`);
    const task: TableTask = {
      runId: `exec-${table}`,
      database: 'app',
      table,
      cutoff: retentionCutoff(Date.now(), 30),
      lease: acquired.lease,
    };
    expect((await exportBatch(task, deps)).status).toBe('exported');
    const { inFlight } = await deps.locks.get('app', table);
    if (!inFlight) throw new Error(`no batch in flight for ${table}`);
    return { task, inFlight };
  }

  it('publishes the staged batch write-once under its archive key, with its metadata and manifest', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task, inFlight } = await exported(deps, 'public.published');
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
    const { task, inFlight } = await exported(bed.local.deps(), 'public.retried');
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
    const { task, inFlight } = await exported(deps, 'public.foreign');
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
