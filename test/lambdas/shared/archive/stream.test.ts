import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RowDigest } from '../../../../lambdas/shared/archive/row-digest.js';
import {
  CopyToJsonLines,
  JsonLinesContent,
  JsonLinesToCopy,
} from '../../../../lambdas/shared/archive/stream.js';
import { VersionDigest } from '../../../../lambdas/shared/archive/version-digest.js';
import { concatMeter, hashingSink, MB, rechunked, wideLine } from '../../../support/wide-line.js';

/** Over 100 MB, as the review asked: an 8 MB row already took seconds, a 64 MB one did not finish in 7 minutes. */
const WIDE_ROW_BYTES = 128 * MB;

/** A binary COPY stream as export's query makes PostgreSQL write it: line and timestamp text, then an int8. */
/** A binary timestamptz field (length, then µs since 2000-01-01 UTC) for an ISO-8601 instant with microseconds. */
function timestamptz(iso: string): Buffer {
  const micros =
    BigInt(Date.parse(`${iso.slice(0, 23)}Z`) - Date.UTC(2000, 0, 1)) * 1000n + BigInt(iso.slice(23, 26));
  const field = Buffer.alloc(12);
  field.writeInt32BE(8);
  field.writeBigInt64BE(micros, 4);
  return field;
}

function copyBinary(rows: [string, string, bigint][], trailer = true): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
  for (const [line, ts, version] of rows) {
    const head = Buffer.alloc(2);
    head.writeInt16BE(3);
    const bytes = Buffer.from(line, 'utf8');
    const length = Buffer.alloc(4);
    length.writeInt32BE(bytes.length);
    parts.push(head, length, bytes, timestamptz(ts));
    const int8 = Buffer.alloc(12);
    int8.writeInt32BE(8);
    int8.writeBigInt64BE(version, 4);
    parts.push(int8);
  }
  if (trailer) parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

const chunked = (buffer: Buffer, size: number) =>
  Readable.from(
    Array.from({ length: Math.ceil(buffer.length / size) }, (_, i) =>
      buffer.subarray(i * size, (i + 1) * size),
    ),
  );

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('CopyToJsonLines', () => {
  // Row versions near both ends of int8, so the sum wraps around 2^64 both ways.
  const rows: [string, string, bigint][] = [
    ['{"a" : "x\\\\y \\n 😀"}', '2024-01-01T00:00:00.000001Z', 9_223_372_036_854_775_807n],
    ['{"a" : null}', '2024-01-01T23:59:59.999999Z', 4_611_686_018_427_387_904n],
    ['{"a" : "\u2028"}', '2024-01-01T12:00:00.000000Z', -9_223_372_036_854_775_808n],
  ];

  it.each([1, 3, 7, 64, 100_000])(
    'writes one line per tuple and the same figures for %i-byte chunks',
    async (size) => {
      // Prepare
      const versions = new VersionDigest();
      const lines = new CopyToJsonLines(versions);

      // Act
      const output = await collect(chunked(copyBinary(rows), size).pipe(lines));

      // Assess
      const expected = `${rows.map(([line]) => line).join('\n')}\n`;
      expect(output.toString('utf8')).toBe(expected);
      expect(lines.figures()).toEqual({
        rows: 3,
        contentSha256: createHash('sha256').update(expected).digest('hex'),
        uncompressedBytes: Buffer.byteLength(expected),
      });
      expect([lines.minTimestamp, lines.maxTimestamp]).toEqual([
        '2024-01-01T00:00:00.000001Z',
        '2024-01-01T23:59:59.999999Z',
      ]);
      const sum = rows.reduce((total, [, , version]) => total + version, 0n);
      expect(versions.value()).toBe(BigInt.asUintN(64, sum).toString(16).padStart(16, '0'));
      expect(versions.value()).toBe('3fffffffffffffff');
    },
  );

  it('refuses a tuple whose row version is not an int8', async () => {
    // Prepare
    const copy = copyBinary(rows);
    const lastVersionLength = copy.length - 2 - 12;
    copy.writeInt32BE(-1, lastVersionLength);

    // Act / Assess
    await expect(pipeline(chunked(copy, 7), new CopyToJsonLines(), new JsonLinesContent())).rejects.toThrow(
      /row version is NULL/,
    );
  });

  it('fails a stream cut off before its trailer instead of archiving a partial batch', async () => {
    // Act / Assess
    await expect(
      pipeline(chunked(copyBinary(rows, false), 5), new CopyToJsonLines(), new JsonLinesContent()),
    ).rejects.toThrow(/ended before its trailer/);
  });

  it('reads back what it wrote: JsonLinesToCopy recomputes identical figures', async () => {
    // Prepare
    const writer = new CopyToJsonLines();
    const output = await collect(Readable.from([copyBinary(rows)]).pipe(writer));
    const reader = new JsonLinesToCopy();

    // Act
    await pipeline(chunked(output, 4), reader, hashingSink());

    // Assess
    expect(reader.figures()).toEqual(writer.figures());
  });

  it('JsonLinesToCopy digests every line when asked: the row digest of an archive written before batches spanned days', async () => {
    // Prepare
    const writer = new CopyToJsonLines();
    const output = await collect(Readable.from([copyBinary(rows)]).pipe(writer));
    const reader = new JsonLinesToCopy(new RowDigest());
    const digest = new RowDigest();
    for (const [line] of rows) digest.add(Buffer.from(line));

    // Act
    await pipeline(chunked(output, 4), reader, hashingSink());

    // Assess
    expect(reader.figures()).toEqual({ ...writer.figures(), rowDigest: digest.value() });
  });

  it('reads back what it wrote: JsonLinesContent recomputes identical figures', async () => {
    // Prepare
    const writer = new CopyToJsonLines();
    const output = await collect(Readable.from([copyBinary(rows)]).pipe(writer));
    const reader = new JsonLinesContent();

    // Act
    await pipeline(chunked(output, 4), reader);

    // Assess
    expect(reader.figures()).toEqual(writer.figures());
  });

  it('JsonLinesContent counts a trailing fragment (a truncated last line) so figures disagree', async () => {
    // Prepare
    const reader = new JsonLinesContent();

    // Act
    await pipeline(Readable.from([Buffer.from('{"a" : 1}\n{"a" : ')]), reader);

    // Assess
    expect(reader.figures().rows).toBe(2);
  });

  it('JsonLinesToCopy counts a trailing fragment (a truncated last line) so figures disagree', async () => {
    // Prepare
    const reader = new JsonLinesToCopy();

    // Act
    await pipeline(Readable.from([Buffer.from('{"a" : 1}\n{"a" : ')]), reader, hashingSink());

    // Assess
    expect(reader.figures().rows).toBe(2);
  });
});

