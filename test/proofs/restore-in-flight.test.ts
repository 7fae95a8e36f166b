import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import { exportBatch } from '../../lambdas/export/core.js';
import { uploadBatch } from '../../lambdas/upload/core.js';
import { verifyBatch } from '../../lambdas/verify/core.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  leasedTask,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';
import { deferred } from './at-least-once/support.js';

const ZERO = { batches: 0, rows: 0, bytes: 0 };
const spec = { schema: 'public', name: 'busy', timestampColumn: 'created_at', batchSize: 40 };
const table = resolvedTable(spec);

/**
 * A restore into the archived table while a batch of it is in flight (exported, uploaded and verified, not yet
 * deleted). That batch's archives are already under their final keys, but their rows were never deleted: the table
 * holds them as the application has them now. The restore leaves them out (plan and list steps read the batch in
 * flight after listing), so it neither writes the exported copy over a row the application updated since nor brings
 * back one it deleted; the committed archives are restored as ever.
 */
describe('restore while a batch of the table is in flight', () => {
  const settled = { ...spec, name: 'settled' };
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'busy', 120);
      await seedEvents(db.client, 'settled', 120);
    },
    [spec, settled],
    { defaults: { maxBatchesPerRun: 1 } },
  );

  it('restores the committed archives only, and the application’s changes to the batch in flight survive', async () => {
    // Prepare: one batch committed by a run, the next one verified and not deleted
    const first = await runLocalArchive(bed.local, { tables: ['public.busy'] }, { retryIntervalScale: 0 });
    const committed = await readLiveArchives(bed.local, 'public', 'busy');
    const deps = bed.local.deps();
    const task = await leasedTask(bed.local, 'public.busy', 'exec-in-flight');
    await exportBatch({ ...task, progress: ZERO }, deps);
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const inFlight =
      (await deps.locks.get('app', 'public.busy')).inFlight?.objects.map((o) => o.archiveKey) ?? [];
    // The application updates one row of the batch and deletes another: this is now the truth
    await bed.db.client.query(`
      UPDATE public.busy SET actor = 'edited-by-app' WHERE id = (SELECT min(id) FROM public.busy);
      DELETE FROM public.busy WHERE id = (SELECT min(id) + 1 FROM public.busy);`);
    const expected = [...(await tableLines(bed.db.client, table)), ...committed.flatMap((a) => a.lines)];

    // Act: a restore of the whole table into it with overwrite, then the run's delete and the next run
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.busy', strategy: 'overwrite' },
      { retryIntervalScale: 0 },
    );
    const deleted = await deleteBatch({ ...task, progress: ZERO }, deps).then(
      () => 'deleted',
      (error: Error) => error.name,
    );
    await deps.locks.release('app', 'public.busy', task.lease);
    for (let run = 0; run < 5; run += 1)
      await runLocalArchive(bed.local, { tables: ['public.busy'] }, { retryIntervalScale: 0 });
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, expected).catch(
      (error: Error) => error,
    );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores the archived table while a batch of it is verified, not deleted, and the application changes its rows',
      held: !(counts instanceof Error),
    });

    // Assess
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(inFlight.length).toBeGreaterThan(0);
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(restored.results.map((r) => r.key).sort()).toEqual(committed.map((a) => a.key).sort());
    expect((restored.execution.output as { warnings?: string[] }).warnings).toContainEqual(
      `${inFlight.length} archive(s) of the batch the source table had in flight when the restore was planned were left out: their rows were still in the source table, not yet deleted; restore again once the archive run has committed them`,
    );
    expect(deleted).toBe('RowsChangedError');
    if (counts instanceof Error) throw counts;
  });

  it('refuses a restore whose only archives belong to the batch in flight, writing nothing', async () => {
    // Prepare: rows written late into an archived day, their batch verified, not deleted
    await bed.db.client.query(`
      INSERT INTO public.busy (created_at, actor, payload)
      SELECT ${TODAY_UTC_SQL} - interval '50 days' + g * interval '1 minute', 'late', '{}' FROM generate_series(1, 10) g`);
    const deps = bed.local.deps();
    const task = await leasedTask(bed.local, 'public.busy', 'exec-only-in-flight');
    await exportBatch({ ...task, progress: ZERO }, deps);
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const [object] = (await deps.locks.get('app', 'public.busy')).inFlight?.objects ?? [];
    if (!object) throw new Error('setup: no batch in flight');

    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.busy', mode: 'key', key: object.archiveKey },
      { retryIntervalScale: 0 },
    );
    await deleteBatch({ ...task, progress: ZERO }, deps);
    await deps.locks.release('app', 'public.busy', task.lease);

    // Assess
    expect(restored.execution.status).toBe('FAILED');
    expect(restored.execution.error?.name).toBe('ConfigError');
    expect(restored.execution.error?.message).toBe(
      'the only archive(s) of "public"."busy" selected (1) belong to the batch it has in flight: their rows are still in the source table, not yet deleted; nothing to restore',
    );
    expect(restored.results).toEqual([]);
  });

  it('waits for a batch whose delete committed but was not yet recorded, then restores it once the run records it', async () => {
    // Prepare: one batch committed by a run, then a second whose delete commits and crashes before it is recorded
    // (the inventory write comes after COMMIT): in flight, stage deleting, its rows gone from the table
    const sourceTable = resolvedTable(settled);
    const original = await tableLines(bed.db.client, sourceTable);
    await runLocalArchive(bed.local, { tables: ['public.settled'] }, { retryIntervalScale: 0 });
    const crashing = bed.local.deps(async (point) => {
      if (point === 'delete:afterCommit') throw new Error('crash after COMMIT');
    });
    const task = await leasedTask(bed.local, 'public.settled', 'exec-deleting');
    await exportBatch({ ...task, progress: ZERO }, crashing);
    await uploadBatch(task, crashing);
    await verifyBatch(task, crashing);
    const crashed = await deleteBatch({ ...task, progress: ZERO }, crashing).then(
      () => 'committed and recorded',
      (error: Error) => error.message,
    );
    const stage = (await crashing.locks.get('app', 'public.settled')).inFlight?.stage;
    await crashing.locks.release('app', 'public.settled', task.lease);
    const request = { database: 'app', table: 'public.settled', targetTable: 'public.settled_copy' };

    // Act: a restore of the whole table into a new table, then the next run, then the restore again
    const waiting = await runLocalRestore(bed.local, request, { retryIntervalScale: 0 });
    const run = await runLocalArchive(bed.local, { tables: ['public.settled'] }, { retryIntervalScale: 0 });
    const restored = await runLocalRestore(bed.local, request, { retryIntervalScale: 0 });
    const copied = await tableLines(bed.db.client, resolvedTable({ ...settled, name: 'settled_copy' }));
    const left = await tableLines(bed.db.client, sourceTable);

    // Assess: every row is in the table or in the copy, once
    expect(crashed).toBe('crash after COMMIT');
    expect(stage).toBe('deleting');
    expect(waiting.execution.status).toBe('FAILED');
    expect(waiting.execution.error?.name).toBe('DeleteInProgressError');
    expect(waiting.execution.error?.message).toContain(
      'its delete step ended before recording its archives as committed: run the table’s archive'.replace(
        '’',
        "'",
      ),
    );
    expect(waiting.results).toEqual([]);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect([...copied, ...left].sort()).toEqual([...original].sort());
  });
});

