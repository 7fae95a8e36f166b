import { rmSync } from 'node:fs';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { ManifestSchema } from '../../lambdas/shared/archive/format.js';
import type { DeploymentConfig } from '../../lambdas/shared/config/deployment-schema.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { AuditArchiverStack } from '../../lib/audit-archiver-stack.js';
import { runLocalArchive } from '../../local/run.js';
import {
  type ExecutionResult,
  loadDefinition,
  localSubstitutions,
  stateMachineOf,
} from '../../local/workflow.js';
import { logicalId, projectApp } from '../lib/synth.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  listKeys,
  metricRecorder,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';

interface WatchedMetric {
  Namespace: string;
  MetricName: string;
  Dimensions: { Name: string; Value: unknown }[];
  lockTable: unknown;
}
/** Synthesized once per config: a stack takes seconds of CPU. */
const watchedByConfig = new WeakMap<DeploymentConfig, WatchedMetric>();

/** The metric the NoSuccessfulRun alarm of the stack deployed from `config` watches, and its lock table's Ref. */
function noSuccessfulRunMetric(config: DeploymentConfig): WatchedMetric {
  const known = watchedByConfig.get(config);
  if (known) return known;
  const watched = synthesizedMetric(config);
  watchedByConfig.set(config, watched);
  return watched;
}

function synthesizedMetric(config: DeploymentConfig): WatchedMetric {
  const app = projectApp();
  try {
    const stack = new AuditArchiverStack(app, 'AuditArchiver', { config });
    const alarm =
      Template.fromStack(stack).toJSON().Resources[logicalId(stack, stack.monitoring.noSuccessfulRunAlarm)];
    return { ...alarm.Properties, lockTable: { Ref: logicalId(stack, stack.lockTable.table) } };
  } finally {
    rmSync(app.outdir, { recursive: true, force: true });
  }
}

/**
 * The datapoints one execution of the archive state machine gives `watched`: Step Functions counts every execution
 * that ends SUCCEEDED in the state machine's ExecutionsSucceeded; the functions' custom metrics are what they emitted.
 * A run metric's series is the deployment's (service and deployment: the lock table's name, as
 * test/lambdas/shared/telemetry/powertools.test.ts shows Powertools writes it).
 */
function datapoints(
  watched: ReturnType<typeof noSuccessfulRunMetric>,
  execution: ExecutionResult,
  emitted: ReturnType<typeof metricRecorder>,
): number {
  if (watched.Namespace === 'AWS/States')
    return watched.MetricName === 'ExecutionsSucceeded' && execution.status === 'SUCCEEDED' ? 1 : 0;
  expect(watched.Dimensions).toEqual([
    { Name: 'deployment', Value: watched.lockTable },
    { Name: 'service', Value: 'audit-archiver' },
  ]);
  return emitted.metrics
    .filter((metric) => metric.name === watched.MetricName && metric.run)
    .reduce((sum, metric) => sum + metric.value, 0);
}

/**
 * Crashes at every fault point and step boundary, tampering and concurrent executions are proven in the proof suite
 * (test/local/proof-*.test.ts); this file covers the workflow's ordinary behaviour.
 */
