import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  JsonLinesToCopyText,
  LineNotCopyableError,
  MAX_COPYABLE_LINE_BYTES,
} from '../../../../lambdas/shared/archive/copy-text.js';
import { RowBuffer, transcodeLine } from '../../../../lambdas/shared/archive/copy-text-bytes.js';
import { RowDigest } from '../../../../lambdas/shared/archive/row-digest.js';
import { JsonLinesToCopy } from '../../../../lambdas/shared/archive/stream.js';
import { ArchiveIntegrityError } from '../../../../lambdas/shared/errors/step-errors.js';

/** Runs `bytes` through the encoder in chunks of `chunkBytes`: the COPY text it wrote, and its figures. */
async function encode(encoder: JsonLinesToCopyText | JsonLinesToCopy, bytes: Buffer, chunkBytes = 7) {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += chunkBytes) chunks.push(bytes.subarray(at, at + chunkBytes));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    encoder,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return { text: Buffer.concat(out).toString('utf8'), figures: encoder.figures() };
}

const jsonl = (...rows: unknown[]) => Buffer.from(rows.map((row) => `${JSON.stringify(row)}\n`).join(''));

describe('JsonLinesToCopyText: archive lines into COPY text rows of the target columns', () => {
  it('writes each column in order, escapes what COPY text reads specially, and NULL for null or a missing key', async () => {
    // Prepare: values with every character COPY text escapes, one that looks like the end-of-data marker, non-ASCII.
    const bytes = jsonl(
      { id: '1', note: 'tab\there', path: 'C:\\dir', raw: 'line\nbreak\rreturn' },
      { id: '2', note: null, path: '\\.', raw: 'zürich ✓' },
      { id: '3', path: '' },
    );

    // Act
    const { text } = await encode(new JsonLinesToCopyText(['id', 'note', 'path', 'raw']), bytes);

    // Assess
    expect(text).toBe(
      [
        '1\ttab\\there\tC:\\\\dir\tline\\nbreak\\rreturn',
        '2\t\\N\t\\\\.\tzürich ✓',
        '3\t\\N\t\t\\N',
        '',
      ].join('\n'),
    );
  });

  it('reads only a line’s own keys: a column named like an Object.prototype member is NULL when absent', async () => {
    // Act
    const { text } = await encode(
      new JsonLinesToCopyText(['constructor', '__proto__', 'toString']),
      jsonl({ toString: 'x' }),
    );

    // Assess
    expect(text).toBe('\\N\t\\N\tx\n');
  });

  it('measures the lines exactly as the reference encoder does, the row digest included', async () => {
    // Prepare
    const bytes = jsonl(...Array.from({ length: 50 }, (_, i) => ({ id: String(i), v: 'é'.repeat(i) })));

    // Act
    const direct = await encode(new JsonLinesToCopyText(['id', 'v'], new RowDigest()), bytes, 13);
    const reference = await encode(new JsonLinesToCopy(new RowDigest()), bytes, 13);

    // Assess
    expect(direct.figures).toEqual(reference.figures);
    expect(direct.figures.rows).toBe(50);
    expect(direct.figures.rowDigest).toBeDefined();
  });

  it('writes the same rows, or refuses alike, however the stream cuts the lines into chunks', async () => {
    // Prepare: lines of any shape (multi-byte characters, invalid UTF-8, not JSON), cut at random places.
    const line = fc.oneof(
      fc
        .tuple(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.option(fc.string({ maxLength: 10 })))
        .map(([id, v]) => Buffer.from(`${JSON.stringify({ id, v })}\n`)),
      fc.constant(Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xe2, 0x9c, 0x22, 0x7d, 0x0a])),
      fc.constant(Buffer.from('not json\n')),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(line, { maxLength: 12 }),
        fc.integer({ min: 1, max: 64 }),
        async (lines, cut) => {
          const bytes = Buffer.concat(lines);
          const outcome = (chunkBytes: number) =>
            encode(new JsonLinesToCopyText(['id', 'v']), bytes, chunkBytes).then(
              ({ text }) => text,
              // Either refuses the archive for the direct path: which line is met first depends on the cuts.
              (error: unknown) =>
                error instanceof LineNotCopyableError || error instanceof ArchiveIntegrityError
                  ? 'refused'
                  : error,
            );

          // Act
          const whole = await outcome(Math.max(1, bytes.length));
          const cutUp = await outcome(cut);

          // Assess
          expect(cutUp).toEqual(whole);
        },
      ),
      { numRuns: 500 },
    );
  });

  it.each([
    ['a line that is not JSON', Buffer.from('{"id": "1",}\n')],
    ['a value that is not a string', Buffer.from('{"id": 1}\n')],
    [
      'bytes that are not UTF-8',
      Buffer.concat([Buffer.from('{"id": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]),
    ],
    ['a line too long to hold decoded', jsonl({ id: 'x'.repeat(MAX_COPYABLE_LINE_BYTES) })],
  ])(
    'refuses %s with LineNotCopyableError, leaving the judgement to the reference path',
    async (_case, bytes) => {
      // Act
      const encoding = encode(new JsonLinesToCopyText(['id']), bytes);

      // Assess
      await expect(encoding).rejects.toBeInstanceOf(LineNotCopyableError);
    },
  );

  it.each([
    ['a line that is not an object', Buffer.from('["1"]\n')],
    ['a truncated last line', Buffer.from('{"id": "1"}\n{"id": "2')],
  ])('refuses %s as a damaged archive, which no path could restore', async (_case, bytes) => {
    // Act
    const encoding = encode(new JsonLinesToCopyText(['id']), bytes);

    // Assess
    await expect(encoding).rejects.toBeInstanceOf(ArchiveIntegrityError);
  });
});

/** A JSON string as PostgreSQL's escape_json spells it: \uXXXX (lowercase) for control characters, the rest raw. */
const PG_SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};
const pgJsonString = (value: string) =>
  `"${Array.from(value, (c) => PG_SHORT_ESCAPES[c] ?? (c.charCodeAt(0) < 0x20 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c)).join('')}"`;

