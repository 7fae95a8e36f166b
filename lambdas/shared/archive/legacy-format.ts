import { z } from 'zod';

/**
 * The layout of archives written by the predecessor tool, the Python "Audit Table Archiver"
 * (labsbykora/audit_table_archiver), so restore can bring its rows back: where its objects are and what its sidecar
 * files say. Its lines are read by legacy-json.ts and turned into rows by legacy-rows.ts. Pure: no I/O.
 */

/** A legacy key, line or value that cannot be read. Messages never contain row values (audit rows hold personal data). */
export class LegacyFormatError extends Error {
  override name = 'LegacyFormatError';
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

const DATA_SUFFIX = '.jsonl.gz';
const FILE_TAIL = /^_(\d{8}T\d{6}Z)_batch_(\d{3,})\.jsonl\.gz$/;

export interface LegacyKey {
  database: string;
  table: string;
  /** `YYYY-MM-DD` of the date folders: the day the batch was archived (UTC), not the rows' day. */
  day: string;
  /** `YYYYMMDDTHHMMSSZ`: when the batch was archived (each batch of a run has its own). */
  runStamp: string;
  /** Restarts at 1 every run (continues after a checkpoint resume), so only (runStamp, batch) is unique. */
  batch: number;
}

/** The tool wrote `prefix.rstrip('/') + '/'` when a prefix was configured, and nothing otherwise. */
function legacyRoot(prefix: string): string {
  return prefix === '' ? '' : `${prefix.replace(/\/+$/, '')}/`;
}

/** `{prefix}{database}/{table}/`: every object the tool wrote for one table (data, sidecars, watermark). */
export function legacyTablePrefix(prefix: string, database: string, table: string): string {
  return `${legacyRoot(prefix)}${database}/${table}/`;
}

/**
 * Parses `{prefix}{db}/{table}/year=YYYY/month=MM/day=DD/{table}_{YYYYMMDDTHHMMSSZ}_batch_{NNN}.jsonl.gz`;
 * undefined for any other object (sidecars, watermarks, audit events). The file name is matched against the
 * folder's table name because table names may contain underscores.
 */
export function parseLegacyDataKey(key: string, prefix: string): LegacyKey | undefined {
  const root = legacyRoot(prefix);
  if (!key.startsWith(root)) return undefined;
  const parts = key.slice(root.length).split('/');
  if (parts.length !== 6) return undefined;
  const [database = '', table = '', year = '', month = '', day = '', file = ''] = parts;
  const y = /^year=(\d{4})$/.exec(year)?.[1];
  const m = /^month=(\d{2})$/.exec(month)?.[1];
  const d = /^day=(\d{2})$/.exec(day)?.[1];
  if (database === '' || table === '' || !y || !m || !d || !file.startsWith(table)) return undefined;
  const tail = FILE_TAIL.exec(file.slice(table.length));
  const runStamp = tail?.[1];
  const digits = tail?.[2];
  if (runStamp === undefined || digits === undefined) return undefined;
  const batch = Number(digits);
  // `{batch_number:03d}` has exactly one spelling per number.
  if (batch < 1 || String(batch).padStart(3, '0') !== digits) return undefined;
  return { database, table, day: `${y}-${m}-${d}`, runStamp, batch };
}

function sidecarKey(dataKey: string, suffix: string): string {
  const slash = dataKey.lastIndexOf('/');
  const name = dataKey.slice(slash + 1);
  if (!name.endsWith(DATA_SUFFIX)) throw new LegacyFormatError(`not a legacy data key: ${dataKey}`);
  // The tool derived sidecar names with Python's str.replace, which replaces every occurrence in the file name.
  return `${dataKey.slice(0, slash + 1)}${name.replaceAll(DATA_SUFFIX, suffix)}`;
}

/** `….metadata.json` beside the data file (replacing `.jsonl.gz`), uploaded right after the data. */
export function legacyMetadataKeyFor(dataKey: string): string {
  return sidecarKey(dataKey, '.metadata.json');
}

/**
 * `….manifest.json` beside the data file (replacing `.jsonl.gz`), uploaded only after the delete committed: a data
 * file without it may hold rows that are still in the source table.
 */
export function legacyManifestKeyFor(dataKey: string): string {
  return sidecarKey(dataKey, '.manifest.json');
}

/**
 * What restore and validate say of a data file without its `.manifest.json`: its batch's rows may never have left
 * the table (still there, changed since, or archived again by a later run), and the file holds copies as they were
 * then. Which copy should win, only the operator can tell.
 */
export const UNCOMMITTED_LEGACY_BATCH =
  "no .manifest.json of this batch: the Python tool never recorded this batch's delete as committed, so its rows may be older copies of rows still in the source table or archived again by a later run";

// ---------------------------------------------------------------------------------------------------------------
// Sidecar schemas: strict on what restore relies on, loose elsewhere so real files with extra fields parse.

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits');
const name = z.string().min(1);
const count = z.number().int().nonnegative();
const batchNumber = z.number().int().positive();

export const LegacyMetadataSchema = z.looseObject({
  version: z.literal('1.0'),
  batch_info: z.looseObject({
    database: name,
    schema: name,
    table: name,
    batch_number: batchNumber,
    batch_id: z.string(),
    archived_at: z.string(),
  }),
  data_info: z.looseObject({
    record_count: count,
    uncompressed_size_bytes: count,
    compressed_size_bytes: count,
    compression_ratio: z.number(),
  }),
  checksums: z.looseObject({ jsonl_sha256: sha256Hex, compressed_sha256: sha256Hex }),
  // Sample values went through JSON.parse by the caller: big integers in them are not exact.
  primary_keys: z.looseObject({ count, sample: z.array(z.unknown()) }),
  timestamp_range: z.looseObject({ min: z.string().nullable(), max: z.string().nullable() }).optional(),
  /** Only on the first batch of a run. Column types are information_schema `data_type` / `udt_name`. */
  table_schema: z
    .looseObject({
      columns: z.array(z.looseObject({ name: z.string(), data_type: z.string(), udt_name: z.string() })),
    })
    .optional(),
});
export type LegacyMetadata = z.infer<typeof LegacyMetadataSchema>;

export const LegacyManifestSchema = z.looseObject({
  version: z.literal('1.0'),
  manifest_info: z.looseObject({
    database: name,
    schema: name,
    table: name,
    batch_number: batchNumber,
    batch_id: z.string(),
    primary_key_column: name,
    deleted_at: z.string(),
  }),
  deletion_info: z.looseObject({ expected_count: count, deleted_count: count }),
  // Through JSON.parse, primary keys past 2^53 are not exact: never match rows on them.
  primary_keys: z.array(z.unknown()),
});
export type LegacyManifest = z.infer<typeof LegacyManifestSchema>;
