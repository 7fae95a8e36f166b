import { describe, expect, it } from 'vitest';
import {
  type ArchiveRef,
  LEGACY_METADATA_READS,
  listArchives,
  OtherSchemaArchives,
} from '../../../../lambdas/shared/archive/catalog.js';
import type { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import { writeLegacyArchive } from '../../../support/legacy-archive.js';

/** A store holding `files`, listed in key order as S3 lists them. */
function storeOf(files: Map<string, Buffer>): ArchiveStore {
  return {
    list: async function* (prefix: string, startAfter?: string) {
      for (const key of [...files.keys()].sort())
        if (key.startsWith(prefix) && (startAfter === undefined || key > startAfter))
          yield { key, size: files.get(key)?.length ?? 0, storageClass: 'STANDARD' };
    },
    getText: async (key: string) => files.get(key)?.toString('utf8'),
  } as unknown as ArchiveStore;
}

const archiveOf = (schema: string, runStamp: string) =>
  writeLegacyArchive({
    prefix: 'archive/',
    database: 'crm',
    schema,
    table: 'audit_log',
    runStamp,
    batch: 1,
    rows: [{ id: 1, created_at: '2025-01-02T03:04:05+00:00' }],
  });

describe('listArchives of a legacy table whose name another schema shares', () => {
  it('leaves out the other schema’s archives and tells of them, keeping what it cannot attribute to one', async () => {
    // Prepare: public's and billing's batches in the one folder the layout gives both; a batch whose metadata names
    // another table altogether, and one without metadata: neither is billing's, so restore and validate refuse them.
    const own = archiveOf('public', '20250301T010000Z');
    const billing = archiveOf('billing', '20250301T020000Z');
    const foreign = archiveOf('public', '20250301T030000Z');
    const metadata = JSON.parse(foreign.files.get(foreign.metadataKey)?.toString('utf8') ?? '{}');
    metadata.batch_info.table = 'orders';
    foreign.files.set(foreign.metadataKey, Buffer.from(JSON.stringify(metadata)));
    const bare = archiveOf('public', '20250301T040000Z');
    bare.files.delete(bare.metadataKey);
    const files = new Map([own, billing, foreign, bare].flatMap((archive) => [...archive.files]));
    const others = new OtherSchemaArchives();

    // Act
    const listed: ArchiveRef[] = [];
    for await (const ref of listArchives(
      storeOf(files),
      { format: 'legacy', prefix: 'archive/', database: 'crm', schema: 'public', table: 'audit_log' },
      { onOtherSchema: others.add },
    ))
      listed.push(ref);

    // Assess
    expect(listed.map((ref) => ref.key)).toEqual([own.dataKey, foreign.dataKey, bare.dataKey]);
    expect(others.count).toBe(1);
    expect(others.note('audit_log')).toMatch(/: 1 of "billing"\."audit_log"$/);
  });
});

describe('listArchives reading legacy metadata', () => {
  const source = {
    format: 'legacy' as const,
    prefix: 'archive/',
    database: 'crm',
    schema: 'public',
    table: 'audit_log',
  };
  /** 20 runs' batches, every third of them billing's. */
  const archives = Array.from({ length: 20 }, (_, i) =>
    archiveOf(i % 3 === 2 ? 'billing' : 'public', `202503${String(i + 1).padStart(2, '0')}T010000Z`),
  );
  const files = new Map(archives.flatMap((archive) => [...archive.files]));

  it('reads the metadata of the one archive asked for by key, and no other', async () => {
    // Prepare
    const store = storeOf(files);
    const read: string[] = [];
    const getText = store.getText.bind(store);
    store.getText = async (key: string) => {
      read.push(key);
      return getText(key);
    };
    const wanted = archives[10];

    // Act
    const listed: ArchiveRef[] = [];
    for await (const ref of listArchives(store, source, { key: wanted?.dataKey })) listed.push(ref);

    // Assess
    expect(listed.map((ref) => ref.key)).toEqual([wanted?.dataKey]);
    expect(read).toEqual([wanted?.metadataKey]);
  });

  it('reads up to 8 archives’ metadata at once, still yielding in key order', async () => {
    // Prepare: reads that answer in another order than asked, each after the reads that follow it are asked for.
    const store = storeOf(files);
    const getText = store.getText.bind(store);
    let reading = 0;
    let most = 0;
    store.getText = async (key: string) => {
      reading += 1;
      most = Math.max(most, reading);
      await new Promise((resolve) => setTimeout(resolve, (key.length * 7) % 5));
      reading -= 1;
      return getText(key);
    };
    const others = new OtherSchemaArchives();

    // Act
    const listed: ArchiveRef[] = [];
    for await (const ref of listArchives(store, source, { onOtherSchema: others.add })) listed.push(ref);

    // Assess
    expect(most).toBe(8);
    expect(LEGACY_METADATA_READS).toBe(8);
    expect(listed.map((ref) => ref.key)).toEqual(
      archives.filter((_, i) => i % 3 !== 2).map((archive) => archive.dataKey),
    );
    expect(others.count).toBe(6);
  });

  it('fails with the first archive whose metadata cannot be read, after yielding those before it', async () => {
    // Prepare: the fourth archive's read fails (the bucket unreachable), and every later one.
    const store = storeOf(files);
    const getText = store.getText.bind(store);
    const failing = archives[3]?.metadataKey ?? '';
    store.getText = async (key: string) => {
      if (key >= failing) throw new Error(`reading ${key} failed`);
      return getText(key);
    };

    // Act
    const listed: string[] = [];
    const listing = (async () => {
      for await (const ref of listArchives(store, source)) listed.push(ref.key);
    })();

    // Assess
    await expect(listing).rejects.toThrow(`reading ${failing} failed`);
    expect(listed).toEqual([archives[0]?.dataKey, archives[1]?.dataKey]);
  });
});
