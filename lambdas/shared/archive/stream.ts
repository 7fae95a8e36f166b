import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import type { RowDigest } from './row-digest.js';

/** The first 11 bytes of a binary COPY stream. */
export const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Gunzip for archive lines, in 64 KiB output chunks: zlib's 16 KiB default made a callback, a transform and (in
 * restore) a socket write per 16 KiB of lines. Measured on day objects of the bench's rows, inflating and measuring
 * them took about 30% less CPU.
 */
export function createLinesGunzip(): Gunzip {
  return createGunzip({ chunkSize: 64 * 1024 });
}

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

/**
 * Splits archive JSONL into lines and measures it as export (copy-to-lines.ts) did when writing it: SHA-256 of every byte,
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
 * Consumes archive JSONL and measures what export measured when writing it, but the row digest: verify's
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
