import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../../lambdas/delete/core.js';
import { exportBatch } from '../../../lambdas/export/core.js';
import type { ArchiveStore } from '../../../lambdas/shared/archive/store.js';
import {
  ArchiveIntegrityError,
  DeleteInProgressError,
  InvalidInputError,
  LeaseLostError,
  LockStoreUnavailableError,
  RowsChangedError,
  TableNotUsableError,
} from '../../../lambdas/shared/errors/step-errors.js';
import type { LeaseStore } from '../../../lambdas/shared/lock-table/lease-store.js';
import type { Lease } from '../../../lambdas/shared/lock-table/table-state.js';
import type { FaultPoint, StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../../lambdas/shared/step/table-task.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { verifyBatch } from '../../../lambdas/verify/core.js';
import { runLocalArchive } from '../../../local/run.js';
import { batchThrough } from '../../support/batch-stages.js';
import { COLUMN_CHANGES } from '../../support/column-changes.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  leasedTask,
  leaseStoreAt,
  metricRecorder,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';

const ZERO = { batches: 0, rows: 0, bytes: 0 };

describe('delete step', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'fenced', 600);
      await seedEvents(db.client, 'retried', 600);
      await seedEvents(db.client, 'twinned', 600);
      await seedEvents(db.client, 'recorded', 200);
      await seedEvents(db.client, 'answer_lost', 200);
      await seedEvents(db.client, 'changed_after_crash', 200);
      await seedEvents(db.client, 'rekeyed', 600);
      await seedEvents(db.client, 'replaced', 200);
      await seedEvents(db.client, 'reversioned', 200);
      await db.client.query(
        `ALTER TABLE rekeyed ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE`,
      );
      for (const { table } of COLUMN_CHANGES) await seedEvents(db.client, table, 400);
    },
    [
      spec('fenced'),
      spec('retried'),
      spec('twinned'),
      spec('recorded'),
      spec('answer_lost'),
      spec('changed_after_crash'),
      spec('rekeyed'),
      spec('replaced'),
      spec('reversioned'),
      ...COLUMN_CHANGES.map((change) => spec(change.table)),
    ],
  );

  it('refuses to delete for a holder whose lease was taken over, and the new holder finishes the batch', async () => {
    // Prepare: A verifies a batch, then its lease expires and B takes the table over.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('fenced'));
    const original = await tableLines(bed.db.client, table);
    const stale = (
      await batchThrough(deps, 'public.fenced', 'verified', { owner: 'exec-A', leaseSeconds: 60 })
    ).task;
    const takeover = await leaseStoreAt(bed.local, () => Date.now() + 3_600_000).acquire(
      'app',
      'public.fenced',
      'exec-B',
      7200,
    );
    if (!takeover.acquired) throw new Error('takeover failed');

    // Act
    const refused = deleteBatch({ ...stale, progress: ZERO }, deps);

    // Assess
    await expect(refused).rejects.toThrow(LeaseLostError);
    expect(await tableLines(bed.db.client, table)).toHaveLength(original.length);
    const task: TableTask = { ...stale, runId: 'exec-B', lease: takeover.lease as Lease };
    expect(await exportBatch(task, deps)).toMatchObject({ status: 'resumed' });
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const deleted = await deleteBatch({ ...task, progress: ZERO }, deps);
    expect(deleted.rowsDeleted).toBeGreaterThan(0);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it.each(COLUMN_CHANGES)(
    'takes a batch back whose table changed its columns after export ($ddl): no row leaves without its values',
    async ({ table: name, ddl }) => {
      // Prepare: a verified batch, then the column change, which keeps every row's ctid and xmin.
      const deps = bed.local.deps();
      const table = resolvedTable(spec(name));
      const { task } = await batchThrough(deps, `public.${name}`, 'verified', { owner: `exec-${name}` });
      await bed.db.client.query(`ALTER TABLE public.${name} ${ddl}`);
      const changed = await tableLines(bed.db.client, table);

      // Act
      const refused = deleteBatch({ ...task, progress: ZERO }, deps);

      // Assess: rolled back and withdrawn; the next batch archives the rows as they are now, every column in it.
      await expect(refused).rejects.toThrow(/columns changed since export/);
      expect(await tableLines(bed.db.client, table)).toEqual(changed);
      expect((await deps.locks.get('app', `public.${name}`)).inFlight).toBeUndefined();
      expect(await exportBatch(task, deps)).toMatchObject({ status: 'exported' });
      await uploadBatch(task, deps);
      await verifyBatch(task, deps);
      expect((await deleteBatch({ ...task, progress: ZERO }, deps)).rowsDeleted).toBeGreaterThan(0);
      await assertNoLossNoDuplicates(bed.local, bed.db.client, table, changed);
    },
  );

  it('refuses by name a table replaced by a materialized view after verify: nothing is locked or deleted', async () => {
    // Prepare: a verified batch, then the table is renamed away and a materialized view takes its name.
    const deps = bed.local.deps();
    const { task } = await batchThrough(deps, 'public.replaced', 'verified');
    await bed.db.client.query(
      `ALTER TABLE public.replaced RENAME TO replaced_away;
       CREATE MATERIALIZED VIEW public.replaced AS SELECT * FROM public.replaced_away`,
    );
    const rows = await bed.db.client.query<{ n: string }>('SELECT count(*) AS n FROM public.replaced_away');

    // Act
    const refused = deleteBatch({ ...task, progress: ZERO }, deps);

    // Assess: the step's error for a table it cannot use, naming what the relation is; every row still there.
    await expect(refused).rejects.toThrow(TableNotUsableError);
    await expect(refused).rejects.toThrow(/is a materialized view/);
    const after = await bed.db.client.query<{ n: string }>('SELECT count(*) AS n FROM public.replaced_away');
    expect(after.rows[0]?.n).toBe(rows.rows[0]?.n);
  });

  it('takes a batch back when the config names another key since export (a deployment during the run)', async () => {
    // Prepare: a verified batch keyed by id; then the config names the uuid key (its bounds cannot be read in it).
    const deps = bed.local.deps();
    const table = resolvedTable(spec('rekeyed'));
    const original = await tableLines(bed.db.client, table);
    const { task } = await batchThrough(deps, 'public.rekeyed', 'verified', { owner: 'exec-rekeyed' });
    const config = structuredClone(deps.config);
    const entry = config.databases[0]?.tables.find((t) => t.name === 'rekeyed');
    if (!entry) throw new Error('rekeyed is not configured');
    entry.keyColumns = ['uid'];
    const redeployed = { ...deps, config };

    // Act
    const refused = deleteBatch({ ...task, progress: ZERO }, redeployed);

    // Assess: rolled back and withdrawn, saying why; the next batch reads the table by the new key.
    await expect(refused).rejects.toThrow(/read otherwise .*key \(id\) is now \(uid\)/);
    expect(await tableLines(bed.db.client, table)).toEqual(original);
    expect((await deps.locks.get('app', 'public.rekeyed')).inFlight).toBeUndefined();
    expect(await exportBatch(task, redeployed)).toMatchObject({ status: 'exported' });
    await uploadBatch(task, redeployed);
    await verifyBatch(task, redeployed);
    expect((await deleteBatch({ ...task, progress: ZERO }, redeployed)).rowsDeleted).toBeGreaterThan(0);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('in a bucket that keeps versions, an archive put again after verify with the same ETag stops the delete: the version pinned is no longer the current one', async () => {
    // Prepare: a bucket that keeps versions, as the S3 HEAD and GET report them (the local S3 server keeps none, so
    // the version each reports is set here): verify pins each archive at version-1. Then every archive is put again,
    // with the same bytes (so the same ETag), as version-2: the object verify read is no longer the current one.
    const base = bed.local.deps();
    const versions = new Map<string, string>();
    const versioned = (pin: { etag: string } | undefined, key: string) => {
      const versionId = versions.get(key);
      return pin && versionId ? { ...pin, versionId } : pin;
    };
    const store = Object.create(base.store) as ArchiveStore;
    store.head = async (key) => {
      const head = await base.store.head(key);
      return head && { ...head, pin: versioned(head.pin, key) };
    };
    store.open = async (key, pin) => {
      const opened = await base.store.open(key, pin);
      return opened && { ...opened, pin: versioned(opened.pin, key) };
    };
    const deps: StepDeps = { ...base, store };
    const table = resolvedTable(spec('reversioned'));
    const original = await tableLines(bed.db.client, table);
    const task = await leasedTask(bed.local, 'public.reversioned', 'exec-reversioned');
    expect(await exportBatch(task, deps)).toMatchObject({ status: 'exported' });
    const keys = ((await deps.locks.get('app', 'public.reversioned')).inFlight?.objects ?? []).map(
      (object) => object.archiveKey,
    );
    for (const key of keys) versions.set(key, 'version-1');
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const verified = (await deps.locks.get('app', 'public.reversioned')).inFlight;
    expect(verified?.objects.map((object) => object.pin?.versionId)).toEqual(keys.map(() => 'version-1'));
    for (const key of keys) versions.set(key, 'version-2');

    // Act
    const refused = deleteBatch({ ...task, progress: ZERO }, deps);

    // Assess: rolled back and withdrawn, naming the version; every row still in the table.
    await expect(refused).rejects.toThrow(ArchiveIntegrityError);
    await expect(refused).rejects.toThrow(/object is another version/);
    expect(await tableLines(bed.db.client, table)).toEqual(original);
    expect((await deps.locks.get('app', 'public.reversioned')).inFlight).toBeUndefined();
  });

  it('a retry after a commit whose acknowledgement was lost deletes nothing more and counts the batch once', async () => {
    // Prepare
    const crashAfterCommit = (point: FaultPoint) => {
      if (point === 'delete:afterCommit') throw new Error('connection lost after COMMIT');
    };
    const table = resolvedTable(spec('retried'));
    const original = await tableLines(bed.db.client, table);
    const task = (
      await batchThrough(bed.local.deps(), 'public.retried', 'verified', {
        owner: 'exec-C',
        leaseSeconds: 60,
      })
    ).task;
    await expect(deleteBatch({ ...task, progress: ZERO }, bed.local.deps(crashAfterCommit))).rejects.toThrow(
      /connection lost/,
    );
    const afterCrash = await tableLines(bed.db.client, table);
    const { inFlight } = await bed.local.deps().locks.get('app', 'public.retried');

    // Act: the retry runs later; the batch is recorded as committed when its delete was
    const later = { ...bed.local.deps(), now: () => new Date(Date.now() + 30_000) };
    const retried = await deleteBatch({ ...task, progress: ZERO }, later);

    // Assess
    expect(retried.rowsDeleted).toBe(original.length - afterCrash.length);
    expect(await tableLines(bed.db.client, table)).toHaveLength(afterCrash.length);
    const state = await bed.local.deps().locks.get('app', 'public.retried');
    expect(state).toMatchObject({ inFlight: undefined, totalBatches: 1, totalRows: retried.rowsDeleted });
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    const keys = inFlight?.objects.map((object) => object.archiveKey) ?? [];
    const entries = await bed.local.deps().inventory.entries('app', 'public.retried', keys);
    expect(inFlight?.deleteAt).toBeDefined();
    expect([...entries.values()].map((entry) => entry.committedAt)).toEqual(
      keys.map(() => inFlight?.deleteAt),
    );
  });

  it('a duplicate that finds its twin deleted the rows neither counts RowsChanged nor withdraws: it waits, then answers with the batch', async () => {
    // Prepare: invocation A, its DELETE holding the rows, starts its twin B just before it records `deleting`; B reads
    // the batch as verified and its DELETE waits on A's row locks. A then commits and stops before recording.
    const table = resolvedTable(spec('twinned'));
    const original = await tableLines(bed.db.client, table);
    const base = bed.local.deps();
    const { task } = await batchThrough(base, 'public.twinned', 'verified');
    const input = { ...task, progress: ZERO };
    const twinMetrics = metricRecorder();
    let twin: Promise<unknown> | undefined;
    const locksA = Object.create(base.locks) as LeaseStore;
    locksA.setInFlight = async (...args: Parameters<LeaseStore['setInFlight']>) => {
      if (!twin) {
        twin = deleteBatch(input, twinMetrics.wrap(bed.local.deps())).catch((error: unknown) => error);
        await waitForLockWait(bed.db.client, 'twinned');
      }
      return base.locks.setInFlight(...args);
    };
    let twinSettled: unknown;
    const pauseAfterCommit = async (point: FaultPoint) => {
      if (point === 'delete:afterCommit') twinSettled = await twin;
    };
    const first: StepDeps = { ...bed.local.deps(pauseAfterCommit), locks: locksA };

    // Act
    const deleted = await deleteBatch(input, first);
    const retried = await deleteBatch(input, bed.local.deps());

    // Assess: the twin saw the batch being deleted (retried by the state machine), and its retry answers with the
    // batch A committed; nothing was withdrawn or counted as changed, no row lost or doubled.
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'a delete invoked twice at once: the second finds the rows its twin deleted',
      held: twinSettled instanceof DeleteInProgressError && twinMetrics.count('RowsChanged') === 0,
    });
    expect(twinSettled).toBeInstanceOf(DeleteInProgressError);
    expect(twinMetrics.count('RowsChanged')).toBe(0);
    expect(retried).toEqual({
      objects: deleted.objects,
      rowsDeleted: deleted.rowsDeleted,
      progress: {
        batches: 1,
        rows: deleted.rowsDeleted,
        bytes: deleted.progress.bytes,
        rowsPerSecond: 0,
        pauseSeconds: 0,
      },
    });
    const state = await base.locks.get('app', 'public.twinned');
    expect(state).toMatchObject({ inFlight: undefined, totalBatches: 1, totalRows: deleted.rowsDeleted });
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('a retry after its batch was recorded answers with that batch under its own lease only', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task } = await batchThrough(deps, 'public.recorded', 'verified', {
      owner: 'exec-D',
      leaseSeconds: 60,
    });
    const deleted = await deleteBatch({ ...task, progress: ZERO }, deps);

    // Act
    const retried = await deleteBatch({ ...task, progress: ZERO }, deps);
    await deps.locks.release('app', 'public.recorded', task.lease);
    const other = await deps.locks.acquire('app', 'public.recorded', 'exec-E', 60);
    if (!other.acquired) throw new Error('acquire failed');
    const foreign = deleteBatch({ ...task, lease: other.lease, progress: ZERO }, deps);

    // Assess: the batch's figures; its rate and pause were the first answer's to act on.
    const { batches, rows, bytes } = deleted.progress;
    expect(retried).toEqual({
      ...deleted,
      progress: { batches, rows, bytes, rowsPerSecond: 0, pauseSeconds: 0 },
    });
    await expect(foreign).rejects.toThrow(InvalidInputError);
  });

  it('in the state machine, a delete retried after its batch was recorded (the answer lost) carries the run on', async () => {
    // Prepare: the first recording of a committed batch applies, and its answer is lost (the step fails, retried).
    const table = resolvedTable(spec('answer_lost'));
    const original = await tableLines(bed.db.client, table);
    let lost = false;
    const loseFirstAnswer = (deps: StepDeps): StepDeps => {
      const locks = Object.create(deps.locks) as LeaseStore;
      locks.clearInFlight = async (...args: Parameters<LeaseStore['clearInFlight']>) => {
        await deps.locks.clearInFlight(...args);
        if (args[4] && !lost) {
          lost = true;
          throw new LockStoreUnavailableError('the recording applied; its answer was lost');
        }
      };
      return { ...deps, locks };
    };

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.answer_lost'] },
      { deps: loseFirstAnswer, retryIntervalScale: 0 },
    );

    // Assess
    expect(lost).toBe(true);
    expect(run.execution.status).toBe('SUCCEEDED');
    const state = await bed.local.deps().locks.get('app', 'public.answer_lost');
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: state.totalRows });
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('a retry after an attempt that died before COMMIT, of rows changed since, is RowsChanged: no twin is waited for', async () => {
    // Prepare: the attempt recorded `deleting` and died before COMMIT; then a row of the batch changes.
    const crashBeforeCommit = (point: FaultPoint) => {
      if (point === 'delete:beforeCommit') throw new Error('died before COMMIT');
    };
    const { task } = await batchThrough(bed.local.deps(), 'public.changed_after_crash', 'verified');
    const input = { ...task, progress: ZERO };
    await expect(deleteBatch(input, bed.local.deps(crashBeforeCommit))).rejects.toThrow(/died before COMMIT/);
    await bed.db.client.query(
      `UPDATE public.changed_after_crash SET actor = 'changed' WHERE id = (SELECT min(id) FROM public.changed_after_crash)`,
    );
    const metrics = metricRecorder();

    // Act
    const retried = deleteBatch(input, metrics.wrap(bed.local.deps()));

    // Assess
    await expect(retried).rejects.toThrow(RowsChangedError);
    expect(metrics.count('RowsChanged')).toBe(1);
    expect((await bed.local.deps().locks.get('app', 'public.changed_after_crash')).inFlight).toBeUndefined();
  });
});

/** Waits until a session's DELETE on `table` waits for a lock. */
async function waitForLockWait(client: pg.Client, table: string): Promise<void> {
  for (let i = 0; i < 400; i += 1) {
    const waiting = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query ILIKE '%DELETE FROM%' || $1 || '%'`,
      [table],
    );
    if ((waiting.rows[0]?.n ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no DELETE on ${table} waited for a lock`);
}
