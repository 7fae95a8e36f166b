import { describe, expect, it } from 'vitest';
import type { InventoryEntry } from '../../../../lambdas/shared/archive/inventory.js';
import { ArchiveConflictError } from '../../../../lambdas/shared/errors/step-errors.js';
import { ArchiveInventory } from '../../../../lambdas/shared/lock-table/archive-inventory.js';
import { localLockTable } from '../../../support/fixtures.js';

const KEY = 'archive/app/public.events/year=2024/month=01/day=01/20240101-aaaa.jsonl.gz';

/** A commit of the archive under KEY: by `batchId`, at `committedAt`, of the content `sha`. */
const commit = (batchId: string, committedAt: string, sha = 'a'): InventoryEntry => ({
  archiveKey: KEY,
  day: '2024-01-01',
  batchId,
  runId: `run-${batchId}`,
  figures: {
    rowCount: 9,
    contentSha256: sha.repeat(64),
    compressedSha256: 'b'.repeat(64),
    uncompressedBytes: 90,
    compressedBytes: 40,
  },
  pin: { etag: `"etag-${batchId}"` },
  committedAt,
  manifestSha256: `manifest-${batchId}`,
});

describe('the inventory of committed archives on a local DynamoDB', () => {
  const local = localLockTable('inventory-test');
  const inventory = () => new ArchiveInventory(local.lockTable);

  const recorded = async () => (await inventory().entries('app', 'public.events', [KEY])).get(KEY);

  it('keeps the latest commit of the same content, whatever order the records arrive in, and refuses other content', async () => {
    // Prepare: a first commit, and a later one of the same rows whose object was re-created (another pin, manifest).
    const first = commit('first', '2024-02-01T03:00:00.000Z');
    const later = commit('later', '2024-03-01T03:00:00.000Z');

    // Act
    await inventory().record('app', 'public.events', first);
    await inventory().record('app', 'public.events', later);
    const afterLater = await recorded();
    await inventory().record('app', 'public.events', first);
    const afterLateFirst = await recorded();
    const other = inventory().record(
      'app',
      'public.events',
      commit('other', '2024-04-01T03:00:00.000Z', 'f'),
    );

    // Assess
    expect(afterLater).toEqual(later);
    expect(afterLateFirst).toEqual(later);
    await expect(other).rejects.toThrow(ArchiveConflictError);
    expect(await recorded()).toEqual(later);
  });
});
