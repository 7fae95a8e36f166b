import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { LegacyFormatError } from './legacy-format.js';
import { type LegacyJsonValue, parseLegacyJson } from './legacy-json.js';
import { beyondSidecarError, lineTooLongError, type ReadBounds } from './stream.js';

/**
 * Rows of the predecessor tool's data files (see legacy-format.ts), converted to this tool's canonical lines. Pure:
 * no I/O.
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

// ---------------------------------------------------------------------------------------------------------------
// Rows

/** Fields the tool added to every row; they are not columns of the source table. */
const TOOL_FIELDS = new Set(['_archived_at', '_batch_id', '_source_database', '_source_table']);

/**
 * Base64 as Python's b64encode writes it (padded), with the length a multiple of 4 checked apart: a repeated group
 * (`(?:[A-Za-z0-9+/]{4})*`) backtracks once per group, and V8 gives up on a value of some 3 MB ("Maximum call stack
 * size exceeded"), so an attachment of that size could not be restored.
 */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (text: string): boolean => text.length % 4 === 0 && BASE64.test(text);
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
      if (!isBase64(text))
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
 * The longest legacy line read: 128 MiB. Converting a line holds it about five times at once (its bytes, the decoded
 * text, the converted text, its bytes again and the staging tuple): a line of 200 MiB took 1.1 GB, past the restore
 * function's 1,024 MB (a canonical line of 256 MiB takes about 330 MB). A planted line inflates from a few hundred KiB
 * of gzip, and must not end the function, which fails the restore unnamed: a longer line is refused by name.
 */
export const MAX_LEGACY_LINE_BYTES = 128 * 1024 * 1024;

/** Why a legacy line past MAX_LEGACY_LINE_BYTES is refused, said in its error. */
const LEGACY_LINE_LIMIT = "longer than restore converts from the Python tool's format within its memory";

/**
 * Decompressed legacy data file in, canonical JSON lines (`JSON.stringify(row) + '\n'`) out. The tool wrote no
 * newline after the last line, so the final line may be unterminated; a trailing newline is accepted too. Memory
 * stays bounded by one line: a line longer than MAX_LEGACY_LINE_BYTES (`bounds.lineBytes`), or more bytes than the
 * metadata states (`bounds.uncompressedBytes`), end the stream with ArchiveIntegrityError before more is kept.
 * Figures (available once the stream has ended) describe the input.
 */
export class LegacyLinesToCanonical extends Transform {
  private readonly hash: Hash = createHash('sha256');
  // fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a BOM is kept so the parser rejects it.
  private readonly decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private rows = 0;
  private bytes = 0;
  private result: LegacyFileFigures | undefined;
  private readonly maxBytes: number;
  private readonly maxLineBytes: number;

  constructor(
    private readonly columnType: (column: string) => string | undefined,
    private readonly bounds: ReadBounds = {},
  ) {
    super();
    this.maxBytes = bounds.uncompressedBytes ?? Number.POSITIVE_INFINITY;
    this.maxLineBytes = bounds.lineBytes ?? MAX_LEGACY_LINE_BYTES;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.bytes += chunk.length;
      if (this.bytes > this.maxBytes) throw beyondSidecarError(this.bounds);
      this.hash.update(chunk);
      const out: string[] = [];
      let start = 0;
      for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
        this.keep(chunk.subarray(start, newline));
        out.push(this.convert(Buffer.concat(this.pending, this.pendingBytes)));
        this.pending = [];
        this.pendingBytes = 0;
        start = newline + 1;
      }
      if (start < chunk.length) this.keep(chunk.subarray(start));
      callback(null, out.length > 0 ? Buffer.from(out.join(''), 'utf8') : undefined);
    } catch (error) {
      this.pending = [];
      callback(error as Error);
    }
  }

  /** Keeps a part of the line under way, unless the line grows past its bound. */
  private keep(part: Buffer): void {
    this.pendingBytes += part.length;
    if (this.pendingBytes > this.maxLineBytes)
      throw lineTooLongError(this.bounds, this.rows + 1, this.maxLineBytes, LEGACY_LINE_LIMIT);
    this.pending.push(part);
  }

  override _flush(callback: TransformCallback): void {
    try {
      const last = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
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