/**
 * A restore into the archived table while export's COPY of the next batch is streaming (paused after its first row):
 * the restored rows are of the days the batch reads, but not in its snapshot nor in its key ranges, which were cut
 * before. The batch must commit only its own rows, and the restored rows be archived again by a later run.
 */
describe('restore into the archived table while export streams the next batch', () => {
  const streaming = { schema: 'public', name: 'streaming', timestampColumn: 'created_at', batchSize: 25 };
  const sourceTable = resolvedTable(streaming);
  // 20 rows a day (19 on the first), 5 days past the cut-off: the first batch ends 6 rows into the second day.
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'streaming', 700, 35), [streaming], {
    defaults: { maxBatchesPerRun: 1 },
  });

  it('commits the batch with its own rows only; later runs archive the restored rows again, each row in one archive', async () => {
    // Prepare: the first batch committed; the next one's export paused mid-stream.
    const original = await tableLines(bed.db.client, sourceTable);
    const fast = { retryIntervalScale: 0 };
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const committed = await readLiveArchives(bed.local, 'public', 'streaming');
    const task = await leasedTask(bed.local, 'public.streaming', 'exec-streaming');
    const paused = deferred();
    const resume = deferred();
    const exporting = exportBatch(
      { ...task, progress: ZERO },
      bed.local.deps(async (at) => {
        if (at === 'export:midStream') {
          paused.resolve();
          await resume.promise;
        }
      }),
    );
    const reached = await Promise.race([paused.promise.then(() => 'paused'), exporting]);
    if (reached !== 'paused') throw new Error('setup: export did not stream');

    // Act: the whole table restored into it meanwhile; then the batch goes on, and later runs.
    const restored = await runLocalRestore(bed.local, { database: 'app', table: 'public.streaming' }, fast);
    resume.resolve();
    await exporting;
    const deps = bed.local.deps();
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const deleted = await deleteBatch({ ...task, progress: ZERO }, deps).then(
      () => 'deleted',
      (error: Error) => `${error.name}: ${error.message}`,
    );
    await deps.locks.release('app', 'public.streaming', task.lease);
    for (let run = 0; run < 6; run += 1) await runLocalArchive(bed.local, {}, fast);
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, sourceTable, original).catch(
      (error: Error) => error,
    );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: "restores into the archived table while export's COPY of the next batch is streaming",
      held: deleted === 'deleted' && !(counts instanceof Error),
    });

    // Assess
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(restored.results.reduce((n, r) => n + r.inserted, 0)).toBe(
      committed.flatMap((a) => a.lines).length,
    );
    expect(deleted).toBe('deleted');
    if (counts instanceof Error) throw counts;
    expect((await readLiveArchives(bed.local, 'public', 'streaming')).map((a) => a.key)).toEqual(
      expect.arrayContaining(committed.map((a) => a.key)),
    );
  });
});