describe('RowDigest', () => {
  it('does not depend on row order but on every row', () => {
    // Prepare
    const lines = ['a', 'b', 'c', 'd'].map((s) => Buffer.from(s));
    const forward = new RowDigest();
    const backward = new RowDigest();
    const missingOne = new RowDigest();

    // Act
    for (const line of lines) forward.add(line);
    for (const line of [...lines].reverse()) backward.add(line);
    for (const line of lines.slice(1)) missingOne.add(line);

    // Assess
    expect(forward.value()).toBe(backward.value());
    expect(forward.value()).not.toBe(missingOne.value());
    expect(forward.value()).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('one very large row (PostgreSQL allows 1 GB per value): work stays linear in its size', () => {
  const line = wideLine(WIDE_ROW_BYTES);
  /** A linear stream joins each byte a bounded number of times; the quadratic one re-joined its buffer per chunk. */
  const budget = 2 * WIDE_ROW_BYTES;
  let meter: ReturnType<typeof concatMeter>;
  const withinBudget = () => {
    if (meter.copied() > budget) throw new Error(`joined ${meter.copied()} bytes, over ${budget}`);
  };
  beforeEach(() => {
    meter = concatMeter();
  });
  afterEach(() => meter.restore());

  it('CopyToJsonLines (export) turns a 128 MB field arriving in 64 KiB chunks into its line', async () => {
    // Prepare
    const tupleHead = Buffer.alloc(6);
    tupleHead.writeInt16BE(3, 0);
    tupleHead.writeInt32BE(WIDE_ROW_BYTES, 2);
    const ts = '2024-01-01T00:00:00.000000Z';
    const version = Buffer.alloc(12);
    version.writeInt32BE(8);
    version.writeBigInt64BE(42n, 4);
    const copy = [
      Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
      Buffer.alloc(8),
      tupleHead,
      ...line.pieces(),
      timestamptz(ts),
      version,
      Buffer.from([0xff, 0xff]),
    ];
    const lines = new CopyToJsonLines();
    const sink = hashingSink();

    // Act
    await pipeline(rechunked(copy, 64 * 1024, withinBudget), lines, sink);

    // Assess
    expect(meter.copied()).toBeLessThanOrEqual(budget);
    const { rowDigest: _, ...content } = line.figures;
    expect(lines.figures()).toEqual(content);
    expect(sink.sha256()).toBe(line.figures.contentSha256);
    expect([lines.minTimestamp, lines.maxTimestamp]).toEqual([ts, ts]);
  });

  it('JsonLinesContent (verify) measures a 128 MB line arriving in 16 KiB chunks', async () => {
    // Prepare
    const reader = new JsonLinesContent();

    // Act
    await pipeline(rechunked([...line.pieces(), Buffer.from('\n')], 16 * 1024, withinBudget), reader);

    // Assess
    expect(meter.copied()).toBeLessThanOrEqual(budget);
    const { rowDigest: _, ...content } = line.figures;
    expect(reader.figures()).toEqual(content);
  });

  it('JsonLinesToCopy (restore) turns a 128 MB line arriving in 16 KiB chunks into one COPY tuple', async () => {
    // Prepare: digesting the line too (an archive written before batches spanned days), the costlier way.
    const encoder = new JsonLinesToCopy(new RowDigest());
    const sink = hashingSink();
    const tupleHead = Buffer.alloc(6);
    tupleHead.writeInt16BE(1, 0);
    tupleHead.writeInt32BE(WIDE_ROW_BYTES, 2);
    const expected = createHash('sha256').update(Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'));
    expected.update(Buffer.alloc(8)).update(tupleHead);
    for (const piece of line.pieces()) expected.update(piece);
    expected.update(Buffer.from([0xff, 0xff]));

    // Act
    await pipeline(rechunked([...line.pieces(), Buffer.from('\n')], 16 * 1024, withinBudget), encoder, sink);

    // Assess
    expect(meter.copied()).toBeLessThanOrEqual(budget);
    expect(encoder.figures()).toEqual(line.figures);
    expect(sink.sha256()).toBe(expected.digest('hex'));
  });
});
