import pMap from 'p-map';
import type { ArchiveStore } from '../archive/store.js';
import { isColdStorageClass } from '../config/storage-classes.js';

/** HEAD requests in flight at once while cold archives are checked. */
const HEADS_AT_ONCE = 16;

/**
 * Whether S3 reads an object of a cold class now, by its restore status (`x-amz-restore`): never restored, a restore
 * still running, or a restored copy readable until its expiry date.
 */
export type ColdArchiveState = 'not-restored' | 'restoring' | 'readable';

export function coldArchiveState(restore: string | undefined): ColdArchiveState {
  if (restore === undefined) return 'not-restored';
  return /ongoing-request\s*=\s*"false"/i.test(restore) ? 'readable' : 'restoring';
}

export interface UnreadableArchive {
  key: string;
  storageClass: string;
  state: Exclude<ColdArchiveState, 'readable'>;
}

/**
 * The archives among `refs` that S3 lists in GLACIER or DEEP_ARCHIVE and would refuse to read now. Only those are
 * looked at, one HEAD each: a listing says the class but not whether a restore from cold storage has completed. An
 * archive gone since it was listed is left to the reader, which reports it missing.
 */
export async function unreadableColdArchives(
  store: Pick<ArchiveStore, 'head'>,
  refs: readonly { key: string; storageClass: string }[],
): Promise<UnreadableArchive[]> {
  const cold = refs.filter((ref) => isColdStorageClass(ref.storageClass));
  const states = await pMap(
    cold,
    async (ref) => {
      const head = await store.head(ref.key);
      if (!head) return undefined;
      const state = coldArchiveState(head.restore);
      return state === 'readable' ? undefined : { key: ref.key, storageClass: ref.storageClass, state };
    },
    { concurrency: HEADS_AT_ONCE },
  );
  return states.filter((state) => state !== undefined);
}

/** Keys an operator is shown, at most; the rest are counted. */
const KEYS_SHOWN = 5;

/** What stops a read of these archives, and what the operator does about it. */
export function coldArchivesMessage(unreadable: readonly UnreadableArchive[], what: string): string {
  const classes = [...new Set(unreadable.map((archive) => archive.storageClass))].join(' and ');
  const restoring = unreadable.filter((archive) => archive.state === 'restoring').length;
  const keys = unreadable.slice(0, KEYS_SHOWN).map((archive) => archive.key);
  const more = unreadable.length > keys.length ? `, and ${unreadable.length - keys.length} more` : '';
  return `${unreadable.length} archive(s) of ${what} are in ${classes}, which S3 reads only once a restore from cold storage has completed (${restoring} being restored now): ${keys.join(', ')}${more}. Restore them in S3 (RestoreObject, or S3 Batch Operations for many; Standard retrieval takes hours) for at least as many days as this restore will take, then start it again`;
}
