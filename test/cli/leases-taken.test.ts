import { describe, expect, it } from 'vitest';
import { LeasesTaken } from '../../cli/leases-taken.js';
import type { Lease } from '../../lambdas/shared/lock-table/table-state.js';

const acquire = {
  action: 'acquire',
  runId: 'run-1',
  database: 'app',
  table: 'public.events',
  owner: 'execution-1',
  cutoff: '2026-11-01T00:00:00.000Z',
  maxBatches: 10,
};
const lease: Lease = { owner: 'execution-1', token: 7 };

/** A lease store that records what it is asked to release. */
function recordingLocks() {
  const released: Lease[] = [];
  return {
    released,
    release: async (_database: string, _table: string, given: Lease) => {
      released.push(given);
      return true;
    },
  };
}

/** A lock step's end, as the workflow reports it: its result, or its error. */
const lockEnded = (payload: object, outcome: { result: unknown } | { error: Error }) => ({
  functionName: 'lock' as const,
  payload,
  ...outcome,
  durationMs: 5,
});
const acquired = { result: { acquired: true, lease, expiresAt: 1 } };
const failed = { error: new Error('lock table unavailable') };

describe('LeasesTaken', () => {
  it('a Ctrl-C while a lock step acquires: the release waits for the step and gives its lease back', async () => {
    // Prepare: the acquire has started and not ended when the clean-up starts.
    const leases = new LeasesTaken();
    const locks = recordingLocks();
    leases.started('lock', acquire);

    // Act
    const releasing = leases.releaseAll(locks);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const releasedBefore = locks.released.length;
    leases.note(lockEnded(acquire, acquired));
    const said = await releasing;

    // Assess
    expect(releasedBefore).toBe(0);
    expect(locks.released).toEqual([lease]);
    expect(said).toMatch(/^released the lease of app\/public\.events/);
  });

  it('a lease already held goes back at once, while the lock step of another table still runs', async () => {
    // Prepare: the lease of public.held is taken; an acquire of public.events has started and not ended.
    const leases = new LeasesTaken();
    const locks = recordingLocks();
    const held = { ...acquire, table: 'public.held' };
    leases.started('lock', held);
    leases.note(lockEnded(held, acquired));
    leases.started('lock', acquire);

    // Act
    const releasing = leases.releaseAll(locks);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const releasedWhileRunning = [...locks.released];
    leases.note(lockEnded(acquire, failed));
    const said = await releasing;

    // Assess
    expect(releasedWhileRunning).toEqual([lease]);
    expect(said).toMatch(/^released the lease of app\/public\.held;/);
  });

  it('a lock step that failed, or acquired nothing, leaves nothing to wait for or release', async () => {
    // Prepare
    const leases = new LeasesTaken();
    const locks = recordingLocks();
    leases.started('lock', acquire);
    leases.note(lockEnded(acquire, failed));
    leases.started('lock', { ...acquire, table: 'public.other' });
    leases.note(
      lockEnded(
        { ...acquire, table: 'public.other' },
        { result: { acquired: false, holder: 'execution-0', expiresAt: 1 } },
      ),
    );

    // Act
    const said = await leases.releaseAll(locks);

    // Assess
    expect(said).toBeUndefined();
    expect(locks.released).toEqual([]);
  });

  it('a lease released by its run is not released again; other steps are ignored', async () => {
    // Prepare
    const leases = new LeasesTaken();
    const locks = recordingLocks();
    leases.started('lock', acquire);
    leases.note(lockEnded(acquire, acquired));
    leases.started('export', { database: 'app', table: 'public.events' });
    const release = { ...acquire, action: 'release', lease, progress: { batches: 1, rows: 10, bytes: 100 } };
    leases.started('lock', release);
    leases.note(lockEnded(release, { result: { released: true, status: 'succeeded' } }));

    // Act
    const said = await leases.releaseAll(locks);

    // Assess
    expect(said).toBeUndefined();
    expect(locks.released).toEqual([]);
  });
});
