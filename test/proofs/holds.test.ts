import { describe, expect, it } from 'vitest';
import { clearHold, type HoldContext, setHold } from '../../cli/holds.js';
import { planExitCode, planLocally } from '../../cli/plan.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { listAuditEvents } from '../../lambdas/shared/telemetry/audit-trail.js';
import type { SummaryOutput } from '../../lambdas/summary/schema.js';
import { type LocalEnvironment, runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  resolvedTable,
  seedEvents,
  seedPartitionedWhole,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

/** The hold commands' context over a testbed's local environment, as an operator named test-operator. */
function holdContext(local: LocalEnvironment): HoldContext {
  const deps = local.deps();
  return { config: local.config, holds: deps.holds, store: deps.store, actor: 'test-operator' };
}

/** A restore with strategy overwrite of `table` whose table `held` is put under hold once the plan has checked. */
const overwriteHeldAfterPlan = (
  local: LocalEnvironment,
  table: string,
  held: string,
  reason: string,
  dryRun = false,
) =>
  runLocalRestore(
    local,
    { database: 'app', table, strategy: 'overwrite', dryRun },
    {
      retryIntervalScale: 0,
      afterStep: async (event) => {
        if (event.functionName === 'restore-plan') await setHold(holdContext(local), 'app', held, reason);
      },
    },
  );

/** Every archive of a restore into public.midrun failed, naming the hold of `reason`; there was at least one. */
function expectAllFailedUnderHold(results: { status: string; error?: string }[], reason: string): void {
  expect(results.length).toBeGreaterThan(0);
  for (const result of results)
    expect(result).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(
        new RegExp(
          `^TableNotUsableError: .*"public"\\."midrun" in database app is under legal hold \\(set .* by test-operator\\): ${reason}: strategy overwrite would change its rows`,
        ),
      ),
    });
}

/** Batches of 2 rows: each takes two days' objects. */
const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at', batchSize: 2 });

