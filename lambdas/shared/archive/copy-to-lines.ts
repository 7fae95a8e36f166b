import { createHash, type Hash } from 'node:crypto';
import { TableNotUsableError } from '../errors/step-errors.js';
import { COPY_SIGNATURE, type ContentFigures } from './stream.js';
import { VersionDigest } from './version-digest.js';

/** PostgreSQL's timestamptz epoch, 2000-01-01T00:00:00Z, in ms since 1970. */
const PG_EPOCH_MS = 946_684_800_000;

/**
 * A binary timestamptz (µs since 2000-01-01 UTC), given as its two 32-bit halves (signed high, unsigned low), as
 * ISO-8601 with microseconds. The halves are kept apart because a double holds the µs exactly only within about 285
 * years of 2000, and rows of year 1 are archived too.
 */
function isoMicros(high: number, low: number): string {
  const micros = (BigInt(high) << 32n) + BigInt(low);
  // Floor division: BigInt division truncates toward zero, and instants before 2000 are negative.
  const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const iso = new Date(PG_EPOCH_MS + Number(ms)).toISOString();
  const extra = String(micros - ms * 1000n).padStart(3, '0');
  return `${iso.slice(0, -1)}${extra}Z`;
}

/**
 * What PostgreSQL's escape_json writes for each byte: 0 for the byte itself, else the escape's second character
 * (`\b \f \n \r \t \" \\`), or 0xff for `\u00XX` (the other bytes below 0x20). Bytes of multi-byte UTF-8 characters
 * are all 0x80 or above, so a value is escaped byte by byte, wherever a chunk cuts it.
 */
const ESCAPE = new Uint8Array(256);
for (let byte = 0; byte < 0x20; byte += 1) ESCAPE[byte] = 0xff;
for (const [byte, letter] of [
  [0x08, 'b'],
  [0x0c, 'f'],
  [0x0a, 'n'],
  [0x0d, 'r'],
  [0x09, 't'],
  [0x22, '"'],
  [0x5c, '\\'],
] as const)
  ESCAPE[byte] = letter.charCodeAt(0);
const HEX = Buffer.from('0123456789abcdef');

/** Largest stretch of a value escaped at once: the output it may need (6 bytes per byte) is reserved up front. */
const ESCAPE_STRETCH = 64 * 1024;
/**
 * The longest archive line export writes: restore reads a line through `line::jsonb` (or, under 8 MB, as text), and
 * a jsonb value holds at most 2^28 - 1 bytes. A line's jsonb is at most a few bytes longer than its text (escapes
 * shrink, each member's JEntries take about as much as its quotes and separators; a one-column line's jsonb is two
 * bytes longer), well within the margin. Before export wrote the lines, PostgreSQL refused only lines of 1 GB
 * (json_object's array), so a row between the two was archived, deleted, and could not be restored.
 */
const RESTORABLE_LINE_BYTES = 2 ** 28 - 1024;
/** Largest tuple written in one piece by the fast path. */
const WHOLE_TUPLE_BYTES = 64 * 1024;
const OUTPUT_BYTES = 256 * 1024;

/**
 * Writes `source[from, to)` escaped as escape_json escapes a string's bytes into `target` at `at` (which has room for
 * six bytes per byte); returns the end. Byte by byte: a JSON value (jsonb text) holds a quote every few bytes, and a
 * native copy per run between them cost more than the loop.
 */
function escapeInto(source: Buffer, from: number, to: number, target: Buffer, at: number): number {
  let out = at;
  for (let i = from; i < to; i += 1) {
    const byte = source[i] as number;
    const letter = ESCAPE[byte] as number;
    if (letter === 0) {
      target[out++] = byte;
    } else if (letter !== 0xff) {
      target[out++] = 0x5c;
      target[out++] = letter;
    } else {
      target[out++] = 0x5c;
      target[out++] = 0x75; // u
      target[out++] = 0x30;
      target[out++] = 0x30;
      target[out++] = HEX[byte >> 4] as number;
      target[out++] = HEX[byte & 0xf] as number;
    }
  }
  return out;
}