describe('archive workflow, end to end on local PostgreSQL, S3 and DynamoDB', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 3000);
      await seedEvents(db.client, 'changing', 1200);
      await seedEvents(db.client, 'stuck', 100);
      await db.client.query('CREATE TABLE public.keyless (created_at timestamptz, note text)');
      await db.client.query(
        "INSERT INTO public.keyless SELECT now() - interval '90 days', 'x' FROM generate_series(1, 10)",
      );
    },
    [spec('events'), spec('changing'), spec('keyless'), spec('stuck')],
  );

  it('archives exactly the old rows once and leaves the new rows untouched', async () => {
    // Prepare
    const table = resolvedTable(spec('events'));
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);
    const newer = await fixedCutoffSql(bed.db.client, 29);
    const newRowsBefore = await bed.db.client.query(
      `SELECT id, created_at, actor, payload FROM public.events WHERE created_at >= ${newer} ORDER BY id`,
    );

    // Act
    const { execution, outcomes } = await runLocalArchive(
      bed.local,
      { tables: ['public.events'] },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const old = await bed.db.client.query(
      `SELECT count(*)::int AS n FROM public.events WHERE created_at < ${cutoff}`,
    );
    expect(old.rows[0].n).toBe(0);
    const newRowsAfter = await bed.db.client.query(
      `SELECT id, created_at, actor, payload FROM public.events WHERE created_at >= ${newer} ORDER BY id`,
    );
    expect(newRowsAfter.rows).toEqual(newRowsBefore.rows);
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(counts.inArchives).toBeGreaterThan(1200);
    expect(outcomes).toEqual([
      expect.objectContaining({
        table: 'public.events',
        status: 'succeeded',
        rowsArchived: counts.inArchives,
      }),
    ]);
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    for (const archive of archives) {
      // Each object holds the rows of one UTC day, and its partition names that day.
      const [y, m, d] = archive.manifest.day.split('-');
      expect(archive.key).toContain(`/year=${y}/month=${m}/day=${d}/`);
      expect(archive.manifest.timestampRange.min.slice(0, 10)).toBe(archive.manifest.day);
      expect(archive.manifest.timestampRange.max.slice(0, 10)).toBe(archive.manifest.day);
      expect(archive.lines).toHaveLength(archive.manifest.figures.rowCount);
    }
    expect(await listKeys(bed.local, 'archive/_staging/')).toEqual([]);
  });

  it('a second run finds nothing left and archives nothing', async () => {
    // Act
    const { execution, outcomes } = await runLocalArchive(
      bed.local,
      { tables: ['public.events'] },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    expect(outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 0, batches: 0 });
  });

  it('counts a run that succeeded towards the no-successful-run alarm, never a dry run, which archives nothing and succeeds too', async () => {
    // Prepare
    const watched = noSuccessfulRunMetric(bed.local.config);
    const dryRunMetrics = metricRecorder();
    const runMetrics = metricRecorder();

    // Act
    const dryRun = await runLocalArchive(
      bed.local,
      { tables: ['public.events'], dryRun: true },
      { retryIntervalScale: 0, deps: dryRunMetrics.wrap },
    );
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.events'] },
      { retryIntervalScale: 0, deps: runMetrics.wrap },
    );

    // Assess: both executions succeed; only the run may keep the alarm quiet.
    expect([dryRun.execution.status, run.execution.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(datapoints(watched, dryRun.execution, dryRunMetrics)).toBe(0);
    expect(datapoints(watched, run.execution, runMetrics)).toBeGreaterThan(0);
  });

  it('rows updated between export and delete: rolled back, nothing lost, the next run archives the current version', async () => {
    // Prepare: after the first batch is verified, update a row inside it.
    const table = resolvedTable(spec('changing'));
    let updatedId: number | undefined;
    const fault = async (at: FaultPoint) => {
      if (at !== 'verify:afterRead' || updatedId !== undefined) return;
      const oldest = await bed.db.client.query('SELECT min(id)::int AS id FROM public.changing');
      updatedId = oldest.rows[0].id;
      await bed.db.client.query(`UPDATE public.changing SET actor = 'changed' WHERE id = $1`, [updatedId]);
    };

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.changing'] },
      { fault, retryIntervalScale: 0 },
    );

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    const current = await tableLines(bed.db.client, table);
    const archives = await readLiveArchives(bed.local, 'public', 'changing');
    const archivedRow = archives
      .flatMap((a) => a.lines)
      .filter((line) => line.startsWith(`{"id" : "${updatedId}",`));
    expect(archivedRow).toHaveLength(1);
    expect(archivedRow[0]).toContain('"actor" : "changed"');
    expect(current.some((line) => line.startsWith(`{"id" : "${updatedId}",`))).toBe(false);
  });

  it('a table without a usable key fails with a clear error and nothing is touched', async () => {
    // Prepare
    const emitted = metricRecorder();

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.keyless'] },
      { retryIntervalScale: 0, deps: emitted.wrap },
    );

    // Assess: a failed run, which the no-successful-run alarm does not count.
    expect(run.execution.status).toBe('FAILED');
    expect(datapoints(noSuccessfulRunMetric(bed.local.config), run.execution, emitted)).toBe(0);
    expect(run.outcomes[0]?.error).toMatch(/^TableNotUsableError: .*has no primary key .*; set keyColumns/);
    const rows = await bed.db.client.query('SELECT count(*)::int AS n FROM public.keyless');
    expect(rows.rows[0].n).toBe(10);
    expect(await listKeys(bed.local, 'archive/app/public.keyless/')).toEqual([]);
  });

  it('a run whose every table is locked by another execution fails (ArchiveRunSkipped), touching nothing', async () => {
    // Prepare: a dead run's lease, still unexpired.
    const held = await bed.local.deps().locks.acquire('app', 'public.stuck', 'arn:dead-execution', 3600);
    expect(held.acquired).toBe(true);
    const before = await bed.db.client.query('SELECT count(*)::int AS n FROM public.stuck');
    const emitted = metricRecorder();

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.stuck'] },
      { retryIntervalScale: 0, deps: emitted.wrap },
    );

    // Assess: not a success that hides the stuck lease (nor one the no-successful-run alarm counts); the table is
    // reported skipped with its holder.
    expect(run.execution.status).toBe('FAILED');
    expect(run.execution.error?.name).toBe('ArchiveRunSkipped');
    expect(datapoints(noSuccessfulRunMetric(bed.local.config), run.execution, emitted)).toBe(0);
    expect(run.outcomes[0]).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/arn:dead-execution/),
    });
    const after = await bed.db.client.query('SELECT count(*)::int AS n FROM public.stuck');
    expect(after.rows[0].n).toBe(before.rows[0].n);
    expect(await listKeys(bed.local, 'archive/app/public.stuck/')).toEqual([]);
  });

  it('an unknown table in the execution input fails the plan with a clear error', async () => {
    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.nope'] }, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('FAILED');
    expect(run.execution.error?.message).toContain('tables not in the config: public.nope');
  });

  it('manifests carry the documented fields', async () => {
    // Act
    const [archive] = await readLiveArchives(bed.local, 'public', 'events');

    // Assess
    expect(archive).toBeDefined();
    expect(ManifestSchema.parse(archive?.manifest)).toMatchObject({
      formatVersion: 1,
      database: 'app',
      schema: 'public',
      table: 'events',
      keyColumns: ['id'],
      timestampColumn: 'created_at',
      encoding: 'jsonl-pg-text',
    });
  });

  it('gives a retried Plan the start it gave the first invocation, as Step Functions does, so both name the same children', async () => {
    // Prepare: Plan's first answer is lost after its work was done (its children recorded); the test clock moves on.
    // (events: the test above leaves stuck's lease held.)
    const starts: string[] = [];
    let lost = false;
    const workflow = bed.local.workflow({
      retryIntervalScale: 0,
      onStep: (event) => {
        if (event.functionName === 'plan') starts.push((event.payload as { startTime: string }).startTime);
      },
      afterStep: (event) => {
        if (event.functionName !== 'plan' || lost) return;
        lost = true;
        const error = new Error('the answer was lost');
        error.name = 'Lambda.Unknown';
        throw error;
      },
    });

    // Act
    const run = await workflow.runArchive({ tables: ['public.events'] });

    // Assess
    expect(run.status).toBe('SUCCEEDED');
    expect(starts).toHaveLength(2);
    expect(starts[1]).toBe(starts[0]);
  });

  it('announces each invocation as it starts, with the payload its end then reports: a Ctrl-C can wait for a lock step', async () => {
    // Prepare
    const seen: string[] = [];
    const workflow = bed.local.workflow({
      retryIntervalScale: 0,
      onInvoke: (name, payload) => seen.push(`start ${name} ${JSON.stringify(payload)}`),
      onStep: (event) => seen.push(`end ${event.functionName} ${JSON.stringify(event.payload)}`),
    });

    // Act
    const run = await workflow.runArchive({ tables: ['public.events'] });

    // Assess: starts and ends pair up, each end right after its start (this run's steps follow one another).
    expect(run.status).toBe('SUCCEEDED');
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (let i = 0; i < seen.length; i += 2) {
      expect(seen[i]).toMatch(/^start /);
      expect(seen[i + 1]).toBe(seen[i]?.replace(/^start /, 'end '));
    }
  });
});

describe('stateMachineOf', () => {
  const valid = () => loadDefinition('restore.asl.json', localSubstitutions);

  it('refuses an invalid definition every time, also after a valid one was validated', () => {
    // Prepare
    const invalid = { ...valid(), StartAt: 'NoSuchState' };
    stateMachineOf(valid());

    // Act
    const attempts = [() => stateMachineOf(invalid), () => stateMachineOf(invalid)];

    // Assess
    for (const attempt of attempts) expect(attempt).toThrow(/invalid/);
  });
});
