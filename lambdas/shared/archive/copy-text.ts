import { isUtf8 } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { RowBuffer, transcodeLine } from './copy-text-bytes.js';
import type { RowDigest } from './row-digest.js';
import { type LineFigures, LineMeter, LineShape, lineShapeError, type ReadBounds } from './stream.js';

/**
 * A line this encoder will not turn into a row, though PostgreSQL might read it another way (not JSON, not an object,
 * a value that is not a string). Restore then takes its reference path, where PostgreSQL itself reads each line as
 * jsonb, so an archive's odd line is judged exactly as before; a native archive's lines never raise it.
 */
export class LineNotCopyableError extends Error {
  override readonly name = 'LineNotCopyableError';
}

/**
 * Lines longer than this take the reference path, which streams a line's bytes into PostgreSQL as they are: decoding,
 * parsing and re-encoding one would hold several copies of it (a value may be up to 1 GB), against the function's
 * memory budget.
 */
export const MAX_COPYABLE_LINE_BYTES = 8 * 1024 * 1024;

/**
 * Rows leave in pieces of at least this many bytes, each one CopyData message and one socket write: a piece per
 * gunzip chunk made the writes a visible share of restore's CPU.
 */
const OUTPUT_BYTES = 128 * 1024;
const NEWLINE = 0x0a;

/** COPY text format's escapes: backslash, and the bytes that end a field or a row. */
const NEEDS_ESCAPE = /[\\\t\n\r]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const escapeField = (value: string): string =>
  NEEDS_ESCAPE.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c] ?? c) : value;
/** A UTF-16 surrogate without its pair: JSON can spell it, UTF-8 cannot (jsonb refuses it on the reference path). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Turns archive JSONL into `COPY target (columns) FROM STDIN` text rows: each line's value of each column, in the
 * PostgreSQL text form the archive recorded, which the column type's input function reads back exactly (what
 * `(line::jsonb ->> column)::type` does on the reference path, without a jsonb parse per column in the database).
 * It measures the lines as JsonLinesToCopy does (every byte SHA-256'd as it arrived, the row digest when asked), so
 * the archive is still checked against its sidecar before the transaction commits. A missing key reads as NULL, as
 * `->>` does. A line shaped as json_object writes it (the archived columns, in order) is transcoded byte by byte
 * (copy-text-bytes.ts); any other line goes through JSON.parse, which also judges what the transcoder declines.
 */
export class JsonLinesToCopyText extends Transform {
  private readonly out = new RowBuffer(OUTPUT_BYTES * 2);
  private readonly keys: Buffer[];
  private readonly meter: LineMeter;
  private readonly shape = new LineShape();
  private rows = 0;
  /** The start of a line that continues in the next chunk. */
  private carried: Buffer[] = [];
  private carriedBytes = 0;
  private result: LineFigures | undefined;

  /** `bounds` as JsonLinesToCopy's: the meter refuses the bytes past them before a line is carried. */
  constructor(
    private readonly columns: string[],
    private readonly digest?: RowDigest,
    private readonly bounds: ReadBounds = {},
  ) {
    super();
    this.keys = columns.map((column) => Buffer.from(JSON.stringify(column), 'utf8'));
    this.meter = new LineMeter(digest, undefined, bounds);
  }

  /** The rows of the chunk's lines, each read where it lies in the chunk; only a line across chunks is joined. */
  private lines(chunk: Buffer): void {
    let start = 0;
    let newline = chunk.indexOf(NEWLINE);
    if (newline !== -1 && this.carriedBytes > 0) {
      this.carry(chunk.subarray(0, newline));
      const line = Buffer.concat(this.carried, this.carriedBytes);
      this.carried = [];
      this.carriedBytes = 0;
      if (!isUtf8(line)) throw new LineNotCopyableError('line is not UTF-8');
      this.row(line, 0, line.length);
      start = newline + 1;
      newline = chunk.indexOf(NEWLINE, start);
    }
    // Invalid UTF-8 would be replaced silently by a decoder; PostgreSQL refuses it instead (reference path). One
    // check for all the chunk's whole lines: a newline is ASCII, never part of a multi-byte character.
    if (newline !== -1 && !isUtf8(chunk.subarray(start, chunk.lastIndexOf(NEWLINE))))
      throw new LineNotCopyableError('line is not UTF-8');
    for (; newline !== -1; newline = chunk.indexOf(NEWLINE, start)) {
      this.row(chunk, start, newline);
      start = newline + 1;
    }
    if (start < chunk.length) this.carry(chunk.subarray(start));
  }

  private carry(part: Buffer): void {
    this.carriedBytes += part.length;
    if (this.carriedBytes > MAX_COPYABLE_LINE_BYTES)
      throw new LineNotCopyableError(`a line of more than ${MAX_COPYABLE_LINE_BYTES} bytes`);
    this.carried.push(part);
  }

  private row(bytes: Buffer, start: number, end: number): void {
    if (end - start > MAX_COPYABLE_LINE_BYTES)
      throw new LineNotCopyableError(`a line of ${end - start} bytes`);
    this.rows += 1;
    if (transcodeLine(bytes, this.keys, this.out, start, end)) return;
    // Before JSON.parse, which held 290 MB for 8 MiB of "{},": a line export never writes is refused unparsed.
    if (!this.shape.push(bytes, start, end) || !this.shape.end())
      throw lineShapeError(this.bounds, this.rows);
    try {
      this.out.bytes(Buffer.from(this.parsedRow(bytes.subarray(start, end)), 'utf8'));
    } catch (error) {
      throw error instanceof LineNotCopyableError ? error : new LineNotCopyableError('line is not JSON');
    }
  }

  private parsedRow(bytes: Buffer): string {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new LineNotCopyableError('line is not a JSON object');
    const line = value as Record<string, unknown>;
    let row = '';
    for (let i = 0; i < this.columns.length; i++) {
      const column = this.columns[i] as string;
      // Own keys only: a column named "constructor" must not read Object.prototype's.
      const field = Object.hasOwn(line, column) ? line[column] : null;
      if (i > 0) row += '\t';
      if (field === null) row += '\\N';
      else if (typeof field === 'string' && !LONE_SURROGATE.test(field)) row += escapeField(field);
      else throw new LineNotCopyableError('a value is not a string of characters');
    }
    return `${row}\n`;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.meter.push(chunk);
      this.lines(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, this.out.length >= OUTPUT_BYTES ? this.out.take() : undefined);
  }

  override _flush(callback: TransformCallback): void {
    try {
      // The meter refuses a last line without its newline (a truncated object): nothing is carried past it.
      this.result = { ...this.meter.end(), ...(this.digest ? { rowDigest: this.digest.value() } : {}) };
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, this.out.take());
  }

  figures(): LineFigures {
    if (!this.result) throw new Error('stream not finished');
    return this.result;
  }
}
