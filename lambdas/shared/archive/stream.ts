import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import { ArchiveIntegrityError } from '../errors/step-errors.js';
import { MAX_TABLE_COLUMNS } from './format.js';
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

/**
 * The longest archive line a reader takes, without its "\n": 256 MiB, the most a jsonb value holds, so the most restore
 * can load, and just over the longest line export writes (RESTORABLE_LINE_BYTES in copy-to-lines.ts). No genuine
 * archive has a longer one; a planted one may (a line of gigabytes gzips to a few hundred KiB), and is refused as soon
 * as its line passes this, before more of it is held.
 */
export const MAX_ARCHIVE_LINE_BYTES = 2 ** 28;

/**
 * What a reader refuses to read past, so a decompression bomb costs at most these bytes (and one line of them in
 * memory), not what it inflates to. Checked once per chunk and once per line.
 */
export interface ReadBounds {
  /** The archive's key, named in the error. */
  key?: string;
  /** The decompressed bytes the sidecar states: a byte more and the archive is refused. */
  uncompressedBytes?: number;
  /** The longest line, without its "\n" (MAX_ARCHIVE_LINE_BYTES unless given). */
  lineBytes?: number;
}

/** The archive has decompressed past what its sidecar states. */
export function beyondSidecarError(bounds: ReadBounds): ArchiveIntegrityError {
  return new ArchiveIntegrityError(
    `${archiveName(bounds)} decompresses to more than the ${bounds.uncompressedBytes} bytes its sidecar states; read no further`,
  );
}

/** Row `row` of the archive is longer than `limit` bytes, which is `why` it is refused. */
export function lineTooLongError(
  bounds: ReadBounds,
  row: number,
  limit: number,
  why = 'longer than export writes or restore can load (a jsonb value holds at most 256 MiB)',
): ArchiveIntegrityError {
  return new ArchiveIntegrityError(
    `${archiveName(bounds)}: row ${row} is a line of more than ${limit} bytes, ${why}; read no further`,
  );
}

const archiveName = (bounds: ReadBounds) => (bounds.key ? `archive ${bounds.key}` : 'the archive');

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

/** The first byte of every line export writes. */
const OPEN_BRACE = 0x7b;
/** The last byte of every line export writes, before its "\n". */
const CLOSE_BRACE = 0x7d;

/**
 * Splits archive JSONL into lines and measures it as export (copy-to-lines.ts) did when writing it: SHA-256 of every byte,
 * byte count, row count and, into `digest` when given, the row digest over each line without its "\n". A line is
 * digested as its bytes arrive; only for an `onLine` consumer is it kept, as the list of its parts (joining a
 * growing buffer to every chunk made one large line's cost quadratic). `push` throws ArchiveIntegrityError once the
 * bytes pass `bounds` (the sidecar's size, the longest line), before it keeps a byte of the chunk that did.
 */
export class LineMeter {
  private readonly content: Hash = createHash('sha256');
  private rows = 0;
  private bytes = 0;
  /** The line under way: its length so far, and its parts when a consumer wants whole lines. */
  private lineBytes = 0;
  /** The last byte of the line under way. */
  private lastByte = 0;
  private parts: Buffer[] = [];
  private readonly maxBytes: number;
  private readonly maxLineBytes: number;

