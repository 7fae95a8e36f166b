import type { ArchiveRef } from '../archive/catalog.js';
import { datedSinceInventory } from '../archive/inventory.js';
import { deleteOutcome } from '../batch/batch.js';
import { tableRef } from '../config/schema.js';
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
 * so until the next run settles it) is asked about by its transaction id on the source database, as the run settles it
 * (deleteOutcome: every exported row version still there overrules a `committed`): aborted, its rows are in the table; committed or unknown to the server, the restore stops (committed: retried, as the run records it)
 * rather than leave out rows the table lost or read archives the inventory does not vouch for yet. An
 * archive still in flight whose key a committed batch wrote too (the same rows restored and archived again) is
 * committed content, and stays.
 */
export async function uncommittedInFlight(
  deps: InFlightDeps,
  database: string,
  source: { schema: string; name: string },
  keys: readonly string[],
): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const table = tableRef(source);
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
    // Read as the batch read the table (its record's key, timestamp column and zone; the config may say otherwise
    // now, or no longer name it): a `committed` its rows contradict is a transaction id reused after a snapshot restore.
    // A record without a manifest (an earlier version's) is never read by its rows, so the fallbacks are not used.
    const exported = {
      database,
      ...source,
      ref: table,
      timestampColumn: inFlight.manifest?.timestampColumn ?? '',
      timestampTimeZone: inFlight.manifest?.timestampTimeZone ?? 'UTC',
    };
    const status = await db.withConnection((client) => deleteOutcome(client, exported, inFlight));
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
 * `refs`, less each native archive the inventory does not list though S3 dates it (LastModified; whole seconds) after
 * the table's first batch recorded with the inventory (`inventorySince`), which goes to `onUnlisted` (and is kept
 * too with `keep`): no commit vouches for it. It may be a withdrawn batch's object that an invocation which had lost its lease
 * completed after the withdrawal (a copy in parts reads its source first, and completes later), whose rows the
 * application may have changed or erased since; or an object written outside the archiver; or a committed archive
 * whose inventory entry is gone (a lock table restored to an earlier time). Only the caller can choose
 * (RestoreTask.unlistedArchives). Archives of the table's batch in flight pass (uncommittedInFlight decides), and so
 * do archives from before `inventorySince`, which restore-file warns of as before. Each chunk is looked up in the
 * inventory, then the lease item is read, then what is still missing is looked up again: a batch that commits
 * meanwhile is in flight at the read or in the inventory at the second look-up (its commit writes the inventory
 * before it clears the lease item).
 */
export async function* sortUnlisted(
  refs: AsyncIterable<ArchiveRef>,
  deps: Pick<InFlightDeps, 'locks' | 'inventory'>,
  database: string,
  table: string,
  onUnlisted: (ref: ArchiveRef) => void,
  keep = false,
): AsyncGenerator<ArchiveRef> {
  // Set once, with the table's first batch recorded: read again after each chunk's first look-up, for the batch in flight.
  const { inventorySince } = await deps.locks.get(database, table);
  if (inventorySince === undefined) {
    yield* refs;
    return;
  }
  const dated = (ref: ArchiveRef) =>
    ref.format === 'native' && datedSinceInventory(ref.lastModified, inventorySince);
  const lookUp = async (keys: string[]) =>
    keys.length > 0 ? await deps.inventory.entries(database, table, keys) : new Map();
  let pending: ArchiveRef[] = [];
  async function* sift(): AsyncGenerator<ArchiveRef> {
    const chunk = pending;
    pending = [];
    const first = await lookUp(chunk.filter(dated).map((ref) => ref.key));
    const { inFlight } = await deps.locks.get(database, table);
    const inFlightKeys = new Set(inFlight?.objects.map((object) => object.archiveKey));
    const suspects = chunk.filter((ref) => dated(ref) && !first.has(ref.key) && !inFlightKeys.has(ref.key));
    const second = await lookUp(suspects.map((ref) => ref.key));
    const unlisted = new Set(suspects.filter((ref) => !second.has(ref.key)));
    for (const ref of chunk) {
      if (unlisted.has(ref)) onUnlisted(ref);
      if (keep || !unlisted.has(ref)) yield ref;
    }
  }
  for await (const ref of refs) {
    pending.push(ref);
    if (pending.length >= INVENTORY_LOOKUP_KEYS) yield* sift();
  }
  yield* sift();
}
