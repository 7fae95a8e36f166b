import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { deleteBatch } from '../../../../lambdas/delete/core.js';
import { exportBatch } from '../../../../lambdas/export/core.js';
import { withdrawBatch } from '../../../../lambdas/shared/batch/batch.js';
import { batchTotals } from '../../../../lambdas/shared/batch/batch-objects.js';
import {
  BatchOutcomeUnknownError,
  LeaseLostError,
  StorageUnavailableError,
} from '../../../../lambdas/shared/errors/step-errors.js';
import { LeaseStore } from '../../../../lambdas/shared/lock-table/lease-store.js';
import type { InFlight } from '../../../../lambdas/shared/lock-table/table-state.js';
import type { FaultPoint, StepDeps } from '../../../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../../../lambdas/shared/step/table-task.js';
import { uploadBatch } from '../../../../lambdas/upload/core.js';
import { verifyBatch } from '../../../../lambdas/verify/core.js';
import { runLocalArchive } from '../../../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixtureCutoff,
  getObject,
  leasedTask,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../../../support/fixtures.js';
import { recordProof } from '../../../support/proof-ledger.js';

const ZERO = { batches: 0, rows: 0, bytes: 0 };
const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

describe('batch settlement and withdrawal', () => {
  const bed = archiverTestbed(
    async (db) => {
      for (const name of [
        'stale',
        'moved_server',
        'switched_over',
        'unknown_outcome',
        'raced',
        'broken_read',
        'unread',
        'predates',
        'one_day_gone',
      ])
        await seedEvents(db.client, name, 400);
    },
    [
      spec('stale'),
      spec('moved_server'),
      spec('switched_over'),
      spec('unknown_outcome'),
      spec('raced'),
      spec('broken_read'),
      spec('unread'),
      spec('predates'),
      spec('one_day_gone'),
    ],
  );

  async function verifiedBatch(
    deps: StepDeps,
    table: string,
  ): Promise<{ task: TableTask; inFlight: InFlight }> {
    const acquired = await deps.locks.acquire('app', table, `exec-${table}`, 3600);
    if (!acquired.acquired) throw new Error('setup');
    const task: TableTask = {
      runId: 'r',
      database: 'app',
      table,
      cutoff: await fixtureCutoff(deps),
      lease: acquired.lease,
    };
    await exportBatch(task, deps);
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const { inFlight } = await deps.locks.get('app', table);
    if (!inFlight) throw new Error('setup');
    return { task, inFlight };
  }

  /**
   * A verified batch recorded as deleting under a transaction id of a server that is gone (a restore, a switchover):
   * the server cannot tell the delete's outcome, so the rows and the archive must.
   */
  async function deleteOnAnotherServer(
    deps: StepDeps,
    table: string,
  ): Promise<{ task: TableTask; inFlight: InFlight; foreign: InFlight }> {
    const { task, inFlight } = await verifiedBatch(deps, table);
    const foreign: InFlight = { ...inFlight, stage: 'deleting', deleteXid: '123456', deleteServer: '1:1' };
    await deps.locks.setInFlight('app', table, task.lease, 3600, foreign, ['verified']);
    return { task, inFlight, foreign };
  }

  it('refuses a withdrawal decided on a stale view: the committed archive stays', async () => {
    // Prepare: an invocation reads the verified batch; meanwhile a retry deletes and commits it.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('stale'));
    const original = await tableLines(bed.db.client, table);
    const { task, inFlight: staleView } = await verifiedBatch(deps, 'public.stale');
    await deleteBatch({ ...task, progress: ZERO }, deps);

    // Act: the stale invocation now sees 0 rows in the batch range and tries to withdraw.
    const attempt = withdrawBatch(deps, task, staleView, 'rows-changed');

    // Assess
    await expect(attempt).rejects.toThrow(LeaseLostError);
    const archives = await readLiveArchives(bed.local, 'public', 'stale', bed.db.client);
    expect(archives.map((a) => a.key)).toContain(staleView.objects[0]?.archiveKey);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('a withdrawal leaves an archive it adopted that names no batch (an earlier version wrote it): only keys this batch wrote count as its own', async () => {
    // Prepare: identical rows archived before, by a version that wrote no batch-id: the object is under the key of the
    // batch's first archive (copied from the staged one, its figures but no batch-id). Upload adopts it.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('predates'));
    const original = await tableLines(bed.db.client, table);
    const task = await leasedTask(bed.local, 'public.predates', 'exec-predates');
    await exportBatch(task, deps);
    const exported = (await deps.locks.get('app', 'public.predates')).inFlight;
    const [earlier, ...rest] = exported?.objects ?? [];
    if (!earlier || rest.length === 0) throw new Error('setup: too few objects');
    const { figures } = earlier;
    await deps.store.copyOnce(
      earlier.stagingKey,
      earlier.archiveKey,
      { storageClass: 'STANDARD' },
      {
        'content-sha256': figures.contentSha256,
        'compressed-sha256': figures.compressedSha256,
        'row-count': String(figures.rowCount),
      },
      figures.compressedBytes,
    );
    await uploadBatch(task, deps);
    const uploaded = (await deps.locks.get('app', 'public.predates')).inFlight;
    if (!uploaded) throw new Error('setup');
    expect(uploaded.objects.map((object) => object.createdArchive)).toEqual([false, ...rest.map(() => true)]);

    // Act
    await withdrawBatch(deps, task, uploaded, 'rows-changed');

    // Assess: the archive the batch found stays; those it created are gone; every row is still in the table.
    expect(await deps.store.head(earlier.archiveKey)).toBeDefined();
    for (const object of rest) expect(await deps.store.head(object.archiveKey)).toBeUndefined();
    expect((await deps.locks.get('app', 'public.predates')).inFlight).toBeUndefined();
    expect(await tableLines(bed.db.client, table)).toEqual(original);
  });

  it('settles an interrupted delete recorded on another server by its rows: untouched rows resume the batch', async () => {
    // Prepare: the delete's xid was recorded on a server that is gone (restore, switchover); no row was deleted.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('moved_server'));
    const original = await tableLines(bed.db.client, table);
    const { task, inFlight } = await deleteOnAnotherServer(deps, 'public.moved_server');

    // Act
    const resumed = await exportBatch(task, deps);
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    await deleteBatch({ ...task, progress: ZERO }, deps);

    // Assess
    expect(resumed).toMatchObject({ status: 'resumed', rows: batchTotals(inFlight).rowCount });
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('settles a delete recorded on another server by its rows, whatever this server says of a transaction of that id: rows gone, the batch is committed and its archive kept', async () => {
    // Prepare: the delete committed on a server that is gone (a blue/green switchover: this server took the deletion
    // over by replication, its transaction ids are its own). Here the transaction id recorded names one this server
    // rolled back.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('switched_over'));
    const original = await tableLines(bed.db.client, table);
    const { task } = await verifiedBatch(deps, 'public.switched_over');
    const crashAfterCommit = (point: FaultPoint) => {
      if (point === 'delete:afterCommit') throw new Error('connection lost after COMMIT');
    };
    await expect(deleteBatch({ ...task, progress: ZERO }, bed.local.deps(crashAfterCommit))).rejects.toThrow(
      /connection lost/,
    );
    const deleting = (await deps.locks.get('app', 'public.switched_over')).inFlight;
    if (deleting?.stage !== 'deleting') throw new Error('setup: the batch is not deleting');
    await bed.db.client.query('BEGIN');
    const rolledBack = await bed.db.client.query<{ xid: string }>(
      'SELECT pg_catalog.pg_current_xact_id()::text AS xid',
    );
    await bed.db.client.query('ROLLBACK');
    const onAnotherServer: InFlight = {
      ...deleting,
      deleteXid: rolledBack.rows[0]?.xid,
      deleteServer: '1:1',
    };
    await deps.locks.setInFlight('app', 'public.switched_over', task.lease, 3600, onAnotherServer, {
      unchanged: deleting,
    });

    // Act: the next export settles the batch in flight.
    await exportBatch(task, deps);

    // Assess: recorded as committed (not resumed, which would find no rows and withdraw the only copy of them).
    const state = await deps.locks.get('app', 'public.switched_over');
    expect(state.lastCleared).toMatchObject({ batchId: deleting.batchId, committed: true });
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('stops, changing nothing, when neither the server nor the rows can tell whether a delete committed', async () => {
    // Prepare: as above, but some of the batch's rows have gone meanwhile.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('unknown_outcome'));
    const { task, foreign } = await deleteOnAnotherServer(deps, 'public.unknown_outcome');
    await bed.db.client.query(
      'DELETE FROM public.unknown_outcome WHERE id = (SELECT min(id) FROM public.unknown_outcome)',
    );
    const before = await tableLines(bed.db.client, table);

    // Act
    const attempt = exportBatch(task, deps);

    // Assess
    await expect(attempt).rejects.toThrow(BatchOutcomeUnknownError);
    expect(await tableLines(bed.db.client, table)).toEqual(before);
    expect((await deps.locks.get('app', 'public.unknown_outcome')).inFlight).toEqual(foreign);
    expect((await readLiveArchives(bed.local, 'public', 'unknown_outcome')).length).toBe(0);
  });

  it('stops, changing nothing, when the rows of one archive are all gone and the others’ are all there: no delete leaves that', async () => {
    // Prepare: the server cannot tell; the application then deleted every row of the batch's first day.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('one_day_gone'));
    const { task, inFlight, foreign } = await deleteOnAnotherServer(deps, 'public.one_day_gone');
    const [first, ...rest] = inFlight.objects;
    if (!first || rest.length === 0) throw new Error('setup: too few objects');
    const lines = gunzipSync(await getObject(bed.local, first.archiveKey))
      .toString('utf8')
      .split('\n');
    const ids = lines.filter((line) => line !== '').map((line) => String(JSON.parse(line).id));
    expect(ids).toHaveLength(first.figures.rowCount);
    await bed.db.client.query('DELETE FROM public.one_day_gone WHERE id::text = ANY($1)', [ids]);
    const before = await tableLines(bed.db.client, table);

    // Act
    const attempt = exportBatch(task, deps);

    // Assess: not taken for a committed delete (which removes every object's rows in one transaction).
    await expect(attempt).rejects.toThrow(BatchOutcomeUnknownError);
    expect(await tableLines(bed.db.client, table)).toEqual(before);
    expect((await deps.locks.get('app', 'public.one_day_gone')).inFlight).toEqual(foreign);
  });

  it('never settles by the rows a batch whose record (an earlier version’s) does not say how it read the table', async () => {
    // Prepare: the delete's outcome unknown to the server, and the record without the manifest it reads by.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('unread'));
    const { task, foreign } = await deleteOnAnotherServer(deps, 'public.unread');
    const { manifest: _, ...earlier } = foreign;
    await deps.locks.setInFlight('app', 'public.unread', task.lease, 3600, earlier, { unchanged: foreign });
    const before = await tableLines(bed.db.client, table);

    // Act
    const attempt = exportBatch(task, deps);

    // Assess: rows untouched, the record kept for an operator's batch settle.
    await expect(attempt).rejects.toThrow(
      /written by an earlier version, does not say how it read the table/,
    );
    await expect(attempt).rejects.toThrow(BatchOutcomeUnknownError);
    expect(await tableLines(bed.db.client, table)).toEqual(before);
    expect((await deps.locks.get('app', 'public.unread')).inFlight).toEqual(earlier);
  });

  it('settling by the rows, a read of an archive that breaks off is the retried StorageUnavailableError, changing nothing', async () => {
    // Prepare: as above, the server cannot tell, so the archive's lines are read back; the connection breaks after
    // the first bytes (a reset no local S3 server can stage, hence the stub of the read alone).
    const deps = bed.local.deps();
    const table = resolvedTable(spec('broken_read'));
    const { task, foreign } = await deleteOnAnotherServer(deps, 'public.broken_read');
    const before = await tableLines(bed.db.client, table);
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const breaking = () =>
      new Readable({
        read() {
          this.push(gzipSync('{"id": 1}\n').subarray(0, 12));
          this.destroy(reset);
        },
      });
    const read = vi.spyOn(deps.store, 'getStream').mockImplementation(async () => breaking());

    // Act
    const attempt = exportBatch(task, deps);

    // Assess
    await expect(attempt).rejects.toThrow(StorageUnavailableError);
    expect(read).toHaveBeenCalled();
    expect(await tableLines(bed.db.client, table)).toEqual(before);
    expect((await deps.locks.get('app', 'public.broken_read')).inFlight).toEqual(foreign);
    read.mockRestore();
  });

  it('a retried export running beside the first: the first, resuming late, removes nothing the retry published', async () => {
    // Prepare: batch X is staged; invocation A of the next export starts discarding it and stalls right after its
    // claim, at its first S3 read, as an invocation the state machine gave up on and retried.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('raced'));
    const original = await tableLines(bed.db.client, table);
    const acquired = await deps.locks.acquire('app', 'public.raced', 'exec-raced', 3600);
    if (!acquired.acquired) throw new Error('setup');
    const task: TableTask = {
      runId: 'r',
      database: 'app',
      table: 'public.raced',
      cutoff: await fixtureCutoff(deps),
      lease: acquired.lease,
    };
    expect((await exportBatch(task, deps)).status).toBe('exported');
    let stalled: () => void = () => undefined;
    let resume: () => void = () => undefined;
    const reached = new Promise<void>((resolve) => {
      stalled = resolve;
    });
    const gate = new Promise<void>((resolve) => {
      resume = resolve;
    });
    let first = true;
    const store = Object.create(deps.store) as StepDeps['store'];
    store.head = async (key) => {
      if (first) {
        first = false;
        stalled();
        await gate;
      }
      return deps.store.head(key);
    };
    // After its withdrawal A is cut off (its Lambda timed out) before it could stage anything itself.
    store.putStream = async () => {
      throw new Error('invocation A timed out');
    };
    const invocationA = exportBatch(task, { ...deps, store }).catch((error: Error) => error);
    await reached;

    // Act: invocation B (the retry) finishes the discard and exports batch Y of the same rows; then A resumes.
    const retried = await exportBatch(task, deps);
    resume();
    await invocationA;
    const rest = async () => {
      await uploadBatch(task, deps);
      await verifyBatch(task, deps);
      return deleteBatch({ ...task, progress: ZERO }, deps);
    };
    const carriedOn = await rest().catch((error: Error) => error);

    // Assess: Y, whose staged objects A must not have removed, is archived and deleted; no row lost or doubled.
    const { inDatabase } = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'retried step beside a still-running one withdraws what the retry published',
      held: !(carriedOn instanceof Error) && inDatabase < original.length,
    });
    expect(retried.status).toBe('exported');
    expect(carriedOn).not.toBeInstanceOf(Error);
  });
});

describe('the lease item each step reads', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'reads', 40), [spec('reads')]);

  it('is the one its renew returns: no step reads the lease item again right after renewing its lease', async () => {
    // Act: one batch.
    const run = await runLocalArchive(bed.local, { tables: ['public.reads'] }, { retryIntervalScale: 0 });

    // Assess: the lease item's GetItems, by function (there were 4 in export, 1 in each other step, before renew
    // returned the item). The two export still makes, for its two invocations (the second finds nothing left), come
    // later in its work.
    const { pk } = LeaseStore.stateKey('app', 'public.reads');
    const reads: Record<string, number> = {};
    for (const r of await bed.local.services.requestLog())
      if (r.service === 'dynamodb' && r.operation === 'GetItem' && r.leadingKeys?.includes(pk))
        reads[r.caller] = (reads[r.caller] ?? 0) + 1;
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(reads).toEqual({ lock: 1, export: 2 });
  });
});
