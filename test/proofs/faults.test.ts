import { describe, expect, it } from 'vitest';
import type { BatchObject } from '../../lambdas/shared/lock-table/table-state.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { type LocalRunResult, runLocalArchive, type WorkflowOptions } from '../../local/run.js';
import type { FunctionName, StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  expireLease,
  fixedCutoffSql,
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
 * and delete to another execution. Each case crashes the `crashAt`-th time its place is reached; with `endsMidDay`,
 * only places in a batch whose last object ends mid-day count (the next batch must start at a key of that day).
 */
type FaultCase =
  | { name: string; point: FaultPoint; endsMidDay?: true }
  | { name: string; after: FunctionName }
  | { name: string; takeoverAfter: 'verify' };

const FAULT_CASES: FaultCase[] = [
  { name: 'export, mid-stream', point: 'export:midStream' },
  { name: 'export, between two objects of the batch', point: 'export:betweenObjects' },
  { name: 'export, staged, before its record', point: 'export:afterStaging' },
  { name: 'between export and upload', after: 'export' },
  { name: 'upload, copied, before the manifest', point: 'upload:afterCopy' },
  { name: 'upload, manifest written, before its record', point: 'upload:afterManifest' },
  { name: 'between upload and verify', after: 'upload' },
  { name: 'verify, object read, before its figures are compared', point: 'verify:afterRead' },
  { name: 'between verify and delete', after: 'verify' },
  { name: 'delete, inside the transaction after its DELETE', point: 'delete:afterDelete' },
  { name: 'delete, inside the transaction before COMMIT', point: 'delete:beforeCommit' },
  { name: 'delete, committed, before progress is recorded', point: 'delete:afterCommit' },
  {
    name: 'delete of a batch that ends mid-day, committed, before progress is recorded',
    point: 'delete:afterCommit',
    endsMidDay: true,
  },
  { name: 'between delete and the next batch', after: 'delete' },
  { name: 'lease taken over between verify and delete', takeoverAfter: 'verify' },
];

const ITERATIONS = PROOF_SOAK;
const random = seededRandom(PROOF_SEED);
/**
 * Batches of 25 rows, between one and two days' rows: a table's 99 eligible rows make 4 batches of two days each;
 * the first 3 end mid-day, the last at the cut-off.
 */
const BATCH_SIZE = 25;
/** How many batches a case's place occurs in: 4, or the 3 that end mid-day. */
const places = (faultCase: FaultCase) => ('endsMidDay' in faultCase && faultCase.endsMidDay ? 3 : 4);
/** Which occurrence of its place each crash hits, 1 to its number of places. */
const crashAt = FAULT_CASES.map((faultCase) =>
  Array.from({ length: ITERATIONS }, () => 1 + Math.floor(random() * places(faultCase))),
);
const tableName = (c: number, i: number) => `fault_${c}_${i}`;
const spec = (name: string, batchSize?: number) => ({
  schema: 'public',
  name,
  timestampColumn: 'created_at',
  ...(batchSize ? { batchSize } : {}),
});
const CONCURRENT = 4;
const sharedTables = Array.from({ length: CONCURRENT }, (_, n) => `shared_${n}`);

describe(`zero data loss under faults, on the real local workflow (seed ${PROOF_SEED}, ×${ITERATIONS})`, () => {
  const bed = archiverTestbed(
    async (db) => {
      // 35 days of rows, 20 a day (19 on the first): 5 eligible days (99 rows, 4 batches) and 30 days that stay.
      for (const [c] of FAULT_CASES.entries())
        for (let i = 0; i < ITERATIONS; i++) await seedEvents(db.client, tableName(c, i), 700, 35);
      for (const name of sharedTables) await seedEvents(db.client, name, 700, 35);
    },
    [
      ...FAULT_CASES.flatMap((_, c) =>
        Array.from({ length: ITERATIONS }, (_, i) => spec(tableName(c, i), BATCH_SIZE)),
      ),
      ...sharedTables.map((n) => spec(n)),
    ],
  );

  /** Rows of the table within an object's day window and key range (the table's key is `id`). */
  async function rowsWithin(name: string, object: BatchObject, past = false): Promise<number> {
    const { from, to, firstKey, lastKey } = object.bounds;
    const keys = past ? 'id > $3::bigint' : 'id BETWEEN $4::bigint AND $3::bigint';
    const result = await bed.db.client.query(
      `SELECT count(*)::int AS n FROM public.${name} WHERE created_at >= $1 AND created_at < $2 AND ${keys}`,
      past ? [from, to, lastKey[0]] : [from, to, lastKey[0], firstKey[0]],
    );
    return result.rows[0].n;
  }

  /**
   * The options that make a run crash at the case's place, the `at`-th time it is reached. A crash in the delete
   * keeps the batch's objects as its record held them, and a mid-day case the rows of the last object's day that
   * its batch left for the next one.
   */
  function injection(
    faultCase: FaultCase,
    name: string,
    at: number,
  ): {
    options: WorkflowOptions;
    fired: () => boolean;
    batch: () => { objects: BatchObject[]; restOfDay?: number } | undefined;
  } {
    const ref = `public.${name}`;
    let seen = 0;
    let fired = false;
    let batch: { objects: BatchObject[]; restOfDay?: number } | undefined;
    const reached = () => {
      seen += 1;
      fired = seen === at;
      return fired;
    };
    if ('point' in faultCase) {
      const fault = async (point: FaultPoint) => {
        if (point !== faultCase.point || fired) return;
        if (point.startsWith('delete:')) {
          const objects = (await bed.local.deps().locks.get('app', ref)).inFlight?.objects ?? [];
          const last = objects.at(-1);
          batch = { objects };
          // After the COMMIT, the rows past the last object's key on its day are the ones it left for the next batch.
          if (faultCase.endsMidDay && last) batch.restOfDay = await rowsWithin(name, last, true);
          if (faultCase.endsMidDay && !batch.restOfDay) return;
        }
        if (reached()) throw new InjectedCrash(`crash at ${point}`);
      };
      return { options: { fault }, fired: () => fired, batch: () => batch };
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
    return { options: { afterStep }, fired: () => fired, batch: () => batch };
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
      const cutoff = await fixedCutoffSql(bed.db.client);
      const { options, fired, batch } = injection(faultCase, name, at);
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
      const crashedBatch = batch();
      const rowsKept = await Promise.all((crashedBatch?.objects ?? []).map((o) => rowsWithin(name, o)));
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
      const point = 'point' in faultCase ? faultCase.point : undefined;
      // Cut short mid-stream, the staging upload never completed.
      if (point === 'export:midStream') expect(staged).toEqual([]);
      // Between two objects, the first one was staged (its manifest is recorded, not staged) and the next one not yet.
      if (point === 'export:betweenObjects') expect(staged).toHaveLength(1);
      if (point?.startsWith('delete:')) expect(crashedBatch?.objects.length).toBeGreaterThan(1);
      // Crashed inside the transaction, it rolled back: every object's rows, the first one's too, are still there.
      if (point === 'delete:afterDelete' || point === 'delete:beforeCommit')
        expect(rowsKept).toEqual(crashedBatch?.objects.map((o) => o.figures.rowCount));
      if ('endsMidDay' in faultCase) expect(crashedBatch?.restOfDay).toBeGreaterThan(0);
      expect(rerun.execution.status).toBe('SUCCEEDED');
      expect(after.inArchives).toBeGreaterThanOrEqual(between.inArchives);
      const stillOld = await bed.db.client.query(
        `SELECT count(*)::int AS n FROM public.${name} WHERE created_at < ${cutoff}`,
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
    // An execution that found every table locked archived nothing: it fails as such (ArchiveRunSkipped).
    for (const run of runs) {
      if (run.execution.status === 'SUCCEEDED') continue;
      expect(run.execution.error?.name).toBe('ArchiveRunSkipped');
      expect(run.outcomes.every((o) => o.status === 'skipped')).toBe(true);
    }
    expect(runs.some((run) => run.execution.status === 'SUCCEEDED')).toBe(true);
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
