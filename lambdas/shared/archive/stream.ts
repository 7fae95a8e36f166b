import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import type { RowDigest } from './row-digest.js';
import { VersionDigest } from './version-digest.js';

const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const NEWLINE = Buffer.from('\n');
const EMPTY = Buffer.alloc(0);

/** Figures of a JSONL stream, computed in the single pass that writes or reads it. */
export interface ContentFigures {
  rows: number;
  contentSha256: string;
  uncompressedBytes: number;
}

/** The figures of a JSONL stream and, where a reader asked for it, its row digest (an MD5 of every line). */
export interface LineFigures extends ContentFigures {
  rowDigest?: string;
}

/** What CopyToJsonLines reads next: the header (19 bytes, then its extension area), then tuples of `int16 fields,
 * int32 length, line, int32 length, int8 timestamp, int32 length, int8 version`, then the trailer `int16 -1`. */
type CopyItem =
  | 'header'
  | 'extension'
  | 'fields'
  | 'lineLength'
  | 'line'
  | 'timestampLength'
  | 'timestamp'
  | 'versionLength'
  | 'version'
  | 'end';

/** Bytes of a tuple around its line: fields (2) and line length (4) before; after, two lengths and two int8s. */
const TUPLE_HEAD = 6;
const TUPLE_TAIL = 4 + 8 + 4 + 8;
const TWO_32 = 2 ** 32;
/** PostgreSQL's timestamptz epoch, 2000-01-01T00:00:00Z, in ms since 1970. */
const PG_EPOCH_MS = 946_684_800_000;

/** A binary timestamptz (µs since 2000-01-01 UTC) as ISO-8601 with microseconds. */
function isoMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(PG_EPOCH_MS + ms).toISOString();
  const extra = String(micros - ms * 1000).padStart(3, '0');
  return `${iso.slice(0, -1)}${extra}Z`;
}

/**
 * Turns `COPY (SELECT line, ts, version) TO STDOUT (FORMAT binary)` into archive JSONL ("line\n" per row), hashing
 * the output once per chunk (no hash call per line). Binary COPY hands over each line's bytes exactly, with no
 * text-format escaping to undo. The second field (the timestamp as timestamptz, an int8 of microseconds) only feeds
 * the batch's timestamp range; the third (the row version's int8 identity, table-sql.ts rowVersionSql) only the
 * version digest the delete checks.
 *
 * This is export's hot loop, written by hand: a tuple that lies whole in a chunk is read in place by offsets; only a
 * tuple cut by a chunk boundary goes through the item-by-item state machine. A line streams through as its bytes
 * arrive and is never gathered: PostgreSQL allows 1 GB per value and sends a row in socket-sized chunks, so joining
 * a growing buffer to every chunk made one large row's cost quadratic. Only the small items (header, lengths,
 * int8s) are joined, when a chunk boundary cuts one.
 */
export class CopyToJsonLines extends Transform {
  private next: CopyItem = 'header';
  /** Bytes of the next item: still to come of a line being streamed, the whole size of a small one. */
  private size = 19;
  /** The start of a small item cut by the end of the previous chunk. */
  private carry: Buffer = EMPTY;
  private readonly content: Hash = createHash('sha256');
  private rows = 0;
  private bytes = 0;
  private minMicros = Number.POSITIVE_INFINITY;
  private maxMicros = Number.NEGATIVE_INFINITY;