/** The JSON text of a string as escape_json writes it, with its quotes. */
function jsonString(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const out = Buffer.allocUnsafe(bytes.length * 6 + 2);
  out[0] = 0x22;
  const end = escapeInto(bytes, 0, bytes.length, out, 1);
  out[end] = 0x22;
  return out.subarray(0, end + 1);
}

/** The output of one chunk, written into large buffers instead of a list of small pieces to join. */
class LineOutput {
  private buffer = Buffer.allocUnsafe(OUTPUT_BYTES);
  private at = 0;
  private readonly done: Buffer[] = [];
  /** Bytes written before the current buffer's: with `at`, the stream's length so far. */
  private before = 0;

  /** Bytes written so far. */
  get written(): number {
    return this.before + this.at;
  }

  /** Makes room for `bytes` more. */
  private reserve(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    if (this.at > 0) this.done.push(this.buffer.subarray(0, this.at));
    this.before += this.at;
    this.buffer = Buffer.allocUnsafe(Math.max(OUTPUT_BYTES, bytes));
    this.at = 0;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.at++] = value;
  }

  bytes(source: Buffer): void {
    this.reserve(source.length);
    source.copy(this.buffer, this.at);
    this.at += source.length;
  }

  /** `source[from, to)` escaped as escape_json escapes a string's bytes, a stretch at a time (escapeInto). */
  escaped(source: Buffer, from: number, to: number): void {
    for (let start = from; start < to; start += ESCAPE_STRETCH) {
      const end = Math.min(to, start + ESCAPE_STRETCH);
      this.reserve((end - start) * 6);
      this.at = escapeInto(source, start, end, this.buffer, this.at);
    }
  }

  /**
   * Writes the line of a tuple that lies whole in `source` at `[from, to)` (its fields after the count: the
   * columns' lengths and values) and returns where its timestamp field starts. The hot path: one reservation for
   * the worst case, keys copied byte by byte (a native copy costs more for a dozen bytes).
   */
  tuple(source: Buffer, from: number, to: number, keys: { each: readonly Buffer[]; bytes: number }): number {
    this.reserve((to - from) * 6 + keys.bytes + 2);
    const buffer = this.buffer;
    let at = this.at;
    let p = from;
    for (const key of keys.each) {
      for (let k = 0; k < key.length; k += 1) buffer[at++] = key[k] as number;
      const length = source.readInt32BE(p);
      p += 4;
      if (length < 0) {
        buffer[at++] = 0x6e; // null
        buffer[at++] = 0x75;
        buffer[at++] = 0x6c;
        buffer[at++] = 0x6c;
        continue;
      }
      buffer[at++] = 0x22;
      at = escapeInto(source, p, p + length, buffer, at);
      buffer[at++] = 0x22;
      p += length;
    }
    buffer[at++] = 0x7d; // }
    buffer[at++] = 0x0a;
    this.at = at;
    return p;
  }

  /** What was written since the last take, as buffers to pass on. */
  take(): Buffer[] {
    if (this.at > 0) {
      this.done.push(this.buffer.subarray(0, this.at));
      this.before += this.at;
      this.buffer = this.buffer.subarray(this.at);
      this.at = 0;
    }
    return this.done.splice(0);
  }
}

/** What comes next: the header (19 bytes, then its extension area); per tuple its field count, then each field's
 * length and value (the object's index as an int4, a column's text, then the timestamp's and the row version's int8);
 * the trailer `int16 -1`. */
type CopyItem = 'header' | 'extension' | 'fields' | 'length' | 'value' | 'int4' | 'int8' | 'end';

const NULL = Buffer.from('null');
const LINE_END = Buffer.from('}\n');

/** The lines one archive object received, measured as they were written. */
export interface ObjectLines extends ContentFigures {
  /** The object's index in the COPY (rowValuesCopySql's `o`). */
  object: number;
  /** Oldest and newest timestamp of its rows (ISO-8601 UTC, microseconds). */
  minTimestamp: string;
  maxTimestamp: string;
}