  /** `onLine` receives every complete line as its parts (views of the chunks) and its length. */
  constructor(
    private readonly digest?: RowDigest,
    private readonly onLine?: (parts: Buffer[], length: number) => void,
    private readonly bounds: ReadBounds = {},
  ) {
    this.maxBytes = bounds.uncompressedBytes ?? Number.POSITIVE_INFINITY;
    this.maxLineBytes = bounds.lineBytes ?? MAX_ARCHIVE_LINE_BYTES;
  }

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) throw beyondSidecarError(this.bounds);
    this.content.update(chunk);
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      if (this.lineBytes === 0 && !this.onLine) {
        if (newline - start > this.maxLineBytes) throw this.lineTooLong();
        if (chunk[start] !== OPEN_BRACE || chunk[newline - 1] !== CLOSE_BRACE) throw this.notAnObject();
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
   * Ends the stream. Every line ends with "\n": leftover bytes mean a truncated or altered object, refused even where
   * the sidecar counts them as a row.
   */
  end(): ContentFigures {
    if (this.lineBytes > 0)
      throw new ArchiveIntegrityError(
        `${archiveName(this.bounds)}: its last line has no newline, which every line export writes ends with`,
      );
    return { rows: this.rows, contentSha256: this.content.digest('hex'), uncompressedBytes: this.bytes };
  }

  private part(bytes: Buffer): void {
    if (this.lineBytes === 0 && bytes.length > 0 && bytes[0] !== OPEN_BRACE) throw this.notAnObject();
    if (bytes.length > 0) this.lastByte = bytes[bytes.length - 1] ?? 0;
    this.lineBytes += bytes.length;
    if (this.lineBytes > this.maxLineBytes) throw this.lineTooLong();
    this.digest?.update(bytes);
    if (this.onLine) this.parts.push(bytes);
  }

  private lineTooLong(): ArchiveIntegrityError {
    // Whatever was kept of the line is let go: the stream ends with this error.
    this.parts = [];
    return lineTooLongError(this.bounds, this.rows + 1, this.maxLineBytes);
  }

  /**
   * Export writes one JSON object a line: a line that starts or ends otherwise (empty, a BOM, an array, a "\r" before
   * the "\n") is no row, and PostgreSQL's error for it would blame a column.
   */
  private notAnObject(): ArchiveIntegrityError {
    this.parts = [];
    return new ArchiveIntegrityError(
      `${archiveName(this.bounds)}: row ${this.rows + 1} is not a line export writes (one JSON object a line, from "{" to "}"); read no further`,
    );
  }

  private endLine(): void {
    if (this.lineBytes === 0 || this.lastByte !== CLOSE_BRACE) throw this.notAnObject();
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
 * Consumes archive JSONL and measures what export measured when writing it, the row digest only into `digest` when
 * given: verify's reader, where the content SHA-256 stands for the digest (archiveProblems says when that is sound)
 * and an MD5 of every line was a large share of verify's time.
 */
export class JsonLinesContent extends Writable {
  private readonly meter: LineMeter;
  private readonly utf8: Utf8Check;
  private result: LineFigures | undefined;

  /**
   * `bounds`: the sidecar's (or the export's recorded) size, past which the object is refused. The text must be UTF-8
   * too: restore's database refuses anything else, so an archive that is not could never be restored.
   */
  constructor(
    bounds?: ReadBounds,
    private readonly digest?: RowDigest,
  ) {
    super();
    this.meter = new LineMeter(digest, undefined, bounds);
    this.utf8 = new Utf8Check(bounds);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      // UTF-8 first: a character cut by a line's end is named as such, not as a line that does not end in "}".
      this.utf8.push(chunk);
      this.meter.push(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.utf8.end();
      this.result = { ...this.meter.end(), ...(this.digest ? { rowDigest: this.digest.value() } : {}) };
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }

  figures(): LineFigures {
    if (!this.result) throw new Error('stream not finished');
    return this.result;
  }
}

/**
 * Whether a stream of chunks is UTF-8, a chunk at a time (isUtf8 is native and vectorised): a character cut by a chunk's
 * end is carried into the next chunk's check.
 */
class Utf8Check {
  private carried: Buffer | undefined;

  constructor(private readonly bounds: ReadBounds = {}) {}

  push(chunk: Buffer): void {
    const bytes = this.carried ? Buffer.concat([this.carried, chunk]) : chunk;
    const cut = completeCharacters(bytes);
    if (!isUtf8(bytes.subarray(0, cut))) throw this.invalid();
    this.carried = cut < bytes.length ? Buffer.from(bytes.subarray(cut)) : undefined;
  }

  end(): void {
    if (this.carried) throw this.invalid();
  }

  private invalid(): ArchiveIntegrityError {
    return new ArchiveIntegrityError(
      `${archiveName(this.bounds)} holds bytes that are not UTF-8, which no restore could read`,
    );
  }
}

/** Where the last character that `bytes` holds whole ends: before a lead byte whose continuation is still to come. */
function completeCharacters(bytes: Buffer): number {
  for (let i = bytes.length - 1; i >= Math.max(0, bytes.length - 4); i -= 1) {
    const byte = bytes[i] as number;
    if ((byte & 0xc0) === 0x80) continue;
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return i + length > bytes.length ? i : bytes.length;
  }
  return bytes.length;
}

/** The most members a native line holds: one per column. */
export const MAX_LINE_MEMBERS = MAX_TABLE_COLUMNS;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;

/**
 * Whether a line is shaped as export writes one, read before anything parses it: a flat JSON object (its values
 * strings or null) of at most MAX_LINE_MEMBERS members. PostgreSQL's jsonb parse holds some 600 bytes per nested
 * element: one line of 16 MiB of "{}," (a few KiB of gzip) took a backend of the restore's database to 3.4 GB, and
 * JSON.parse on restore's fast path 290 MB for 8 MiB of them. Tracks whether it is inside a string across the parts
 * of a line; only the bytes between strings are looked at one by one.
 */
export class LineShape {
  private inString = false;
  /** Inside a string, the bytes so far end with an odd run of backslashes: the next byte is escaped. */
  private escaping = false;
  private opened = false;
  private members = 0;

  /** Ends the line, true if it kept the shape; the next `push` starts a new line. */
  end(): boolean {
    const flat = !this.inString && this.opened;
    this.inString = false;
    this.escaping = false;
    this.opened = false;
    this.members = 0;
    return flat;
  }

  /** Reads the next bytes of the line; false once the line is not shaped as export writes one. */
  push(bytes: Buffer, from = 0, to = bytes.length): boolean {
    let i = from;
    while (i < to) {
      if (this.inString) {
        const quote = bytes.indexOf(QUOTE, i);
        const stop = quote === -1 || quote >= to ? to : quote;
        let run = 0;
        while (stop - run - 1 >= i && bytes[stop - run - 1] === BACKSLASH) run += 1;
        const odd = (run + (stop - run === i && this.escaping ? 1 : 0)) % 2 === 1;
        if (stop === to) {
          this.escaping = odd;
          return true;
        }
        this.escaping = false;
        if (!odd) this.inString = false;
        i = stop + 1;
        continue;
      }
      const byte = bytes[i];
      if (byte === QUOTE) this.inString = true;
      else if (byte === COLON) {
        if (++this.members > MAX_LINE_MEMBERS) return false;
      } else if (byte === OPEN_BRACE) {
        if (this.opened) return false;
        this.opened = true;
      } else if (byte === OPEN_BRACKET) return false;
      i += 1;
    }
    return true;
  }
}

/** Row `row` of the archive is not shaped as export writes one (LineShape). */
export function lineShapeError(bounds: ReadBounds, row: number): ArchiveIntegrityError {
  return new ArchiveIntegrityError(
    `${archiveName(bounds)}: row ${row} is not a line export writes (one flat JSON object, no array or nested object, of at most ${MAX_LINE_MEMBERS} members), which restore does not parse; read no further`,
  );
}

const COPY_HEADER = Buffer.concat([COPY_SIGNATURE, Buffer.alloc(8)]);
const COPY_TRAILER = Buffer.from([0xff, 0xff]);
/** The most bytes of tuples joined into one CopyData message. */
const JOINED_TUPLE_BYTES = 1024 * 1024;

/**
 * Turns JSONL into `COPY t (line) FROM STDIN (FORMAT binary)` for a one-column text table, measuring the lines on
 * the way, and digesting each when `digest` is given (only for an archive whose sidecar states a row digest).
 * Binary COPY carries each line's bytes as they are: no escaping to get right, none to undo, but a tuple's length
 * comes first, so each line is held whole until it ends: `bounds` keep that to one line of at most
 * MAX_ARCHIVE_LINE_BYTES, and the whole to what the sidecar states.
 */
export class JsonLinesToCopy extends Transform {
  /** Tuples of the lines completed by the chunk being transformed, and their bytes. */
  private out: Buffer[] = [];
  private outBytes = 0;
  private readonly digest: RowDigest | undefined;
  private readonly meter: LineMeter;
  private result: LineFigures | undefined;

  constructor(digest?: RowDigest, bounds: ReadBounds = {}) {
    super();
    this.digest = digest;
    const shape = new LineShape();
    let rows = 0;
    this.meter = new LineMeter(
      digest,
      (parts, length) => {
        // PostgreSQL parses each line as jsonb: one it would hold gigabytes for never reaches it.
        rows += 1;
        for (const part of parts) if (!shape.push(part)) throw lineShapeError(bounds, rows);
        if (!shape.end()) throw lineShapeError(bounds, rows);
        const head = Buffer.allocUnsafe(6);
        head.writeInt16BE(1, 0);
        head.writeInt32BE(length, 2);
        this.out.push(head);
        for (const part of parts) this.out.push(part);
        this.outBytes += head.length + length;
      },
      bounds,
    );
    this.push(COPY_HEADER);
  }

  /**
   * The tuples so far: as one buffer (one CopyData message, each byte joined once) up to JOINED_TUPLE_BYTES; past it
   * (a long line) as the pieces they are, since joining them held the line twice: 600 MB for one of 240 MiB.
   */
  private tuples(): Buffer[] {
    const out = this.out;
    const bytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    if (out.length === 0) return [];
    return bytes <= JOINED_TUPLE_BYTES ? [Buffer.concat(out, bytes)] : out;
  }

  private pushTuples(): void {
    for (const tuples of this.tuples()) this.push(tuples);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.meter.push(chunk);
    } catch (error) {
      this.out = [];
      this.outBytes = 0;
      callback(error as Error);
      return;
    }
    this.pushTuples();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.result = { ...this.meter.end(), ...(this.digest ? { rowDigest: this.digest.value() } : {}) };
    } catch (error) {
      callback(error as Error);
      return;
    }
    this.out.push(COPY_TRAILER);
    this.outBytes += COPY_TRAILER.length;
    this.pushTuples();
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
