import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { z } from 'zod';

/**
 * Reading archives written by the predecessor tool, the Python "Audit Table Archiver" (labsbykora/audit_table_archiver),
 * so restore can bring its rows back. Pure: no I/O.
 *
 * What that format lost, which no reader can recover:
 * - `infinity` / `-infinity` timestamps, timestamptz and dates were written as 9999-12-31(T23:59:59.999999) /
 *   0001-01-01(T00:00:00): they are restored as those finite values.
 * - Every row carries `_archived_at`, `_batch_id`, `_source_database`, `_source_table`, written over any column of the
 *   same name: they are dropped, and a real column with one of those names cannot be restored from these files.
 * - `interval` was written as a Python timedelta, months folded into days by the driver (1 mon → 30 days, 1 year →
 *   365 days): restored as those days and seconds.
 * - Types the tool did not know (ranges, composites, bit strings, geometric types) were written as Python reprs or
 *   plain lists; they are passed on as text and PostgreSQL rejects what it cannot read.
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

// ---------------------------------------------------------------------------------------------------------------
// Lossless JSON

/**
 * A parsed legacy JSON value. Numbers keep their source text (JSON.parse rounds past 2^53 and rejects Python's
 * `NaN`/`Infinity`/`-Infinity`, which are kept as number tokens). Arrays and objects keep their exact source text.
 */
export type LegacyJsonValue =
  | { kind: 'null' }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'number'; text: string }
  | { kind: 'string'; value: string }
  | { kind: 'array'; items: LegacyJsonValue[]; source: string }
  | { kind: 'object'; entries: [string, LegacyJsonValue][]; source: string };

// PostgreSQL arrays have at most 6 dimensions and the tool wrote jsonb as strings: deeper nesting is not a row.
const MAX_DEPTH = 1000;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

class LegacyJsonParser {
  private pos = 0;

  constructor(private readonly text: string) {}

  parseDocument(): LegacyJsonValue {
    const value = this.value(0);
    this.skipWhitespace();
    if (this.pos !== this.text.length) this.fail('the end of the line after the value');
    return value;
  }

  /** Positions are reported in UTF-8 bytes, as a reader of the file counts them; the input itself is never quoted. */
  private fail(expected: string): never {
    const found = this.pos >= this.text.length ? 'the end of the line' : 'something else';
    const byte = Buffer.byteLength(this.text.slice(0, this.pos), 'utf8');
    throw new LegacyFormatError(
      `malformed legacy JSON at byte ${byte}: expected ${expected}, found ${found}`,
    );
  }

