import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  type LiveArchive,
  readLiveArchives,
  s3ClientFor,
  seedEvents,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * A bucket writer (or an expiry) deletes a committed archive and its manifest after the restore's plan checked the
 * listing against the inventory of committed archives, before the page that would list it: the list steps list the
 * bucket again. The restore must not succeed with the archive's rows silently missing.
 */
describe('a committed archive deleted between the restore plan and its page', () => {
  let archives: LiveArchive[] = [];
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'events', 720, 36),
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );

  beforeAll(async () => {
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    if (run.execution.status !== 'SUCCEEDED') throw new Error('setup: the archive run failed');
    archives = (await readLiveArchives(bed.local, 'public', 'events')).sort((a, b) =>
      a.key.localeCompare(b.key),
    );
  });

  it('fails the restore, saying how many planned archives were gone, after restoring the rest', async () => {
    // Prepare
    const victim = archives[2];
    if (!victim) throw new Error('setup: too few archives');
    let struck = false;
    let summary: { failures: { key: string; error: string }[] } | undefined;
    const afterStep = async (event: StepEvent) => {
      const action = (event.payload as { action?: string }).action;
      if (event.functionName === 'restore-summary' && action === 'finish')
        summary = event.result as typeof summary;
      if (event.functionName !== 'restore-plan' || action !== 'plan' || struck) return;
      const s3 = s3ClientFor(bed.local);
      const manifest = victim.key.replace(/\/([^/]+)\.jsonl\.gz$/, '/_$1.manifest.json');
      for (const Key of [victim.key, manifest])
        await s3.send(new DeleteObjectCommand({ Bucket: bed.local.services.bucket, Key }));
      struck = true;
    };

    // Act
    const result = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', targetTable: 'public.copy' },
      { retryIntervalScale: 0, afterStep },
    );
    const { rows } = await bed.db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM public.copy');
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack:
        'deletes a committed archive and its manifest after the restore plan, before its page is listed',
      held: struck && result.execution.status === 'FAILED',
    });

    // Assess
    expect(struck).toBe(true);
    expect(result.execution.status).toBe('FAILED');
    expect(summary?.failures).toContainEqual({
      key: '1 archive(s) the plan found',
      error: expect.stringMatching(
        /^gone from the bucket since the plan: 1 of the \d+ archive\(s\) the plan found/,
      ),
    });
    const archived = archives.reduce((n, a) => n + a.lines.length, 0);
    expect(rows[0]?.n).toBe(archived - victim.lines.length);
  });
});