  /**
   * `versions`: where the row versions go (version-digest.ts); export passes one digest for all the objects of a batch
   * and keeps its sum with the batch in flight, not in the archive.
   */
  constructor(private readonly versions = new VersionDigest()) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      const out = this.parse(chunk);
      if (out.length > 0) {
        // A chunk inside one long line goes on as it is; the lines of a chunk of short rows go on as one buffer.
        const joined = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
        this.content.update(joined);
        this.bytes += joined.length;
        this.push(joined);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.next !== 'end') {
      callback(new Error('COPY stream ended before its trailer: the export was cut short'));
      return;
    }
    callback();
  }

  private parse(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.next === 'end') throw new Error('bytes after the COPY trailer');
      if (this.next === 'fields' && this.carry.length === 0) {
        offset = this.wholeTuples(chunk, offset, out);
        if (offset >= chunk.length) break;
      }
      if (this.next === 'line') {
        const part = chunk.subarray(offset, offset + this.size);
        out.push(part);
        offset += part.length;
        this.size -= part.length;
        if (this.size === 0) [this.next, this.size] = this.endLine(out);
        continue;
      }
      const needed = this.size - this.carry.length;
      if (chunk.length - offset < needed) {
        this.carry = Buffer.concat([this.carry, chunk.subarray(offset)]);
        break;
      }
      const piece = chunk.subarray(offset, offset + needed);
      const item = this.carry.length === 0 ? piece : Buffer.concat([this.carry, piece]);
      this.carry = EMPTY;
      offset += needed;
      [this.next, this.size] = this.complete(item, out);
    }
    return out;
  }

  /**
   * Reads the tuples that lie whole in `chunk` from `offset`, in place; returns where the first one that does not
   * (or the trailer) starts, with `next` still 'fields' unless the trailer was read.
   */
  private wholeTuples(chunk: Buffer, start: number, out: Buffer[]): number {
    let offset = start;
    while (chunk.length - offset >= TUPLE_HEAD) {
      const fields = chunk.readInt16BE(offset);
      if (fields !== 3) return offset;
      const length = chunk.readInt32BE(offset + 2);
      const lineStart = offset + TUPLE_HEAD;
      const tail = lineStart + length;
      if (length < 0 || tail + TUPLE_TAIL > chunk.length) return offset;
      if (chunk.readInt32BE(tail) !== 8 || chunk.readInt32BE(tail + 12) !== 8) return offset;
      out.push(chunk.subarray(lineStart, tail), NEWLINE);
      this.rows += 1;
      this.timestamp(chunk, tail + 4);
      this.versions.add(chunk, tail + 16);
      offset = tail + TUPLE_TAIL;
    }
    return offset;
  }

  private timestamp(bytes: Buffer, offset: number): void {
    const micros = bytes.readInt32BE(offset) * TWO_32 + bytes.readUInt32BE(offset + 4);
    if (micros < this.minMicros) this.minMicros = micros;
    if (micros > this.maxMicros) this.maxMicros = micros;
  }

  /** A complete small item: checks it and returns what comes next, with its size. */
  private complete(item: Buffer, out: Buffer[]): [CopyItem, number] {
    switch (this.next) {
      case 'header':
        if (!item.subarray(0, 11).equals(COPY_SIGNATURE)) throw new Error('not a binary COPY stream');
        return ['extension', item.readUInt32BE(15)];
      case 'extension':
        return ['fields', 2];
      case 'fields': {
        const fields = item.readInt16BE(0);
        if (fields === -1) return ['end', 0];
        if (fields !== 3) throw new Error(`unexpected COPY tuple with ${fields} fields`);
        return ['lineLength', 4];
      }
      case 'lineLength': {
        const length = item.readInt32BE(0);
        if (length < 0) throw new Error('archive line, timestamp or row version is NULL');
        if (length > 0) return ['line', length];
        return this.endLine(out);
      }
      case 'timestampLength':
      case 'versionLength': {
        const length = item.readInt32BE(0);
        const what = this.next === 'timestampLength' ? 'timestamp' : 'row version';
        if (length !== 8)
          throw new Error(`${what} is ${length < 0 ? 'NULL' : `${length} bytes, not an int8`}`);
        return [this.next === 'timestampLength' ? 'timestamp' : 'version', 8];
      }
      case 'timestamp':
        this.timestamp(item, 0);
        return ['versionLength', 4];
      case 'version':
        this.versions.add(item);
        return ['fields', 2];
      default:
        throw new Error(`no small COPY item is read at ${this.next}`);
    }
  }

  /** Ends the line streamed so far; its timestamp comes next. */
  private endLine(out: Buffer[]): [CopyItem, number] {
    out.push(NEWLINE);
    this.rows += 1;
    return ['timestampLength', 4];
  }

  figures(): ContentFigures {
    return { rows: this.rows, contentSha256: this.content.digest('hex'), uncompressedBytes: this.bytes };
  }

  /** Oldest and newest timestamp of the rows read (ISO-8601 UTC, microseconds); undefined before any row. */
  get minTimestamp(): string | undefined {
    return this.rows > 0 ? isoMicros(this.minMicros) : undefined;
  }

  get maxTimestamp(): string | undefined {
    return this.rows > 0 ? isoMicros(this.maxMicros) : undefined;
  }
}

/**
 * Splits archive JSONL into lines and measures it as CopyToJsonLines did when writing it: SHA-256 of every byte,
 * byte count, row count and, into `digest` when given, the row digest over each line without its "\n". A line is
 * digested as its bytes arrive; only for an `onLine` consumer is it kept, as the list of its parts (joining a
 * growing buffer to every chunk made one large line's cost quadratic).
 */
