import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import { exportBatch } from '../../lambdas/export/core.js';
import { uploadBatch } from '../../lambdas/upload/core.js';
import { verifyBatch } from '../../lambdas/verify/core.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  type LiveArchive,
  leasedTask,
  readLiveArchives,
  s3ClientFor,
  seedEvents,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

type Bed = ReturnType<typeof archiverTestbed>;
type Summary = { failures: { key: string; error: string }[]; warnings: string[] };

/** What a bucket writer (or an expiry) does to a committed archive: removes it and its manifest. */
async function deleteArchive(bed: Bed, key: string): Promise<void> {
  const s3 = s3ClientFor(bed.local);
  const manifest = key.replace(/\/([^/]+)\.jsonl\.gz$/, '/_$1.manifest.json');
  for (const Key of [key, manifest])
    await s3.send(new DeleteObjectCommand({ Bucket: bed.local.services.bucket, Key }));
}

/** Runs `strike` once, right after the restore's plan; keeps the summary Finish returns. */
function afterPlan(strike: () => Promise<void>) {
  const seen = { struck: false, summary: undefined as Summary | undefined };
  const afterStep = async (event: StepEvent) => {
    const action = (event.payload as { action?: string }).action;
    if (event.functionName === 'restore-summary' && action === 'finish')
      seen.summary = event.result as Summary;
    if (event.functionName !== 'restore-plan' || action !== 'plan' || seen.struck) return;
    await strike();
    seen.struck = true;
  };
  return { seen, afterStep };
}

const rowsOf = async (bed: Bed, table: string): Promise<number> => {
  const { rows } = await bed.db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]?.n ?? -1;
};

const linesOf = (archives: LiveArchive[]) => archives.reduce((n, a) => n + a.lines.length, 0);

const gone = /^gone from the bucket since the plan: 1 of the \d+ archive\(s\) the plan found/;

/**
 * A bucket writer (or an expiry) deletes a committed archive and its manifest after the restore's plan checked the
 * listing against the inventory of committed archives, before the page that would list it: the list steps list the
 * bucket again. The restore must not succeed with the archive's rows silently missing.
 */
describe('a committed archive deleted between the restore plan and its page', () => {
  let archives: LiveArchive[] = [];
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'events', 720, 36),
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );

  beforeAll(async () => {
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    if (run.execution.status !== 'SUCCEEDED') throw new Error('setup: the archive run failed');
    archives = (await readLiveArchives(bed.local, 'public', 'events')).sort((a, b) =>
      a.key.localeCompare(b.key),
    );
  });

  it('fails the restore, naming the archive gone since the plan, after restoring the rest', async () => {
    // Prepare
    const victim = archives[2];
    if (!victim) throw new Error('setup: too few archives');
    const { seen, afterStep } = afterPlan(() => deleteArchive(bed, victim.key));

    // Act
    const result = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', targetTable: 'public.copy' },
      { retryIntervalScale: 0, afterStep },
    );
    const restored = await rowsOf(bed, 'public.copy');
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack:
        'deletes a committed archive and its manifest after the restore plan, before its page is listed',
      held: seen.struck && result.execution.status === 'FAILED',
    });

    // Assess
    expect(seen.struck).toBe(true);
    expect(result.execution.status).toBe('FAILED');
    expect(seen.summary?.failures).toEqual([{ key: victim.key, error: expect.stringMatching(gone) }]);
    expect(restored).toBe(linesOf(archives) - victim.lines.length);
  });
});

/**
 * The same deletion while the table's archives grow: the list steps list the bucket again and find archives the plan
 * never did, committed since by the scheduled archive run (its next batch), or by the batch the plan left out as in
 * flight. One such archive must not stand in for one gone: before 2026-12-07 the finish step compared counts, and the
 * restore succeeded without the deleted archive's rows.
 */
