import { describe, expect, it } from 'vitest';
import {
  type ArchiveRef,
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
