import { describe, expect, it } from 'vitest';
import { listPage } from '../../../lambdas/restore-plan/core.js';
import { archiveKey } from '../../../lambdas/shared/archive/format.js';
import type { InventoryEntry } from '../../../lambdas/shared/archive/inventory.js';
import type { ArchiveStore } from '../../../lambdas/shared/archive/store.js';
import type { ArchiverConfig } from '../../../lambdas/shared/config/schema.js';
import type { ArchiveInventory } from '../../../lambdas/shared/lock-table/archive-inventory.js';
import type { LeaseStore } from '../../../lambdas/shared/lock-table/lease-store.js';
import type { RestoreTask } from '../../../lambdas/shared/restore/restore-task.js';
import { restoreTaskOf } from '../../support/fixtures.js';
import { writeLegacyArchive } from '../../support/legacy-archive.js';

/** A store holding `files`, listed in key order as S3 lists them, that notes each object read. */
function storeOf(files: Map<string, Buffer>) {
  const read: string[] = [];
  const store = {
    list: async function* (prefix: string, startAfter?: string) {
      for (const key of [...files.keys()].sort())
        if (key.startsWith(prefix) && (startAfter === undefined || key > startAfter))
          yield { key, size: files.get(key)?.length ?? 0, storageClass: 'STANDARD' };
    },
    getText: async (key: string) => {
      read.push(key);
      return files.get(key)?.toString('utf8');
    },
  } as unknown as ArchiveStore;
  return { store, read };
}

const config = { s3: { prefix: 'archive/' } } as ArchiverConfig;

/** A table with no batch in flight: every listed archive is one to restore, and no database is asked. */
const noBatchInFlight = { get: async () => ({}) } as unknown as LeaseStore;
const noDatabase = async () => {
  throw new Error('no database in this test');
};

const taskOf = (overrides: Partial<RestoreTask>): RestoreTask => ({
  ...restoreTaskOf('audit_log'),
  database: 'crm',
  ...overrides,
});
/** One batch of the table from each of 30 runs of the Python tool, a day apart, row `i` in run `i`'s. */
const thirtyRuns = () =>
  Array.from({ length: 30 }, (_, i) =>
    writeLegacyArchive({
      prefix: 'archive/',
      database: 'crm',
      schema: 'public',
      table: 'audit_log',
      runStamp: `2025${String(1 + Math.floor(i / 28)).padStart(2, '0')}${String(1 + (i % 28)).padStart(2, '0')}T010000Z`,
      batch: 1,
      rows: [{ id: i, created_at: '2025-01-02T03:04:05+00:00' }],
    }),
  );

describe('listPage of a legacy restore of one key', () => {
  it('reads the metadata of that archive alone, not of every legacy archive of the table', async () => {
    // Prepare: 30 runs' batches of the table, each run in its date folder.
    const archives = thirtyRuns();
    const { store, read } = storeOf(new Map(archives.flatMap((archive) => [...archive.files])));
    const wanted = archives[17];
    const task = taskOf({
      format: 'legacy',
      legacy: { database: 'crm', prefix: 'archive/' },
      key: wanted?.dataKey,
    });

    // Act
    const page = await listPage(task, '', 4, {
      config,
      store,
      inventory: {} as ArchiveInventory,
      locks: noBatchInFlight,
      database: noDatabase,
    });

    // Assess
    expect(page.groups.flatMap((group) => group.archives.map((a) => a.key))).toEqual([wanted?.dataKey]);
    expect(read).toEqual([wanted?.metadataKey]);
  });
});

describe('listPage of a legacy restore, newest run first', () => {
  it('hands out one group a page, the newest runs first, reading the metadata of its own archives only', async () => {
    // Prepare: 30 runs' batches of the table, each run in its date folder.
    const archives = thirtyRuns();
    const { store, read } = storeOf(new Map(archives.flatMap((archive) => [...archive.files])));
    const task = taskOf({ format: 'legacy', legacy: { database: 'crm', prefix: 'archive/' } });
    const deps = {
      config,
      store,
      inventory: {} as ArchiveInventory,
      locks: noBatchInFlight,
      database: noDatabase,
    };

    // Act
    const first = await listPage(task, '', 4, deps);
    const firstReads = [...read];
    const second = await listPage(task, first.cursor, 4, deps);

    // Assess
    const newestFirst = archives.map((archive) => archive.dataKey).reverse();
    expect(first.groups.map((group) => group.archives.map((a) => a.key))).toEqual([newestFirst.slice(0, 16)]);
    expect(first.more).toBe(true);
    expect(firstReads).toEqual(
      archives
        .slice(14)
        .map((archive) => archive.metadataKey)
        .reverse(),
    );
    expect(second.groups.map((group) => group.archives.map((a) => a.key))).toEqual([newestFirst.slice(16)]);
    expect(second.more).toBe(false);
    expect(read).toHaveLength(30);
  });
});

describe('listPage of a native restore', () => {
  it('reads the inventory entries of the archives of its days of several archives only, never the whole inventory', async () => {
    // Prepare: a day of three archives (two runs), then 80 days of one archive each: the page ends among them.
    const location = { prefix: 'archive/', database: 'crm', schema: 'public', table: 'audit_log' };
    const sha = (n: number) => n.toString(16).padStart(24, '0').padEnd(64, '0');
    const several = [1, 2, 3].map((n) => archiveKey(location, '2025-01-01', sha(n)));
    const single = Array.from({ length: 80 }, (_, i) =>
      archiveKey(location, new Date(Date.UTC(2025, 1, 1 + i)).toISOString().slice(0, 10), sha(100 + i)),
    );
    const { store } = storeOf(new Map([...several, ...single].map((key) => [key, Buffer.from('x')])));
    const asked: string[][] = [];
    const inventory = {
      list: async () => {
        throw new Error('the whole inventory was read');
      },
      entries: async (database: string, table: string, keys: string[]) => {
        expect([database, table]).toEqual(['crm', 'public.audit_log']);
        asked.push(keys);
        return new Map(
          keys.map((key, i) => [
            key,
            { archiveKey: key, committedAt: `2025-02-0${i + 1}T00:00:00.000Z`, runId: `run-${i % 2}` },
          ]),
        ) as unknown as Map<string, InventoryEntry>;
      },
    } as unknown as ArchiveInventory;

    // Act
    const page = await listPage(taskOf({}), '', 4, {
      config,
      store,
      inventory,
      locks: noBatchInFlight,
      database: noDatabase,
    });

    // Assess: the day of two runs restores newest first.
    expect(asked).toEqual([several]);
    const keys = page.groups.flatMap((group) => group.archives.map((a) => a.key));
    expect(keys.slice(0, 3)).toEqual([several[2], several[1], several[0]]);
    expect(keys).toHaveLength(64);
    expect(page.more).toBe(true);
  });
});