  private skipWhitespace(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.pos++;
    }
  }

  private word(word: string): boolean {
    if (!this.text.startsWith(word, this.pos)) return false;
    this.pos += word.length;
    return true;
  }

  private value(depth: number): LegacyJsonValue {
    this.skipWhitespace();
    const c = this.text[this.pos];
    if (c === '{') return this.object(depth + 1);
    if (c === '[') return this.array(depth + 1);
    if (c === '"') return { kind: 'string', value: this.string() };
    if (this.word('true')) return { kind: 'boolean', value: true };
    if (this.word('false')) return { kind: 'boolean', value: false };
    if (this.word('null')) return { kind: 'null' };
    // Python's json.dumps writes float NaN and infinities as these bare tokens.
    for (const token of ['NaN', 'Infinity', '-Infinity']) {
      if (this.word(token)) return { kind: 'number', text: token };
    }
    NUMBER.lastIndex = this.pos;
    const number = NUMBER.exec(this.text);
    if (number === null) this.fail('a JSON value');
    this.pos += number[0].length;
    return { kind: 'number', text: number[0] };
  }

  private array(depth: number): LegacyJsonValue {
    if (depth > MAX_DEPTH) this.fail(`nesting of at most ${MAX_DEPTH} levels`);
    const start = this.pos++;
    const items: LegacyJsonValue[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
    } else {
      for (;;) {
        items.push(this.value(depth));
        this.skipWhitespace();
        const c = this.text[this.pos++];
        if (c === ']') break;
        if (c !== ',') {
          this.pos--;
          this.fail("',' or ']' in an array");
        }
      }
    }
    return { kind: 'array', items, source: this.text.slice(start, this.pos) };
  }

  private object(depth: number): LegacyJsonValue {
    if (depth > MAX_DEPTH) this.fail(`nesting of at most ${MAX_DEPTH} levels`);
    const start = this.pos++;
    const entries: [string, LegacyJsonValue][] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
    } else {
      for (;;) {
        this.skipWhitespace();
        if (this.text[this.pos] !== '"') this.fail('a double-quoted member name');
        const key = this.string();
        this.skipWhitespace();
        if (this.text[this.pos] !== ':') this.fail("':' after a member name");
        this.pos++;
        entries.push([key, this.value(depth)]);
        this.skipWhitespace();
        const c = this.text[this.pos++];
        if (c === '}') break;
        if (c !== ',') {
          this.pos--;
          this.fail("',' or '}' in an object");
        }
      }
    }
    return { kind: 'object', entries, source: this.text.slice(start, this.pos) };
  }

  /** At the opening quote; returns the decoded string. Raw U+2028/U+2029 are ordinary characters in JSON. */
  private string(): string {
    const text = this.text;
    let out = '';
    let run = ++this.pos;
    for (;;) {
      if (this.pos >= text.length) this.fail("'\"' closing the string");
      const c = text.charCodeAt(this.pos);
      if (c === 0x22) {
        out += text.slice(run, this.pos++);
        return out;
      }
      if (c === 0x5c) {
        out += text.slice(run, this.pos);
        out += this.escape();
        run = this.pos;
      } else if (c < 0x20) {
        this.fail('a control character in a string to be escaped');
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const next = text.charCodeAt(this.pos + 1);
        if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) this.fail('a complete surrogate pair');
        this.pos += 2;
      } else {
        this.pos++;
      }
    }
  }

  /** At the backslash; consumes the escape (a surrogate pair as one) and returns its characters. */
  private escape(): string {
    const letter = this.text[this.pos + 1] ?? '';
    const simple = ESCAPES[letter];
    if (simple !== undefined) {
      this.pos += 2;
      return simple;
    }
    if (letter !== 'u') return this.fail('a valid escape sequence');
    const unit = this.unicodeEscape(this.pos);
    if (unit >= 0xdc00 && unit <= 0xdfff) this.fail('a high surrogate before a low surrogate');
    if (unit < 0xd800 || unit > 0xdbff) {
      this.pos += 6;
      return String.fromCharCode(unit);
    }
    // PostgreSQL text cannot hold a lone surrogate: a high one must be followed by an escaped low one.
    const low = this.text.startsWith('\\u', this.pos + 6) ? this.unicodeEscape(this.pos + 6) : -1;
    if (!(low >= 0xdc00 && low <= 0xdfff)) {
      this.pos += 6;
      this.fail('an escaped low surrogate after a high surrogate');
    }
    this.pos += 12;
    return String.fromCharCode(unit, low);
  }

  private unicodeEscape(at: number): number {
    const hex = this.text.slice(at + 2, at + 6);
    if (!HEX4.test(hex)) {
      this.pos = at;
      this.fail('four hex digits after \\u');
    }
    return Number.parseInt(hex, 16);
  }
}

/**
 * Parses one JSON text as Python's json module wrote it: standard JSON plus bare `NaN`, `Infinity`, `-Infinity`.
 * @throws LegacyFormatError naming the byte offset and what was expected, never the input.
 */
export function parseLegacyJson(text: string): LegacyJsonValue {
  return new LegacyJsonParser(text).parseDocument();
}

// ---------------------------------------------------------------------------------------------------------------
// Rows

/** Fields the tool added to every row; they are not columns of the source table. */
const TOOL_FIELDS = new Set(['_archived_at', '_batch_id', '_source_database', '_source_table']);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Python's str(timedelta) when there are days: `-1 day, 23:59:59.500000`. */
const TIMEDELTA_WITH_DAYS = /^(-?\d+) days?, (\d+:\d{2}:\d{2}(?:\.\d{6})?)$/;
/** An explicit UTC offset followed by the `Z` the tool appended: PostgreSQL rejects both together. */
const OFFSET_THEN_Z = /[+-]\d{2}:\d{2}Z$/;

