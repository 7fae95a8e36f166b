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
 * int32 length, line, int32 length, timestamp, int32 length, int8 version`, then the trailer `int16 -1`. */
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

/**
 * Turns `COPY (SELECT line, ts, version) TO STDOUT (FORMAT binary)` into archive JSONL ("line\n" per row), hashing
 * the lines on the way (one SHA-256 over the stream; no hash object per line). Binary COPY hands over each line's bytes exactly, with no text-format escaping
 * to undo. The second field (timestamp text, fixed width) only feeds the batch's timestamp range; the third (the
 * row version's int8 identity, table-sql.ts rowVersionSql) only the version digest the delete checks.
 *
 * A line streams through as its bytes arrive and is never gathered: PostgreSQL allows 1 GB per value and sends a
 * row in socket-sized chunks, so joining a growing buffer to every chunk made one large row's cost quadratic. Only
 * the small items (header, lengths, timestamp) are joined, when a chunk boundary cuts one.
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
  minTimestamp: string | undefined;
  maxTimestamp: string | undefined;

  /** `versions`: where the row versions go; one digest shared by the objects of a batch sums them all. */
  constructor(private readonly versions = new VersionDigest()) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      const out = this.parse(chunk);
      // A chunk inside one long line goes on as it is; the lines of a chunk of short rows go on as one buffer.
      if (out.length > 0) this.push(out.length === 1 ? out[0] : Buffer.concat(out));
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
      if (this.next === 'line') {
        const part = chunk.subarray(offset, offset + this.size);
        this.content.update(part);
        out.push(part);
        this.bytes += part.length;
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
      case 'timestampLength': {
        const length = item.readInt32BE(0);
        if (length < 0) throw new Error('archive line, timestamp or row version is NULL');
        return ['timestamp', length];
      }
      case 'timestamp': {
        const ts = item.toString('latin1');
        if (this.minTimestamp === undefined || ts < this.minTimestamp) this.minTimestamp = ts;
        if (this.maxTimestamp === undefined || ts > this.maxTimestamp) this.maxTimestamp = ts;
        return ['versionLength', 4];
      }
      case 'versionLength': {
        const length = item.readInt32BE(0);
        if (length !== 8)
          throw new Error(`row version is ${length < 0 ? 'NULL' : `${length} bytes, not an int8`}`);
        return ['version', 8];
      }
      case 'version':
        this.versions.add(item);
        return ['fields', 2];
      default:
        throw new Error(`no small COPY item is read at ${this.next}`);
    }
  }

  /** Ends the line streamed so far; its timestamp comes next. */
  private endLine(out: Buffer[]): [CopyItem, number] {
    this.content.update(NEWLINE);
    this.rows += 1;
    this.bytes += 1;
    out.push(NEWLINE);
    return ['timestampLength', 4];
  }

  figures(): ContentFigures {
    return { rows: this.rows, contentSha256: this.content.digest('hex'), uncompressedBytes: this.bytes };
  }

  /** The digest of the row versions read (version-digest.ts): kept with the batch in flight, not in the archive. */
  versionDigest(): string {
    return this.versions.value();
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
      const bytes = chunk.subarray(start, newline);
      if (this.lineBytes === 0 && !this.onLine) {
        this.digest?.add(bytes);
        this.rows += 1;
      } else {
        this.part(bytes);
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
