import { createHash } from 'node:crypto';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { JsonLinesToCopyText } from '../../../../lambdas/shared/archive/copy-text.js';
import { RowDigest } from '../../../../lambdas/shared/archive/row-digest.js';
import {
  COPY_SIGNATURE,
  createLinesGunzip,
  JsonLinesContent,
  JsonLinesToCopy,
  LineShape,
  MAX_ARCHIVE_LINE_BYTES,
  MAX_LINE_MEMBERS,
} from '../../../../lambdas/shared/archive/stream.js';
import { ArchiveIntegrityError } from '../../../../lambdas/shared/errors/step-errors.js';
import { hashingSink, rechunked, WIDE_ROW_BYTES, wideRowBudget } from '../../../support/wide-line.js';

/** Three archive lines (escapes, a null, a line separator) and what export recorded of them. */
const lines = ['{"a" : "x\\\\y \\n 😀"}', '{"a" : null}', '{"a" : "\u2028"}'];
const output = Buffer.from(`${lines.join('\n')}\n`);
const written = {
  rows: 3,
  contentSha256: createHash('sha256').update(output).digest('hex'),
  uncompressedBytes: output.length,
};

describe('JsonLinesContent and JsonLinesToCopy', () => {
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

  it.each([['a truncated last line', Buffer.from('{"a" : 1}\n{"a" : ')]])(
    'JsonLinesContent and JsonLinesToCopy refuse %s, even where a sidecar counts it as a row',
    async (_case, bytes) => {
      // Act
      const content = pipeline(Readable.from([bytes]), new JsonLinesContent({ key: 'k' }));
      const copy = pipeline(
        Readable.from([bytes]),
        new JsonLinesToCopy(undefined, { key: 'k' }),
        hashingSink(),
      );

      // Assess
      for (const read of [content, copy])
        await expect(read).rejects.toThrow(
          new ArchiveIntegrityError(
            'archive k: its last line has no newline, which every line export writes ends with',
          ),
        );
    },
  );

  it.each([
    ['an empty line', '{"a" : "1"}\n\n{"a" : "2"}\n', 2],
    ['a byte order mark', '\ufeff{"a" : "1"}\n', 1],
    ['a line that is a JSON array', '{"a" : "1"}\n["1"]\n', 2],
    ['a carriage return before the newline', '{"a" : "1"}\r\n', 1],
    ['a blank after the object', '{"a" : "1"}\n{"a" : "2"} \n', 2],
  ])(
    'JsonLinesContent and JsonLinesToCopy refuse %s: export writes one JSON object a line',
    async (_case, text, row) => {
      // Act
      const content = pipeline(Readable.from([Buffer.from(text)]), new JsonLinesContent({ key: 'k' }));
      const copy = pipeline(
        Readable.from([Buffer.from(text)]),
        new JsonLinesToCopy(undefined, { key: 'k' }),
        hashingSink(),
      );

      // Assess
      for (const read of [content, copy])
        await expect(read).rejects.toThrow(
          new ArchiveIntegrityError(
            `archive k: row ${row} is not a line export writes (one JSON object a line, from "{" to "}"); read no further`,
          ),
        );
    },
  );
});

describe('JsonLinesContent requires UTF-8 (restore could never read anything else)', () => {
  const read = (bytes: Buffer, size: number) => {
    const content = new JsonLinesContent({ key: 'k' });
    return pipeline(
      Readable.from(
        Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) =>
          bytes.subarray(i * size, (i + 1) * size),
        ),
      ),
      content,
    ).then(() => content.figures());
  };

  it.each([1, 2, 3, 5, 64])(
    'takes characters of 2, 3 and 4 bytes cut by chunks of %i bytes',
    async (size) => {
      // Act
      const figures = await read(output, size);

      // Assess
      expect(figures).toEqual(written);
    },
  );

  it.each([
    [
      'a lone lead byte (PostgreSQL 14\'s bare "char" 0xC3)',
      Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x20, 0x3a, 0x20, 0x22, 0xc3, 0x22, 0x7d, 0x0a]),
    ],
    [
      'a character cut by the end of a line',
      Buffer.concat([Buffer.from('{"a" : "'), Buffer.from('😀').subarray(0, 3), Buffer.from('\n')]),
    ],
    ['a stray continuation byte', Buffer.from([0x7b, 0x7d, 0x80, 0x0a])],
  ])('refuses %s', async (_case, bytes) => {
    // Act / Assess
    for (const size of [1, 4, bytes.length])
      await expect(read(bytes, size)).rejects.toThrow(
        new ArchiveIntegrityError('archive k holds bytes that are not UTF-8, which no restore could read'),
      );
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

describe('one line of a few hundred MiB is held once by restore, not joined into a second copy', () => {
  const { line, copied, withinBudget } = wideRowBudget();

  it('JsonLinesToCopy (restore) passes a 128 MB line on as its pieces (joining it held 600 MB for 240 MiB)', async () => {
    // Prepare
    const encoder = new JsonLinesToCopy();
    const sink = hashingSink();

    // Act
    await pipeline(rechunked([...line.pieces(), Buffer.from('\n')], 16 * 1024, withinBudget), encoder, sink);

    // Assess: nothing of the line joined (a MiB of short lines is, into one CopyData message); every byte passed on.
    expect(copied()).toBeLessThanOrEqual(1024 * 1024);
    expect(sink.bytes()).toBe(COPY_SIGNATURE.length + 8 + 6 + WIDE_ROW_BYTES + 2);
  });
});

/** A MiB of one byte, gzipped once: a gzip member of about 1 KiB that a bomb repeats. */
const MiB = 1024 * 1024;
const MIB_OF_A = gzipSync(Buffer.alloc(MiB, 0x61));

/**
 * A decompression bomb as gzip members (gunzip reads them as one stream): `head`, `mib` MiB of "a", `tail`, repeated
 * `times`. A few KiB per GiB, produced as it is read: the test never holds what it inflates to.
 */
function bomb(head: string, mib: number, tail: string, times = 1, before = ''): Readable {
  const first = gzipSync(head);
  const last = gzipSync(tail);
  return Readable.from(
    (function* () {
      if (before) yield gzipSync(before);
      for (let t = 0; t < times; t++) {
        yield first;
        for (let i = 0; i < mib; i++) yield MIB_OF_A;
        yield last;
      }
    })(),
    { objectMode: false },
  );
}

/** Counts the decompressed bytes a reader was handed. */
function inflatedMeter(): Transform & { bytes: number } {
  const meter = Object.assign(
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        meter.bytes += chunk.length;
        callback(null, chunk);
      },
    }),
    { bytes: 0 },
  );
  return meter;
}

