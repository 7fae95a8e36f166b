import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../../lambdas/delete/core.js';
import { exportBatch } from '../../../lambdas/export/core.js';
import { LeaseLostError } from '../../../lambdas/shared/errors/step-errors.js';
import type { Lease } from '../../../lambdas/shared/lock-table/table-state.js';
import type { FaultPoint } from '../../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../../lambdas/shared/step/table-task.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { verifyBatch } from '../../../lambdas/verify/core.js';
import { batchThrough } from '../../support/batch-stages.js';
import { COLUMN_CHANGES } from '../../support/column-changes.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  leaseStoreAt,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../../support/fixtures.js';

const ZERO = { batches: 0, rows: 0, bytes: 0 };

describe('delete step', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'fenced', 600);
      await seedEvents(db.client, 'retried', 600);
      await seedEvents(db.client, 'rekeyed', 600);
      await db.client.query(
        `ALTER TABLE rekeyed ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE`,
      );
      for (const { table } of COLUMN_CHANGES) await seedEvents(db.client, table, 400);
    },
    [spec('fenced'), spec('retried'), spec('rekeyed'), ...COLUMN_CHANGES.map((change) => spec(change.table))],
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

    // Act
    const retried = await deleteBatch({ ...task, progress: ZERO }, bed.local.deps());

    // Assess
    expect(retried.rowsDeleted).toBe(original.length - afterCrash.length);
    expect(await tableLines(bed.db.client, table)).toHaveLength(afterCrash.length);
    const state = await bed.local.deps().locks.get('app', 'public.retried');
    expect(state).toMatchObject({ inFlight: undefined, totalBatches: 1, totalRows: retried.rowsDeleted });
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });
});