/**
 * Turns `COPY (SELECT o, c1::text, …, cN::text, ts, version) TO STDOUT (FORMAT binary)` into archive JSONL, one object
 * after another: per row, byte for byte the line `json_object(ARRAY[names], ARRAY[values::text])::text` (table-sql.ts
 * rowLineSql) and "\n". PostgreSQL sends each value's text as it is; this process writes the JSON around it, as
 * json_object does (its separators, escape_json's escapes), which halves the database's work per row against rendering
 * the line there (issue 14: 6.9 s against 3.5 s for the bench's 900k rows). The int4 before the values says which
 * archive object the row is in: one COPY reads several objects' rows, each object's together and in key order, and
 * `read` stops at the first row of the next one so the caller can switch objects there. The two fields after the
 * values: the timestamp as timestamptz (an int8 of µs) feeds only the object's timestamp range, the row version's
 * int8 identity (table-sql.ts rowVersionSql) only the version digest the delete checks.
 *
 * Export's hot loop, written by hand: a tuple that lies whole in a chunk is read in place by offsets; one cut by a
 * chunk boundary goes through the item-by-item state machine. A value streams through as its bytes arrive and is
 * never gathered (PostgreSQL allows 1 GB per value); only the small items (header, lengths, int4s, int8s) are joined,
 * when a chunk boundary cuts one.
 */
export class CopyToArchiveLines {
  /** Before each value: `{"name" : ` for the first column, `, "name" : ` for the others; and their total length. */
  private readonly keys: { each: Buffer[]; bytes: number };
  private readonly fieldCount: number;
  private readonly columns: number;
  private readonly out = new LineOutput();
  private next: CopyItem = 'header';
  /** The field of the tuple whose length or value comes next. */
  private field = 0;
  /** Bytes of the next item: still to come of a value being streamed, the whole size of a small one. */
  private size = 19;
  /** The start of a small item cut by the end of the previous chunk. */
  private carry: Buffer = Buffer.alloc(0);
  /** Where the line under way started in the output (the slow path's lines span chunks). */
  private lineStart = 0;
  /** The object whose rows are being read, and the one whose first row `read` stopped at. */
  private current: number | undefined;
  private pending: number | undefined;
  private content: Hash = createHash('sha256');
  private rows = 0;
  private bytes = 0;
  /** Output bytes handed out by `lines()`, over all objects. */
  private taken = 0;
  /** The oldest and newest timestamp of the object's rows, as the halves of their µs (isoMicros). */
  private minHigh = Number.POSITIVE_INFINITY;
  private minLow = 0;
  private maxHigh = Number.NEGATIVE_INFINITY;
  private maxLow = 0;

  /**
   * `columns`: the names, in the COPY's order. `versions`: where the row versions go (version-digest.ts); export
   * passes one digest for all the objects of a batch and keeps its sum with the batch in flight, not in the archive.
   * `maxLineBytes`: the longest line archived, with its newline; a longer one fails the export (TableNotUsableError).
   */
  constructor(
    columns: readonly string[],
    private readonly versions = new VersionDigest(),
    private readonly maxLineBytes = RESTORABLE_LINE_BYTES,
  ) {
    if (columns.length === 0) throw new Error('an archive line needs at least one column');
    const each = columns.map((name, i) =>
      Buffer.concat([Buffer.from(i === 0 ? '{' : ', '), jsonString(name), Buffer.from(' : ')]),
    );
    this.keys = { each, bytes: each.reduce((sum, key) => sum + key.length, 0) };
    this.columns = columns.length;
    this.fieldCount = columns.length + 3;
  }

  /**
   * Reads `chunk` from `offset`; returns where it stopped: the chunk's end, or the first row of another object than
   * the current one (`nextObject` then switches to it). The lines written go to `lines()`.
   */
  read(chunk: Buffer, offset = 0): number {
    let at = offset;
    while (at < chunk.length && this.pending === undefined) {
      if (this.next === 'end') throw new Error('bytes after the COPY trailer');
      if (this.next === 'fields' && this.carry.length === 0) {
        at = this.wholeTuples(chunk, at);
        if (at >= chunk.length || this.pending !== undefined) break;
      }
      if (this.next === 'value') {
        const end = Math.min(chunk.length, at + this.size);
        this.out.escaped(chunk, at, end);
        this.assertLineFits();
        this.size -= end - at;
        at = end;
        if (this.size === 0) this.endField(true);
        continue;
      }
      const needed = this.size - this.carry.length;
      if (chunk.length - at < needed) {
        this.carry = Buffer.concat([this.carry, chunk.subarray(at)]);
        return chunk.length;
      }
      const piece = chunk.subarray(at, at + needed);
      const item = this.carry.length === 0 ? piece : Buffer.concat([this.carry, piece]);
      this.carry = Buffer.alloc(0);
      at += needed;
      this.complete(item);
    }
    return at;
  }