/** Reads `source` (gzip) through `reader`; the decompressed bytes handed over, and what `reader` passed on. */
async function readBomb(source: Readable, reader: Writable) {
  const inflated = inflatedMeter();
  const sink = hashingSink();
  const streams = reader instanceof Transform ? [reader, sink] : [reader];
  const outcome = await (pipeline as (...streams: (Readable | Writable)[]) => Promise<void>)(
    source,
    createLinesGunzip(),
    inflated,
    ...streams,
  ).then(
    () => undefined,
    (error: unknown) => error,
  );
  return { outcome, inflated: inflated.bytes, passedOn: sink.bytes() };
}

describe('a decompression bomb (a small object inflating past its sidecar, or to one enormous line) is refused as it arrives', () => {
  const key = 'archive/app/public/events/year=2024/month=01/day=01/x.jsonl.gz';

  it('JsonLinesToCopy (restore) stops a line at MAX_ARCHIVE_LINE_BYTES, naming the archive, before holding more of it', async () => {
    // Prepare: one line 16 MiB longer than any line export writes, the sidecar stating its size truthfully.
    const mib = MAX_ARCHIVE_LINE_BYTES / MiB + 16;
    const reader = new JsonLinesToCopy(undefined, { key, uncompressedBytes: mib * MiB + 11 });

    // Act
    const { outcome, inflated, passedOn } = await readBomb(bomb('{"id": "', mib, '"}\n'), reader);

    // Assess: refused at the bound (give or take a chunk in flight), nothing of the line passed on to the COPY.
    expect(outcome).toBeInstanceOf(ArchiveIntegrityError);
    expect((outcome as Error).message).toBe(
      `archive ${key}: row 1 is a line of more than ${MAX_ARCHIVE_LINE_BYTES} bytes, longer than export writes or restore can load (a jsonb value holds at most 256 MiB); read no further`,
    );
    expect(inflated).toBeLessThanOrEqual(MAX_ARCHIVE_LINE_BYTES + MiB);
    expect(passedOn).toBe(COPY_SIGNATURE.length + 8);
  });

  it.each([
    ['JsonLinesContent (verify)', () => new JsonLinesContent({ key, lineBytes: 3 * MiB })],
    ['JsonLinesToCopy (restore)', () => new JsonLinesToCopy(new RowDigest(), { key, lineBytes: 3 * MiB })],
    [
      'JsonLinesToCopyText (restore)',
      () => new JsonLinesToCopyText(['id'], undefined, { key, lineBytes: 3 * MiB }),
    ],
  ])('%s stops a line at its bound', async (_name, reader) => {
    // Act: short lines first, then one of 64 MiB.
    const { outcome, inflated } = await readBomb(
      bomb('{"id" : "', 64, '"}\n', 1, '{"id" : "1"}\n{"id" : "2"}\n'),
      reader(),
    );

    // Assess
    expect(outcome).toBeInstanceOf(ArchiveIntegrityError);
    expect((outcome as Error).message).toMatch(
      new RegExp(`^archive ${key}: row 3 is a line of more than ${3 * MiB} bytes`),
    );
    expect(inflated).toBeLessThanOrEqual(4 * MiB);
  });

  it.each([
    ['JsonLinesContent (verify)', () => new JsonLinesContent({ key, uncompressedBytes: 2 * MiB })],
    ['JsonLinesToCopy (restore)', () => new JsonLinesToCopy(undefined, { key, uncompressedBytes: 2 * MiB })],
    [
      'JsonLinesToCopyText (restore)',
      () => new JsonLinesToCopyText(['id'], new RowDigest(), { key, uncompressedBytes: 2 * MiB }),
    ],
  ])('%s stops at the bytes the sidecar states, though every line is short', async (_name, reader) => {
    // Act: 1 GiB in lines of a MiB each.
    const { outcome, inflated } = await readBomb(bomb('{"id" : "', 1, '"}\n', 1024), reader());

    // Assess
    expect(outcome).toBeInstanceOf(ArchiveIntegrityError);
    expect((outcome as Error).message).toBe(
      `archive ${key} decompresses to more than the ${2 * MiB} bytes its sidecar states; read no further`,
    );
    expect(inflated).toBeLessThanOrEqual(3 * MiB);
  });

  it('an archive of exactly the stated bytes, its longest line exactly at the bound, reads as before', async () => {
    // Prepare
    const longest = Math.max(...lines.map((line) => Buffer.byteLength(line)));
    const bounds = { key, uncompressedBytes: output.length, lineBytes: longest };
    const readers = [
      new JsonLinesContent(bounds),
      new JsonLinesToCopy(new RowDigest(), bounds),
      new JsonLinesToCopyText(['a'], undefined, bounds),
    ];
    const digest = new RowDigest();
    for (const line of lines) digest.add(Buffer.from(line));

    // Act
    const outcomes = await Promise.all(
      readers.map((reader) => readBomb(Readable.from([gzipSync(output)]), reader)),
    );

    // Assess
    expect(outcomes.map((o) => o.outcome)).toEqual([undefined, undefined, undefined]);
    expect(readers.map((reader) => reader.figures())).toEqual([
      written,
      { ...written, rowDigest: digest.value() },
      written,
    ]);
  });
});

