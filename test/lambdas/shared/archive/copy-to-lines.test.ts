import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CopyToArchiveLines, type ObjectLines } from '../../../../lambdas/shared/archive/copy-to-lines.js';
import { VersionDigest } from '../../../../lambdas/shared/archive/version-digest.js';
import { type CopiedObject, readCopyObjects } from '../../../support/copy-lines.js';
import { rechunked, wideRowBudget } from '../../../support/wide-line.js';

type Row = { values: (string | null)[]; ts: string; version: bigint; object?: number };

/** A binary timestamptz field (length, then µs since 2000-01-01 UTC) for an ISO-8601 instant with microseconds. */
function timestamptz(iso: string): Buffer {
  const micros =
    BigInt(Date.parse(`${iso.slice(0, 23)}Z`) - Date.UTC(2000, 0, 1)) * 1000n + BigInt(iso.slice(23, 26));
  const field = Buffer.alloc(12);
  field.writeInt32BE(8);
  field.writeBigInt64BE(micros, 4);
  return field;
}

function int8(value: bigint): Buffer {
  const field = Buffer.alloc(12);
  field.writeInt32BE(8);
  field.writeBigInt64BE(value, 4);
  return field;
}

const int16 = (value: number) => {
  const bytes = Buffer.alloc(2);
  bytes.writeInt16BE(value);
  return bytes;
};
const int32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeInt32BE(value);
  return bytes;
};
const COPY_START = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];

/** A binary COPY stream as export's query (rowValuesCopySql) makes PostgreSQL write it. */
function copyBinary(rows: Row[], trailer = true): Buffer {
  const parts: Buffer[] = [...COPY_START];
  for (const row of rows) {
    parts.push(int16(row.values.length + 3), int32(4), int32(row.object ?? 0));
    for (const value of row.values) {
      if (value === null) parts.push(int32(-1));
      else parts.push(int32(Buffer.byteLength(value)), Buffer.from(value, 'utf8'));
    }
    parts.push(timestamptz(row.ts), int8(row.version));
  }
  if (trailer) parts.push(int16(-1));
  return Buffer.concat(parts);
}

/**
 * The line json_object writes, from JavaScript's own JSON: JSON.stringify escapes a string as PostgreSQL's
 * escape_json does (`\b \f \n \r \t \" \\`, `\u00xx` for the other control characters, nothing else), and the
 * integration test holds the transcoder to PostgreSQL itself.
 */
const jsonObjectLine = (columns: string[], values: (string | null)[]) =>
  `{${columns.map((name, i) => `${JSON.stringify(name)} : ${values[i] == null ? 'null' : JSON.stringify(values[i])}`).join(', ')}}`;

const chunked = (buffer: Buffer, size: number) =>
  Readable.from(
    Array.from({ length: Math.ceil(buffer.length / size) }, (_, i) =>
      buffer.subarray(i * size, (i + 1) * size),
    ),
  );

/** The lines of the COPY's only object. */
async function onlyObject(chunks: AsyncIterable<Buffer>, reader: CopyToArchiveLines) {
  const objects = await readCopyObjects(chunks, reader);
  expect(objects).toHaveLength(1);
  return objects[0] as CopiedObject;
}

