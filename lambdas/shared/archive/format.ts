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

/** The longest key S3 takes (KeyTooLongError past it). */
export const S3_MAX_KEY_BYTES = 1024;

/** Why a batch's objects are withdrawn; the reason names the quarantine folder of the objects kept as evidence. */
export const WITHDRAW_REASONS = [
  'rows-changed',
  'integrity',
  'discarded',
  'cutoff-moved',
  'reading-changed',
] as const;
export type WithdrawReason = (typeof WITHDRAW_REASONS)[number];

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

/**
 * What one archive object covers: the rows of one UTC day, or of one UTC month (`objectSpan: month`, for tables whose
 * day objects would be too small to store economically: Standard-IA and Glacier bill each object as 128 KiB at least).
 */
export const OBJECT_SPANS = ['day', 'month'] as const;
export type ObjectSpan = (typeof OBJECT_SPANS)[number];

/**
 * Below this size a day object costs more than it holds: Standard-IA, One Zone-IA and Glacier Instant Retrieval bill
 * each object as 128 KiB at least (Glacier Flexible and Deep Archive add about 40 KB of overhead per object), and
 * every object costs its requests in each step.
 */
export const SMALL_OBJECT_BYTES = 128 * 1024;

/** The span `plan` and `wizard` suggest for a table, from its rows per day and archive bytes per row. */
export function suggestedObjectSpan(
  rowsPerDay: number,
  archiveBytesPerRow: number,
): { span: ObjectSpan; dayObjectBytes: number } {
  const dayObjectBytes = Math.round(rowsPerDay * archiveBytesPerRow);
  return { span: dayObjectBytes < SMALL_OBJECT_BYTES ? 'month' : 'day', dayObjectBytes };
}

/**
 * An archive's key below its table's prefix: partition folder, `year=/month=/day=/` for a day object and
 * `year=/month=/` for a month object (the day or month of the rows' timestamp column in UTC, so the partition is
 * true), then a name that is content-addressed (the SHA-256 of the uncompressed lines): re-running an export of the
 * same rows yields the same key, and different rows can never overwrite an archive.
 */
export function archivePath(day: string, contentSha256: string, span: ObjectSpan = 'day'): string {
  const [year, month, dd] = day.split('-');
  const folder = span === 'day' ? `year=${year}/month=${month}/day=${dd}/` : `year=${year}/month=${month}/`;
  const stamp = span === 'day' ? `${year}${month}${dd}` : `${year}${month}`;
  return `${folder}${stamp}-${contentSha256.slice(0, 24)}.jsonl.gz`;
}

/** Final archive key: the table's prefix, then archivePath. */
export function archiveKey(
  loc: TableLocation,
  day: string,
  contentSha256: string,
  span: ObjectSpan = 'day',
): string {
  return `${tablePrefix(loc)}${archivePath(day, contentSha256, span)}`;
}

/**
 * A UTC midnight; months and days past their end roll over. Unlike Date.UTC, which reads years 0 to 99 as 1900 to
 * 1999, any year is itself (rows of year 1 are archived).
 */
function utcDate(year: number, monthIndex: number, day: number): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, monthIndex, day);
  return date;
}

/**
 * Whether `day` is a YYYY-MM-DD day of the calendar. Date.parse rolls 2025-02-30 over to March 1st: only a day that
 * reads back the same is one.
 */
export function isCalendarDay(day: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return false;
  const time = Date.parse(`${day}T00:00:00Z`);
  return !Number.isNaN(time) && new Date(time).toISOString().startsWith(day);
}

/** The last day an object that starts on `day` covers, YYYY-MM-DD. */
export function spanLastDay(day: string, span: ObjectSpan): string {
  if (span === 'day') return day;
  const [year, month] = day.split('-').map(Number);
  return utcDate(year ?? 0, month ?? 0, 0)
    .toISOString()
    .slice(0, 10);
}

/**
 * Where the rows an export may take end: at the cut-off for day objects, and for month objects at the first of the
 * cut-off's month, so a month is archived in one object once all of it is past the cut-off (a month still partly
 * retained would otherwise be cut into an object per run).
 */
export function spanCutoff(cutoff: string, span: ObjectSpan): string {
  const at = new Date(cutoff);
  return span === 'day' ? at.toISOString() : utcDate(at.getUTCFullYear(), at.getUTCMonth(), 1).toISOString();
}

/** The instant the object that starts on `day` ends: the next day, or the first of the next month. */
export function spanEnd(day: string, span: ObjectSpan): string {
  const [year, month, dd] = day.split('-').map(Number);
  const end =
    span === 'day' ? utcDate(year ?? 0, (month ?? 1) - 1, (dd ?? 1) + 1) : utcDate(year ?? 0, month ?? 1, 1);
  return end.toISOString();
}

/** Whether a data key names this content: its file name carries the content SHA-256's first 24 hex digits. */
export function keyNamesContent(dataKey: string, contentSha256: string): boolean {
  return dataKey.endsWith(`-${contentSha256.slice(0, 24)}.jsonl.gz`);
}

/** Manifest sidecar beside the data. The leading "_" makes Athena/Hive skip it when reading the table's rows. */
export function manifestKeyFor(dataKey: string): string {
  const slash = dataKey.lastIndexOf('/');
  return `${dataKey.slice(0, slash + 1)}_${dataKey.slice(slash + 1).replace(/\.jsonl\.gz$/, '')}.manifest.json`;
}

/** Beside a batch's first staging object: export proves with it that the bucket enforces write-once (store.ts). */
export function writeOnceProbeKey(stagingKey: string): string {
  return `${stagingKey}.write-once-probe`;
}

