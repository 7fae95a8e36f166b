import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { RowDigest } from './row-digest.js';

const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const NEWLINE = Buffer.from('\n');

/** Figures of a JSONL stream, computed in the single pass that writes or reads it. */
export interface LineFigures {
  rows: number;
  contentSha256: string;
  uncompressedBytes: number;
  rowDigest: string;
}

/**
 * Turns `COPY (SELECT line, ts) TO STDOUT (FORMAT binary)` into archive JSONL ("line\n" per row), hashing and
 * digesting each line on the way. Binary COPY hands over each line's bytes exactly, with no text-format escaping
 * to undo. The second field (timestamp text, fixed width) only feeds the batch's timestamp range.
 */
export class CopyToJsonLines extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  private headerRead = false;
  private finished = false;
  private readonly content: Hash = createHash('sha256');
  private readonly digest = new RowDigest();
  private bytes = 0;
  minTimestamp: string | undefined;
  maxTimestamp: string | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    try {
      const out = this.drain();
      if (out.length > 0) this.push(Buffer.concat(out));
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (!this.finished || this.pending.length > 0) {
      callback(new Error('COPY stream ended before its trailer: the export was cut short'));
      return;
    }
    callback();
  }

  private drain(): Buffer[] {
    const out: Buffer[] = [];
    let offset = 0;
    const buf = this.pending;
    if (!this.headerRead) {
      if (buf.length < 19) return out;
      if (!buf.subarray(0, 11).equals(COPY_SIGNATURE)) throw new Error('not a binary COPY stream');
      const extension = buf.readUInt32BE(15);
      if (buf.length < 19 + extension) return out;
      offset = 19 + extension;
      this.headerRead = true;
    }
    while (offset + 2 <= buf.length) {
      const fields = buf.readInt16BE(offset);
      if (fields === -1) {
        this.finished = true;
        offset += 2;
        break;
      }
      if (fields !== 2) throw new Error(`unexpected COPY tuple with ${fields} fields`);
      // Both lengths must be readable before the tuple is consumed.
      if (offset + 6 > buf.length) break;
      const lineLength = buf.readInt32BE(offset + 2);
      const tsAt = offset + 6 + lineLength;
      if (tsAt + 4 > buf.length) break;
      const tsLength = buf.readInt32BE(tsAt);
      const end = tsAt + 4 + tsLength;
      if (end > buf.length) break;
      if (lineLength < 0 || tsLength < 0) throw new Error('archive line or timestamp is NULL');
      const line = buf.subarray(offset + 6, tsAt);
      const ts = buf.toString('latin1', tsAt + 4, end);
      this.content.update(line);
      this.content.update(NEWLINE);
      this.digest.add(line);
      this.bytes += line.length + 1;
      if (this.minTimestamp === undefined || ts < this.minTimestamp) this.minTimestamp = ts;
      if (this.maxTimestamp === undefined || ts > this.maxTimestamp) this.maxTimestamp = ts;
      out.push(line, NEWLINE);
      offset = end;
    }
    this.pending = offset === buf.length ? Buffer.alloc(0) : buf.subarray(offset);
    return out;
  }

  figures(): LineFigures {
    return {
      rows: this.digest.rows,
      contentSha256: this.content.digest('hex'),
      uncompressedBytes: this.bytes,
      rowDigest: this.digest.value(),
    };
  }
}

/**
 * Splits archive JSONL into lines and measures it as CopyToJsonLines did when writing it: SHA-256 of every byte,
 * byte count, and the row digest over each line without its "\n".
 */
export class LineMeter {
  private pending: Buffer = Buffer.alloc(0);
  private readonly content: Hash = createHash('sha256');
  private readonly digest = new RowDigest();
  private bytes = 0;

  /** Feeds a chunk; `onLine` receives every complete line (a view valid only during the call). */
  push(chunk: Buffer, onLine?: (line: Buffer) => void): void {
    this.content.update(chunk);
    this.bytes += chunk.length;
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let start = 0;
    let newline = buf.indexOf(10, start);
    while (newline !== -1) {
      const line = buf.subarray(start, newline);
      this.digest.add(line);
      onLine?.(line);
      start = newline + 1;
      newline = buf.indexOf(10, start);
    }
    this.pending = start === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(start));
  }

  /**
   * Ends the stream. Every line ends with "\n"; leftover bytes mean a truncated or altered object. They count as a
   * row so the row count disagrees with the manifest rather than silently dropping the fragment.
   */
  end(onLine?: (line: Buffer) => void): LineFigures {
    if (this.pending.length > 0) {
      this.digest.add(this.pending);
      onLine?.(this.pending);
      this.pending = Buffer.alloc(0);
    }
    return {
      rows: this.digest.rows,
      contentSha256: this.content.digest('hex'),
      uncompressedBytes: this.bytes,
      rowDigest: this.digest.value(),
    };
  }
}

/** Consumes archive JSONL and computes the same figures CopyToJsonLines produced when writing it. */
export class JsonLinesFigures extends Writable {
  private readonly meter = new LineMeter();
  private result: LineFigures | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.meter.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.result = this.meter.end();
    callback();
  }

  figures(): LineFigures {
    if (!this.result) throw new Error('stream not finished');
    return this.result;
  }
}

const COPY_HEADER = Buffer.concat([COPY_SIGNATURE, Buffer.alloc(8)]);
const COPY_TRAILER = Buffer.from([0xff, 0xff]);

/**
 * Turns JSONL into `COPY t (line) FROM STDIN (FORMAT binary)` for a one-column text table, measuring the lines on
 * the way. Binary COPY carries each line's bytes as they are: no escaping to get right, none to undo.
 */
export class JsonLinesToCopy extends Transform {
  private readonly meter = new LineMeter();
  private result: LineFigures | undefined;

  constructor() {
    super();
    this.push(COPY_HEADER);
  }

  private tuples(): [Buffer[], (line: Buffer) => void] {
    const out: Buffer[] = [];
    return [
      out,
      (line) => {
        const head = Buffer.allocUnsafe(6);
        head.writeInt16BE(1, 0);
        head.writeInt32BE(line.length, 2);
        out.push(head, Buffer.from(line));
      },
    ];
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const [out, onLine] = this.tuples();
    this.meter.push(chunk, onLine);
    callback(null, out.length > 0 ? Buffer.concat(out) : undefined);
  }

  override _flush(callback: TransformCallback): void {
    const [out, onLine] = this.tuples();
    this.result = this.meter.end(onLine);
    out.push(COPY_TRAILER);
    callback(null, Buffer.concat(out));
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