describe('legal hold through the real local workflow', () => {
  const bed = archiverTestbed(
    async (db) => {
      // 24 rows 37 hours apart over 37 days: 4 are older than the 30-day retention, on 4 days (2 batches of 2 days).
      for (const name of ['held', 'midrun', 'free']) await seedEvents(db.client, name, 24, 37);
    },
    [spec('held'), spec('midrun'), spec('free')],
  );
  const context = () => holdContext(bed.local);
  const count = async (name: string) =>
    Number((await bed.db.client.query(`SELECT count(*) AS n FROM ${name}`)).rows[0].n);

  it('skips a held table as held, stops a table held mid-run at the next batch, and resumes once cleared', async () => {
    // Prepare
    const originals = {
      held: await tableLines(bed.db.client, resolvedTable(spec('held'))),
      midrun: await tableLines(bed.db.client, resolvedTable(spec('midrun'))),
    };
    await setHold(context(), 'app', 'public.held', 'case 2025-17');
    let heldMidRun = false;

    // Act: the hold on midrun lands right after its first batch was deleted.
    const run = await runLocalArchive(
      bed.local,
      {},
      {
        retryIntervalScale: 0,
        afterStep: async (event) => {
          const { table } = event.payload as { table?: string };
          if (event.functionName === 'delete' && table === 'public.midrun' && !heldMidRun) {
            heldMidRun = true;
            await setHold(context(), 'app', 'public.midrun', 'hold arriving mid-run');
          }
        },
      },
    );

    // Assess: held tables are skipped with their reason, the run itself succeeds, nothing is lost.
    expect(run.execution.status).toBe('SUCCEEDED');
    const summary = run.execution.output as SummaryOutput;
    expect(summary).toMatchObject({ tables: 3, succeeded: 1, held: 2, failed: 0 });
    const outcomes = new Map(run.outcomes.map((o) => [o.table, o]));
    expect(outcomes.get('public.held')).toMatchObject({
      status: 'held',
      batches: 0,
      reason: expect.stringMatching(/^legal hold \(set .* by test-operator\): case 2025-17$/),
    });
    expect(outcomes.get('public.midrun')).toMatchObject({
      status: 'held',
      batches: 1,
      reason: expect.stringContaining('hold arriving mid-run'),
    });
    expect(outcomes.get('public.free')).toMatchObject({ status: 'succeeded', batches: 2 });
    expect(await count('held')).toBe(24);
    expect(await count('midrun')).toBe(22);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, resolvedTable(spec('midrun')), originals.midrun);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, resolvedTable(spec('held')), originals.held);
    const events = await listAuditEvents(bed.local.deps().store, bed.local.config.s3.prefix, {
      kinds: ['legal-hold-changed'],
    });
    expect(events.map((e) => [e.table, e.actor, e.details.action])).toEqual([
      ['public.held', 'test-operator', 'hold-set'],
      ['public.midrun', 'test-operator', 'hold-set'],
    ]);

    // Act: holds cleared, the next run archives what they kept.
    expect(await clearHold(context(), 'app', 'public.held')).toBe(true);
    expect(await clearHold(context(), 'app', 'public.midrun')).toBe(true);
    expect(await clearHold(context(), 'app', 'public.midrun')).toBe(false);
    const next = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(next.execution.status).toBe('SUCCEEDED');
    expect((next.execution.output as SummaryOutput).held).toBe(0);
    expect(await count('held')).toBe(20);
    expect(await count('midrun')).toBe(20);
    expect(await bed.local.deps().holds.list()).toEqual([]);
  });

  it('refuses a restore with strategy overwrite into a held table before writing anything; skip adds rows back', async () => {
    // Prepare: free's 4 old rows are archived; the table is held.
    await setHold(context(), 'app', 'public.free', 'case 2025-18');
    const before = await tableLines(bed.db.client, resolvedTable(spec('free')));

    // Act; the hold is cleared whatever happens, for the next test.
    let overwrite: Awaited<ReturnType<typeof runLocalRestore>>;
    let afterOverwrite: string[];
    let skip: Awaited<ReturnType<typeof runLocalRestore>>;
    let afterSkip: number;
    try {
      overwrite = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.free', strategy: 'overwrite' },
        { retryIntervalScale: 0 },
      );
      afterOverwrite = await tableLines(bed.db.client, resolvedTable(spec('free')));
      skip = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.free', strategy: 'skip' },
        { retryIntervalScale: 0 },
      );
      afterSkip = await count('free');
    } finally {
      await clearHold(context(), 'app', 'public.free');
    }

    // Assess
    expect([overwrite.execution.status, overwrite.execution.error?.name]).toEqual([
      'FAILED',
      'TableNotUsableError',
    ]);
    expect(overwrite.execution.error?.message).toMatch(
      /"public"\."free" in database app is under legal hold \(set .* by test-operator\): case 2025-18: strategy overwrite would change its rows/,
    );
    expect(afterOverwrite).toEqual(before);
    expect(skip.execution.status).toBe('SUCCEEDED');
    expect(afterSkip).toBe(24);
  });

  it('stops a restore with strategy overwrite whose target is held after its plan: no group writes', async () => {
    // Prepare: midrun's 4 old rows are archived (the first test's runs); the hold lands once the plan has checked.
    const before = await tableLines(bed.db.client, resolvedTable(spec('midrun')));
    expect(before).toHaveLength(20);

    // Act; the hold is cleared whatever happens, for the next test.
    let restore: Awaited<ReturnType<typeof runLocalRestore>>;
    let after: string[];
    try {
      restore = await overwriteHeldAfterPlan(bed.local, 'public.midrun', 'public.midrun', 'case 2025-19');
      after = await tableLines(bed.db.client, resolvedTable(spec('midrun')));
    } finally {
      await clearHold(context(), 'app', 'public.midrun');
    }

    // Assess: every archive failed, naming the hold; the table is as it was.
    expect(after).toEqual(before);
    expectAllFailedUnderHold(restore.results, 'case 2025-19');
  });

  it('a dry run of that restore stops as the restore would, saying so, and writes nothing', async () => {
    // Prepare
    const before = await tableLines(bed.db.client, resolvedTable(spec('midrun')));

    // Act; the hold is cleared whatever happens, for the next test.
    let restore: Awaited<ReturnType<typeof runLocalRestore>>;
    let after: string[];
    try {
      restore = await overwriteHeldAfterPlan(
        bed.local,
        'public.midrun',
        'public.midrun',
        'case 2025-24',
        true,
      );
      after = await tableLines(bed.db.client, resolvedTable(spec('midrun')));
    } finally {
      await clearHold(context(), 'app', 'public.midrun');
    }

    // Assess
    expect(after).toEqual(before);
    expectAllFailedUnderHold(restore.results, 'case 2025-24');
    for (const result of restore.results)
      expect(result.error).toMatch(/; the dry run stopped here, as the restore would$/);
  });

  it('rolls back a group with strategy overwrite whose target is held while it writes, just before its COMMIT', async () => {
    // Prepare: midrun's 4 old rows are archived (the first test's runs); the hold lands once the first group has
    // checked and written, before it commits.
    const before = await tableLines(bed.db.client, resolvedTable(spec('midrun')));
    let held = false;
    const fault = async (point: FaultPoint) => {
      if (point !== 'restore:beforeCommit' || held) return;
      held = true;
      await setHold(context(), 'app', 'public.midrun', 'case 2025-21');
    };

    // Act; the hold is cleared whatever happens, for the next test.
    let restore: Awaited<ReturnType<typeof runLocalRestore>>;
    let after: string[];
    try {
      restore = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.midrun', strategy: 'overwrite' },
        { retryIntervalScale: 0, fault },
      );
      after = await tableLines(bed.db.client, resolvedTable(spec('midrun')));
    } finally {
      await clearHold(context(), 'app', 'public.midrun');
    }

    // Assess: no group committed; every archive failed naming the hold, the first group's as rolled back.
    expect(held).toBe(true);
    expect(restore.results.some((r) => /rolled back/.test(r.error ?? ''))).toBe(true);
    expect(after).toEqual(before);
    expectAllFailedUnderHold(restore.results, 'case 2025-21');
  });

  it('reports a group that committed before the hold was set as restored when its retry meets the hold', async () => {
    // Prepare: held's 4 old rows are archived (the first test's runs); the first group to commit dies before its
    // watermarks, and the hold lands then: its retry finds its own rows, answered by its marks.
    const before = await count('held');
    let crashedGroup: string[] = [];
    const fault = async (point: FaultPoint) => {
      if (point !== 'restore:afterCommit' || crashedGroup.length > 0) return;
      crashedGroup = ['(pending)'];
      await setHold(context(), 'app', 'public.held', 'case 2025-20');
      throw new InjectedCrash('crash after COMMIT');
    };
    const onStep = (event: StepEvent) => {
      if (event.functionName === 'restore-file' && event.error?.name === 'InjectedCrash')
        crashedGroup = (event.payload as { archives: { key: string }[] }).archives.map((a) => a.key);
    };

    // Act; the hold is cleared whatever happens, for the next test.
    let restore: Awaited<ReturnType<typeof runLocalRestore>>;
    try {
      restore = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.held', strategy: 'overwrite' },
        { retryIntervalScale: 0, fault, onStep },
      );
    } finally {
      await clearHold(context(), 'app', 'public.held');
    }

    // Assess: the crashed group's archives are restored, not failed for a hold set after their COMMIT. A group that
    // runs beside it restores if it checked the hold before it was set, and otherwise fails naming it.
    expect(before).toBe(20);
    expect(crashedGroup).not.toContain('(pending)');
    const results = new Map(restore.results.map((r) => [r.key, r]));
    for (const key of crashedGroup) expect(results.get(key)).toMatchObject({ status: 'restored' });
    for (const result of restore.results.filter((r) => r.status !== 'restored'))
      expect(result.error).toMatch(/under legal hold \(set .* by test-operator\): case 2025-20/);
    const written = restore.results.reduce((n, r) => n + r.inserted + r.overwritten, 0);
    expect(written).toBeGreaterThan(0);
    expect(await count('held')).toBe(before + restore.results.reduce((n, r) => n + r.inserted, 0));
  });
});