describe('transcodeLine: the byte-level fast path', () => {
  const columns = ['id', 'note', 'payload'];
  const keys = columns.map((c) => Buffer.from(JSON.stringify(c)));
  /** What the general path (JSON.parse) writes for a line: the reference the fast path must equal byte for byte. */
  const general = async (line: string) =>
    (await encode(new JsonLinesToCopyText(['id', 'note', 'payload']), Buffer.from(`${line}\n`))).text;
  const fast = (line: string) => {
    const out = new RowBuffer();
    const taken = transcodeLine(Buffer.from(line), keys, out);
    return taken ? (out.take() ?? Buffer.alloc(0)).toString('utf8') : undefined;
  };
  const value = fc.oneof(
    fc.constant(null),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom('\\.', 'a\tb', 'C:\\x', '"quoted"', 'x\u0001y', 'é✓𝄞', '\\N', ''),
  );

  it('writes exactly what the general path writes, for json_object’s spelling and JSON.stringify’s', async () => {
    await fc.assert(
      fc.asyncProperty(fc.tuple(value, value, value), fc.boolean(), async (values, pgSpelling) => {
        // Prepare: strings with lone surrogates or NUL have no PostgreSQL text form; both paths must decline them.
        const line = pgSpelling
          ? `{${columns.map((c, i) => `"${c}" : ${values[i] === null ? 'null' : pgJsonString(values[i] as string)}`).join(', ')}}`
          : JSON.stringify(Object.fromEntries(columns.map((c, i) => [c, values[i]])));

        // Act
        const taken = fast(line);
        const reference = await general(line).catch(() => undefined);

        // Assess
        if (taken !== undefined) expect(taken).toBe(reference);
        else
          expect(
            values.some((v) => typeof v === 'string' && (v.includes('\0') || /[\uD800-\uDFFF]/.test(v))),
          ).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('leaves to the general path a line with other keys, another order, or a value that is not a string', () => {
    // Act, Assess
    expect(fast('{"note" : "a", "id" : "1", "payload" : null}')).toBeUndefined();
    expect(fast('{"id" : "1", "note" : "a"}')).toBeUndefined();
    expect(fast('{"id" : 1, "note" : "a", "payload" : null}')).toBeUndefined();
    expect(fast('{"id" : "1", "note" : "a", "payload" : null, "extra" : "x"}')).toBeUndefined();
    expect(fast('{"id" : "\\ud800", "note" : "a", "payload" : null}')).toBeUndefined();
    expect(fast('{"id" : "1", "note" : "a", "payload" : null} trailing')).toBeUndefined();
  });
});
