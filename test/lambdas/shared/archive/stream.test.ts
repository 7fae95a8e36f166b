import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { RowDigest } from '../../../../lambdas/shared/archive/row-digest.js';
import { JsonLinesContent, JsonLinesToCopy } from '../../../../lambdas/shared/archive/stream.js';
import { hashingSink, rechunked, WIDE_ROW_BYTES, wideRowBudget } from '../../../support/wide-line.js';

describe('JsonLinesContent and JsonLinesToCopy', () => {
  const lines = ['{"a" : "x\\\\y \\n 😀"}', '{"a" : null}', '{"a" : "\u2028"}'];
  const output = Buffer.from(`${lines.join('\n')}\n`);
  const written = {
    rows: 3,
    contentSha256: createHash('sha256').update(output).digest('hex'),
    uncompressedBytes: output.length,
  };
  const chunked = (buffer: Buffer, size: number) =>
    Readable.from(
      Array.from({ length: Math.ceil(buffer.length / size) }, (_, i) =>
        buffer.subarray(i * size, (i + 1) * size),
      ),
    );

  it('JsonLinesToCopy measures what export wrote: the same figures', async () => {
    // Prepare
    const reader = new JsonLinesToCopy();

    // Act
    await pipeline(chunked(output, 4), reader, hashingSink());

    // Assess
    expect(reader.figures()).toEqual(written);
  });

  it('JsonLinesToCopy digests every line when asked: the row digest of an archive written before batches spanned days', async () => {
    // Prepare
    const reader = new JsonLinesToCopy(new RowDigest());
    const digest = new RowDigest();
    for (const line of lines) digest.add(Buffer.from(line));

    // Act
    await pipeline(chunked(output, 4), reader, hashingSink());

    // Assess
    expect(reader.figures()).toEqual({ ...written, rowDigest: digest.value() });
  });

  it('JsonLinesContent measures what export wrote: the same figures', async () => {
    // Prepare
    const reader = new JsonLinesContent();

    // Act
    await pipeline(chunked(output, 4), reader);

    // Assess
    expect(reader.figures()).toEqual(written);
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
  const { line, budget, copied, withinBudget } = wideRowBudget();

  it('JsonLinesContent (verify) measures a 128 MB line arriving in 16 KiB chunks', async () => {
    // Prepare
    const reader = new JsonLinesContent();

    // Act
    await pipeline(rechunked([...line.pieces(), Buffer.from('\n')], 16 * 1024, withinBudget), reader);

    // Assess
    expect(copied()).toBeLessThanOrEqual(budget);
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
    expect(copied()).toBeLessThanOrEqual(budget);
    expect(encoder.figures()).toEqual(line.figures);
    expect(sink.sha256()).toBe(expected.digest('hex'));
  });
});
