import { describe, expect, it } from 'vitest';
import { exportBatch } from '../../../lambdas/export/core.js';
import { manifestKeyFor } from '../../../lambdas/shared/archive/format.js';
import type { FaultPoint } from '../../../lambdas/shared/step/step-deps.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { runLocalArchive, runLocalRestore } from '../../../local/run.js';
import type { StepEvent } from '../../../local/workflow.js';
import {
  archiverTestbed,
  fixedCutoffSql,
  leasedTask,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';
import { breakStoppedLease, copyingInParts, deferred, ZERO } from './support.js';

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };
const table = resolvedTable(spec);

/**
 * An execution exported a batch and its upload is copying the batch's object in parts (as every copy in AWS is) when
 * the operator stops the execution and breaks its lease (`lease break`: the execution is over, its Lambda is not; a
 * stopped execution's invocations run on up to their timeout). The upload has read its staged source and stalls
 * before CompleteMultipartUpload. The next run's export withdraws the stopped batch (staging removed, the archive key
 * still empty) and exports the same rows again: same content, same archive key. Then the stale upload completes its
 * copy (the object appears, carrying the stopped batch's id) and stalls again before its manifest; the new batch's
 * upload finds the object there (not its own), writes its own manifest, and verify binds that manifest. Then the stale
 * upload goes on: the manifest at the key is not its own, the archive object is "its own" and the inventory lists
 * nothing there yet, so it takes the new batch's manifest for an orphan, deletes it and writes its own. The new batch's
 * delete checks the data object only, commits, and the inventory binds the manifest that was deleted.
 */
describe('a stopped run’s upload completing its copy in parts after lease break, while the next run archives the same rows', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 310, 31), [spec]);

  it('leaves every archived row restorable: the committed archive keeps the manifest its batch verified', async () => {
    // Prepare: the stopped execution's export and its upload, stalled between reading its source and completing
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);
    const deps = bed.local.deps();
    const stopped = await leasedTask(bed.local, 'public.events', 'arn:stopped-execution', 'stopped-run');
    await exportBatch({ ...stopped, progress: ZERO }, deps);
    const sourceRead = deferred();
    const complete = deferred();
    const atManifest = deferred();
    const writeManifest = deferred();
    const staleDeps = copyingInParts(
      bed.local,
      bed.local.deps(async (point: FaultPoint) => {
        if (point === 'upload:afterCopy') {
          atManifest.resolve();
          await writeManifest.promise;
        }
      }),
      sourceRead.resolve,
      complete.promise,
    );
    const staleUpload = uploadBatch(stopped, staleDeps).then(
      () => 'succeeded',
      (error: Error) => error.name,
    );
    await sourceRead.promise;
    expect(await breakStoppedLease(bed.local)).toBe(true);

    // Act: the next run; the stale upload completes after its export, writes its manifest after its verify
    let exported = false;
    let verified = false;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName === 'export' && !exported) {
        exported = true;
        complete.resolve();
        await atManifest.promise;
      }
      if (event.functionName === 'verify' && !verified) {
        verified = true;
        writeManifest.resolve();
        await staleUpload;
      }
    };
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, afterStep });
    const left = (
      await bed.db.client.query(`SELECT count(*)::int AS n FROM public.events WHERE created_at < ${cutoff}`)
    ).rows[0].n as number;
    const [entry] = await deps.inventory.list('app', 'public.events');
    const manifestText = entry ? await deps.store.getText(manifestKeyFor(entry.archiveKey)) : undefined;
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events' },
      { retryIntervalScale: 0 },
    );

    // Assess
    const restoredAll =
      (await tableLines(bed.db.client, table)).sort().join('\n') === [...original].sort().join('\n');
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack:
        'an upload whose lease was broken completes its copy in parts after the next run adopted the same archive key, then finds that run’s manifest there',
      held: restoredAll && JSON.parse(manifestText ?? '{}').runId === entry?.runId,
    });
    expect(await staleUpload).toBe('LeaseLostError');
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(left).toBe(0);
    expect(restored.results.filter((r) => r.status === 'failed').map((r) => r.error)).toEqual([]);
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());
    // The manifest at the committed key is the one its commit bound (its run's), not the stopped run's
    expect(JSON.parse(manifestText ?? '{}').runId).toBe(entry?.runId);
  });
});

/**
 * The same stale completion, but a row of the stopped batch was deleted by the application (an erasure request) before
 * the next run exported the day again: the next batch's object holds the day without it, under another key, while the
 * stale completion puts the stopped batch's object (with the erased row) and its manifest under the old key. No
 * withdrawal will ever look at that object again (its batch is gone from the lease item); it is not in the inventory
 * and not in flight, so every later restore of the table lists it and writes it with a warning ("not in the inventory
 * of committed archives (written before it existed?)"): the erased row comes back.
 */
describe('an orphan archive left by a stopped run’s upload completing its copy after its batch was withdrawn', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 310, 31), [spec]);

  it('does not bring back a row the application deleted before the rows were archived', async () => {
    // Prepare: as above; then the application deletes one row of the stopped batch
    const deps = bed.local.deps();
    const stopped = await leasedTask(bed.local, 'public.events', 'arn:stopped-execution', 'stopped-run');
    await exportBatch({ ...stopped, progress: ZERO }, deps);
    const sourceRead = deferred();
    const complete = deferred();
    const staleUpload = uploadBatch(
      stopped,
      copyingInParts(bed.local, bed.local.deps(), sourceRead.resolve, complete.promise),
    ).then(
      () => 'succeeded',
      (error: Error) => error.name,
    );
    await sourceRead.promise;
    expect(await breakStoppedLease(bed.local)).toBe(true);
    const erased = (
      await bed.db.client.query(
        `DELETE FROM public.events WHERE id = (SELECT min(id) FROM public.events) RETURNING id::text`,
      )
    ).rows[0].id as string;

    // Act: the next run withdraws the stopped batch, exports the day as it is now and archives it; the stale copy
    // completes right after that export. Then a restore of the whole table, by default, then leaving such archives out.
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== 'export') return;
      complete.resolve();
      await staleUpload;
    };
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, afterStep });
    const request = { database: 'app', table: 'public.events' };
    const refused = await runLocalRestore(bed.local, request, { retryIntervalScale: 0 });
    const skipped = await runLocalRestore(
      bed.local,
      { ...request, unlistedArchives: 'skip' },
      { retryIntervalScale: 0 },
    );
    const back = (
      await bed.db.client.query('SELECT count(*)::int AS n FROM public.events WHERE id = $1', [erased])
    ).rows[0].n as number;

    // Assess
    const output = skipped.execution.output as { warnings?: string[] } | undefined;
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack:
        'an upload whose lease was broken completes its copy in parts after its batch was withdrawn, leaving an archive holding a row the application erased since',
      held: back === 0 && refused.execution.status === 'FAILED' && skipped.execution.status === 'SUCCEEDED',
    });
    expect(await staleUpload).toBe('LeaseLostError');
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(refused.execution.status).toBe('FAILED');
    expect(refused.execution.error?.message).toMatch(
      /^1 archive\(s\) of "public"\."events" are not in the inventory of committed archives though S3 dates them after/,
    );
    expect(refused.results).toEqual([]);
    expect(skipped.execution.status).toBe('SUCCEEDED');
    expect(output?.warnings?.join('\n')).toMatch(
      /^1 archive\(s\) the inventory of committed archives does not list were left out/m,
    );
    expect(back).toBe(0);
  });
});