describe('legal hold on a partition the config lists beside its partitioned table', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    // Every row older than 40 days is in whole_old; the 30-day retention makes all of them eligible.
    (db) => seedPartitionedWhole(db.client),
    [spec('whole'), spec('whole_old')],
  );

  it('keeps the held partition’s rows: the partitioned table is refused, naming the hold', async () => {
    // Prepare: the partition is held, the partitioned table it belongs to is not
    const partition = resolvedTable(spec('whole_old'));
    const original = await tableLines(bed.db.client, partition);
    await setHold(holdContext(bed.local), 'app', 'public.whole_old', 'case 2025-31');

    // Act
    const plan = await planLocally(bed.local, {});
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess: the plan says what the run does
    const planned = new Map(plan.tables.map((t) => [t.table, t]));
    expect(planned.get('public.whole_old')).toMatchObject({ action: 'held' });
    expect(planned.get('public.whole')).toMatchObject({
      action: 'unusable',
      error: expect.stringContaining('holds the partition "public"."whole_old", which is under legal hold'),
    });
    expect(planExitCode(plan)).toBe(1);
    // Assess: before, whole archived and deleted every row of whole_old while the partition was reported held
    const outcomes = new Map(run.outcomes.map((o) => [o.table, o]));
    expect(outcomes.get('public.whole_old')).toMatchObject({ status: 'held' });
    expect(outcomes.get('public.whole')).toMatchObject({ status: 'failed', rowsArchived: 0 });
    expect(outcomes.get('public.whole')?.error).toMatch(
      /^TableNotUsableError: table "public"."whole" in database app holds the partition "public"."whole_old", which is under legal hold \(set .* by test-operator\): case 2025-31: /,
    );
    expect(original.length).toBeGreaterThan(0);
    expect(await tableLines(bed.db.client, partition)).toEqual(original);
  });

  it('refuses a restore with strategy overwrite into a table sharing rows with a held one: its partition, or the table it is a partition of', async () => {
    // Prepare: the partition's hold lifted, whole archives the partition's rows (the previous test's hold kept them).
    const context = holdContext(bed.local);
    await clearHold(context, 'app', 'public.whole_old');
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    expect(run.outcomes.find((o) => o.table === 'public.whole')).toMatchObject({ status: 'succeeded' });
    const partition = resolvedTable(spec('whole_old'));
    const emptied = await tableLines(bed.db.client, partition);
    expect(emptied).toEqual([]);

    // Act: into the partitioned table while its partition is held, then into the partition while the table is held,
    // then into the partitioned table with its partition held once the plan has checked.
    let intoTable: Awaited<ReturnType<typeof runLocalRestore>>;
    let intoPartition: Awaited<ReturnType<typeof runLocalRestore>>;
    let heldAfterPlan: Awaited<ReturnType<typeof runLocalRestore>>;
    try {
      await setHold(context, 'app', 'public.whole_old', 'case 2025-32');
      intoTable = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.whole', strategy: 'overwrite' },
        { retryIntervalScale: 0 },
      );
      await clearHold(context, 'app', 'public.whole_old');
      await setHold(context, 'app', 'public.whole', 'case 2025-33');
      intoPartition = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.whole', targetTable: 'public.whole_old', strategy: 'overwrite' },
        { retryIntervalScale: 0 },
      );
      await clearHold(context, 'app', 'public.whole');
      heldAfterPlan = await overwriteHeldAfterPlan(
        bed.local,
        'public.whole',
        'public.whole_old',
        'case 2025-34',
      );
    } finally {
      await clearHold(context, 'app', 'public.whole_old');
      await clearHold(context, 'app', 'public.whole');
    }

    // Assess: both refused before anything was written, naming the hold and the table it is on.
    expect([intoTable.execution.status, intoTable.execution.error?.name]).toEqual([
      'FAILED',
      'TableNotUsableError',
    ]);
    expect(intoTable.execution.error?.message).toMatch(
      /^restore target "public"\."whole" in database app is under legal hold \(set .* by test-operator\): case 2025-32 \(the hold of "public"\."whole_old", which shares its rows\): strategy overwrite would change its rows/,
    );
    expect([intoPartition.execution.status, intoPartition.execution.error?.name]).toEqual([
      'FAILED',
      'TableNotUsableError',
    ]);
    expect(intoPartition.execution.error?.message).toMatch(
      /^restore target "public"\."whole_old" in database app is under legal hold \(set .* by test-operator\): case 2025-33 \(the hold of "public"\."whole", which shares its rows\): /,
    );
    // Assess: each group checks the partition's hold too.
    expect(heldAfterPlan.results.length).toBeGreaterThan(0);
    for (const result of heldAfterPlan.results)
      expect(result).toMatchObject({
        status: 'failed',
        error: expect.stringContaining(
          'case 2025-34 (the hold of "public"."whole_old", which shares its rows)',
        ),
      });
    expect(await tableLines(bed.db.client, partition)).toEqual([]);
  });
});

