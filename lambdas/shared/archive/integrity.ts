import { createHash } from 'node:crypto';
import type { BatchFigures, Manifest } from './format.js';
import type { InventoryEntry } from './inventory.js';

/** The figures of an archive's bytes, as a sidecar states them or a reader measures them. */
export interface ArchiveFigures {
  rows: number;
  contentSha256: string;
  compressedSha256: string;
  uncompressedBytes: number;
  compressedBytes: number;
  /**
   * The order-independent digest of the lines: native sidecars only; left out by a reader that relies on `recorded`
   * figures to vouch for it (see archiveProblems).
   */
  rowDigest?: string;
}

/** What an archive's own sidecar says it holds: the figures its bytes must reproduce before anything trusts them. */
export interface ArchiveExpectation extends ArchiveFigures {
  key: string;
  format: 'native' | 'legacy';
  /** The table the sidecar says the rows came from. */
  origin: { database: string; schema: string; table: string };
  /** Native only (legacy archives describe their columns in the first batch of a run at most). */
  manifest?: Manifest;
  /** SHA-256 of the native manifest's text as read (UTF-8), which a commit records (InventoryEntry.manifestSha256). */
  manifestSha256?: string;
  /** Legacy only: the batch id the metadata names, which the batch's `.manifest.json` names too. */
  legacyBatchId?: string;
}

/** SHA-256 of a manifest's text as read: what verify records and restore and validate compare. */
export function manifestSha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The expectation a native manifest, read as `text`, states for the object under `key`. */
export function manifestExpectation(key: string, manifest: Manifest, text: string): ArchiveExpectation {
  return {
    key,
    format: 'native',
    origin: { database: manifest.database, schema: manifest.schema, table: manifest.table },
    rows: manifest.figures.rowCount,
    contentSha256: manifest.figures.contentSha256,
    compressedSha256: manifest.figures.compressedSha256,
    uncompressedBytes: manifest.figures.uncompressedBytes,
    compressedBytes: manifest.figures.compressedBytes,
    rowDigest: manifest.figures.rowDigest,
    manifest,
    manifestSha256: manifestSha256(text),
  };
}

/**
 * PostgreSQL's own types (format_type's names, modifiers and array brackets aside) whose text lc_monetary leaves
 * alone. Any other (money, or a domain, composite or range that may hold it) may read otherwise under another.
 */
const NOT_MONEY = new Set([
  'smallint',
  'integer',
  'bigint',
  'numeric',
  'real',
  'double precision',
  'boolean',
  'text',
  'character varying',
  'character',
  '"char"',
  'name',
  'bytea',
  'uuid',
  'json',
  'jsonb',
  'xml',
  'date',
  'time without time zone',
  'time with time zone',
  'timestamp without time zone',
  'timestamp with time zone',
  'interval',
  'inet',
  'cidr',
  'macaddr',
  'macaddr8',
  'bit',
  'bit varying',
  'oid',
  'tsvector',
  'tsquery',
]);

/** Whether a column of this type (format_type's name) may hold money, whose text lc_monetary decides. */
function mayHoldMoney(type: string): boolean {
  const base = type
    .replace(/(\[\])+$/, '')
    .replace(/\(\d+(,\d+)?\)/g, '')
    .replace(/^interval .*/, 'interval');
  return !NOT_MONEY.has(base);
}

/**
 * The lcMonetary an inventory entry binds a manifest to. Versions of 2026-12-04 and 05 (before 039d86b) recorded C in
 * the entry of an archive written before 2026-12-04, whose manifest has none, when its rows were archived again:
 * restore, validate and verify then refused the rows' only archive for good. Where the entry's digest binds that very
 * manifest and none of its columns may hold money, which lcMonetary it states changes nothing a restore reads: the
 * manifest's none is taken. An entry without a digest, or an archive that may hold money, binds its lcMonetary still,
 * so a manifest a bucket writer stripped of it stays refused.
 */
