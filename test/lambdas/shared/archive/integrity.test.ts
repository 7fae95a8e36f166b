import { describe, expect, it } from 'vitest';
import type { BatchFigures } from '../../../../lambdas/shared/archive/format.js';
import {
  type ArchiveExpectation,
  archiveProblems,
  type MeasuredArchive,
} from '../../../../lambdas/shared/archive/integrity.js';

const recorded: BatchFigures = {
  rowCount: 3,
  contentSha256: 'a'.repeat(64),
  compressedSha256: 'b'.repeat(64),
  uncompressedBytes: 120,
  compressedBytes: 80,
  rowDigest: 'c'.repeat(32),
};

const expected: ArchiveExpectation = {
  key: 'k',
  format: 'native',
  origin: { database: 'd', schema: 's', table: 't' },
  rows: recorded.rowCount,
  contentSha256: recorded.contentSha256,
  compressedSha256: recorded.compressedSha256,
  uncompressedBytes: recorded.uncompressedBytes,
  compressedBytes: recorded.compressedBytes,
  rowDigest: recorded.rowDigest,
};

const measured: MeasuredArchive = {
  rows: expected.rows,
  contentSha256: expected.contentSha256,
  compressedSha256: expected.compressedSha256,
  uncompressedBytes: expected.uncompressedBytes,
  compressedBytes: expected.compressedBytes,
  rowDigest: expected.rowDigest,
};

