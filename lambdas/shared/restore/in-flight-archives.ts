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
