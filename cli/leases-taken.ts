import { LockInputSchema, LockOutputSchema } from '../lambdas/lock/schema.js';
import type { LeaseStore } from '../lambdas/shared/lock-table/lease-store.js';
import type { Lease } from '../lambdas/shared/lock-table/table-state.js';
import type { FunctionName, StepEvent } from '../local/workflow.js';

/**
 * The table leases a local run holds, as its lock steps took and released them: what a Ctrl-C gives back. Only this
 * process runs in its state dir (state-dir-claim.ts), so no other run can take a table between the release and the
 * process's end: releasing here is `lease break` of a run that is over, and the next run settles a batch in flight
 * first, as after any crash.
 */
export class LeasesTaken {
  private readonly held = new Map<string, { database: string; table: string; lease: Lease }>();
  /** Lock steps started and not ended, by table: one ending after releaseAll looked would keep its lease. */
  private readonly running = new Map<string, { ended: Promise<void>; end: () => void }>();

  /** Notes a lock step starting (every other step is ignored). */
  started(functionName: FunctionName, payload: unknown): void {
    const input = functionName === 'lock' ? LockInputSchema.safeParse(payload) : undefined;
    if (!input?.success) return;
    const key = tableKey(input.data);
    // The state machine runs one lock step of a table at a time.
    if (this.running.has(key)) return;
    const step = {} as { ended: Promise<void>; end: () => void };
    step.ended = new Promise((resolve) => {
      step.end = resolve;
    });
    this.running.set(key, step);
  }

  /** Notes a lock step's acquire or release ending (every other step is ignored). */
  note(event: StepEvent): void {
    const input = event.functionName === 'lock' ? LockInputSchema.safeParse(event.payload) : undefined;
    if (!input?.success) return;
    const { database, table } = input.data;
    const key = tableKey(input.data);
    this.running.get(key)?.end();
    this.running.delete(key);
    if (event.error) return;
    const output = LockOutputSchema.safeParse(event.result);
    if (input.data.action === 'release') this.held.delete(key);
    else if (output.success && 'acquired' in output.data && output.data.acquired)
      this.held.set(key, { database, table, lease: output.data.lease });
  }

  /** Releases every lease still held (each conditioned on its owner and token); says which, if any. */
  async releaseAll(locks: Pick<LeaseStore, 'release'>): Promise<string | undefined> {
    const released: string[] = [];
    // The leases held go back first: a lock step still running must not keep them past the clean-up's time. One that
    // ends meanwhile adds its lease: go round until none is held and none runs.
    while (this.held.size > 0 || this.running.size > 0) {
      const leases = [...this.held.entries()];
      for (const [key, { database, table, lease }] of leases) {
        this.held.delete(key);
        if (await locks.release(database, table, lease)) released.push(`${database}/${table}`);
      }
      if (this.held.size === 0 && this.running.size > 0)
        await Promise.race([...this.running.values()].map(({ ended }) => ended));
    }
    if (released.length === 0) return undefined;
    return `released the lease of ${released.join(', ')}; the next run settles a batch in flight first`;
  }
}

const tableKey = ({ database, table }: { database: string; table: string }) =>
  JSON.stringify([database, table]);