  /** Whether `read` stopped at the first row of another object than the current one. */
  get atAnotherObject(): boolean {
    return this.pending !== undefined;
  }

  /**
   * The current object's lines written since the last call, measured into its figures, once they reach `least`
   * bytes; undefined when fewer. Each buffer handed on costs every stage after it (the staging chain's transforms,
   * a round trip to gzip's thread) a fixed amount, so export passes lines on a few hundred KB at a time.
   */
  lines(least = 0): Buffer | undefined {
    if (this.out.written - this.taken < least) return undefined;
    const out = this.out.take();
    if (out.length === 0) return undefined;
    const joined = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
    this.taken += joined.length;
    this.content.update(joined);
    this.bytes += joined.length;
    return joined;
  }

  /**
   * Once `read` stopped at another object's first row: ends the current object (its figures; undefined before the
   * first) and makes that object current. Objects come in the COPY's order; one that had no rows is not seen at all.
   * Call `lines()` first: what it still holds is the ending object's.
   */
  nextObject(): { ended: ObjectLines | undefined; next: number } {
    const next = this.pending;
    if (next === undefined) throw new Error('read did not stop at another object');
    if (this.out.written > this.taken) throw new Error('lines of the ending object were not taken');
    if (this.current !== undefined && next <= this.current)
      throw new Error(`COPY sent a row of object ${next} after object ${this.current}: rows out of order`);
    const ended = this.endObject();
    this.current = next;
    this.pending = undefined;
    return { ended, next };
  }

  /** After the COPY's last byte: the last object's figures (undefined without rows); throws unless the trailer came. */
  finish(): ObjectLines | undefined {
    if (this.next !== 'end')
      throw new Error('COPY stream ended before its trailer: the export was cut short');
    if (this.out.written > this.taken) throw new Error('lines left unread at the end of the COPY');
    return this.endObject();
  }

  private endObject(): ObjectLines | undefined {
    if (this.current === undefined) return undefined;
    const ended: ObjectLines = {
      object: this.current,
      rows: this.rows,
      contentSha256: this.content.digest('hex'),
      uncompressedBytes: this.bytes,
      minTimestamp: isoMicros(this.minHigh, this.minLow),
      maxTimestamp: isoMicros(this.maxHigh, this.maxLow),
    };
    this.content = createHash('sha256');
    this.rows = 0;
    this.bytes = 0;
    this.minHigh = Number.POSITIVE_INFINITY;
    this.maxHigh = Number.NEGATIVE_INFINITY;
    return ended;
  }

  /** The object a tuple belongs to: stops reading (sets `pending`) at the first row of another one. */
  private belongsToCurrent(object: number): boolean {
    if (object === this.current) return true;
    this.pending = object;
    return false;
  }

  /**
   * Writes the tuples that lie whole in `chunk` from `start`, in place; returns where the first one that does not (or
   * the trailer, or anything unexpected, which the state machine then reports, or another object's row) starts.
   */
  private wholeTuples(chunk: Buffer, start: number): number {
    const columns = this.columns;
    let offset = start;
    while (chunk.length - offset >= 2 && chunk.readInt16BE(offset) === this.fieldCount) {
      let end = offset + 2;
      for (let i = 0; i < this.fieldCount; i += 1) {
        if (end + 4 > chunk.length) return offset;
        const length = chunk.readInt32BE(end);
        if (i === 0 ? length !== 4 : i > columns && length !== 8) return offset;
        end += 4 + Math.max(length, 0);
      }
      // A tuple too large to reserve six times over goes through the state machine, a stretch at a time.
      if (end > chunk.length || end - offset > WHOLE_TUPLE_BYTES) return offset;
      if (!this.belongsToCurrent(chunk.readInt32BE(offset + 6))) return offset;
      this.lineStart = this.out.written;
      const at = this.out.tuple(chunk, offset + 10, end, this.keys);
      this.assertLineFits();
      this.rows += 1;
      this.timestamp(chunk, at + 4);
      this.versions.add(chunk, at + 16);
      offset = end;
    }
    return offset;
  }

