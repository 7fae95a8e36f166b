import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { settleBatch } from '../../cli/batch-settle.js';
import { executionRunning } from '../../cli/leases.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { listAuditEvents } from '../../lambdas/shared/telemetry/audit-trail.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  compareRows,
  leaseStoreAt,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

const TABLES = [
  'changed',
  'gone',
  'known',
  'intact',
  'operator_held',
  'dead_holder',
  'legal',
  'refused_dead',
  'interrupted',
  'unrecorded',
];

describe('batch settle: a batch whose delete no step can settle, decided by an operator', () => {
  const bed = archiverTestbed(async (db) => {
    for (const name of TABLES) await seedEvents(db.client, name, 300, 40);
  }, TABLES.map(spec));

  /**
   * A batch left `deleting` by a crash before COMMIT, recorded as if on another server (a database restored or
   * failed over since: its transaction id tells nothing), then `change` run on its rows: the state in which the
   * next run stops with BatchOutcomeUnknownError. Without a change its rows tell the delete did not commit.
   */
  async function unknownOutcome(name: string, change?: string): Promise<void> {
    const table = `public.${name}`;
    const crash = async (point: string) => {
      if (point === 'delete:beforeCommit') throw Object.assign(new Error('crash'), { name: 'InjectedCrash' });
    };
    const crashed = await runLocalArchive(
      bed.local,
      { tables: [table] },
      { fault: crash, retryIntervalScale: 0 },
    );
    expect(crashed.execution.status).toBe('FAILED');
    const locks = bed.local.deps().locks;
    const inFlight = (await locks.get('app', table)).inFlight;
    if (inFlight?.stage !== 'deleting') throw new Error('setup: no batch deleting');
    const taken = await locks.acquire('app', table, 'setup', 3600);
    if (!taken.acquired) throw new Error('setup: lease');
    await locks.setInFlight('app', table, taken.lease, 3600, { ...inFlight, deleteServer: '1:1' }, [
      'deleting',
    ]);
    await locks.release('app', table, taken.lease);
    if (!change) return;
    await bed.db.client.query(change);
    const stopped = await runLocalArchive(bed.local, { tables: [table] }, { retryIntervalScale: 0 });
    expect(stopped.outcomes[0]?.error).toMatch(/^BatchOutcomeUnknownError: /);
  }
  const context = (): Parameters<typeof settleBatch>[0] => ({
    ...(bed.local.deps() as StepDeps),
    actor: 'ops@example.com',
    holderRunning: async () => false,
  });

  it('refuses a claim against what the server knows of the delete, naming the claim that fits', async () => {
    // Prepare: a delete crashed before COMMIT on this very server (it rolled back)
    const crash = async (point: string) => {
      if (point === 'delete:beforeCommit') throw Object.assign(new Error('crash'), { name: 'InjectedCrash' });
    };
    await runLocalArchive(bed.local, { tables: ['public.known'] }, { fault: crash, retryIntervalScale: 0 });
    const before = await bed.local.deps().locks.get('app', 'public.known');

    // Act
    const refused = await settleBatch(context(), 'app', 'public.known', 'committed');

    // Assess
    expect(before.inFlight?.stage).toBe('deleting');
    expect(refused).toEqual({
      settled: false,
      reason:
        'the server knows its delete did not commit: settle it --as aborted, or let the next run settle it',
    });
    expect((await bed.local.deps().locks.get('app', 'public.known')).inFlight).toEqual(before.inFlight);
  });

  it('settles a batch as the server tells it when a legal hold keeps every run off the table, so a restore can go on', async () => {
    // Prepare: a run died right after its delete committed, then the table was put under hold (an investigation)
    const table = resolvedTable(spec('legal'));
    const original = await tableLines(bed.db.client, table);
    const crash = async (point: string) => {
      if (point === 'delete:afterCommit') throw Object.assign(new Error('crash'), { name: 'InjectedCrash' });
    };
    await runLocalArchive(bed.local, { tables: ['public.legal'] }, { fault: crash, retryIntervalScale: 0 });
    const { holds, locks } = bed.local.deps();
    await holds.set({
      database: 'app',
      table: 'public.legal',
      reason: 'case 2026-17',
      setBy: 'legal@example.com',
      setAt: new Date().toISOString(),
    });
    const held = await runLocalArchive(bed.local, { tables: ['public.legal'] }, { retryIntervalScale: 0 });

    // Act
    const contrary = await settleBatch(context(), 'app', 'public.legal', 'aborted');
    const settled = await settleBatch(context(), 'app', 'public.legal', 'committed');
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.legal', targetTable: 'public.legal_copy' },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(held.outcomes.map((o) => o.status)).toEqual(['held']);
    expect(contrary).toEqual({
      settled: false,
      reason:
        'the server knows its delete committed: settle it --as committed, or let the next run settle it',
    });
    expect(settled).toMatchObject({ settled: true, as: 'committed' });
    expect((await locks.get('app', 'public.legal')).inFlight).toBeUndefined();
    expect(restored.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('refuses a claim the rows can settle: every row still in the table as archived, the next run settles it', async () => {
    // Prepare: the transaction id tells nothing, but every row of the batch is in the table as exported.
    const table = resolvedTable(spec('intact'));
    const original = await tableLines(bed.db.client, table);
    await unknownOutcome('intact');
    const before = await bed.local.deps().locks.get('app', 'public.intact');

    // Act: committed would leave every row both in the table and in a committed archive.
    const refused = await settleBatch(context(), 'app', 'public.intact', 'committed');
    const rerun = await runLocalArchive(bed.local, { tables: ['public.intact'] }, { retryIntervalScale: 0 });

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'batch settle --as committed while every row of the batch is still in the table',
      held: !refused.settled && rerun.execution.status === 'SUCCEEDED',
    });
    expect(refused).toEqual({
      settled: false,
      reason:
        'its rows tell its delete did not commit (all are in the table as archived): settle it --as aborted, or let the next run settle it',
    });
    expect(before.inFlight?.stage).toBe('deleting');
    expect(rerun.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('rows changed since export, every key still there: aborted withdraws its archives and the next run archives the rows as they are', async () => {
    // Prepare
    await unknownOutcome(
      'changed',
      `UPDATE public.changed SET actor = 'changed' WHERE id = (SELECT min(id) FROM public.changed)`,
    );
    const table = resolvedTable(spec('changed'));
    const original = await tableLines(bed.db.client, table);

    // Act
    const settled = await settleBatch(context(), 'app', 'public.changed', 'aborted');
    const rerun = await runLocalArchive(bed.local, { tables: ['public.changed'] }, { retryIntervalScale: 0 });

    // Assess
    expect(settled).toMatchObject({ settled: true, as: 'aborted' });
    expect(rerun.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('an archived row gone from the table: aborted is refused (it would lose it), committed keeps every row somewhere', async () => {
    // Prepare
    const table = resolvedTable(spec('gone'));
    const original = await tableLines(bed.db.client, table);
    await unknownOutcome('gone', 'DELETE FROM public.gone WHERE id = (SELECT min(id) FROM public.gone)');

    // Act
    const refused = await settleBatch(context(), 'app', 'public.gone', 'aborted');
    const committed = await settleBatch(context(), 'app', 'public.gone', 'committed');
    const rerun = await runLocalArchive(bed.local, { tables: ['public.gone'] }, { retryIntervalScale: 0 });

    // Assess: the row deleted by hand is in the archive; rows the delete did not remove are in the table and archived
    // again: in two places, never in none.
    expect(refused).toEqual({
      settled: false,
      reason:
        '1 archived rows of the batch are not in the table: withdrawing its archives would lose them; settle it as committed',
    });
    expect(committed).toMatchObject({ settled: true, as: 'committed' });
    expect(rerun.execution.status).toBe('SUCCEEDED');
    const present = [
      ...(await tableLines(bed.db.client, table)),
      ...(await readLiveArchives(bed.local, 'public', 'gone')).flatMap((a) => a.lines),
    ];
    expect(compareRows(original, present)).toMatchObject({ lost: 0, extra: 0 });
  });

  it('records a settle whose audit event could not be written when the settle is run again, and only once', async () => {
    // Prepare: a batch no step can settle, and a bucket that refuses the audit event of the first settle
    await unknownOutcome(
      'unrecorded',
      'DELETE FROM public.unrecorded WHERE id = (SELECT min(id) FROM public.unrecorded)',
    );
    const since = new Date().toISOString();
    const ctx = context();
    const refusing = Object.assign(Object.create(ctx.store) as typeof ctx.store, {
      putTextOnce: async () => {
        throw new Error('S3 unavailable');
      },
    });

    // Act: the settle fails on its event, and the operator runs it again
    const failed = settleBatch({ ...ctx, store: refusing }, 'app', 'public.unrecorded', 'committed');
    await expect(failed).rejects.toMatchObject({ name: 'StorageUnavailableError' });
    const again = await settleBatch(ctx, 'app', 'public.unrecorded', 'committed');

    // Assess: before, the first settle committed the batch and the second found none in flight and recorded
    // nothing: an operator's decision that the batch's rows were deleted, with no trace in the audit trail
    expect(again).toMatchObject({ settled: true, as: 'committed' });
    const events = await listAuditEvents(ctx.store, bed.local.config.s3.prefix, {
      kinds: ['batch-settled'],
      since,
    });
    expect(events.map((e) => [e.table, e.actor, e.details.as])).toEqual([
      ['public.unrecorded', 'ops@example.com', 'committed'],
    ]);
  });

  it('another operator’s settle holds the table while its lease lasts; once it expired (that command died) settle goes on', async () => {
    // Prepare: an operator's command took the lease and died; Step Functions is never asked about an operator.
    await unknownOutcome(
      'operator_held',
      `UPDATE public.operator_held SET actor = 'changed' WHERE id = (SELECT min(id) FROM public.operator_held)`,
    );
    const locks = bed.local.deps().locks;
    const taken = await locks.acquire('app', 'public.operator_held', 'operator:alice@example.com', 60);
    if (!taken.acquired) throw new Error('setup: lease');
    const noStepFunctions = { send: async () => Promise.reject(new Error('Step Functions asked')) };
    const settling = { ...context(), holderRunning: executionRunning(noStepFunctions) };
    // Past the lease on a clock of its own: a lease of a second, waited out, ran out before the first settle read
    // it whenever that took a second on a loaded machine.
    const pastLease = () => Date.now() + 120_000;

    // Act
    const whileHeld = await settleBatch(settling, 'app', 'public.operator_held', 'aborted');
    const afterExpiry = await settleBatch(
      { ...settling, now: () => new Date(pastLease()), locks: leaseStoreAt(bed.local, pastLease) },
      'app',
      'public.operator_held',
      'aborted',
    );

    // Assess
    expect(whileHeld).toEqual({
      settled: false,
      reason: 'operator:alice@example.com holds the table and is still running',
    });
    expect(afterExpiry).toMatchObject({ settled: true, as: 'aborted' });
  });

  it('a settle stopped by Ctrl-C while it holds the table gives its lease back: another settle need not wait for it to expire', async () => {
    // Prepare: a batch only an operator can settle, and a settle that is stopped while it reads the batch's archives
    await unknownOutcome(
      'interrupted',
      `UPDATE public.interrupted SET actor = 'changed' WHERE id = (SELECT min(id) FROM public.interrupted)`,
    );
    const signals = new EventEmitter();
    const said: string[] = [];
    let ended: (code: number) => void = () => undefined;
    const exitCode = new Promise<number>((resolve) => {
      ended = resolve;
    });
    const deps = bed.local.deps() as StepDeps;
    const stoppedWhileReading = Object.assign(Object.create(deps.store) as StepDeps['store'], {
      getStream: async () => {
        signals.emit('SIGINT');
        await Promise.race([exitCode, new Promise((resolve) => setTimeout(resolve, 2000))]);
        throw new Error('the process ended');
      },
    });
    // As in AWS: an operator's lease counts as running until it expires.
    const noStepFunctions = { send: async () => Promise.reject(new Error('Step Functions asked')) };
    const holderRunning = executionRunning(noStepFunctions);

    // Act
    const stopped = settleBatch(
      {
        ...context(),
        store: stoppedWhileReading,
        holderRunning,
        interrupts: { signals, exit: ended, write: (text) => said.push(text) },
      },
      'app',
      'public.interrupted',
      'aborted',
    ).catch((error: Error) => error);
    const code = await Promise.race([exitCode, stopped.then(() => undefined)]);
    await stopped;
    const again = await settleBatch({ ...context(), holderRunning }, 'app', 'public.interrupted', 'aborted');

    // Assess
    expect(code).toBe(130);
    expect(said).toEqual([
      'Stopped by SIGINT: released the lease of app/public.interrupted; run status, then batch settle again',
    ]);
    expect(again).toMatchObject({ settled: true, as: 'aborted' });
  });

  it('breaks a gone execution’s unexpired lease as lease break would, and says so in the audit trail', async () => {
    // Prepare: the execution that holds the table was stopped; its lease has an hour left.
    await unknownOutcome(
      'dead_holder',
      `UPDATE public.dead_holder SET actor = 'changed' WHERE id = (SELECT min(id) FROM public.dead_holder)`,
    );
    const locks = bed.local.deps().locks;
    const owner = 'arn:aws:states:us-east-1:111111111111:execution:archive:stopped';
    const taken = await locks.acquire('app', 'public.dead_holder', owner, 3600);
    if (!taken.acquired) throw new Error('setup: lease');

    // Act
    const settled = await settleBatch(context(), 'app', 'public.dead_holder', 'committed');

    // Assess
    expect(settled).toMatchObject({ settled: true, as: 'committed' });
    const events = await listAuditEvents(bed.local.deps().store, bed.local.config.s3.prefix, {
      table: 'public.dead_holder',
      kinds: ['lease-broken', 'batch-settled'],
    });
    // Written within the same millisecond, they may be listed either way.
    const byKind = [...events].sort((a, b) => a.kind.localeCompare(b.kind));
    expect(byKind.map((event) => [event.kind, event.actor, event.details])).toEqual([
      ['batch-settled', 'ops@example.com', expect.objectContaining({ as: 'committed' })],
      ['lease-broken', 'ops@example.com', { owner, token: taken.lease.token, inFlight: 'deleting' }],
    ]);
  });

  it('says so when it broke a gone execution’s lease and then refused the claim: the table is free for the next run', async () => {
    // Prepare: a delete crashed before COMMIT on this server (it rolled back); a stopped execution holds the table
    const crash = async (point: string) => {
      if (point === 'delete:beforeCommit') throw Object.assign(new Error('crash'), { name: 'InjectedCrash' });
    };
    await runLocalArchive(
      bed.local,
      { tables: ['public.refused_dead'] },
      { fault: crash, retryIntervalScale: 0 },
    );
    const locks = bed.local.deps().locks;
    const owner = 'arn:aws:states:us-east-1:111111111111:execution:archive:stopped-too';
    const taken = await locks.acquire('app', 'public.refused_dead', owner, 3600);
    if (!taken.acquired) throw new Error('setup: lease');

    // Act
    const refused = await settleBatch(context(), 'app', 'public.refused_dead', 'committed');

    // Assess
    expect(refused).toEqual({
      settled: false,
      reason: `the server knows its delete did not commit: settle it --as aborted, or let the next run settle it; the lease of ${owner}, whose run is over, was broken all the same (in the audit trail)`,
    });
    expect((await locks.get('app', 'public.refused_dead')).owner).toBeUndefined();
  });
});
