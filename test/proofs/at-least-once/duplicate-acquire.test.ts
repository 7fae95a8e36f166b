import { describe, expect, it } from 'vitest';
import { lockTable } from '../../../lambdas/lock/core.js';
import type { LockInput } from '../../../lambdas/lock/schema.js';
import { runLocalArchive } from '../../../local/run.js';
import type { StepEvent } from '../../../local/workflow.js';
import { archiverTestbed, fixedCutoffSql, seedEvents } from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };

/**
 * Step Functions invokes a Lambda at least once: a Task retried on Lambda.ServiceException or Lambda.Unknown (both in
 * every Task's Retry) may run beside, or after, the attempt it replaced. A duplicate of AcquireLock that took the
 * lease again under a new fencing token would fence the execution out of its own lease (every later step failing
 * with LeaseLostError, the release refused, the lease held by an execution that has ended); one landing after the
 * release would take the lease for an execution that has ended.
 */
describe('a duplicated AcquireLock invocation landing after the execution took its lease', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 310, 31), [spec]);

  it('neither fails the run nor leaves the table locked by an execution that has ended', async () => {
    // Act: the run; after its first export, the duplicate of its AcquireLock invocation runs
    const cutoff = await fixedCutoffSql(bed.db.client);
    let acquire: LockInput | undefined;
    let duplicated = false;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName === 'lock' && (event.payload as LockInput).action === 'acquire')
        acquire = event.payload as LockInput;
      if (event.functionName === 'export' && acquire && !duplicated) {
        duplicated = true;
        await lockTable(acquire, bed.local.deps());
      }
    };
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, afterStep });
    // And once more, after the execution released the lease, with a legal hold set meanwhile.
    const { holds, runRecords } = bed.local.deps();
    await holds.set({
      database: 'app',
      table: 'public.events',
      reason: 'case 2026-18',
      setBy: 'legal@example.com',
      setAt: new Date().toISOString(),
    });
    const late = acquire ? await lockTable(acquire, bed.local.deps()) : undefined;
    const recorded = await runRecords.listOutcomes(run.execution.executionName);
    await holds.clear('app', 'public.events', (await holds.get('app', 'public.events'))?.setAt ?? '');
    const lease = await bed.local.deps().locks.get('app', 'public.events');
    const next = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    const left = (
      await bed.db.client.query(`SELECT count(*)::int AS n FROM public.events WHERE created_at < ${cutoff}`)
    ).rows[0].n as number;

    // Assess
    const outcome = {
      duplicated,
      late: late && 'acquired' in late ? late.acquired : undefined,
      recorded: recorded.map((o) => o.status),
      run: run.outcomes.map((o) => `${o.status} ${o.error ?? ''}`.trim()),
      // Released at the end of the run, whatever happened in it
      leaseOwnerAfterRun: lease.owner,
      next: next.outcomes.map((o) => `${o.status} ${o.reason ?? ''}`.trim()),
      left,
    };
    const expected = {
      duplicated: true,
      late: false,
      recorded: ['succeeded'],
      run: ['succeeded'],
      leaseOwnerAfterRun: undefined,
      next: ['succeeded'],
      left: 0,
    };
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'AcquireLock invoked twice, the duplicate landing mid-run and again after the release',
      held: JSON.stringify(outcome) === JSON.stringify(expected),
    });
    expect(outcome).toEqual(expected);
  });
});