describe('CopyToArchiveLines', () => {
  const columns = ['id', 'we"ird\\name\n', 'payload'];
  const controls = Array.from({ length: 32 }, (_, byte) => String.fromCharCode(byte)).join('');
  // Row versions near both ends of int8, so the sum wraps around 2^64 both ways.
  const rows: Row[] = [
    {
      values: ['1', 'x\\y \n 😀 "quoted"', '{"a": "b\\"c"}'],
      ts: '2024-01-01T00:00:00.000001Z',
      version: 9_223_372_036_854_775_807n,
    },
    { values: ['2', null, ''], ts: '2024-01-01T23:59:59.999999Z', version: 4_611_686_018_427_387_904n },
    {
      values: ['3', `${controls}\u007f\u2028é`, '\\\\"'],
      ts: '2024-01-01T12:00:00.000000Z',
      version: -9_223_372_036_854_775_808n,
    },
  ];
  const expected = `${rows.map((row) => jsonObjectLine(columns, row.values)).join('\n')}\n`;

  it.each([1, 2, 3, 7, 64, 100_000])(
    'writes each row’s json_object line and the same figures for %i-byte chunks',
    async (size) => {
      // Prepare
      const versions = new VersionDigest();
      const lines = new CopyToArchiveLines(columns, versions);

      // Act
      const output = await onlyObject(chunked(copyBinary(rows), size), lines);

      // Assess
      expect(output.lines.toString('utf8')).toBe(expected);
      expect(output.figures).toEqual({
        object: 0,
        rows: 3,
        contentSha256: createHash('sha256').update(expected).digest('hex'),
        uncompressedBytes: Buffer.byteLength(expected),
        minTimestamp: '2024-01-01T00:00:00.000001Z',
        maxTimestamp: '2024-01-01T23:59:59.999999Z',
      });
      expect(versions.value()).toBe('3fffffffffffffff');
    },
  );

  it('holds lines back until `least` bytes are ready, handing on the same bytes and figures (export passes on 256 KB at a time)', () => {
    // Prepare
    const copy = copyBinary([...rows, ...rows.map((row) => ({ ...row, object: 1 }))]);
    const reader = new CopyToArchiveLines(columns);
    const kept: Buffer[][] = [[]];
    const figures: (ObjectLines | undefined)[] = [];
    const heldBack: number[] = [];

    // Act
    for (let at = 0; at < copy.length; at += 7) {
      const chunk = copy.subarray(at, at + 7);
      for (let offset = 0; ; ) {
        offset = reader.read(chunk, offset);
        const ending = reader.atAnotherObject;
        const lines = reader.lines(ending ? 0 : 64);
        if (lines && !ending) heldBack.push(lines.length);
        if (lines) kept.at(-1)?.push(lines);
        if (!ending) break;
        const { ended } = reader.nextObject();
        if (!ended) continue;
        figures.push(ended);
        kept.push([]);
      }
    }
    const rest = reader.lines();
    if (rest) kept.at(-1)?.push(rest);
    figures.push(reader.finish());

    // Assess
    const sha = createHash('sha256').update(expected).digest('hex');
    expect(kept.map((pieces) => Buffer.concat(pieces).toString('utf8'))).toEqual([expected, expected]);
    expect(figures.map((f) => [f?.object, f?.rows, f?.contentSha256])).toEqual([
      [0, 3, sha],
      [1, 3, sha],
    ]);
    expect(heldBack.length).toBeGreaterThan(0);
    for (const length of heldBack) expect(length).toBeGreaterThanOrEqual(64);
  });

  it('states the timestamp range to the microsecond far from 2000 too (year 1, where a double rounds)', async () => {
    // Prepare
    const early = (ts: string, id: string): Row => ({ values: [id], ts, version: 1n });
    const lines = new CopyToArchiveLines(['id']);
    const copy = copyBinary([
      early('0001-01-01T00:00:00.000001Z', '2'),
      early('0001-01-01T00:00:00.000000Z', '1'),
      early('0001-01-01T00:00:00.000003Z', '3'),
    ]);

    // Act
    const output = await onlyObject(chunked(copy, 5), lines);

    // Assess
    expect([output.figures.minTimestamp, output.figures.maxTimestamp]).toEqual([
      '0001-01-01T00:00:00.000000Z',
      '0001-01-01T00:00:00.000003Z',
    ]);
  });

  it('escapes every control character as json_object does, one byte in six becoming six', async () => {
    // Prepare: a value of nothing but control characters, longer than one output buffer.
    const value = controls.repeat(20_000);
    const lines = new CopyToArchiveLines(['c']);

    // Act
    const output = await onlyObject(
      chunked(copyBinary([{ values: [value], ts: rows[0]?.ts ?? '', version: 1n }]), 65_536),
      lines,
    );

    // Assess
    expect(output.lines.toString('utf8')).toBe(`${jsonObjectLine(['c'], [value])}\n`);
  });

  it.each([
    ['timestamp', 2, /timestamp is NULL/],
    ['row version', 1, /row version is NULL/],
  ])('refuses a tuple whose %s is NULL', async (_what, fromEnd, message) => {
    // Prepare: the length of the last tuple's timestamp (2 fields from its end) or row version (1).
    const copy = copyBinary(rows);
    copy.writeInt32BE(-1, copy.length - 2 - 12 * fromEnd);

    // Act / Assess
    await expect(readCopyObjects(chunked(copy, 7), new CopyToArchiveLines(columns))).rejects.toThrow(message);
  });

  it.each([7, 100_000])(
    'fails the export on a line longer than restore can load, counted after escaping (%i-byte chunks)',
    async (size) => {
      // Prepare: 200 control characters fit a 1,000-byte limit as they come and take 1,200 bytes escaped.
      const value = '\u0001'.repeat(200);
      const line = `${jsonObjectLine(['c'], [value])}\n`;
      const fits = new CopyToArchiveLines(['c'], undefined, Buffer.byteLength(line));
      const tooLong = new CopyToArchiveLines(['c'], undefined, 1_000);
      const copy = () => chunked(copyBinary([{ values: [value], ts: rows[0]?.ts ?? '', version: 1n }]), size);

      // Act
      const written = await onlyObject(copy(), fits);
      const refused = readCopyObjects(copy(), tooLong);

      // Assess
      expect(written.lines.toString('utf8')).toBe(line);
      await expect(refused).rejects.toMatchObject({
        name: 'TableNotUsableError',
        message: expect.stringMatching(/row 1 of the object has an archive line of over 1000 bytes/),
      });
    },
  );

  it('refuses a tuple with another number of fields than the columns it was given', async () => {
    // Act / Assess
    await expect(
      readCopyObjects(chunked(copyBinary(rows), 5), new CopyToArchiveLines(['id', 'payload'])),
    ).rejects.toThrow(/unexpected COPY tuple with 6 fields/);
  });

  it('fails a stream cut off before its trailer instead of archiving a partial batch', async () => {
    // Act / Assess
    await expect(
      readCopyObjects(chunked(copyBinary(rows, false), 5), new CopyToArchiveLines(columns)),
    ).rejects.toThrow(/ended before its trailer/);
  });

  it.each([1, 3, 7, 64, 100_000])(
    'splits the rows of several objects at each one’s first row, an object without rows absent (%i-byte chunks)',
    async (size) => {
      // Prepare: two rows of object 0, none of object 1, one of object 2 and one of object 3.
      const [first, second, third] = rows as [Row, Row, Row];
      const spread: Row[] = [
        { ...first, object: 0 },
        { ...second, object: 0 },
        { ...third, object: 2 },
        { ...first, object: 3, ts: '2024-01-03T00:00:00.000000Z' },
      ];
      const versions = new VersionDigest();

      // Act
      const objects = await readCopyObjects(
        chunked(copyBinary(spread), size),
        new CopyToArchiveLines(columns, versions),
      );

      // Assess: each object's lines and figures are its rows' alone; the version digest spans them all.
      const linesOf = (of: Row[]) => of.map((row) => `${jsonObjectLine(columns, row.values)}\n`).join('');
      expect(objects.map((o) => o.lines.toString('utf8'))).toEqual([
        linesOf(spread.slice(0, 2)),
        linesOf(spread.slice(2, 3)),
        linesOf(spread.slice(3)),
      ]);
      expect(objects.map((o) => [o.figures.object, o.figures.rows, o.figures.minTimestamp])).toEqual([
        [0, 2, first.ts],
        [2, 1, third.ts],
        [3, 1, '2024-01-03T00:00:00.000000Z'],
      ]);
      expect(objects.map((o) => o.figures.contentSha256)).toEqual(
        objects.map((o) => createHash('sha256').update(o.lines).digest('hex')),
      );
      const separate = new VersionDigest();
      for (const row of spread) separate.add(int8(row.version), 4);
      expect(versions.value()).toBe(separate.value());
    },
  );

  it('refuses a row of an earlier object than the one being read: rows out of order would mix objects', async () => {
    // Prepare
    const [first, second] = rows as [Row, Row];
    const outOfOrder = [
      { ...first, object: 1 },
      { ...second, object: 0 },
    ];

    // Act / Assess
    await expect(
      readCopyObjects(chunked(copyBinary(outOfOrder), 5), new CopyToArchiveLines(columns)),
    ).rejects.toThrow(/row of object 0 after object 1: rows out of order/);
  });

  it('refuses a tuple whose object index is NULL', async () => {
    // Prepare: the first tuple's object index length (after the header and its field count).
    const copy = copyBinary(rows);
    copy.writeInt32BE(-1, 19 + 2);

    // Act / Assess
    await expect(readCopyObjects(chunked(copy, 7), new CopyToArchiveLines(columns))).rejects.toThrow(
      /object index is NULL/,
    );
  });
});

