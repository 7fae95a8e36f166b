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

/** Consumes archive JSONL and computes the same figures CopyToJsonLines produced when writing it. */
export class JsonLinesFigures extends Writable {
  private pending: Buffer = Buffer.alloc(0);
  private readonly content: Hash = createHash('sha256');
  private readonly digest = new RowDigest();
  private bytes = 0;
  private result: LineFigures | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.content.update(chunk);
    this.bytes += chunk.length;
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let start = 0;
    let newline = buf.indexOf(10, start);
    while (newline !== -1) {
      this.digest.add(buf.subarray(start, newline));
      start = newline + 1;
      newline = buf.indexOf(10, start);
    }
    this.pending = start === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(start));
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    // Every line ends with "\n"; leftover bytes mean a truncated or altered object. Count them as a row so the
    // row count disagrees with the manifest rather than silently dropping the fragment.
    if (this.pending.length > 0) this.digest.add(this.pending);
    this.result = {
      rows: this.digest.rows,
      contentSha256: this.content.digest('hex'),
      uncompressedBytes: this.bytes,
      rowDigest: this.digest.value(),
    };
    callback();
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
