import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import { archiverTestbed, fixedCutoffSql, metricRecorder, seedEvents } from '../support/fixtures.js';

const spec = (name: string, batchSize?: number) => ({
  schema: 'public',
  name,
  timestampColumn: 'created_at',
  ...(batchSize ? { batchSize } : {}),
});

/** Every step of a run with the wall-clock instant it ended. */
function stepRecorder() {
  const steps: (StepEvent & { endedAt: number })[] = [];
  return { steps, onStep: (event: StepEvent) => steps.push({ ...event, endedAt: performance.now() }) };
}

const exported = (steps: StepEvent[]) =>
  steps.filter(
    (s) => s.functionName === 'export' && (s.result as { status?: string })?.status === 'exported',
  );

/** Rows older than `cutoff` (fixedCutoffSql, taken before the run). */
async function oldRows(client: pg.Client, table: string, cutoff: string): Promise<number> {
  const result = await client.query(
    `SELECT count(*)::int AS n FROM public.${table} WHERE created_at < ${cutoff}`,
  );
  return result.rows[0].n;
}

describe('settings that trade speed for impact on production, through the real workflow', () => {
  const bed = archiverTestbed(
    async (db) => {
      // Four old days of 10 rows (9 on the first) in batches of 12: four batches across days, so three pauses.
      await seedEvents(db.client, 'paced', 340, 34);
      await db.client.query('CREATE TABLE public.dense (LIKE public.paced INCLUDING ALL)');
      // 3,000 rows on one old day: without a time budget they would be one batch.
      await db.client.query(
        `INSERT INTO public.dense (created_at, actor, payload)
         SELECT date_trunc('day', now() - interval '50 days') + g * interval '1 second', 'user', '{}'
           FROM generate_series(1, 3000) AS g`,
      );
    },
    [spec('paced', 12), spec('dense', 50_000)],
    { defaults: { pauseBetweenBatchesSeconds: 1, vacuumAfterRun: true, timeBudgetShare: 0.5 } },
  );

  it('waits pauseBetweenBatchesSeconds between batches in a Wait state, then VACUUM (ANALYZE)s the table', async () => {
    // Prepare
    const cutoff = await fixedCutoffSql(bed.db.client);
    const { steps, onStep } = stepRecorder();

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.paced'] },
      { onStep, retryIntervalScale: 0 },
    );

    // Assess: the export after each committed delete started at least a second later.
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(await oldRows(bed.db.client, 'paced', cutoff)).toBe(0);
    const gaps = steps.flatMap((step, i) => {
      const next = steps[i + 1];
      if (step.functionName !== 'delete' || next?.functionName !== 'export') return [];
      return [next.endedAt - next.durationMs - step.endedAt];
    });
    expect(exported(steps)).toHaveLength(4);
    expect(gaps.length).toBeGreaterThan(1);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(950);
    const stats = async () => {
      await bed.db.client.query('SELECT pg_stat_clear_snapshot()');
      const result = await bed.db.client.query(
        "SELECT vacuum_count::int AS vacuums, analyze_count::int AS analyzes FROM pg_stat_user_tables WHERE relname = 'paced'",
      );
      return result.rows[0];
    };
    await expect.poll(stats, { timeout: 10_000 }).toEqual({ vacuums: 1, analyzes: 1 });
  });

  it('sizes batches to the time budget: a slow invocation stops at a batch boundary and the loop continues', async () => {
    // Prepare: an invocation that has 1 s left may spend half of it; the first batch assumes 2,000 rows/s.
    const cutoff = await fixedCutoffSql(bed.db.client);
    const { steps, onStep } = stepRecorder();

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.dense'] },
      { onStep, retryIntervalScale: 0, deps: (deps) => ({ ...deps, remainingTimeMs: () => 1000 }) },
    );

    // Assess: 1,000 rows first, the rest of the same day in later batches, nothing left behind.
    expect(run.execution.status).toBe('SUCCEEDED');
    const batches = exported(steps).map(
      (s) => s.result as { rows: number; firstDay: string; lastDay: string },
    );
    expect(batches[0]?.rows).toBe(1000);
    expect(batches.length).toBeGreaterThan(1);
    expect(new Set(batches.flatMap((b) => [b.firstDay, b.lastDay])).size).toBe(1);
    expect(batches.reduce((sum, b) => sum + b.rows, 0)).toBe(3000);
    expect(await oldRows(bed.db.client, 'dense', cutoff)).toBe(0);
  });
});

