/**
 * A bucket writer who reads the staged object can put an archive of the same bytes, and a manifest of their own,
 * under the archive key before upload copies it there: upload then takes the key as identical rows archived before.
 */

import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { manifestSha256 } from '../../lambdas/shared/archive/integrity.js';
import { manifestOf } from '../../lambdas/shared/batch/batch-manifest.js';
import { runLocalArchive } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  getObject,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

describe('an archive and manifest planted under the key before upload', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'ahead', 60, 33),
    [{ schema: 'public', name: 'ahead', timestampColumn: 'created_at' }],
  );

  it('fails verification naming it: the commit never binds a manifest that says otherwise than the batch', async () => {
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

    // Assess: verify refuses the planted manifest by name; nothing is committed or deleted.
    if (!planted) throw new Error('setup: nothing planted');
    const inventory = bed.local.deps().inventory;
    const entry = (await inventory.entries('app', 'public.ahead', [planted.key])).get(planted.key);
    const held = run.execution.status === 'FAILED' && entry === undefined;
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'puts the staged bytes under the archive key before upload, with a manifest of other meaning',
      held,
    });
    expect(entry?.manifestSha256).not.toBe(planted.sha256);
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(
      /^ArchiveIntegrityError: archive .* failed verification: an archive no commit records was under its key before upload, with a manifest that differs from the batch's \(keyColumns, lcMonetary\)/,
    );
    expect(await inventory.list('app', 'public.ahead')).toEqual([]);
    expect(await tableLines(bed.db.client, table)).toEqual(original);
  });
});