type ValueRule = 'timestamp' | 'timestamptz' | 'bytea' | 'interval' | 'text';

/** The rule for a `format_type()` text with type modifiers (`(3)`, `(12,2)`) removed. */
function ruleFor(type: string): ValueRule {
  switch (type) {
    case 'timestamp without time zone':
    case 'timestamp':
      return 'timestamp';
    case 'timestamp with time zone':
    case 'timestamptz':
      return 'timestamptz';
    case 'bytea':
      return 'bytea';
    case 'interval':
      return 'interval';
    default:
      return 'text';
  }
}

/** Text of a non-null value with no column type to go by. Objects and arrays stay their exact JSON source. */
function genericText(value: Exclude<LegacyJsonValue, { kind: 'null' }>): string {
  switch (value.kind) {
    case 'string':
      return value.value;
    case 'number':
      return value.text;
    case 'boolean':
      return value.value ? 'true' : 'false';
    case 'array':
    case 'object':
      return value.source;
  }
}

function convertString(text: string, rule: ValueRule, column: string): string {
  switch (rule) {
    case 'timestamp':
      // Naive values got a `Z` appended although they are not UTC; the offset-free text is the stored value.
      return text.endsWith('Z') ? text.slice(0, -1) : text;
    case 'timestamptz':
      return OFFSET_THEN_Z.test(text) ? text.slice(0, -1) : text;
    case 'bytea':
      // Buffer's base64 decoder skips invalid characters; validate so garbage is never restored as bytes.
      if (!BASE64.test(text))
        throw new LegacyFormatError(`column "${column}" (bytea): value is not valid base64`);
      return `\\x${Buffer.from(text, 'base64').toString('hex')}`;
    case 'interval': {
      // Explicit signs on both fields read the same under every IntervalStyle (sql_standard would negate the time).
      const match = TIMEDELTA_WITH_DAYS.exec(text);
      return match ? `${match[1]} days +${match[2]}` : text;
    }
    case 'text':
      return text;
  }
}

function convertScalar(
  value: Exclude<LegacyJsonValue, { kind: 'null' }>,
  rule: ValueRule,
  column: string,
): string {
  return value.kind === 'string' ? convertString(value.value, rule, column) : genericText(value);
}

/** PostgreSQL array literal: every element double-quoted (so no element text is ever special), NULL for null. */
function arrayLiteral(
  value: Extract<LegacyJsonValue, { kind: 'array' }>,
  rule: ValueRule,
  column: string,
): string {
  const elements = value.items.map((item) => {
    if (item.kind === 'null') return 'NULL';
    if (item.kind === 'array') return arrayLiteral(item, rule, column);
    return `"${convertScalar(item, rule, column).replace(/[\\"]/g, '\\$&')}"`;
  });
  return `{${elements.join(',')}}`;
}

function convertValue(value: LegacyJsonValue, type: string | undefined, column: string): string | null {
  if (value.kind === 'null') return null;
  if (type === undefined) return genericText(value);
  const base = type.replace(/\(\s*\d+\s*(?:,\s*-?\d+\s*)?\)/g, '').trim();
  if (base.endsWith('[]')) {
    return value.kind === 'array'
      ? arrayLiteral(value, ruleFor(base.slice(0, -2).trim()), column)
      : genericText(value);
  }
  return convertScalar(value, ruleFor(base), column);
}