describe('replica lag check, against the real pg_stat_replication', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'replicated', 600), [spec('replicated')], {
    database: { replicaLag: { replicas: ['standby-1'], maxLagSeconds: 5 } },
  });

  it('pauses (export retried with ReplicaLagError) while the named replica is not connected, and moves no row', async () => {
    // Prepare
    const cutoff = await fixedCutoffSql(bed.db.client);
    const before = await oldRows(bed.db.client, 'replicated', cutoff);
    const { steps, onStep } = stepRecorder();

    // Act
    const run = await runLocalArchive(bed.local, {}, { onStep, retryIntervalScale: 0 });

    // Assess: every attempt the ASL allows was made, then the table failed with the reason; nothing moved.
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(/^ReplicaLagError: .*replica "standby-1" is not connected/);
    const attempts = steps.filter((s) => s.functionName === 'export' && s.error?.name === 'ReplicaLagError');
    expect(attempts).toHaveLength(21);
    expect(await oldRows(bed.db.client, 'replicated', cutoff)).toBe(before);
  });
});

describe('the lease across throttle waits longer than the lease', () => {
  const bed = archiverTestbed(
    // Two old days of 10 rows (9 on the first) in batches of 12: two batches, the first ending mid-day.
    async (db) => seedEvents(db.client, 'outlasting', 320, 32),
    [spec('outlasting', 12)],
    {
      defaults: { pauseBetweenBatchesSeconds: 5 },
    },
  );

  it('keeps the lease through every wait: the run finishes the table instead of failing with LeaseLostError', async () => {
    // Prepare: the functions get a 3 s lease (the config file cannot go below 1,200 s), shorter than the 5 s pause.
    const cutoff = await fixedCutoffSql(bed.db.client);
    const { steps, onStep } = stepRecorder();
    const shortLease = (deps: StepDeps): StepDeps => ({
      ...deps,
      config: { ...deps.config, defaults: { ...deps.config.defaults, leaseSeconds: 3 } },
    });

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.outlasting'] },
      { onStep, retryIntervalScale: 0, deps: shortLease },
    );

    // Assess: several batches, so at least one pause outlasted the lease, and the table was finished.
    expect(run.outcomes[0]?.error).toBeUndefined();
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(exported(steps).length).toBeGreaterThan(1);
    expect(await oldRows(bed.db.client, 'outlasting', cutoff)).toBe(0);
  });
});

describe('yielding to the application (yieldToLoad), through the real workflow', () => {
  const bed = archiverTestbed(
    // Two old days of 10 rows (9 on the first) in batches of 12: two batches, so one pause between them.
    async (db) => seedEvents(db.client, 'yielding', 320, 32),
    [spec('yielding', 12)],
    { defaults: { yieldToLoad: { busySessions: 1, share: 0.5 } } },
  );

  it('waits after a batch exported while another session was running a statement, at least as long as the batch', async () => {
    // Prepare: an application session busy for the whole run.
    const cutoff = await fixedCutoffSql(bed.db.client);
    const { steps, onStep } = stepRecorder();
    const recorder = metricRecorder();
    const application = new pg.Client({ connectionString: bed.db.url });
    await application.connect();
    const busy = application.query('SELECT pg_sleep(120)').catch(() => undefined);

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.yielding'] },
      { onStep, retryIntervalScale: 0, deps: recorder.wrap },
    ).finally(async () => {
      await bed.db.client.query(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)'",
      );
      await busy;
      await application.end();
    });

    // Assess: the first delete set a pause at least as long as its batch (share 0.5), and the next export started
    // after it.
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(await oldRows(bed.db.client, 'yielding', cutoff)).toBe(0);
    const firstDelete = steps.findIndex((step) => step.functionName === 'delete');
    const deleted = steps[firstDelete];
    const nextExport = steps[firstDelete + 1];
    const pauseSeconds = (deleted?.result as { progress?: { pauseSeconds?: number } })?.progress
      ?.pauseSeconds;
    const firstExport = steps.find((step) => step.functionName === 'export');
    const batchMs = (deleted?.endedAt ?? 0) - (firstExport?.endedAt ?? 0) + (firstExport?.durationMs ?? 0);
    expect(pauseSeconds).toBeGreaterThanOrEqual(1);
    expect((pauseSeconds ?? 0) * 1000).toBeGreaterThanOrEqual(batchMs * 0.9);
    expect(nextExport?.functionName).toBe('export');
    const gap = (nextExport?.endedAt ?? 0) - (nextExport?.durationMs ?? 0) - (deleted?.endedAt ?? 0);
    expect(gap).toBeGreaterThanOrEqual((pauseSeconds ?? 0) * 1000 - 50);
    // The dashboard's figures: the load export saw, and the wait it set.
    expect(recorder.count('BusySessions', 'public.yielding')).toBeGreaterThanOrEqual(1);
    expect(recorder.count('ThrottlePauseSeconds', 'public.yielding')).toBeGreaterThanOrEqual(
      pauseSeconds ?? 1,
    );
  });
});