describe('archiveProblems: the integrity check verify, restore and validate share', () => {
  it('finds nothing when sidecar, recorded figures and bytes agree', () => {
    // Act / Assess
    expect(archiveProblems(expected, { recorded, measured })).toEqual({ sidecar: [], bytes: [] });
  });

  it.each([
    ['rowCount', { rowCount: 4 }],
    ['contentSha256', { contentSha256: 'd'.repeat(64) }],
    ['compressedSha256', { compressedSha256: 'd'.repeat(64) }],
    ['uncompressedBytes', { uncompressedBytes: 121 }],
    ['compressedBytes', { compressedBytes: 81 }],
    ['rowDigest', { rowDigest: 'd'.repeat(32) }],
  ] as const)('lists a sidecar whose %s differs from the recorded figures', (name, change) => {
    // Act
    const problems = archiveProblems(expected, { recorded: { ...recorded, ...change } });

    // Assess
    expect(problems.bytes).toEqual([]);
    expect(problems.sidecar).toEqual([
      expect.stringMatching(new RegExp(`^${name}: recorded .*, sidecar says `)),
    ]);
  });

  it.each([
    ['rowCount', { rows: 2 }],
    ['contentSha256', { contentSha256: 'd'.repeat(64) }],
    ['compressedSha256', { compressedSha256: 'd'.repeat(64) }],
    ['uncompressedBytes', { uncompressedBytes: 119 }],
    ['compressedBytes', { compressedBytes: 79 }],
    ['rowDigest', { rowDigest: 'd'.repeat(32) }],
  ] as const)('lists bytes whose %s differs from the sidecar', (name, change) => {
    // Act
    const problems = archiveProblems(expected, { measured: { ...measured, ...change } });

    // Assess
    expect(problems.sidecar).toEqual([]);
    expect(problems.bytes).toEqual([expect.stringMatching(new RegExp(`^${name}: expected .*, found `))]);
  });

  it('takes an unmeasured row digest as proven by the content SHA-256 only beside recorded figures', () => {
    // Prepare
    const { rowDigest: _, ...withoutDigest } = measured;

    // Act
    const vouched = archiveProblems(expected, { recorded, measured: withoutDigest });
    const alone = archiveProblems(expected, { measured: withoutDigest });

    // Assess
    expect(vouched).toEqual({ sidecar: [], bytes: [] });
    expect(alone.bytes).toEqual([expect.stringMatching(/^rowDigest: expected c+, found not measured/)]);
  });

  it('still catches other lines without a row digest: their content SHA-256 differs', () => {
    // Prepare
    const { rowDigest: _, ...withoutDigest } = measured;

    // Act
    const problems = archiveProblems(expected, {
      recorded,
      measured: { ...withoutDigest, contentSha256: 'e'.repeat(64) },
    });

    // Assess
    expect(problems.bytes).toEqual([expect.stringMatching(/^contentSha256: /)]);
  });

  it('does not compare a row digest a legacy sidecar does not state', () => {
    // Prepare
    const { rowDigest: _, ...legacy } = expected;

    // Act / Assess
    expect(archiveProblems({ ...legacy, format: 'legacy' }, { measured })).toEqual({
      sidecar: [],
      bytes: [],
    });
  });

  it('refuses a sidecar whose lcMonetary differs from the inventory’s, either way, and accepts both absent', () => {
    // Prepare: what the manifest says, against what the inventory entry recorded.
    const withManifest = (lcMonetary: 'C' | undefined): ArchiveExpectation => ({
      ...expected,
      manifest: { lcMonetary } as ArchiveExpectation['manifest'],
    });

    // Act
    const stripped = archiveProblems(withManifest(undefined), { recorded, committed: { lcMonetary: 'C' } });
    const added = archiveProblems(withManifest('C'), { recorded, committed: {} });
    const both = archiveProblems(withManifest('C'), { recorded, committed: { lcMonetary: 'C' } });
    const older = archiveProblems(withManifest(undefined), { recorded, committed: {} });

    // Assess
    expect(stripped.sidecar).toEqual(['lcMonetary: recorded C, sidecar says undefined']);
    expect(added.sidecar).toEqual(['lcMonetary: recorded undefined, sidecar says C']);
    expect(both.sidecar).toEqual([]);
    expect(older.sidecar).toEqual([]);
  });

  it('takes an entry’s C for none only where its digest binds a manifest without lcMonetary and no money column', () => {
    // Prepare: a manifest without lcMonetary, read with digest d, of the given column types.
    const d = 'd'.repeat(64);
    const read = (...types: string[]): ArchiveExpectation => ({
      ...expected,
      manifestSha256: d,
      manifest: {
        columns: types.map((type) => ({ name: type, type, nullable: false, generated: false })),
      } as unknown as ArchiveExpectation['manifest'],
    });
    const plain = read(
      'bigint',
      'timestamp(3) with time zone',
      'character varying(20)[]',
      'interval day to second',
    );
    const lcMonetary = (
      archive: ArchiveExpectation,
      committed: { lcMonetary?: 'C'; manifestSha256?: string },
    ) => archiveProblems(archive, { recorded, committed }).sidecar.filter((p) => p.startsWith('lcMonetary'));

    // Act / Assess: the entry 039d86b's bug wrote agrees; with money, a domain, or no digest binding it, C binds.
    expect(lcMonetary(plain, { lcMonetary: 'C', manifestSha256: d })).toEqual([]);
    const refused = ['lcMonetary: recorded C, sidecar says undefined'];
    expect(lcMonetary(read('bigint', 'money'), { lcMonetary: 'C', manifestSha256: d })).toEqual(refused);
    expect(lcMonetary(read('bigint', 'money[]'), { lcMonetary: 'C', manifestSha256: d })).toEqual(refused);
    expect(lcMonetary(read('bigint', 'price'), { lcMonetary: 'C', manifestSha256: d })).toEqual(refused);
    expect(lcMonetary(plain, { lcMonetary: 'C' })).toEqual(refused);
    expect(lcMonetary(plain, { lcMonetary: 'C', manifestSha256: 'e'.repeat(64) })).toEqual(refused);
  });

  it('refuses a manifest other than the one the commit recorded by digest, and skips entries without one', () => {
    // Prepare
    const read = { ...expected, manifestSha256: 'b'.repeat(64) };

    // Act
    const other = archiveProblems(read, { recorded, committed: { manifestSha256: 'a'.repeat(64) } });
    const same = archiveProblems(read, { recorded, committed: { manifestSha256: 'b'.repeat(64) } });
    const older = archiveProblems(read, { recorded, committed: {} });

    // Assess
    expect(other.sidecar).toEqual([
      `manifestSha256: recorded ${'a'.repeat(64)}, sidecar says ${'b'.repeat(64)}`,
    ]);
    expect(same.sidecar).toEqual([]);
    expect(older.sidecar).toEqual([]);
  });
});
