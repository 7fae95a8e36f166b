import { createHash } from 'node:crypto';
import { z } from 'zod';

/** Version of the object layout and manifest below; restore refuses versions it does not know. */
export const FORMAT_VERSION = 1;
export const TOOL_NAME = 'audit-archiver';
export const TOOL_VERSION = '0.1.0';

/**
 * Encodes one identifier as one S3 key segment: [A-Za-z0-9_-] stay, every other byte becomes %XX. So "/" and
 * ".." can never form a path, "." can separate schema from table unambiguously, and keys stay inside the prefix.
 */
export function keySegment(identifier: string): string {
  return Array.from(Buffer.from(identifier, 'utf8'))
    .map((byte) => {
      const ch = String.fromCharCode(byte);
      return /[A-Za-z0-9_-]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

export interface TableLocation {
  prefix: string;
  database: string;
  schema: string;
  table: string;
}

/** `{prefix}{database}/{schema}.{table}/`: every archive of one table lives below it. */
export function tablePrefix(loc: TableLocation): string {
  return `${loc.prefix}${keySegment(loc.database)}/${keySegment(loc.schema)}.${keySegment(loc.table)}/`;
}

/** Day partition folder; the day is the UTC day of the rows' timestamp column, so the partition is true. */
export function dayPrefix(loc: TableLocation, day: string): string {
  const [year, month, dd] = day.split('-');
  return `${tablePrefix(loc)}year=${year}/month=${month}/day=${dd}/`;
}

/**
 * Final archive key. The name is content-addressed (the SHA-256 of the uncompressed lines), so re-running an
 * export of the same rows yields the same key, and different rows can never overwrite an archive.
 */
export function archiveKey(loc: TableLocation, day: string, contentSha256: string): string {
  return `${dayPrefix(loc, day)}${day.replaceAll('-', '')}-${contentSha256.slice(0, 24)}.jsonl.gz`;
}

/** Manifest sidecar beside the data. The leading "_" makes Athena/Hive skip it when reading the table's rows. */
/** Whether a data key names this content: its file name carries the content SHA-256's first 24 hex digits. */
export function keyNamesContent(dataKey: string, contentSha256: string): boolean {
  return dataKey.endsWith(`-${contentSha256.slice(0, 24)}.jsonl.gz`);
}

export function manifestKeyFor(dataKey: string): string {
  const slash = dataKey.lastIndexOf('/');
  return `${dataKey.slice(0, slash + 1)}_${dataKey.slice(slash + 1).replace(/\.jsonl\.gz$/, '')}.manifest.json`;
}

/**
 * Staging objects of one batch (`batchId`): no two batches share them, so an invocation still running beside its
 * retry can only ever remove its own batch's. What an interrupted export leaves expires by the bucket's lifecycle.
 */
export function stagingKey(loc: TableLocation, day: string, batchId: string): string {
  const id = createHash('sha256').update(batchId).digest('hex').slice(0, 24);
  return `${loc.prefix}_staging/${keySegment(loc.database)}/${keySegment(loc.schema)}.${keySegment(loc.table)}/${day}-${id}.jsonl.gz`;
}

/** Where an archive that failed verification is kept as evidence before it is withdrawn. */
export function quarantineKey(prefix: string, dataKey: string, reason: string): string {
  return `${prefix}_quarantine/${new Date().toISOString().replaceAll(':', '')}-${reason}/${dataKey.slice(prefix.length)}`;
}

const hex = (length: number) => z.string().regex(new RegExp(`^[0-9a-f]{${length}}$`));

export const ColumnSchema = z.object({
  name: z.string(),
  type: z.string(),
  nullable: z.boolean(),
  generated: z.boolean(),
});

/**
 * How the table's columns differ from those of its last archive (the first manifest after the change says so):
 * columns added or removed (by name), retyped, whose nullability changed, or the same columns in another order.
 */
export const SchemaDriftSchema = z.object({
  /** The archive whose columns were compared, when known. */
  previousArchiveKey: z.string().optional(),
  added: z.array(z.object({ name: z.string(), type: z.string() })),
  removed: z.array(z.object({ name: z.string(), type: z.string() })),
  retyped: z.array(z.object({ name: z.string(), from: z.string(), to: z.string() })),
  nullability: z.array(z.object({ name: z.string(), nullable: z.boolean() })),
  reordered: z.boolean(),
});

export const BatchBoundsSchema = z.object({
  /** Inclusive lower bound of the timestamp column, ISO-8601 UTC. */
  from: z.string(),
  /** Exclusive upper bound: the end of the day or the cut-off, whichever is earlier. */
  to: z.string(),
  firstKey: z.array(z.string()).min(1),
  lastKey: z.array(z.string()).min(1),
});

/** What export measured; verify and delete compare everything else against it. */
export const BatchFiguresSchema = z.object({
  rowCount: z.number().int().positive(),
  contentSha256: hex(64),
  compressedSha256: hex(64),
  uncompressedBytes: z.number().int().nonnegative(),
  compressedBytes: z.number().int().positive(),
  /**
   * Order-independent MD5 digest of the lines (row-digest.ts), written by versions before batches spanned days. It is
   * no longer computed on export: the content SHA-256 covers the same lines, the delete proves its rows by their
   * versions, and an MD5 of every line was the largest share of export's time. Still checked where an archive has it.
   */
  rowDigest: hex(32).optional(),
});

export const ManifestSchema = z.object({
  formatVersion: z.literal(FORMAT_VERSION),
  tool: z.object({ name: z.literal(TOOL_NAME), version: z.string() }),
  database: z.string(),
  schema: z.string(),
  table: z.string(),
  columns: z.array(ColumnSchema).min(1),
  keyColumns: z.array(z.string()).min(1),
  timestampColumn: z.string(),
  timestampType: z.enum(['timestamptz', 'timestamp']),
  timestampTimeZone: z.string(),
  day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  cutoff: z.string(),
  bounds: BatchBoundsSchema,
  keyRange: z.object({ first: z.array(z.string()), last: z.array(z.string()) }),
  timestampRange: z.object({ min: z.string(), max: z.string() }),
  figures: BatchFiguresSchema,
  compression: z.object({ format: z.literal('gzip'), level: z.number().int() }),
  encoding: z.literal('jsonl-pg-text'),
  runId: z.string(),
  exportedAt: z.string(),
  dataKey: z.string(),
  schemaDrift: SchemaDriftSchema.optional(),
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type SchemaDrift = z.infer<typeof SchemaDriftSchema>;
export type Column = z.infer<typeof ColumnSchema>;
export type BatchBounds = z.infer<typeof BatchBoundsSchema>;
export type BatchFigures = z.infer<typeof BatchFiguresSchema>;
