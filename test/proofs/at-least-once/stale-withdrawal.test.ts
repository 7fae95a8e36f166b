import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../../lambdas/delete/core.js';
import { exportBatch } from '../../../lambdas/export/core.js';
import type { ArchiveStore } from '../../../lambdas/shared/archive/store.js';
import type { StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { verifyBatch } from '../../../lambdas/verify/core.js';
import { runLocalArchive } from '../../../local/run.js';
import type { StepEvent } from '../../../local/workflow.js';
import {
  archiverTestbed,
  compareRows,
  leasedTask,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';
import { breakStoppedLease, copyingInParts, deferred, ZERO } from './support.js';

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };
const table = resolvedTable(spec);

/** Deps whose store's `head` calls wait for `go` (a Lambda that stalls there), calling `stalled` at the first. */
function stallingHeads(deps: StepDeps, stalled: () => void, go: Promise<void>): StepDeps {
  const store = Object.create(deps.store) as ArchiveStore;
  store.head = async (key: string) => {
    stalled();
    await go;
    return deps.store.head(key);
  };
  return { ...deps, store };
}

/**
 * Ownership by batch id is what keeps a stale withdrawal from removing another batch's archive: "an invocation still
 * running beside its retry cannot remove what the retry published". It fails once an archive object can appear under
 * a batch's id after that batch left the lease item, which a copy in parts does (CompleteMultipartUpload after the
 * source was read; see support.ts copyingInParts):
 *
 * 1. Execution A exports batch X (two days: objects K1, K2). Its Upload Task runs twice (at-least-once): the
 *    duplicate has read its staged sources and stalls before completing; the other publishes K1, K2 and records X
 *    `uploaded`. Verify pins them.
 * 2. The application updates a row of X's second day. A's delete rolls back (rows changed) and claims X for
 *    withdrawal, then stalls before removing anything.
 * 3. The operator stops A (its Lambdas run on) and breaks its lease. Run B's export finishes the withdrawal (K1, K2
 *    removed), exports the rows again (the first day as it was: K1 again; the second as it is now: K2'); then the
 *    stale upload completes: K1 and K2 reappear carrying X's id. B's upload finds K1 there with the same content and
 *    adopts it (not its own), verify pins it, B deletes the rows and commits K1 and K2'.
 * 4. A's stalled withdrawal goes on: K1 carries X's id, so it is "ours", and it removes it: the committed archive of
 *    rows that are no longer in the table.
 */
describe('a stale withdrawal meeting an archive a stale upload of its batch completed after the batch left the lease item', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 320, 32), [spec]);

  it('never removes an archive another batch committed: no row is lost', async () => {
    // Prepare: execution A's batch, its stalled duplicate upload, its upload and verify
    const deps = bed.local.deps();
    const a = await leasedTask(bed.local, 'public.events', 'arn:execution-a', 'run-a');
    await exportBatch({ ...a, progress: ZERO }, deps);
    const objects = (await deps.locks.get('app', 'public.events')).inFlight?.objects ?? [];
    expect(objects.length).toBe(2);
    let read = 0;
    const sourcesRead = deferred();
    const complete = deferred();
    const duplicateUpload = uploadBatch(
      a,
      copyingInParts(
        bed.local,
        bed.local.deps(),
        () => {
          read += 1;
          if (read === objects.length) sourcesRead.resolve();
        },
        complete.promise,
      ),
    ).then(
      () => 'succeeded',
      (error: Error) => error.name,
    );
    await sourcesRead.promise;
    await uploadBatch(a, deps);
    await verifyBatch(a, deps);

    // The application updates a row of the second day; A's delete rolls back and stalls inside its withdrawal
    await bed.db.client.query(
      `UPDATE public.events SET actor = 'edited-by-app'
        WHERE id = (SELECT max(id) FROM public.events WHERE created_at < $1::timestamptz)`,
      [objects[1]?.bounds.to ?? ''],
    );
    const truth = await tableLines(bed.db.client, table);
    const stalled = deferred();
    const goOn = deferred();
    const staleDelete = deleteBatch(
      { ...a, progress: ZERO },
      stallingHeads(bed.local.deps(), stalled.resolve, goOn.promise),
    ).then(
      () => 'deleted',
      (error: Error) => error.name,
    );
    await stalled.promise;
    const claimed = (await deps.locks.get('app', 'public.events')).inFlight?.stage;

    // Act: A is stopped and its lease broken; run B; the stale upload completes after B's export; then the stale
    // withdrawal goes on
    const broken = await breakStoppedLease(bed.local);
    let completed = false;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== 'export' || completed) return;
      completed = true;
      complete.resolve();
      await duplicateUpload;
    };
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, afterStep });
    const committed = (await deps.inventory.list('app', 'public.events')).map((e) => e.archiveKey);
    goOn.resolve();
    const staleOutcome = await staleDelete;
    const stillThere = await Promise.all(
      committed.map(async (key) => (await deps.store.head(key)) !== undefined),
    );
    const { lost, doubled } = compareRows(truth, [
      ...(await tableLines(bed.db.client, table)),
      ...(await readLiveArchives(bed.local, 'public', 'events', bed.db.client)).flatMap((a) => a.lines),
    ]);

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack:
        'a withdrawal whose lease was broken goes on after the next run adopted and committed an archive a stale copy of the withdrawn batch recreated',
      held: stillThere.every(Boolean) && lost === 0 && doubled === 0,
    });
    expect(claimed).toBe('withdrawing');
    expect(broken).toBe(true);
    expect(await duplicateUpload).toBe('LeaseLostError');
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(staleOutcome).toBe('LeaseLostError');
    expect({ committedArchivesStillThere: stillThere, lost, doubled }).toEqual({
      committedArchivesStillThere: committed.map(() => true),
      lost: 0,
      doubled: 0,
    });
  });
});