/**
 * Turns one legacy line into a canonical row: column → the text PostgreSQL's input function for the column's type
 * reads back as the archived value, or null for SQL NULL. The tool's added fields are dropped.
 *
 * By type (`columnType` gives `format_type()` text, or undefined for a column the target lacks):
 * - numbers (JSON numbers, numeric strings such as `"1.500000"`) → their exact text; `NaN`/`Infinity`/`-Infinity`
 *   tokens → that text; booleans → `true`/`false`; uuid, inet, date, time, text… → the string as is;
 * - timestamp without time zone → the appended `Z` stripped; timestamptz → as is, except a `Z` after an offset;
 * - bytea (base64) → `\x` hex; interval (Python timedelta text) → explicit-signed interval text;
 * - json/jsonb → a string is already the JSON text; an object/array → its exact source text;
 * - `…[]` types (nested JSON arrays) → an array literal, elements converted by the element type;
 * - unknown columns → strings as is, numbers as their text, booleans `true`/`false`, arrays/objects as JSON text.
 *
 * @throws LegacyFormatError naming the byte offset or column and the problem, never a value.
 */
export function convertLegacyRow(
  line: string,
  columnType: (column: string) => string | undefined,
): Record<string, string | null> {
  const document = parseLegacyJson(line);
  if (document.kind !== 'object') throw new LegacyFormatError('a legacy row must be a JSON object');
  // No prototype: a column named "__proto__" must become a property, not change the object's prototype.
  const row: Record<string, string | null> = Object.create(null);
  const seen = new Set<string>();
  for (const [column, value] of document.entries) {
    if (seen.has(column)) throw new LegacyFormatError(`column "${column}" appears twice in the row`);
    seen.add(column);
    if (!TOOL_FIELDS.has(column)) row[column] = convertValue(value, columnType(column), column);
  }
  return row;
}

// ---------------------------------------------------------------------------------------------------------------
// Files

/** Figures of the decompressed legacy file as read, to compare with its `.metadata.json`. */
export interface LegacyFileFigures {
  rows: number;
  /** SHA-256 of exactly the decompressed bytes: equals `checksums.jsonl_sha256` of an intact file. */
  contentSha256: string;
  uncompressedBytes: number;
}

/**
 * Decompressed legacy data file in, canonical JSON lines (`JSON.stringify(row) + '\n'`) out. The tool wrote no
 * newline after the last line, so the final line may be unterminated; a trailing newline is accepted too. Memory
 * stays bounded by one line. Figures (available once the stream has ended) describe the input.
 */
export class LegacyLinesToCanonical extends Transform {
  private readonly hash: Hash = createHash('sha256');
  // fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a BOM is kept so the parser rejects it.
  private readonly decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  private pending: Buffer[] = [];
  private rows = 0;
  private bytes = 0;
  private result: LegacyFileFigures | undefined;

  constructor(private readonly columnType: (column: string) => string | undefined) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    try {
      const out: string[] = [];
      let start = 0;
      for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
        this.pending.push(chunk.subarray(start, newline));
        out.push(this.convert(Buffer.concat(this.pending)));
        this.pending = [];
        start = newline + 1;
      }
      if (start < chunk.length) this.pending.push(chunk.subarray(start));
      callback(null, out.length > 0 ? Buffer.from(out.join(''), 'utf8') : undefined);
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      const last = Buffer.concat(this.pending);
      this.pending = [];
      const out = last.length > 0 ? this.convert(last) : undefined;
      this.result = {
        rows: this.rows,
        contentSha256: this.hash.digest('hex'),
        uncompressedBytes: this.bytes,
      };
      callback(null, out === undefined ? undefined : Buffer.from(out, 'utf8'));
    } catch (error) {
      callback(error as Error);
    }
  }

  private convert(line: Buffer): string {
    const row = this.rows + 1;
    try {
      let text: string;
      try {
        text = this.decoder.decode(line);
      } catch {
        throw new LegacyFormatError('the line is not valid UTF-8');
      }
      const converted = `${JSON.stringify(convertLegacyRow(text, this.columnType))}\n`;
      this.rows = row;
      return converted;
    } catch (error) {
      // Only our own messages are known to be free of row values.
      const why = error instanceof LegacyFormatError ? error.message : `unexpected ${(error as Error).name}`;
      throw new LegacyFormatError(`row ${row} of the file cannot be converted: ${why}`, { cause: error });
    }
  }

  figures(): LegacyFileFigures {
    if (!this.result) throw new Error('stream not finished');
    return this.result;
  }
}
