import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { afterEach, beforeEach, vi } from 'vitest';
import { formatRowDigest } from '../../lambdas/shared/archive/row-digest.js';
import type { LineFigures } from '../../lambdas/shared/archive/stream.js';

export const MB = 1024 * 1024;

/**
 * One archive line of `bytes` bytes (`{"id" : "1", "payload" : "abc…"}`), produced as pieces so the test never holds
 * it whole, with the figures an archive holding only this line has.
 */
export function wideLine(bytes: number): { pieces: () => Generator<Buffer>; figures: LineFigures } {
  const head = Buffer.from('{"id" : "1", "payload" : "');
  const tail = Buffer.from('"}');
  const block = Buffer.alloc(MB, 'abcdefghijklmnopqrstuvwxyz0123456789');
  function* pieces(): Generator<Buffer> {
    yield head;
    for (let left = bytes - head.length - tail.length; left > 0; left -= block.length)
      yield block.subarray(0, Math.min(left, block.length));
    yield tail;
  }
  const content = createHash('sha256');
  const md5 = createHash('md5');
  for (const piece of pieces()) {
    content.update(piece);
    md5.update(piece);
  }
  const sum = md5.digest();
  return {
    pieces,
    figures: {
      rows: 1,
      contentSha256: content.update('\n').digest('hex'),
      uncompressedBytes: bytes + 1,
      rowDigest: formatRowDigest(sum.readBigInt64BE(0), sum.readBigInt64BE(8)),
    },
  };
}

/**
 * Counts the bytes `Buffer.concat` joins, the one way the archive streams copy bytes: a linear stream joins each
 * input byte a bounded number of times, a quadratic one re-joins its whole buffer on every chunk.
 */
export function concatMeter(): { copied: () => number; restore: () => void } {
  const concat = Buffer.concat;
  let copied = 0;
  const spy = vi.spyOn(Buffer, 'concat').mockImplementation((list, totalLength) => {
    const joined = concat(list, totalLength);
    copied += joined.length;
    return joined;
  });
  return { copied: () => copied, restore: () => spy.mockRestore() };
}

/** Over 100 MB, as a review asked: an 8 MB row once took seconds, a 64 MB one did not finish in 7 minutes. */
export const WIDE_ROW_BYTES = 128 * MB;

/**
 * One wide line (`wideLine`) for a describe's tests, with `Buffer.concat` metered around each test: a linear stream
 * joins each byte a bounded number of times (`budget`, twice the line), the quadratic one re-joined its buffer per
 * chunk. `withinBudget` stops a stream (as `rechunked`'s check) once it has gone past it.
 */
export function wideRowBudget(bytes = WIDE_ROW_BYTES) {
  const line = wideLine(bytes);
  const budget = 2 * bytes;
  let meter: ReturnType<typeof concatMeter> | undefined;
  beforeEach(() => {
    meter = concatMeter();
  });
  afterEach(() => meter?.restore());
  const copied = () => meter?.copied() ?? 0;
  return {
    line,
    budget,
    copied,
    withinBudget: () => {
      if (copied() > budget) throw new Error(`joined ${copied()} bytes, over ${budget}`);
    },
  };
}

/**
 * The bytes of `parts` as a stream of fresh `size`-byte chunks (as a socket or gunzip hands them over). `check` runs
 * before each chunk, so a test can stop a stream whose work has already gone past its bound.
 */
export function rechunked(parts: Iterable<Buffer>, size: number, check: () => void = () => {}): Readable {
  function* chunks(): Generator<Buffer> {
    let chunk = Buffer.allocUnsafe(size);
    let used = 0;
    for (const part of parts) {
      for (let at = 0; at < part.length; ) {
        const n = part.copy(chunk, used, at);
        used += n;
        at += n;
        if (used === size) {
          check();
          yield chunk;
          chunk = Buffer.allocUnsafe(size);
          used = 0;
        }
      }
    }
    if (used > 0) yield chunk.subarray(0, used);
  }
  return Readable.from(chunks(), { objectMode: false });
}

/** A sink that keeps only the SHA-256 and the length of what it receives. */
export function hashingSink(): Writable & { sha256: () => string; bytes: () => number } {
  const hash = createHash('sha256');
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done();
    },
  });
  return Object.assign(sink, { sha256: () => hash.digest('hex'), bytes: () => bytes });
}
