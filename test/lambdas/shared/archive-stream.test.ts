import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { CopyToJsonLines, JsonLinesFigures } from '../../../lambdas/shared/archive-stream.js';
import { RowDigest } from '../../../lambdas/shared/row-digest.js';

/** A binary COPY stream as PostgreSQL writes it, with two text fields per tuple. */
function copyBinary(rows: [string, string][], trailer = true): Buffer {
  const parts = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
  for (const fields of rows) {
    const head = Buffer.alloc(2);
    head.writeInt16BE(2);
    parts.push(head);
    for (const field of fields) {
      const bytes = Buffer.from(field, 'utf8');
      const length = Buffer.alloc(4);
      length.writeInt32BE(bytes.length);
      parts.push(length, bytes);
    }
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
  const rows: [string, string][] = [
    ['{"a" : "x\\\\y \\n 😀"}', '2024-01-01T00:00:00.000001Z'],
    ['{"a" : null}', '2024-01-01T23:59:59.999999Z'],
    ['{"a" : "\u2028"}', '2024-01-01T12:00:00.000000Z'],
  ];

  it.each([1, 3, 7, 64, 100_000])(
    'writes one line per tuple and the same figures for %i-byte chunks',
    async (size) => {
      // Prepare
      const lines = new CopyToJsonLines();

      // Act
      const output = await collect(chunked(copyBinary(rows), size).pipe(lines));

      // Assess
      const expected = `${rows.map(([line]) => line).join('\n')}\n`;
      expect(output.toString('utf8')).toBe(expected);
      const digest = new RowDigest();
      for (const [line] of rows) digest.add(Buffer.from(line));
      expect(lines.figures()).toEqual({
        rows: 3,
        contentSha256: createHash('sha256').update(expected).digest('hex'),
        uncompressedBytes: Buffer.byteLength(expected),
        rowDigest: digest.value(),
      });
      expect([lines.minTimestamp, lines.maxTimestamp]).toEqual([
        '2024-01-01T00:00:00.000001Z',
        '2024-01-01T23:59:59.999999Z',
      ]);
    },
  );

  it('fails a stream cut off before its trailer instead of archiving a partial batch', async () => {
    // Act / Assess
    await expect(
      pipeline(chunked(copyBinary(rows, false), 5), new CopyToJsonLines(), new JsonLinesFigures()),
    ).rejects.toThrow(/ended before its trailer/);
  });

  it('reads back what it wrote: JsonLinesFigures recomputes identical figures', async () => {
    // Prepare
    const writer = new CopyToJsonLines();
    const output = await collect(Readable.from([copyBinary(rows)]).pipe(writer));
    const reader = new JsonLinesFigures();

    // Act
    await pipeline(chunked(output, 4), reader);

    // Assess
    expect(reader.figures()).toEqual(writer.figures());
  });

  it('counts a trailing fragment (a truncated last line) so figures disagree', async () => {
    // Prepare
    const reader = new JsonLinesFigures();

    // Act
    await pipeline(Readable.from([Buffer.from('{"a" : 1}\n{"a" : ')]), reader);

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
