import { describe, expect, it } from 'vitest';
import type { ArchiveStore, ObjectHead } from '../../../../lambdas/shared/archive/store.js';
import {
  coldArchiveState,
  coldArchivesMessage,
  unreadableColdArchives,
} from '../../../../lambdas/shared/restore/cold-archives.js';

/** A store whose HEAD answers from `heads` (S3's restore status is what no local server can be asked to vary). */
const storeOf = (heads: Record<string, Partial<ObjectHead> | undefined>) => {
  const asked: string[] = [];
  const store = {
    head: async (key: string) => {
      asked.push(key);
      const head = heads[key];
      return head ? { size: 1, metadata: {}, ...head } : undefined;
    },
  } as Pick<ArchiveStore, 'head'>;
  return { store, asked };
};

describe('archives in cold storage', () => {
  it.each([
    [undefined, 'not-restored'],
    ['ongoing-request="true"', 'restoring'],
    ['ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"', 'readable'],
  ] as const)('reads the restore status %s as %s', (restore, state) => {
    // Act & Assess
    expect(coldArchiveState(restore)).toBe(state);
  });

  it('asks S3 about the cold classes only, and names the archives it would refuse to read', async () => {
    // Prepare
    const { store, asked } = storeOf({
      frozen: { storageClass: 'DEEP_ARCHIVE' },
      thawing: { storageClass: 'GLACIER', restore: 'ongoing-request="true"' },
      thawed: { storageClass: 'GLACIER', restore: 'ongoing-request="false", expiry-date="x"' },
    });

    // Act
    const unreadable = await unreadableColdArchives(store, [
      { key: 'frozen', storageClass: 'DEEP_ARCHIVE' },
      { key: 'thawing', storageClass: 'GLACIER' },
      { key: 'thawed', storageClass: 'GLACIER' },
      { key: 'gone', storageClass: 'GLACIER' },
      { key: 'warm', storageClass: 'GLACIER_IR' },
      { key: 'tiered', storageClass: 'INTELLIGENT_TIERING' },
    ]);
    const message = coldArchivesMessage(unreadable, '"public"."t"');

    // Assess
    expect(asked).toEqual(['frozen', 'thawing', 'thawed', 'gone']);
    expect(unreadable).toEqual([
      { key: 'frozen', storageClass: 'DEEP_ARCHIVE', state: 'not-restored' },
      { key: 'thawing', storageClass: 'GLACIER', state: 'restoring' },
    ]);
    expect(message).toMatch(
      /^2 archive\(s\) of "public"\."t" are in DEEP_ARCHIVE and GLACIER, .* \(1 being restored now\): frozen, thawing\. Restore them in S3/,
    );
  });
});