describe('one very large value (PostgreSQL allows 1 GB per value): work stays linear in its size', () => {
  const { line, budget, copied, withinBudget } = wideRowBudget();

  it('turns a 128 MB value arriving in 64 KiB chunks into its line', async () => {
    // Prepare: the wide line's id and payload as the values PostgreSQL sends (the line without its JSON around them).
    const pieces = [...line.pieces()];
    const payload = pieces.slice(1, -1);
    const payloadBytes = payload.reduce((sum, piece) => sum + piece.length, 0);
    const ts = '2024-01-01T00:00:00.000000Z';
    const copy = [
      ...COPY_START,
      int16(5),
      int32(4),
      int32(0),
      int32(1),
      Buffer.from('1'),
      int32(payloadBytes),
      ...payload,
      timestamptz(ts),
      int8(42n),
      int16(-1),
    ];
    const sink = createHash('sha256');

    // Act
    const [object] = await readCopyObjects(
      rechunked(copy, 64 * 1024, withinBudget),
      new CopyToArchiveLines(['id', 'payload']),
      (lines) => sink.update(lines),
    );

    // Assess
    expect(copied()).toBeLessThanOrEqual(budget);
    const { rowDigest: _, ...content } = line.figures;
    expect(object?.figures).toEqual({ object: 0, ...content, minTimestamp: ts, maxTimestamp: ts });
    expect(sink.digest('hex')).toBe(line.figures.contentSha256);
  });
});
