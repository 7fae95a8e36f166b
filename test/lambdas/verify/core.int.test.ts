import { gunzipSync, gzipSync } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../../lambdas/shared/archive/format.js';
import type { StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import { verifyBatch } from '../../../lambdas/verify/core.js';
import { batchThrough } from '../../support/batch-stages.js';
import {
  archiverTestbed,
  getObject,
  listKeys,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
} from '../../support/fixtures.js';

describe('verify step', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(
    async (db) => {
      for (const name of ['intact', 'tampered', 'replaced', 'rewritten'])
        await seedEvents(db.client, name, 40);
    },
    [spec('intact'), spec('tampered'), spec('replaced'), spec('rewritten')],
  );

  /** Replaces the archive's bytes behind the archiver's back, keeping its metadata. */
  async function overwrite(deps: StepDeps, key: string, body: Buffer): Promise<void> {
    const head = await deps.store.head(key);
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: key,
        Body: body,
        Metadata: head?.metadata,
      }),
    );
  }

  const quarantined = async () =>
    (await listKeys(bed.local, `${bed.local.config.s3.prefix}_quarantine/`)).filter((key) =>
      key.endsWith('.jsonl.gz'),
    );

  it('accepts the intact archive and pins the object it read', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.intact', 'uploaded');

    // Act
    const verified = await verifyBatch(task, deps);

    // Assess
    expect(verified).toEqual({
      objects: inFlight.objects.length,
      rows: inFlight.objects.reduce((sum, object) => sum + object.figures.rowCount, 0),
      verified: true,
    });
    const recorded = (await deps.locks.get('app', 'public.intact')).inFlight;
    expect(recorded?.stage).toBe('verified');
    for (const [i, object] of inFlight.objects.entries()) {
      const pin = (await deps.store.head(object.archiveKey))?.pin;
      expect(pin).toBeDefined();
      expect(recorded?.objects[i]?.pin).toEqual(pin);
    }
  });

  it('refuses a tampered archive and withdraws the batch, keeping the object as evidence', async () => {
    // Prepare
    const deps = bed.local.deps();
    const original = await tableLines(bed.db.client, resolvedTable(spec('tampered')));
    const { task, inFlight } = await batchThrough(deps, 'public.tampered', 'uploaded');
    const damaged = inFlight.objects[1]?.archiveKey ?? '';
    const text = gunzipSync(await getObject(bed.local, damaged)).toString('utf8');
    const tampered = gzipSync(text.replace(/"user_\d+"/, '"someone_else"'));
    await overwrite(deps, damaged, tampered);

    // Act
    const attempt = verifyBatch(task, deps);

    // Assess
    await expect(attempt).rejects.toMatchObject({
      name: 'ArchiveIntegrityError',
      message: expect.stringMatching(/failed verification: object differs from its manifest/),
    });
    expect((await deps.locks.get('app', 'public.tampered')).inFlight).toBeUndefined();
    const keys = await listKeys(bed.local, '');
    for (const object of inFlight.objects) expect(keys).not.toContain(object.archiveKey);
    // Only the damaged object is kept as evidence.
    const evidence = (await quarantined()).filter((key) => key.includes('public.tampered/'));
    expect(evidence).toHaveLength(1);
    expect(await getObject(bed.local, evidence[0] ?? '')).toEqual(tampered);
    expect((await tableLines(bed.db.client, resolvedTable(spec('tampered')))).sort()).toEqual(
      original.sort(),
    );
  });

  it('refuses, when retried, an archive replaced since it was pinned, though it holds the same rows', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.replaced', 'uploaded');
    await verifyBatch(task, deps);
    const replaced = inFlight.objects[0]?.archiveKey ?? '';
    const pinned = (await deps.locks.get('app', 'public.replaced')).inFlight?.objects[0]?.pin;
    const text = gunzipSync(await getObject(bed.local, replaced)).toString('utf8');
    await overwrite(deps, replaced, gzipSync(text, { level: 1 }));
    expect((await deps.store.head(replaced))?.pin).not.toEqual(pinned);

    // Act
    const attempt = verifyBatch(task, deps);

    // Assess
    await expect(attempt).rejects.toMatchObject({
      name: 'ArchiveIntegrityError',
      message: expect.stringMatching(/object differs from its manifest: compressedSha256/),
    });
    expect((await deps.locks.get('app', 'public.replaced')).inFlight).toBeUndefined();
    expect(await listKeys(bed.local, '')).not.toContain(replaced);
  });

  it('refuses a manifest rewritten after upload to place the rows in another key range, its figures unchanged', async () => {
    // Prepare: a bucket writer rewrites one manifest's key range (what a restore's watermark check reads), nothing else.
    const deps = bed.local.deps();
    const { task, inFlight } = await batchThrough(deps, 'public.rewritten', 'uploaded');
    const key = manifestKeyFor(inFlight.objects[0]?.archiveKey ?? '');
    const manifest = JSON.parse((await deps.store.getText(key)) ?? '{}');
    manifest.keyRange = { first: ['900000'], last: ['900001'] };
    await overwrite(deps, key, Buffer.from(JSON.stringify(manifest, null, 2)));

    // Act
    const attempt = verifyBatch(task, deps);

    // Assess: the commit would have bound that manifest; the batch is withdrawn instead.
    await expect(attempt).rejects.toMatchObject({
      name: 'ArchiveIntegrityError',
      message: expect.stringMatching(/manifest is not the one upload wrote \(keyRange differ\)/),
    });
    expect((await deps.locks.get('app', 'public.rewritten')).inFlight).toBeUndefined();
  });
});