describe('legal hold on a table named with the longest name PostgreSQL keeps', () => {
  // 63 bytes: PostgreSQL cuts a longer name to these, so a name of 64 bytes reaches this table.
  const held = 'audit_events_of_the_customer_billing_and_invoicing_subsystem_v2';
  const spec = { schema: 'public', name: held, timestampColumn: 'created_at' };
  // The testbed's database allows restoreTargets `public.*`, the held table's schema.
  const bed = archiverTestbed((db) => seedEvents(db.client, held, 24, 37), [spec]);

  it('refuses a restore with strategy overwrite aimed at it through a longer name, before writing anything', async () => {
    // Prepare: the old rows are archived and restored, the application changes a restored row, the table is held.
    expect(Buffer.byteLength(held)).toBe(63);
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const back = await runLocalRestore(
      bed.local,
      { database: 'app', table: `public.${held}` },
      { retryIntervalScale: 0 },
    );
    expect(back.execution.status).toBe('SUCCEEDED');
    await bed.db.client.query(`UPDATE public.${held} SET actor = 'changed under hold' WHERE id = 1`);
    await setHold(holdContext(bed.local), 'app', `public.${held}`, 'case 2026-01');
    const before = await tableLines(bed.db.client, resolvedTable(spec));

    // Act: an overwrite into a target whose name is the held one and one byte more.
    const aliased = await runLocalRestore(
      bed.local,
      { database: 'app', table: `public.${held}`, targetTable: `public.${held}x`, strategy: 'overwrite' },
      { retryIntervalScale: 0 },
    );

    // Assess: refused, naming the field, and the held rows are as they were (before, it wrote 4 rows over them).
    const after = await tableLines(bed.db.client, resolvedTable(spec));
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack: 'restores with strategy overwrite into a held table through a target name past 63 bytes',
      held: aliased.execution.status === 'FAILED' && after.join('\n') === before.join('\n'),
    });
    expect([aliased.execution.status, aliased.execution.error?.name]).toEqual([
      'FAILED',
      'InvalidInputError',
    ]);
    expect(aliased.execution.error?.message).toContain('targetTable.name: must be at most 63 bytes');
    expect(after).toEqual(before);
  });
});
