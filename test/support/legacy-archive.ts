import { createHash } from 'node:crypto';
import { crc32, deflateRawSync } from 'node:zlib';

/**
 * Writes archives byte for byte as the Python "Audit Table Archiver" (labsbykora/audit_table_archiver) did, from
 * what its source does: hand-written here, not produced by the real tool. Pure: returns the objects' bytes and the
 * caller uploads them.
 */

/** A row in the tool's JSON form (numeric as strings, bytea as base64…), or a ready line used verbatim. */
export type LegacyRow = Record<string, unknown> | string;

export interface LegacyArchiveInput {
  /** S3 prefix as configured in the tool ('' for none; a trailing '/' or not makes no difference). */
  prefix: string;
  database: string;
  schema: string;
  table: string;
  /** `YYYYMMDDTHHMMSSZ`: the batch's archive time, which also gives the date folders. */
  runStamp: string;
  batch: number;
  /**
   * Objects get the tool's four fields appended and are serialized like `json.dumps(row, ensure_ascii=False)`.
   * Strings are taken as the whole line, for what a JS object cannot express (Python float spellings like `1.0`).
   */
  rows: LegacyRow[];
  /** Default 'id'. */
  primaryKeyColumn?: string;
  /** Default: the primary key column of each object row; required when a row is a string. */
  primaryKeys?: unknown[];
  timestampRange?: { min: string | null; max: string | null };
  /** The tool wrote it on the first batch of each run only. */
  tableSchema?: Record<string, unknown>;
  /** false: the run stopped after the upload and before the delete committed, so no manifest exists. */
  withManifest?: boolean;
}

export interface LegacyArchive {
  dataKey: string;
  metadataKey: string;
  manifestKey: string;
  /** Key → object bytes; the manifest is absent when `withManifest` is false. */
  files: Map<string, Buffer>;
  /** The uncompressed JSON lines, as hashed into `checksums.jsonl_sha256`. */
  content: Buffer;
}

/** Python's float repr: shortest round-trip digits, exponent form below 1e-4 or from 1e16 (`1e-05`, `1e+16`). */
function pythonNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity';
  // A JS number cannot say whether Python had an int or a float: integral ones are ints (pass a bigint past 1e16).
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return String(value);
  const [mantissa = '', exponentText = ''] = value.toExponential().split('e');
  const exponent = Number(exponentText);
  if (exponent >= -4 && exponent < 16) return String(value);
  return `${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

/**
 * Python's `json.dumps`: without indent, separators ', ' and ': '; with indent, ',' and ': ' and one item per line.
 * JSON.stringify escapes strings exactly as Python does with ensure_ascii=False; ensure_ascii=True additionally
 * escapes everything outside printable ASCII as lower-case `\uXXXX`. Bigints are written as their digits.
 */
export function pythonJsonDumps(
  value: unknown,
  options: { indent?: number; ensureAscii?: boolean } = {},
): string {
  const { indent, ensureAscii = false } = options;
  const write = (item: unknown, level: number): string => {
    if (item === null) return 'null';
    if (typeof item === 'boolean') return item ? 'true' : 'false';
    if (typeof item === 'bigint') return item.toString();
    if (typeof item === 'number') return pythonNumber(item);
    if (typeof item === 'string') {
      const text = JSON.stringify(item);
      return ensureAscii
        ? text.replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
        : text;
    }
    const parts = Array.isArray(item)
      ? item.map((element) => write(element, level + 1))
      : typeof item === 'object'
        ? Object.entries(item).map(
            ([key, element]) => `${write(key, level + 1)}: ${write(element, level + 1)}`,
          )
        : undefined;
    if (parts === undefined) throw new Error(`Python's json module cannot write a ${typeof item}`);
    const [open, close] = Array.isArray(item) ? ['[', ']'] : ['{', '}'];
    if (parts.length === 0) return `${open}${close}`;
    if (indent === undefined) return `${open}${parts.join(', ')}${close}`;
    const inner = `\n${' '.repeat(indent * (level + 1))}`;
    return `${open}${inner}${parts.join(`,${inner}`)}\n${' '.repeat(indent * level)}${close}`;
  };
  return write(value, 0);
}

