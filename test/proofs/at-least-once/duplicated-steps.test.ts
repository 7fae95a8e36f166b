import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../../lambdas/delete/core.js';
import { exportBatch } from '../../../lambdas/export/core.js';
import type { FaultPoint, StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../../lambdas/shared/step/table-task.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { verifyBatch } from '../../../lambdas/verify/core.js';
import { runLocalArchive, runLocalRestore } from '../../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  expireLease,
  fixedCutoffSql,
  leasedTask,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';
import { cancellingLockWaits, deferred, ZERO } from './support.js';

type Step = 'export' | 'upload' | 'verify' | 'delete';
const STEPS: Step[] = ['export', 'upload', 'verify', 'delete'];

/**
 * Where the first invocation of a step pauses, and what happens while it is paused:
 * - `duplicate`: the same Task's duplicate (at-least-once invocation, or a retry beside the attempt it replaced) runs;
 *   if it succeeds, the state machine takes its result and goes on with the rest of the batch and one more, while the
 *   first invocation is still paused;
 * - `takeover`: the lease expires (or is broken) and another execution archives the table from start to end.
 * Then the first invocation goes on. Whatever each ends in, later runs must finish the table, and every row must be
 * in the table or in exactly one committed, restorable archive.
 */
const POINTS: { step: Step; point: FaultPoint }[] = [
  { step: 'export', point: 'export:betweenObjects' },
  { step: 'export', point: 'export:afterStaging' },
  { step: 'upload', point: 'upload:afterCopy' },
  { step: 'upload', point: 'upload:afterManifest' },
  { step: 'verify', point: 'verify:afterRead' },
  { step: 'delete', point: 'delete:afterDelete' },
  { step: 'delete', point: 'delete:beforeCommit' },
  { step: 'delete', point: 'delete:afterCommit' },
];
const CASES = POINTS.flatMap((p) =>
  (['duplicate', 'takeover'] as const).map((mode) => ({ ...p, mode, name: `${p.point} ${mode}` })),
);
const tableName = (i: number) => `dup_${i}`;
const specOf = (i: number) => ({
  schema: 'public',
  name: tableName(i),
  timestampColumn: 'created_at',
  batchSize: 7,
});

const sleep = (ms: number) => new Promise<'blocked'>((resolve) => setTimeout(() => resolve('blocked'), ms));

function runStep(step: Step, task: TableTask, deps: StepDeps): Promise<string> {
  const input = { ...task, progress: ZERO };
  const call =
    step === 'export'
      ? exportBatch(input, deps).then((out) => `ok ${out.status}`)
      : step === 'upload'
        ? uploadBatch(task, deps).then(() => 'ok')
        : step === 'verify'
          ? verifyBatch(task, deps).then(() => 'ok')
          : deleteBatch(input, deps).then(() => 'ok');
  return call.catch((error: Error) => `${error.name}: ${error.message}`);
}

describe('a step invoked twice, or taken over, at every fault point', () => {
  const bed = archiverTestbed(
    async (db) => {
      for (const [i] of CASES.entries()) await seedEvents(db.client, tableName(i), 60, 40);
    },
    CASES.map((_, i) => specOf(i)),
  );

  it.each(CASES.map((c, i) => ({ ...c, i })))(
    '$name: the table is finished and every row is in one place',
    async ({ step, point, mode, i }) => {
      const ref = `public.${tableName(i)}`;
      const table = resolvedTable(specOf(i));
      const original = await tableLines(bed.db.client, table);
      const cutoff = await fixedCutoffSql(bed.db.client);
      const plain = bed.local.deps();
      const task = await leasedTask(bed.local, ref, `arn:first-${i}`, `run-first-${i}`);
      const log: string[] = [];

      // The steps before the paused one
      for (const earlier of STEPS.slice(0, STEPS.indexOf(step)))
        log.push(`${earlier}: ${await runStep(earlier, task, plain)}`);

      // The paused invocation
      const paused = deferred();
      const resume = deferred();
      let hit = false;
      const first = runStep(
        step,
        task,
        bed.local.deps(async (at) => {
          if (at === point && !hit) {
            hit = true;
            paused.resolve();
            await resume.promise;
          }
        }),
      );
      const reached = await Promise.race([paused.promise.then(() => 'paused' as const), first]);
      if (reached !== 'paused') throw new Error(`setup: ${point} was not reached (${reached})`);

      let second: Promise<string> | undefined;
      if (mode === 'duplicate') {
        second = runStep(step, task, plain);
        const early = await Promise.race([second, sleep(2500)]);
        log.push(`${step} duplicate: ${early}`);
        if (early.startsWith('ok')) {
          // The state machine took the duplicate's answer and went on
          for (const later of [...STEPS.slice(STEPS.indexOf(step) + 1), ...STEPS])
            log.push(`${later} after: ${await runStep(later, task, plain)}`);
        }
      } else {
        await expireLease(bed.local, 'app', ref);
        // A delete paused after its DELETE holds the rows: the takeover's steps wait on them until lock_timeout (5 s).
        const run = await cancellingLockWaits(bed.db.client, 10, () =>
          runLocalArchive(bed.local, { tables: [ref] }, { retryIntervalScale: 0 }),
        );
        log.push(`takeover: ${run.outcomes.map((o) => `${o.status} ${o.error ?? ''}`).join()}`);
      }
      resume.resolve();
      log.push(`${step} first: ${await first}`);
      if (second) log.push(`${step} duplicate ended: ${await second}`);

      // Later runs finish the table
      await plain.locks.release('app', ref, task.lease).catch(() => false);
      await expireLease(bed.local, 'app', ref);
      const finals: string[] = [];
      for (let run = 0; run < 3; run += 1) {
        const result = await runLocalArchive(bed.local, { tables: [ref] }, { retryIntervalScale: 0 });
        finals.push(result.outcomes.map((o) => `${o.status} ${o.error ?? ''}`.trim()).join());
        if (result.execution.status === 'SUCCEEDED') break;
        await expireLease(bed.local, 'app', ref);
      }
      const left = (
        await bed.db.client.query(`SELECT count(*)::int AS n FROM ${ref} WHERE created_at < ${cutoff}`)
      ).rows[0].n as number;
      const live = (await readLiveArchives(bed.local, 'public', tableName(i), bed.db.client)).map(
        (a) => a.key,
      );
      const inventory = (await plain.inventory.list('app', ref)).map((e) => e.archiveKey);
      const invariant = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original).then(
        () => 'held',
        (error: Error) => error.message,
      );
      const restored = await runLocalRestore(
        bed.local,
        { database: 'app', table: ref },
        { retryIntervalScale: 0 },
      );
      const afterRestore = (await tableLines(bed.db.client, table)).sort();

      const outcome = {
        finals: finals.at(-1),
        left,
        invariant,
        liveNotInInventory: live.filter((k) => !inventory.includes(k)),
        inventoryNotLive: inventory.filter((k) => !live.includes(k)),
        restore: `${restored.execution.status} ${restored.results.filter((r) => r.status === 'failed').map((r) => r.error)}`,
        restoredAll:
          afterRestore.length === original.length && afterRestore.join() === [...original].sort().join(),
      };
      const expected = {
        finals: 'succeeded',
        left: 0,
        invariant: 'held',
        liveNotInInventory: [],
        inventoryNotLive: [],
        restore: 'SUCCEEDED ',
        restoredAll: true,
      };
      recordProof({
        kind: 'threat',
        actor: 'invocation',
        attack:
          mode === 'duplicate'
            ? `${step} invoked twice, the first paused at ${point}, the run going on with the second's answer`
            : `${step} paused at ${point} while its lease expires and another run archives the table`,
        held: JSON.stringify(outcome) === JSON.stringify(expected),
      });
      // What each invocation ended in, for the report of a failure.
      expect(outcome, `${point} ${mode}:\n${log.join('\n')}\nfinals: ${finals.join(' | ')}`).toEqual(
        expected,
      );
    },
  );
});