/**
 * Staging objects of one batch (`batchId`): no two batches share them, so an invocation still running beside its
 * retry can only ever remove its own batch's. What an interrupted export leaves expires by the bucket's lifecycle.
 */
export function stagingKey(loc: TableLocation, day: string, batchId: string): string {
  const id = createHash('sha256').update(batchId).digest('hex').slice(0, 24);
  return `${loc.prefix}_staging/${keySegment(loc.database)}/${keySegment(loc.schema)}.${keySegment(loc.table)}/${day}-${id}.jsonl.gz`;
}

/**
 * Where an archive that failed verification is kept as evidence before it is withdrawn: under a folder of the time
 * (`at`) and reason, which every object one withdrawal keeps shares, so an archive's manifest lies beside it.
 */
export function quarantineKey(
  prefix: string,
  dataKey: string,
  reason: WithdrawReason,
  at = new Date(),
): string {
  return `${prefix}_quarantine/${at.toISOString().replaceAll(':', '')}-${reason}/${dataKey.slice(prefix.length)}`;
}

/**
 * The longest key the archiver writes for the table at `loc` (tested against every kind): the quarantined copy of a
 * manifest or staging object of the last day there is. Config validation refuses a table past S3_MAX_KEY_BYTES, which
 * would fail every run in AWS and pass in local mode.
 */
export function longestKeyBytes(loc: TableLocation): number {
  const day = '9999-12-31';
  const data = archiveKey(loc, day, 'f'.repeat(64), 'day');
  const staging = stagingKey(loc, day, 'batch');
  const at = new Date('9999-12-31T23:59:59.999Z');
  const keys = [data, manifestKeyFor(data), staging, writeOnceProbeKey(staging)];
  return Math.max(
    ...keys
      .flatMap((key) => [
        key,
        ...WITHDRAW_REASONS.map((reason) => quarantineKey(loc.prefix, key, reason, at)),
      ])
      .map((key) => Buffer.byteLength(key)),
  );
}

const hex = (length: number) => z.string().regex(new RegExp(`^[0-9a-f]{${length}}$`));

/** The most columns a PostgreSQL table has: a manifest listing more is none export wrote. */
export const MAX_TABLE_COLUMNS = 1600;

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

/** The lc_monetary archives write money under (database/db.ts pins it): "$1,234.56", in any database. */
export const ARCHIVE_LC_MONETARY = 'C';

export const ManifestSchema = z.object({
  formatVersion: z.literal(FORMAT_VERSION),
  tool: z.object({ name: z.literal(TOOL_NAME), version: z.string() }),
  database: z.string(),
  schema: z.string(),
  table: z.string(),
  // Bounded, as readers keep a manifest's columns (a target's shape): 4 MiB of text lists some 70,000.
  columns: z.array(ColumnSchema).min(1).max(MAX_TABLE_COLUMNS),
  keyColumns: z.array(z.string()).min(1).max(MAX_TABLE_COLUMNS),
  timestampColumn: z.string(),
  timestampType: z.enum(['timestamptz', 'timestamp']),
  timestampTimeZone: z.string(),
  /** The object's first day: the day of a day object, the first of the month of a month object. */
  day: z.string().refine(isCalendarDay, 'must be a day of the calendar, YYYY-MM-DD'),
  /** Absent in archives written before month objects existed: a day object. */
  span: z.enum(OBJECT_SPANS).optional(),
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
  /**
   * The lc_monetary its money values were written under: ARCHIVE_LC_MONETARY, which every session pins. Absent in
   * archives written before, under the exporting session's own, which restore takes to be the target database's default.
   */
  lcMonetary: z.literal(ARCHIVE_LC_MONETARY).optional(),
  /**
   * A digest of the definition of each column type that is not PostgreSQL's own, by the type's name as `columns`
   * gives it (table-shape.ts typeDefinitionsSql): a restore refuses a column whose type is defined otherwise now under
   * the same name (an enum label renamed, a composite attribute replaced). Absent in archives written before.
   */
  typeDefinitions: z.record(z.string(), hex(32)).optional(),
  /**
   * The labels, in order, of the enums the columns are made of (table-shape.ts enumLabelsSql): a restore refuses a
   * column of an enum that lost or reordered them. Absent in archives written before, and for large enums.
   */
  enumLabels: z.record(z.string(), z.array(z.string())).optional(),
});

export type Manifest = z.infer<typeof ManifestSchema>;

/**
 * JSON with sorted keys and without undefined values: a record (a manifest, a batch's in-flight record) compares equal
 * to what was written for it, whatever order its keys came back in.
 */
export const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );

/** A manifest's text read as a manifest, or undefined when it is not one (not JSON, or not the schema). */
export function parseManifest(text: string): Manifest | undefined {
  try {
    return ManifestSchema.parse(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/**
 * What the manifests of one batch's objects share, recorded by export in the batch's in-flight record: upload writes
 * each manifest from it (batch-manifest.ts), so no manifest is staged in S3 and read back.
 */
export const BatchManifestSchema = ManifestSchema.pick({
  formatVersion: true,
  tool: true,
  database: true,
  schema: true,
  table: true,
  keyColumns: true,
  timestampColumn: true,
  timestampType: true,
  timestampTimeZone: true,
  compression: true,
  encoding: true,
  exportedAt: true,
  schemaDrift: true,
  lcMonetary: true,
  typeDefinitions: true,
  enumLabels: true,
});
export type BatchManifest = z.infer<typeof BatchManifestSchema>;
export type SchemaDrift = z.infer<typeof SchemaDriftSchema>;
export type Column = z.infer<typeof ColumnSchema>;
export type BatchBounds = z.infer<typeof BatchBoundsSchema>;
export type BatchFigures = z.infer<typeof BatchFiguresSchema>;
