import { LockInputSchema, LockOutputSchema } from '../lambdas/lock/schema.js';
import type { LeaseStore } from '../lambdas/shared/lock-table/lease-store.js';
import type { Lease } from '../lambdas/shared/lock-table/table-state.js';
import type { StepEvent } from '../local/workflow.js';

/**
 * The table leases a local run holds, as its lock steps took and released them: what a Ctrl-C gives back. Only this
 * process runs in its state dir (state-dir-claim.ts), so no other run can take a table between the release and the
 * process's end: releasing here is `lease break` of a run that is over, and the next run settles a batch in flight
 * first, as after any crash.
 */
export class LeasesTaken {
  private readonly held = new Map<string, { database: string; table: string; lease: Lease }>();

  /** Notes a lock step's acquire or release (every other step is ignored). */
  note(event: StepEvent): void {
    if (event.functionName !== 'lock' || event.error) return;
    const input = LockInputSchema.safeParse(event.payload);
    if (!input.success) return;
    const { database, table } = input.data;
    const key = JSON.stringify([database, table]);
    const output = LockOutputSchema.safeParse(event.result);
    if (input.data.action === 'release') this.held.delete(key);
    else if (output.success && 'acquired' in output.data && output.data.acquired)
      this.held.set(key, { database, table, lease: output.data.lease });
  }

  /** Releases every lease still held (each conditioned on its owner and token); says which, if any. */
  async releaseAll(locks: Pick<LeaseStore, 'release'>): Promise<string | undefined> {
    const released: string[] = [];
    // A lock step that ends meanwhile adds its lease: go round until none is left.
    while (this.held.size > 0) {
      const leases = [...this.held.entries()];
      for (const [key, { database, table, lease }] of leases) {
        this.held.delete(key);
        if (await locks.release(database, table, lease)) released.push(`${database}/${table}`);
      }
    }
    if (released.length === 0) return undefined;
    return `released the lease of ${released.join(', ')}; the next run settles a batch in flight first`;
  }
}