  private assertLineFits(): void {
    const bytes = this.out.written - this.lineStart;
    if (bytes <= this.maxLineBytes) return;
    throw new TableNotUsableError(
      `row ${this.rows + 1} of the object has an archive line of over ${this.maxLineBytes} bytes (${bytes} so far), more than restore can load (a jsonb value holds at most 256 MiB); nothing was archived or deleted`,
    );
  }

  private timestamp(bytes: Buffer, offset: number): void {
    // Per row, in the hot path: compared as integer halves, with nothing allocated.
    const high = bytes.readInt32BE(offset);
    const low = bytes.readUInt32BE(offset + 4);
    if (high < this.minHigh || (high === this.minHigh && low < this.minLow)) {
      this.minHigh = high;
      this.minLow = low;
    }
    if (high > this.maxHigh || (high === this.maxHigh && low > this.maxLow)) {
      this.maxHigh = high;
      this.maxLow = low;
    }
  }

  /** A complete small item: checks it and sets what comes next. */
  private complete(item: Buffer): void {
    const columns = this.columns;
    switch (this.next) {
      case 'header':
        if (!item.subarray(0, 11).equals(COPY_SIGNATURE)) throw new Error('not a binary COPY stream');
        [this.next, this.size] = ['extension', item.readUInt32BE(15)];
        return;
      case 'extension':
        [this.next, this.size] = ['fields', 2];
        return;
      case 'fields': {
        const fields = item.readInt16BE(0);
        if (fields === -1) {
          [this.next, this.size] = ['end', 0];
          return;
        }
        if (fields !== this.fieldCount) throw new Error(`unexpected COPY tuple with ${fields} fields`);
        this.field = 0;
        [this.next, this.size] = ['length', 4];
        return;
      }
      case 'length': {
        const length = item.readInt32BE(0);
        if (this.field === 0) {
          if (length !== 4)
            throw new Error(`object index is ${length < 0 ? 'NULL' : `${length} bytes, not an int4`}`);
          [this.next, this.size] = ['int4', 4];
          return;
        }
        if (this.field > columns) {
          if (length !== 8) {
            const what = this.field === columns + 1 ? 'timestamp' : 'row version';
            throw new Error(`${what} is ${length < 0 ? 'NULL' : `${length} bytes, not an int8`}`);
          }
          [this.next, this.size] = ['int8', 8];
          return;
        }
        this.out.bytes(this.keys.each[this.field - 1] as Buffer);
        if (length < 0) {
          this.out.bytes(NULL);
          this.endField(false);
          return;
        }
        this.out.byte(0x22);
        if (length === 0) {
          this.endField(true);
          return;
        }
        [this.next, this.size] = ['value', length];
        return;
      }
      case 'int4':
        // The line starts after the object's index: a row of the next object starts nothing in this one's output.
        this.belongsToCurrent(item.readInt32BE(0));
        this.lineStart = this.out.written;
        this.endField(false);
        return;
      case 'int8':
        if (this.field === columns + 1) this.timestamp(item, 0);
        else this.versions.add(item);
        this.endField(false);
        return;
      default:
        throw new Error(`no small COPY item is read at ${this.next}`);
    }
  }

  /** Ends a field (closing a value's quote when `quoted`); the next field's length, or the next tuple, comes next. */
  private endField(quoted: boolean): void {
    if (quoted) this.out.byte(0x22);
    this.field += 1;
    if (this.field === this.columns + 1) {
      this.out.bytes(LINE_END);
      this.assertLineFits();
      this.rows += 1;
    }
    [this.next, this.size] = this.field === this.fieldCount ? ['fields', 2] : ['length', 4];
  }
}
