import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, describe, expect, it } from 'vitest';
import { formatRunOutcome, runAwsArchive } from '../../cli/aws-run.js';
import {
  breakLease,
  executionRunning,
  formatStatuses,
  type LeaseContext,
  tableStatuses,
} from '../../cli/leases.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { listAuditEvents } from '../../lambdas/shared/telemetry/audit-trail.js';
import { openLocalEnvironment, runLocalArchive } from '../../local/run.js';
import { stateMachineArn } from '../../local/workflow.js';
import { archiverTestbed, seedEvents, writeTestConfig } from '../support/fixtures.js';
import { startStepFunctions } from '../support/step-functions.js';

/** A lease holder that died: an execution no Step Functions (nor local process) runs any more. */
const DEAD_HOLDER = `${stateMachineArn('archive-table').replace(':stateMachine:', ':execution:')}:killed-run`;

describe('status, lease break and run: a crashed run’s lease, and the deployed stack from the CLI', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 300, 40);
      await seedEvents(db.client, 'others', 300, 40);
    },
    [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
      { schema: 'public', name: 'others', timestampColumn: 'created_at' },
    ],
  );
  let endpoint: Awaited<ReturnType<typeof startStepFunctions>> | undefined;
  afterAll(async () => endpoint?.stop());
  /** Runs the archive workflow's steps; `gate`, when set, holds the run after its first export. */
  let gate: Promise<void> | undefined;
  const sfn = async () => {
    endpoint ??= await startStepFunctions((observer) =>
      bed.local.workflow({
        retryIntervalScale: 0,
        onEvent: (execution, event) => observer.onEvent(execution, event),
        afterStep: async (event) => {
          if (event.functionName === 'export' && gate) await gate;
        },
      }),
    );
    return new SFNClient({
      endpoint: endpoint.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
  };
  const context = (holderRunning: LeaseContext['holderRunning']): LeaseContext => {
    const deps = bed.local.deps();
    return {
      config: bed.local.config,
      leases: deps.locks,
      holds: deps.holds,
      runRecords: deps.runRecords,
      store: deps.store,
      actor: 'ops@example.com',
      holderRunning,
    };
  };

  it('a lease a killed run left: runs skip the table and fail; status names the holder; lease break frees it and the next run archives', async () => {
    // Prepare: the killed run's lease, an hour left on it
    const taken = await bed.local.deps().locks.acquire('app', 'public.events', DEAD_HOLDER, 3600);
    expect(taken.acquired).toBe(true);

    const metrics: string[] = [];
    const recording = {
      retryIntervalScale: 0,
      deps: (deps: StepDeps): StepDeps => ({
        ...deps,
        telemetry: {
          ...deps.telemetry,
          metric: (...args: Parameters<StepDeps['telemetry']['metric']>) => {
            metrics.push(args[0]);
            deps.telemetry.metric(...args);
          },
        },
      }),
    };

    // Act
    const skipped = await runLocalArchive(bed.local, { tables: ['public.events'] }, recording);
    const skippedMetrics = metrics.splice(0);
    const before = await tableStatuses(
      context(async () => false),
      { tables: ['public.events'] },
    );
    const broken = await breakLease(
      context(async () => false),
      'app',
      'public.events',
    );
    const again = await breakLease(
      context(async () => false),
      'app',
      'public.events',
    );
    const archived = await runLocalArchive(bed.local, { tables: ['public.events'] }, recording);
    const after = await tableStatuses(
      context(async () => false),
      { tables: ['public.events'] },
    );

    // Assess
    expect(skipped.execution).toMatchObject({ status: 'FAILED', error: { name: 'ArchiveRunSkipped' } });
    expect(before[0]).toMatchObject({
      lease: { state: 'held', owner: DEAD_HOLDER },
      last: { status: 'skipped' },
    });
    expect(before[0]?.lastSucceeded).toBeUndefined();
    expect(formatStatuses(before)).toMatch(
      new RegExp(
        `lease: held by ${DEAD_HOLDER} until .*\\n.*last run: skipped at .*\\n {2}last success: none recorded`,
      ),
    );
    expect(broken).toEqual({ broken: true, owner: DEAD_HOLDER });
    expect(again).toEqual({ broken: false, reason: 'app/public.events has no lease to break' });
    expect(archived.execution.status).toBe('SUCCEEDED');
    // The dashboard's series: a table skipped, then a table run that succeeded, and each step's duration.
    expect(skippedMetrics).toEqual(['TablesSkippedLocked']);
    expect(metrics).toEqual(expect.arrayContaining(['UploadDuration', 'TableRunsSucceeded']));
    expect(metrics).not.toContain('TablesBudgetReached');
    expect(after[0]).toMatchObject({
      lease: { state: 'free' },
      last: { status: 'succeeded', runId: archived.execution.executionName },
      lastSucceeded: { status: 'succeeded', runId: archived.execution.executionName },
    });
    expect(after[0]?.archived.rows).toBeGreaterThan(0);
    const audit = await listAuditEvents(bed.local.deps().store, bed.local.config.s3.prefix, {
      kinds: ['lease-broken'],
    });
    expect(audit).toEqual([
      expect.objectContaining({
        actor: 'ops@example.com',
        table: 'public.events',
        details: { owner: DEAD_HOLDER, token: taken.acquired ? taken.lease.token : 0, inFlight: null },
      }),
    ]);
  });

  it('refuses to break a lease whose execution still runs, or one already expired; a lease taken meanwhile is left alone', async () => {
    // Prepare
    await bed.local.deps().locks.acquire('app', 'public.others', DEAD_HOLDER, 3600);
    const running = context(async () => true);

    // Act
    const refused = await breakLease(running, 'app', 'public.others');
    const unknown = await breakLease(
      context(async () => false),
      'app',
      'public.missing',
    ).catch((e: Error) => e);

    // Assess
    expect(refused).toEqual({
      broken: false,
      reason: `${DEAD_HOLDER} is still running: stop that execution first, or let it end (it releases the lease)`,
    });
    expect(unknown).toMatchObject({ name: 'ConfigError' });
    expect((await tableStatuses(running, { tables: ['public.others'] }))[0]?.lease).toMatchObject({
      state: 'held',
    });
    expect(
      await breakLease(
        context(async () => false),
        'app',
        'public.others',
      ),
    ).toMatchObject({ broken: true });
  });

  it('refuses to break the lease of an operator’s command while it lasts (a batch settle at work)', async () => {
    // Prepare
    const taken = await bed.local
      .deps()
      .locks.acquire('app', 'public.others', 'operator:alice@example.com', 3600);
    if (!taken.acquired) throw new Error('setup: lease');
    const noStepFunctions = { send: async () => Promise.reject(new Error('Step Functions asked')) };

    // Act
    const refused = await breakLease(context(executionRunning(noStepFunctions)), 'app', 'public.others');

    // Assess
    expect(refused).toEqual({
      broken: false,
      reason:
        'operator:alice@example.com is still running: stop that execution first, or let it end (it releases the lease)',
    });
    expect(await bed.local.deps().locks.release('app', 'public.others', taken.lease)).toBe(true);
  });

  it('records a lease break whose audit event could not be written when the break is run again, and only once', async () => {
    // Prepare: a dead holder's lease, and a bucket that refuses the audit event of the first break
    const since = new Date().toISOString();
    const owner = `${DEAD_HOLDER}-unrecorded`;
    const taken = await bed.local.deps().locks.acquire('app', 'public.others', owner, 3600);
    if (!taken.acquired) throw new Error('setup: lease');
    const ctx = context(async () => false);
    const refusing = Object.assign(Object.create(ctx.store) as typeof ctx.store, {
      putTextOnce: async () => {
        throw new Error('S3 unavailable');
      },
    });

    // Act: the break fails on its event, and the operator runs it again
    const failed = breakLease({ ...ctx, store: refusing }, 'app', 'public.others');
    await expect(failed).rejects.toMatchObject({ name: 'StorageUnavailableError' });
    const held = (await bed.local.deps().locks.get('app', 'public.others')).owner;
    const again = await breakLease(ctx, 'app', 'public.others');

    // Assess: the failed break left the lease as it was (before, it was released, and the second break found no
    // lease and recorded nothing: a lease broken with no trace in the audit trail); the second breaks it, once
    expect(held).toBe(owner);
    expect(again).toMatchObject({ broken: true, owner });
    const events = await listAuditEvents(ctx.store, bed.local.config.s3.prefix, {
      kinds: ['lease-broken'],
      since,
    });
    expect(events.map((e) => [e.table, e.actor, e.details.owner])).toEqual([
      ['public.others', 'ops@example.com', owner],
    ]);
  });

  it('AWS mode: run starts the deployed archive machine and follows it; lease break asks Step Functions whether the holder runs', async () => {
    // Prepare: the run is held after its first export, while its table's child execution holds the lease
    const client = await sfn();
    let open: () => void = () => undefined;
    gate = new Promise((resolve) => {
      open = resolve;
    });
    const lines: string[] = [];
    const following = runAwsArchive(
      client,
      stateMachineArn('archive'),
      { tables: ['public.others'] },
      {
        write: (line) => lines.push(line),
        pollMs: 20,
      },
    );
    let holder = '';
    for (let i = 0; i < 500 && !holder.includes(':execution:audit-archiver-archive-table:'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      holder = (await bed.local.deps().locks.get('app', 'public.others')).owner ?? '';
    }

    // Act
    const whileRunning = await breakLease(context(executionRunning(client)), 'app', 'public.others');
    open();
    gate = undefined;
    const outcome = await following;
    await bed.local.deps().locks.acquire('app', 'public.others', DEAD_HOLDER, 3600);
    const deadHolder = await breakLease(context(executionRunning(client)), 'app', 'public.others');
    const dryRun = await runAwsArchive(
      client,
      stateMachineArn('archive'),
      { dryRun: true },
      {
        write: () => undefined,
        pollMs: 20,
      },
    );

    // Assess
    expect(whileRunning).toEqual({
      broken: false,
      reason: `${holder} is still running: stop that execution first, or let it end (it releases the lease)`,
    });
    expect(outcome).toMatchObject({
      status: 'SUCCEEDED',
      summary: { tables: 1, succeeded: 1, perTable: [{ table: 'public.others', status: 'succeeded' }] },
    });
    expect(lines[0]).toMatch(/^Started arn:aws:states:.*:execution:audit-archiver-archive:cli-1$/);
    expect(lines).toContain('  0 of 1 tables done');
    expect(formatRunOutcome(outcome)).toMatch(
      /: SUCCEEDED\n {2}1 tables: 1 succeeded, .*\n {2}app\/public.others: succeeded, \d+ rows/,
    );
    // The dead holder's execution is unknown to Step Functions: not running, so its lease can go.
    expect(deadHolder).toEqual({ broken: true, owner: DEAD_HOLDER });
    expect(dryRun.status).toBe('SUCCEEDED');
    expect(dryRun.plan?.tables.map((t) => t.table).sort()).toEqual(['public.events', 'public.others']);
  });
});

describe('a state dir serves one process at a time', () => {
  it('refuses a second local environment on a state dir in use, naming the process, and takes over a dead one’s claim', async () => {
    // Prepare
    // Opening local mode starts the local S3 and DynamoDB only: the database is not reached.
    const files = writeTestConfig({ url: 'postgres://unused@127.0.0.1:1/unused' }, [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
    ]);
    const stateDir = mkdtempSync(join(tmpdir(), 'state-claim-'));
    const exited = spawnSync(process.execPath, ['-e', 'process.exit(0)']);
    writeFileSync(join(stateDir, 'owner.pid'), String(exited.pid));

    try {
      // Act
      const first = await openLocalEnvironment(files.configPath, stateDir);
      const second = await openLocalEnvironment(files.configPath, stateDir).catch((e: Error) => e);
      await first.close();
      const third = await openLocalEnvironment(files.configPath, stateDir);
      await third.close();

      // Assess
      expect(second).toMatchObject({
        name: 'ConfigError',
        message: `the state dir ${stateDir} is in use by another audit-archiver process (pid ${process.pid}): wait for it to end, or give another --state-dir`,
      });
    } finally {
      files.cleanup();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});

describe('status: a batch left in flight under a name the config no longer lists', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'renamed', 300, 40);
      await seedEvents(db.client, 'removed', 300, 40);
    },
    [
      { schema: 'public', name: 'renamed', timestampColumn: 'created_at' },
      { schema: 'public', name: 'removed', timestampColumn: 'created_at' },
    ],
  );
  const stop = async (point: string) => {
    if (point === 'delete:afterCommit') throw new Error('stopped after COMMIT');
  };

  it('is shown, with what to do, when the database entry was renamed after a run stopped past its commit', async () => {
    // Prepare: the run stops after its delete committed; the operator then renames the database entry.
    await runLocalArchive(bed.local, { tables: ['public.renamed'] }, { fault: stop, retryIntervalScale: 0 });
    const config = structuredClone(bed.local.config);
    const entry = config.databases[0];
    if (!entry) throw new Error('setup: database entry');
    entry.name = 'app2';
    entry.tables = entry.tables.filter((t) => t.name === 'renamed');
    const deps = bed.local.deps();
    const ctx = { config, leases: deps.locks, holds: deps.holds, runRecords: deps.runRecords };

    // Act
    const statuses = await tableStatuses(ctx);
    const named = await tableStatuses(ctx, { tables: ['public.renamed'] });

    // Assess: the configured table, and the batch under the old name, which no run would finish.
    expect(statuses.map((s) => [s.database, s.table, s.notConfigured])).toEqual([
      ['app2', 'public.renamed', undefined],
      ['app', 'public.renamed', true],
    ]);
    expect(statuses[1]?.inFlight).toMatchObject({ stage: 'deleting' });
    expect(formatStatuses(statuses)).toMatch(
      /app\/public\.renamed \(not in the config\)\n {2}lease: .*\n {2}in flight: a batch deleting, .* no run finishes or undoes it .*; put the entry back, with this database name and table, until a run has settled it/,
    );
    expect(named.map((s) => [s.database, s.notConfigured])).toEqual([
      ['app2', undefined],
      ['app', true],
    ]);
  });

  it('is found by name (-t) when the table was removed from the config; a name with nothing in flight is refused', async () => {
    // Prepare: the run stops after its delete committed; the operator then removes the table from the config.
    await runLocalArchive(bed.local, { tables: ['public.removed'] }, { fault: stop, retryIntervalScale: 0 });
    const config = structuredClone(bed.local.config);
    const entry = config.databases[0];
    if (!entry) throw new Error('setup: database entry');
    entry.tables = entry.tables.filter((t) => t.name !== 'removed');
    const deps = bed.local.deps();
    const ctx = { config, leases: deps.locks, holds: deps.holds, runRecords: deps.runRecords };

    // Act
    const named = await tableStatuses(ctx, { tables: ['public.removed'] });
    const inDatabase = await tableStatuses(ctx, { database: 'app', tables: ['public.removed'] });
    // Settled together: a refusal awaited only after the other's would surface as an unhandled rejection.
    const [elsewhere, never] = await Promise.allSettled([
      tableStatuses(ctx, { database: 'other', tables: ['public.removed'] }),
      tableStatuses(ctx, { tables: ['public.never_archived'] }),
    ]);

    // Assess
    expect(named.map((s) => [s.database, s.table, s.notConfigured, s.inFlight?.stage])).toEqual([
      ['app', 'public.removed', true, 'deleting'],
    ]);
    expect(inDatabase).toEqual(named);
    expect(elsewhere).toMatchObject({ status: 'rejected', reason: { name: 'ConfigError' } });
    expect(never).toMatchObject({
      status: 'rejected',
      reason: { name: 'ConfigError', message: expect.stringContaining('public.never_archived') },
    });
  });
});
