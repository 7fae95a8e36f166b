import { describe, expect, it } from 'vitest';
import { lockTable } from '../../../lambdas/lock/core.js';
import type { LockInput } from '../../../lambdas/lock/schema.js';
import { listAuditEvents } from '../../../lambdas/shared/telemetry/audit-trail.js';
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

const failing = { schema: 'public', name: 'failing', timestampColumn: 'created_at' };
const healthy = { schema: 'public', name: 'healthy', timestampColumn: 'created_at' };

/**
 * The release records its owner, so a duplicate of the execution's AcquireLock landing after it is refused; but that
 * record is of the last release only. Once the lease went on to other executions (a table run by hand took and released
 * it, the next one holds it), the duplicate finds the lease held, and its `skipped` replaced the outcome the
 * execution's release recorded: the failed table read as skipped, the run as a success.
 */
describe('a duplicated AcquireLock invocation landing once the lease went on to other executions', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'failing', 120, 40);
      await seedEvents(db.client, 'healthy', 120, 40);
      // A trigger on DELETE makes export refuse the table (TableNotUsableError): it fails every run.
      await db.client.query(`
        CREATE FUNCTION public.keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
        CREATE TRIGGER keep BEFORE DELETE ON public.failing FOR EACH ROW EXECUTE FUNCTION public.keep();`);
    },
    [failing, healthy],
    // One lane: the failing table first, the healthy one after its release.
    { maxConnections: 1 },
  );

  it('keeps the failure the execution recorded, and the run fails', async () => {
    // Prepare: once the failing table's execution released its lease, an execution by hand takes and releases it,
    // the next one takes it, and the duplicate of the first execution's AcquireLock lands.
    const owner = 'arn:aws:states:us-east-1:000000000000:execution:audit-archiver-archive-table';
    let acquire: LockInput | undefined;
    let duplicate: Awaited<ReturnType<typeof lockTable>> | undefined;
    const afterStep = async (event: StepEvent) => {
      const payload = event.payload as LockInput;
      if (event.functionName !== 'lock' || payload.table !== 'public.failing') return;
      if (payload.action === 'acquire') acquire = payload;
      if (payload.action !== 'release' || !acquire || duplicate) return;
      const { locks } = bed.local.deps();
      const byHand = await locks.acquire('app', 'public.failing', `${owner}:by-hand`, 900);
      if (byHand.acquired) await locks.release('app', 'public.failing', byHand.lease);
      await locks.acquire('app', 'public.failing', `${owner}:next`, 900);
      duplicate = await lockTable(acquire, bed.local.deps());
    };

    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, afterStep });
    const events = await listAuditEvents(bed.local.deps().store, bed.local.config.s3.prefix, {});

    // Assess
    const outcome = {
      duplicate: duplicate && 'holder' in duplicate ? duplicate.holder : undefined,
      run: [run.execution.status, run.execution.error?.name],
      recorded: run.outcomes.map((o) => `${o.table} ${o.status}`).sort(),
      audited: events
        .filter((e) => e.kind === 'table-outcome')
        .map((e) => `${e.table} ${e.details.status}`)
        .sort(),
    };
    const expected = {
      duplicate: `${owner}:next`,
      run: ['FAILED', 'ArchiveRunFailed'],
      recorded: ['public.failing failed', 'public.healthy succeeded'],
      audited: ['public.failing failed', 'public.healthy succeeded'],
    };
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'AcquireLock invoked twice, the duplicate landing once the lease went on to other executions',
      held: JSON.stringify(outcome) === JSON.stringify(expected),
    });
    expect(outcome).toEqual(expected);
  });
});