export function boundLcMonetary(
  committed: Pick<InventoryEntry, 'lcMonetary' | 'manifestSha256'>,
  expected: Pick<ArchiveExpectation, 'manifest' | 'manifestSha256'>,
): InventoryEntry['lcMonetary'] {
  const { manifest } = expected;
  const recordedByMistake =
    committed.lcMonetary !== undefined &&
    manifest !== undefined &&
    manifest.lcMonetary === undefined &&
    committed.manifestSha256 !== undefined &&
    committed.manifestSha256 === expected.manifestSha256 &&
    !manifest.columns.some((column) => mayHoldMoney(column.type));
  return recordedByMistake ? undefined : committed.lcMonetary;
}

/** What reading an archive's bytes measured. */
export type MeasuredArchive = ArchiveFigures;

/** What is wrong with an archive, by the pair of witnesses that disagree. */
export interface ArchiveProblems {
  /** The sidecar differs from the figures its batch recorded outside the bucket. */
  sidecar: string[];
  /** The bytes differ from the sidecar. */
  bytes: string[];
}

/** The figures a batch records and an archive states or measures: their names in BatchFigures and ArchiveFigures. */
const FIGURES = [
  ['rowCount', 'rows'],
  ['contentSha256', 'contentSha256'],
  ['compressedSha256', 'compressedSha256'],
  ['uncompressedBytes', 'uncompressedBytes'],
  ['compressedBytes', 'compressedBytes'],
] as const;

/**
 * The one integrity check of verify, restore and validate: compares an archive's sidecar with the figures its batch
 * recorded outside the bucket (export's in-flight figures, or the inventory entry written at commit), and what was
 * measured while streaming its bytes with the sidecar. Each caller passes what it has and reacts its own way.
 *
 * A measurement without a row digest is complete only beside `recorded` figures: the recorded digest was computed
 * by export from the very lines the recorded content SHA-256 covers, so once the sidecar agrees with both recorded
 * figures and the bytes reproduce that SHA-256, the lines are export's and so is their digest.
 */
export function archiveProblems(
  expected: ArchiveExpectation,
  evidence: {
    recorded?: BatchFigures;
    /** The inventory entry's own record of the manifest, beside its figures. */
    committed?: Pick<InventoryEntry, 'lcMonetary' | 'manifestSha256'>;
    measured?: MeasuredArchive;
  },
): ArchiveProblems {
  const { recorded, committed, measured } = evidence;
  const sidecar: [string, unknown, unknown][] = recorded
    ? [
        ...FIGURES.map(([name, own]): [string, unknown, unknown] => [name, recorded[name], expected[own]]),
        ['rowDigest', recorded.rowDigest, expected.rowDigest],
      ]
    : [];
  if (committed)
    sidecar.push(['lcMonetary', boundLcMonetary(committed, expected), expected.manifest?.lcMonetary]);
  // Entries written before the digest was recorded bind the figures and lcMonetary only.
  if (committed?.manifestSha256 !== undefined)
    sidecar.push(['manifestSha256', committed.manifestSha256, expected.manifestSha256]);
  const bytes: [string, unknown, unknown][] = measured
    ? FIGURES.map(([name, own]) => [name, expected[own], measured[own]])
    : [];
  if (measured && expected.rowDigest !== undefined) {
    if (measured.rowDigest !== undefined) bytes.push(['rowDigest', expected.rowDigest, measured.rowDigest]);
    else if (!recorded)
      bytes.push(['rowDigest', expected.rowDigest, 'not measured, and nothing recorded vouches']);
  }
  return {
    sidecar: sidecar
      .filter(([, want, got]) => want !== got)
      .map(([name, want, got]) => `${name}: recorded ${want}, sidecar says ${got}`),
    bytes: bytes
      .filter(([, want, got]) => want !== got)
      .map(([name, want, got]) => `${name}: expected ${want}, found ${got}`),
  };
}
