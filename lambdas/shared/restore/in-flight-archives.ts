import type { ArchiveRef } from '../archive/catalog.js';
import { deleteTransactionStatus } from '../batch/batch.js';
import type { Database } from '../database/db.js';
import { BatchOutcomeUnknownError, DeleteInProgressError } from '../errors/step-errors.js';
import type { ArchiveInventory } from '../lock-table/archive-inventory.js';
import type { LeaseStore } from '../lock-table/lease-store.js';

export interface InFlightDeps {
  locks: Pick<LeaseStore, 'get'>;
  inventory: Pick<ArchiveInventory, 'entries'>;
  /** The source table's database, opened only to settle a batch whose delete may have committed. */
  sourceDatabase: () => Promise<Database>;
}

/**
 * The archives among `keys` (native archives of `table`, listed in the bucket) that belong to the table's batch in
 * flight and whose rows were never deleted: the table holds them as the application has them now (changed or deleted
 * since export, maybe), so a restore must not write the exported copies over them. Read after the keys were listed: a
 * batch's archive keys are in its in-flight record from export on, before any is published. A batch whose delete may
 * have committed (stage `deleting`: its COMMIT comes before the inventory write, and a crash between them leaves it
 * so until the next run settles it) is asked about by its transaction id on the source database: aborted, its rows are
 * in the table; committed or unknown to the server, the restore stops (committed: retried, as the run records it)
 * rather than leave out rows the table lost or read archives the inventory does not vouch for yet. An
 * archive still in flight whose key a committed batch wrote too (the same rows restored and archived again) is
 * committed content, and stays.
 */
export async function uncommittedInFlight(
  deps: InFlightDeps,
  database: string,
  table: string,
  keys: readonly string[],
): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const listed = new Set(keys);
  const { inFlight } = await deps.locks.get(database, table);
  const inFlightKeys = (inFlight?.objects ?? [])
    .map((object) => object.archiveKey)
    .filter((key) => listed.has(key));
  if (!inFlight || inFlightKeys.length === 0) return new Set();
  const committed = await deps.inventory.entries(database, table, inFlightKeys);
  const uncommitted = inFlightKeys.filter((key) => !committed.has(key));
  if (uncommitted.length === 0) return new Set();
  if (inFlight.deleteXid) {
    const db = await deps.sourceDatabase();
    const status = await db.withConnection((client) => deleteTransactionStatus(client, inFlight));
    // Committed, its rows left the table, but its archives are not in the inventory yet, which restore checks them
    // against: the archive run's next step records them (retried meanwhile), as batch settle does.
    if (status === 'committed')
      throw new DeleteInProgressError(
        `the batch ${database}/${table} has in flight (${uncommitted.length} of the archives selected) was deleted, and its delete step ended before recording its archives as committed: run the table's archive (it records the batch) or batch settle, then restore again`,
      );
    if (status === 'unknown')
      throw new BatchOutcomeUnknownError(
        `the batch ${database}/${table} has in flight (${uncommitted.length} of the archives selected) was being deleted, and the server cannot tell whether that delete committed: its rows may be in neither the table nor a restore; run the table's archive (its next export settles the batch) or settle it with batch settle, then restore again`,
      );
  }
  return new Set(uncommitted);
}

/** How many listed archives one look-up in the inventory takes (one BatchGetItem). */
const INVENTORY_LOOKUP_KEYS = 100;

/**
 * `refs` without the native archives no batch committed: not in the inventory nor in the table's batch in flight,
 * and written (LastModified, which S3 sets; whole seconds) since the table's first batch under a version that records
 * every commit (`inventorySince`). Such an object is a withdrawn batch's that an invocation which had lost its lease
 * completed after the withdrawal (a copy in parts reads its source first, and completes later): its rows were never
 * deleted by it, the table holds them as the application has them now (or erased them), and restoring it would bring
 * back erased rows or revert updates. Each is passed to `onLeftOut`. Archives from before `inventorySince` pass, and
 * restore-file warns of them as before.
 */
export async function* withoutNeverCommitted(
  refs: AsyncIterable<ArchiveRef>,
  deps: Pick<InFlightDeps, 'locks' | 'inventory'>,
  database: string,
  table: string,
  onLeftOut: (ref: ArchiveRef) => void,
): AsyncGenerator<ArchiveRef> {
  const { inventorySince, inFlight } = await deps.locks.get(database, table);
  if (inventorySince === undefined) {
    yield* refs;
    return;
  }
  const since = Math.floor(inventorySince / 1000) * 1000;
  const inFlightKeys = new Set(inFlight?.objects.map((object) => object.archiveKey));
  const suspect = (ref: ArchiveRef) =>
    ref.format === 'native' &&
    !inFlightKeys.has(ref.key) &&
    ref.lastModified !== undefined &&
    ref.lastModified.getTime() >= since;
  let pending: ArchiveRef[] = [];
  async function* sorted(): AsyncGenerator<ArchiveRef> {
    const suspects = pending.filter(suspect).map((ref) => ref.key);
    const committed =
      suspects.length > 0 ? await deps.inventory.entries(database, table, suspects) : new Map();
    for (const ref of pending) {
      if (suspect(ref) && !committed.has(ref.key)) onLeftOut(ref);
      else yield ref;
    }
    pending = [];
  }
  for await (const ref of refs) {
    pending.push(ref);
    if (pending.length >= INVENTORY_LOOKUP_KEYS) yield* sorted();
  }
  yield* sorted();
}