export class LineMeter {
  private readonly content: Hash = createHash('sha256');
  private rows = 0;
  private bytes = 0;
  /** The line under way: its length so far, and its parts when a consumer wants whole lines. */
  private lineBytes = 0;
  private parts: Buffer[] = [];

  /** `onLine` receives every complete line as its parts (views of the chunks) and its length. */
  constructor(
    private readonly digest?: RowDigest,
    private readonly onLine?: (parts: Buffer[], length: number) => void,
  ) {}

  push(chunk: Buffer): void {
    this.content.update(chunk);
    this.bytes += chunk.length;
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      if (this.lineBytes === 0 && !this.onLine) {
        this.digest?.add(chunk.subarray(start, newline));
        this.rows += 1;
      } else {
        this.part(chunk.subarray(start, newline));
        this.endLine();
      }
      start = newline + 1;
    }
    if (start < chunk.length) this.part(chunk.subarray(start));
  }

  /**
   * Ends the stream. Every line ends with "\n"; leftover bytes mean a truncated or altered object. They count as a
   * row so the row count disagrees with the manifest rather than silently dropping the fragment.
   */
  end(): ContentFigures {
    if (this.lineBytes > 0) this.endLine();
    return { rows: this.rows, contentSha256: this.content.digest('hex'), uncompressedBytes: this.bytes };
  }

  private part(bytes: Buffer): void {
    this.digest?.update(bytes);
    this.lineBytes += bytes.length;
    if (this.onLine) this.parts.push(bytes);
  }

  private endLine(): void {
    this.digest?.endLine();
    this.rows += 1;
    if (this.onLine) {
      this.onLine(this.parts, this.lineBytes);
      this.parts = [];
    }
    this.lineBytes = 0;
  }
}

/**
 * Consumes archive JSONL and measures what CopyToJsonLines measured when writing it, but the row digest: verify's
 * reader, where the content SHA-256 stands for the digest (archiveProblems says when that is sound) and an MD5 of
 * every line was a large share of verify's time.
 */
export class JsonLinesContent extends Writable {
  private readonly meter = new LineMeter();
  private result: ContentFigures | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.meter.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.result = this.meter.end();
    callback();
  }

  figures(): ContentFigures {
    if (!this.result) throw new Error('stream not finished');
    return this.result;
  }
}

const COPY_HEADER = Buffer.concat([COPY_SIGNATURE, Buffer.alloc(8)]);
const COPY_TRAILER = Buffer.from([0xff, 0xff]);

/**
 * Turns JSONL into `COPY t (line) FROM STDIN (FORMAT binary)` for a one-column text table, measuring the lines on
 * the way, and digesting each when `digest` is given (only for an archive whose sidecar states a row digest).
 * Binary COPY carries each line's bytes as they are: no escaping to get right, none to undo.
 */
export class JsonLinesToCopy extends Transform {
  /** Tuples of the lines completed by the chunk being transformed. */
  private out: Buffer[] = [];
  private readonly digest: RowDigest | undefined;
  private readonly meter: LineMeter;
  private result: LineFigures | undefined;

  constructor(digest?: RowDigest) {
    super();
    this.digest = digest;
    this.meter = new LineMeter(digest, (parts, length) => {
      const head = Buffer.allocUnsafe(6);
      head.writeInt16BE(1, 0);
      head.writeInt32BE(length, 2);
      this.out.push(head);
      for (const part of parts) this.out.push(part);
    });
    this.push(COPY_HEADER);
  }

  /** The tuples so far as one buffer (one CopyData message), each byte joined once. */
  private tuples(): Buffer | undefined {
    const out = this.out;
    this.out = [];
    return out.length > 0 ? Buffer.concat(out) : undefined;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.meter.push(chunk);
    callback(null, this.tuples());
  }

  override _flush(callback: TransformCallback): void {
    this.result = { ...this.meter.end(), ...(this.digest ? { rowDigest: this.digest.value() } : {}) };
    this.out.push(COPY_TRAILER);
    callback(null, this.tuples());
  }

  figures(): LineFigures {
    if (!this.result) throw new Error('stream not finished');
    return this.result;
  }
}

/** Pass-through that hashes and counts the bytes flowing by (the compressed object). */
export class ByteFigures extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  sha256(): string {
    return this.hash.digest('hex');
  }
}