/** `gzip.GzipFile(fileobj=BytesIO(), mode='wb', compresslevel=6)`: no file name, the write time, OS byte 255. */
function pythonGzip(data: Buffer, mtimeSeconds: number): Buffer {
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  header.writeUInt32LE(mtimeSeconds, 4);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length % 2 ** 32, 4);
  return Buffer.concat([header, deflateRawSync(data, { level: 6, memLevel: 8 }), trailer]);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

export function writeLegacyArchive(input: LegacyArchiveInput): LegacyArchive {
  const stamp = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(input.runStamp);
  if (!stamp) throw new Error('runStamp must be YYYYMMDDTHHMMSSZ');
  const [year = '', month = '', day = '', hour = '', minute = '', second = ''] = stamp.slice(1);
  // datetime.now(timezone.utc).isoformat(), with a zero fraction (which isoformat leaves out).
  const archivedAt = `${year}-${month}-${day}T${hour}:${minute}:${second}+00:00`;
  const pkColumn = input.primaryKeyColumn ?? 'id';
  const batchId = sha256(Buffer.from(`${input.database}_${input.table}_${input.batch}`)).slice(0, 16);

  const root = input.prefix === '' ? '' : `${input.prefix.replace(/\/+$/, '')}/`;
  const folder = `${root}${input.database}/${input.table}/year=${year}/month=${month}/day=${day}/`;
  const file = `${input.table}_${input.runStamp}_batch_${String(input.batch).padStart(3, '0')}.jsonl.gz`;
  const dataKey = `${folder}${file}`;
  const metadataKey = `${folder}${file.replaceAll('.jsonl.gz', '.metadata.json')}`;
  const manifestKey = `${folder}${file.replaceAll('.jsonl.gz', '.manifest.json')}`;

  const lines = input.rows.map((row) =>
    typeof row === 'string'
      ? row
      : pythonJsonDumps({
          ...row,
          _archived_at: `${archivedAt}Z`,
          _batch_id: batchId,
          _source_database: input.database,
          _source_table: input.table,
        }),
  );
  // "\n".join(lines): no newline after the last line.
  const content = Buffer.from(lines.join('\n'), 'utf8');
  const compressed = pythonGzip(content, Date.UTC(+year, +month - 1, +day, +hour, +minute, +second) / 1000);

  const primaryKeys =
    input.primaryKeys ??
    input.rows.map((row) => {
      if (typeof row === 'string') throw new Error('primaryKeys is required when rows are given as lines');
      return row[pkColumn];
    });
  const metadata: Record<string, unknown> = {
    version: '1.0',
    batch_info: {
      database: input.database,
      schema: input.schema,
      table: input.table,
      batch_number: input.batch,
      batch_id: batchId,
      archived_at: archivedAt,
    },
    data_info: {
      record_count: input.rows.length,
      uncompressed_size_bytes: content.length,
      compressed_size_bytes: compressed.length,
      compression_ratio: content.length > 0 ? (1 - compressed.length / content.length) * 100 : 0,
    },
    checksums: { jsonl_sha256: sha256(content), compressed_sha256: sha256(compressed) },
    primary_keys: { count: primaryKeys.length, sample: primaryKeys.slice(0, 10) },
  };
  if (input.timestampRange) metadata.timestamp_range = input.timestampRange;
  if (input.tableSchema) metadata.table_schema = input.tableSchema;

  // json.dumps(..., indent=2, default=str): ensure_ascii stays on for the sidecars.
  const sidecar = (value: unknown) =>
    Buffer.from(pythonJsonDumps(value, { indent: 2, ensureAscii: true }), 'utf8');
  const files = new Map<string, Buffer>([
    [dataKey, compressed],
    [metadataKey, sidecar(metadata)],
  ]);
  if (input.withManifest !== false) {
    files.set(
      manifestKey,
      sidecar({
        version: '1.0',
        manifest_info: {
          database: input.database,
          schema: input.schema,
          table: input.table,
          batch_number: input.batch,
          batch_id: batchId,
          primary_key_column: pkColumn,
          deleted_at: archivedAt,
        },
        deletion_info: {
          expected_count: primaryKeys.length,
          deleted_count: primaryKeys.length,
          primary_keys_count: primaryKeys.length,
        },
        primary_keys: primaryKeys,
      }),
    );
  }
  return { dataKey, metadataKey, manifestKey, files, content };
}
