import { describe, expect, it } from 'vitest';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  cutoffSql,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';

const spec = { schema: 'public', name: 'hot', timestampColumn: 'created_at' };

/**
 * The application updates an old row of every batch between export and delete (a "last seen" column on old audit
 * rows, say). Every batch is rolled back and withdrawn, and the state machine goes on until the batch budget is spent:
 * a run that made no progress that way fails the table with the last withdrawal's RowsChangedError, so the run fails
 * and its alarm fires, where a table released as succeeded would hide it for ever.
 */
describe('a table whose every batch is withdrawn because the application changes its rows', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'hot', 120), [spec], {
    defaults: { maxBatchesPerRun: 3 },
  });

  it('fails the table and the run, naming RowsChangedError, when every batch of the budget was withdrawn', async () => {
    // Prepare
    const table = resolvedTable(spec);
    const fault = async (point: FaultPoint) => {
      if (point !== 'verify:afterRead') return;
      await bed.db.client.query(
        `UPDATE public.hot SET actor = actor || '.' WHERE id = (SELECT min(id) FROM public.hot)`,
      );
    };

    // Act
    const run = await runLocalArchive(bed.local, {}, { fault, retryIntervalScale: 0 });
    const expected = await tableLines(bed.db.client, table);
    const left = (
      await bed.db.client.query(`SELECT count(*)::int AS n FROM public.hot WHERE created_at < ${cutoffSql()}`)
    ).rows[0].n as number;

    // Assess
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, expected);
    expect(left).toBeGreaterThan(0);
    expect(run.outcomes[0]).toMatchObject({
      status: 'failed',
      rowsArchived: 0,
      batches: 0,
      withdrawnBatches: 3,
      budgetReached: true,
    });
    expect(run.outcomes[0]?.error).toMatch(
      /^RowsChangedError: rows of app\/public\.hot changed after verification/,
    );
    expect(run.execution.status).toBe('FAILED');
  });
});

describe('a table whose one batch of a run is withdrawn (a budget of one)', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'late', 120), [{ ...spec, name: 'late' }], {
    defaults: { maxBatchesPerRun: 1 },
  });

  it('succeeds with nothing archived: one late update is no stuck table, and the next run gets past it', async () => {
    // Prepare: the application updates a row of the run's only batch once
    let updated = false;
    const fault = async (point: FaultPoint) => {
      if (point !== 'verify:afterRead' || updated) return;
      updated = true;
      await bed.db.client.query(
        `UPDATE public.late SET actor = actor || '.' WHERE id = (SELECT min(id) FROM public.late)`,
      );
    };

    // Act
    const withdrawn = await runLocalArchive(bed.local, {}, { fault, retryIntervalScale: 0 });
    const next = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(withdrawn.outcomes[0]).toMatchObject({
      status: 'succeeded',
      rowsArchived: 0,
      batches: 0,
      withdrawnBatches: 1,
    });
    expect(withdrawn.execution.status).toBe('SUCCEEDED');
    expect(next.outcomes[0]?.rowsArchived).toBeGreaterThan(0);
  });
});