describe("a line whose parse would take gigabytes (nested values, members past any table's columns) is refused unparsed", () => {
  const key = 'archive/app/public/events/year=2024/month=01/day=01/x.jsonl.gz';
  const shaped = (line: string, chunk: number) => {
    const shape = new LineShape();
    const bytes = Buffer.from(line);
    let flat = true;
    for (let at = 0; at < bytes.length && flat; at += chunk)
      flat = shape.push(bytes.subarray(at, at + chunk));
    return shape.end() && flat;
  };
  const members = (n: number) => `{${Array.from({ length: n }, (_, i) => `"c${i}":null`).join(',')}}`;

  it.each([1, 2, 3, 1000])(
    'LineShape reads strings whole, escapes and all, in parts of %i bytes',
    (chunk) => {
      // Prepare / Act / Assess: brackets, braces and colons inside strings (escaped quotes and backslashes around
      // them) are text; outside, a nested value or a member past the bound is not a line export writes.
      expect(shaped('{"a" : "[{\\\\\\"}]:\\\\", "b":null, "c":"\\\\"}', chunk)).toBe(true);
      expect(shaped(members(MAX_LINE_MEMBERS), chunk)).toBe(true);
      expect(shaped(members(MAX_LINE_MEMBERS + 1), chunk)).toBe(false);
      expect(shaped('{"a":"\\\\\\\\","b":[1]}', chunk)).toBe(false);
      expect(shaped('{"a":"\\\\"  ,"b":{}}', chunk)).toBe(false);
      expect(shaped('{"a":"x\\\\"}', chunk)).toBe(true);
      expect(shaped('{"a":"x\\\\\\"}', chunk)).toBe(false);
    },
  );

  it.each([
    ['JsonLinesToCopy (restore)', () => new JsonLinesToCopy(undefined, { key })],
    ['JsonLinesToCopyText (restore)', () => new JsonLinesToCopyText(['id', 'payload'], undefined, { key })],
  ])(
    '%s refuses, naming the archive and the row, a line of a million empty objects',
    async (_name, reader) => {
      // Prepare: 3 MiB of "{}," in one value (PostgreSQL's jsonb parse held 880 MB for 4 MiB of them).
      const planted = `{"id":"1","payload":[${'{},'.repeat(1024 * 1024)}{}]}\n`;

      // Act
      const outcome = await pipeline(
        Readable.from([Buffer.from('{"id":"0","payload":"{}"}\n'), Buffer.from(planted)]),
        reader(),
        hashingSink(),
      ).catch((error: unknown) => error);

      // Assess
      expect(outcome).toBeInstanceOf(ArchiveIntegrityError);
      expect((outcome as Error).message).toBe(
        `archive ${key}: row 2 is not a line export writes (one flat JSON object, no array or nested object, of at most ${MAX_LINE_MEMBERS} members), which restore does not parse; read no further`,
      );
    },
  );
});