describe('a committed archive deleted between the restore plan and its page while the table archives more', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  // One batch of a few days per run: each run leaves eligible rows for the next. A table per case.
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'next', 400, 40);
      await seedEvents(db.client, 'flight', 400, 40);
    },
    [spec('next'), spec('flight')],
    { defaults: { batchSize: 40, maxBatchesPerRun: 1 } },
  );
  const archiveRun = async (table: string) => {
    const run = await runLocalArchive(bed.local, { tables: [table] }, { retryIntervalScale: 0 });
    if (run.execution.status !== 'SUCCEEDED') throw new Error(`the archive run of ${table} failed`);
  };

  /**
   * Restores `name` into its copy with `afterStep` striking after the plan, and asserts the deleted `victim` fails the
   * restore by name while the archives committed since (those not in `before`) are restored too, and said so.
   */
  async function expectVictimNamed(
    name: string,
    before: LiveArchive[],
    victim: LiveArchive,
    { seen, afterStep }: ReturnType<typeof afterPlan>,
    attack: string,
  ) {
    // Act
    const result = await runLocalRestore(
      bed.local,
      { database: 'app', table: `public.${name}`, targetTable: `public.${name}_copy` },
      { retryIntervalScale: 0, afterStep },
    );
    const live = await readLiveArchives(bed.local, 'public', name);
    const committedSince = live.filter((a) => !before.some((b) => b.key === a.key));
    const restored = await rowsOf(bed, `public.${name}_copy`);
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack,
      held: seen.struck && result.execution.status === 'FAILED',
    });

    // Assess: the new archives are restored too, and said; the deleted one fails the restore by name
    expect(seen.struck).toBe(true);
    expect(committedSince.length).toBeGreaterThan(0);
    expect(result.execution.status).toBe('FAILED');
    expect(seen.summary?.failures).toEqual([{ key: victim.key, error: expect.stringMatching(gone) }]);
    expect(seen.summary?.warnings).toContainEqual(
      `${committedSince.length} archive(s) the plan did not find were restored too: committed since it (the table's next batch, or the batch it had in flight), or written since under unlistedArchives "restore"`,
    );
    expect(restored).toBe(linesOf(live));
  }

  it("fails the restore naming the deleted archive when the table's next batch commits meanwhile", async () => {
    // Prepare: a batch committed; after the plan, one of its archives deleted and the next batch committed
    await archiveRun('public.next');
    const planned = await readLiveArchives(bed.local, 'public', 'next');
    const victim = planned[0];
    if (!victim) throw new Error('setup: no archive');
    const strike = afterPlan(async () => {
      await deleteArchive(bed, victim.key);
      await archiveRun('public.next');
    });

    // Act & Assess
    await expectVictimNamed(
      'next',
      planned,
      victim,
      strike,
      'deletes a committed archive after the restore plan while the archive run commits the next batch of the table',
    );
  });

  it('fails the restore naming the deleted archive when the batch in flight at the plan commits meanwhile', async () => {
    // Prepare: a batch committed, and the next verified, not deleted, when the restore plans (it is left out); after
    // the plan, a committed archive deleted and the delete of that batch committed
    await archiveRun('public.flight');
    const committed = await readLiveArchives(bed.local, 'public', 'flight');
    const victim = committed[0];
    if (!victim) throw new Error('setup: no archive');
    const deps = bed.local.deps();
    const task = await leasedTask(bed.local, 'public.flight', 'exec-in-flight');
    const progress = { batches: 0, rows: 0, bytes: 0 };
    await exportBatch({ ...task, progress }, deps);
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const strike = afterPlan(async () => {
      await deleteArchive(bed, victim.key);
      await deleteBatch({ ...task, progress }, deps);
      await deps.locks.release('app', 'public.flight', task.lease);
    });

    // Act & Assess
    await expectVictimNamed(
      'flight',
      committed,
      victim,
      strike,
      'deletes a committed archive after the restore plan while the batch the plan left out as in flight commits',
    );
  });
});
