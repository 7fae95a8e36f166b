import type { ArchiveInventory } from '../lock-table/archive-inventory.js';
import type { LeaseStore } from '../lock-table/lease-store.js';

/**
 * The archives among `keys` (native archives of `table`, listed in the bucket) that belong to the table's batch in
 * flight and that no committed batch wrote: their rows were never deleted, and the table holds them as the application
 * has them now (changed or deleted since export, maybe), so a restore must not write the exported copies over them.
 * Read after the keys were listed: a batch's archive keys are in its in-flight record from export on, before any is
 * published, and in the inventory before the record lets go of them, so a listed key is in one of the two (or its
 * batch was withdrawn). An archive still in flight whose key a committed batch wrote too (the same rows restored and
 * archived again) is committed content, and stays.
 */
export async function uncommittedInFlight(
  deps: { locks: Pick<LeaseStore, 'get'>; inventory: Pick<ArchiveInventory, 'entries'> },
  database: string,
  table: string,
  keys: readonly string[],
): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const listed = new Set(keys);
  const state = await deps.locks.get(database, table);
  const inFlight = (state.inFlight?.objects ?? [])
    .map((object) => object.archiveKey)
    .filter((key) => listed.has(key));
  if (inFlight.length === 0) return new Set();
  const committed = await deps.inventory.entries(database, table, inFlight);
  return new Set(inFlight.filter((key) => !committed.has(key)));
}
