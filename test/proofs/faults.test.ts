import { describe, expect, it } from 'vitest';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { type LocalRunResult, runLocalArchive, type WorkflowOptions } from '../../local/run.js';
import type { FunctionName, StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  cutoffSql,
  expireLease,
  listKeys,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { PROOF_SEED, PROOF_SOAK, recordProof, seededRandom } from '../support/proof-ledger.js';

class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

/**
 * Where a run is interrupted: at a fault point inside a step (the cores call deps.fault there), or between two steps
 * (after a function finished its work, before the state machine moves on), or by losing the lease between verify
 * and delete to another execution. Each case crashes the `crashAt`-th time its place is reached.
 */
type FaultCase =
  | { name: string; point: FaultPoint }
  | { name: string; after: FunctionName }
  | { name: string; takeoverAfter: 'verify' };

const FAULT_CASES: FaultCase[] = [
  { name: 'export, mid-stream', point: 'export:midStream' },
  { name: 'export, staged, before its record', point: 'export:afterStaging' },
  { name: 'between export and upload', after: 'export' },
  { name: 'upload, copied, before the manifest', point: 'upload:afterCopy' },
  { name: 'upload, manifest written, before its record', point: 'upload:afterManifest' },
  { name: 'between upload and verify', after: 'upload' },
  { name: 'verify, object read, before its figures are compared', point: 'verify:afterRead' },
  { name: 'between verify and delete', after: 'verify' },
  { name: 'delete, inside the transaction before COMMIT', point: 'delete:beforeCommit' },
  { name: 'delete, committed, before progress is recorded', point: 'delete:afterCommit' },
  { name: 'between delete and the next batch', after: 'delete' },
  { name: 'lease taken over between verify and delete', takeoverAfter: 'verify' },
];

const ITERATIONS = PROOF_SOAK;
const random = seededRandom(PROOF_SEED);
/** Which occurrence of its place each crash hits, 1 to 4 (a table has 5 eligible days, one batch each). */
const crashAt = FAULT_CASES.map(() => Array.from({ length: ITERATIONS }, () => 1 + Math.floor(random() * 4)));
const tableName = (c: number, i: number) => `fault_${c}_${i}`;
const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
const CONCURRENT = 4;
const sharedTables = Array.from({ length: CONCURRENT }, (_, n) => `shared_${n}`);

describe(`zero data loss under faults, on the real local workflow (seed ${PROOF_SEED}, ×${ITERATIONS})`, () => {
  const bed = archiverTestbed(
    async (db) => {
      // 35 days of rows, 20 a day: 5 eligible days (5 batches) and 30 days that stay.
      for (const [c] of FAULT_CASES.entries())
        for (let i = 0; i < ITERATIONS; i++) await seedEvents(db.client, tableName(c, i), 700, 35);
      for (const name of sharedTables) await seedEvents(db.client, name, 700, 35);
    },
    [
      ...FAULT_CASES.flatMap((_, c) => Array.from({ length: ITERATIONS }, (_, i) => spec(tableName(c, i)))),
      ...sharedTables.map(spec),
    ],
  );

  /** The options that make a run crash at the case's place, the `at`-th time it is reached. */
  function injection(
    faultCase: FaultCase,
    ref: string,
    at: number,
  ): { options: WorkflowOptions; fired: () => boolean } {
    let seen = 0;
    let fired = false;
    const reached = () => {
      seen += 1;
      fired = seen === at;
      return fired;
    };
    if ('point' in faultCase) {
      const fault = (point: FaultPoint) => {
        if (point === faultCase.point && !fired && reached()) throw new InjectedCrash(`crash at ${point}`);
      };
      return { options: { fault }, fired: () => fired };
    }
    const after = 'after' in faultCase ? faultCase.after : faultCase.takeoverAfter;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== after || fired) return;
      // The last export of a run finds nothing: it starts no batch, so it is no place to crash.
      if ((event.result as { status?: string } | undefined)?.status === 'empty') return;
      if (!reached()) return;
      if ('after' in faultCase) throw new InjectedCrash(`crash after ${after}`);
      // Another execution takes the table over: this run's lease expires and the other one acquires it.
      await expireLease(bed.local, 'app', ref);
      const takeover = await bed.local.deps().locks.acquire('app', ref, 'takeover-execution', 3600);
      if (!takeover.acquired) throw new Error('the takeover did not get the lease');
    };
    return { options: { afterStep }, fired: () => fired };
  }

  const cases = FAULT_CASES.flatMap((faultCase, c) =>
    Array.from({ length: ITERATIONS }, (_, i) => ({
      faultCase,
      c,
      i,
      at: crashAt[c]?.[i] ?? 1,
      label: `${faultCase.name} (iteration ${i + 1}, batch ${crashAt[c]?.[i] ?? 1})`,
    })),
  );

  for (const { faultCase, c, i, at, label } of cases) {
    it(`${label}: no row lost or doubled, before and after a re-run`, async () => {
      // Prepare
      const name = tableName(c, i);
      const ref = `public.${name}`;
      const table = resolvedTable(spec(name));
      const original = await tableLines(bed.db.client, table);
      const { options, fired } = injection(faultCase, ref, at);
      const errors: string[] = [];
      const onStep = (event: StepEvent) => {
        if (event.error) errors.push(`${event.functionName}:${event.error.name}`);
      };

      // Act
      const crashed = await runLocalArchive(
        bed.local,
        { tables: [ref] },
        { ...options, onStep, retryIntervalScale: 0 },
      );
      const between = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      const staged = await listKeys(bed.local, `archive/_staging/app/public.${name}/`);
      if ('takeoverAfter' in faultCase) await expireLease(bed.local, 'app', ref);
      const rerun: LocalRunResult = await runLocalArchive(
        bed.local,
        { tables: [ref] },
        { retryIntervalScale: 0 },
      );
      const after = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);

      // Assess
      expect(fired()).toBe(true);
      expect(crashed.execution.status).toBe('FAILED');
      if ('takeoverAfter' in faultCase) {
        // The old holder's delete is refused (its transaction rolls back), nothing else of it runs.
        expect(errors).toEqual(['delete:LeaseLostError']);
        expect(crashed.outcomes[0]?.error).toMatch(
          /^LeaseLostError: lease on app\/public\.fault_\d+_\d+ is no longer held/,
        );
      } else {
        expect(crashed.outcomes[0]).toMatchObject({
          status: 'failed',
          error: expect.stringMatching(/^InjectedCrash: /),
        });
      }
      // Cut short mid-stream, the staging upload never completed.
      if ('point' in faultCase && faultCase.point === 'export:midStream') expect(staged).toEqual([]);
      expect(rerun.execution.status).toBe('SUCCEEDED');
      expect(after.inArchives).toBeGreaterThanOrEqual(between.inArchives);
      const stillOld = await bed.db.client.query(
        `SELECT count(*)::int AS n FROM public.${name} WHERE created_at < ${cutoffSql()}`,
      );
      expect(stillOld.rows[0].n).toBe(0);
      expect(after.inDatabase).toBeGreaterThan(500);
      recordProof({ kind: 'fault', point: faultCase.name, iteration: i });
    });
  }

  it(`${CONCURRENT} simultaneous executions on the same ${CONCURRENT} tables: each table is archived exactly once`, async () => {
    // Prepare: slow each export down, so that all executions are in flight together.
    const tables = sharedTables.map((n) => `public.${n}`);
    const originals: string[][] = [];
    for (const n of sharedTables) originals.push(await tableLines(bed.db.client, resolvedTable(spec(n))));
    const fault = async (point: FaultPoint) => {
      if (point === 'export:afterStaging') await new Promise((resolve) => setTimeout(resolve, 50));
    };

    // Act
    const runs = await Promise.all(
      Array.from({ length: CONCURRENT }, () =>
        runLocalArchive(bed.local, { tables }, { fault, retryIntervalScale: 0 }),
      ),
    );

    // Assess: per table, one execution archived its rows; each other one found it locked (or, having started
    // after the first finished, found nothing left).
    for (const run of runs) expect(run.execution.status).toBe('SUCCEEDED');
    for (const [n, name] of sharedTables.entries()) {
      const outcomes = runs.map((run) => run.outcomes.find((o) => o.table === `public.${name}`));
      const archivers = outcomes.filter((o) => (o?.rowsArchived ?? 0) > 0);
      expect(archivers).toHaveLength(1);
      expect(outcomes.filter((o) => o?.status === 'skipped').length).toBeGreaterThanOrEqual(1);
      for (const o of outcomes) expect(o?.status === 'skipped' || o?.status === 'succeeded').toBe(true);
      const counts = await assertNoLossNoDuplicates(
        bed.local,
        bed.db.client,
        resolvedTable(spec(name)),
        originals[n] ?? [],
      );
      expect(archivers[0]?.rowsArchived).toBe(counts.inArchives);
    }
    recordProof({ kind: 'fault', point: `${CONCURRENT} concurrent executions`, iteration: 0 });
  });
});
