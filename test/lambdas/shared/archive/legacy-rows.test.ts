import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LegacyFormatError, LegacyMetadataSchema } from '../../../../lambdas/shared/archive/legacy-format.js';
import { convertLegacyRow, LegacyLinesToCanonical } from '../../../../lambdas/shared/archive/legacy-rows.js';
import { ArchiveIntegrityError } from '../../../../lambdas/shared/errors/step-errors.js';
import { pythonJsonDumps, writeLegacyArchive } from '../../../support/legacy-archive.js';
import { concatMeter, hashingSink, MB, rechunked, wideLine } from '../../../support/wide-line.js';

const types =
  (map: Record<string, string>) =>
  (column: string): string | undefined =>
    map[column];

/** Converts one line whose only column is `v` of the given type. */
const convertOne = (json: string, type: string | undefined) =>
  convertLegacyRow(`{"v": ${json}}`, () => type).v;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function runTransform(
  input: Buffer,
  chunkSize: number,
  columnType: (column: string) => string | undefined,
) {
  const transform = new LegacyLinesToCanonical(columnType);
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length; at += chunkSize) chunks.push(input.subarray(at, at + chunkSize));
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), transform, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return { output: Buffer.concat(out).toString('utf8'), figures: transform.figures() };
}

describe('legacy row conversion', () => {
  it('reject rows that are not one object with distinct columns, naming only the column', () => {
    expect(() => convertLegacyRow('["Jane Secret"]', () => undefined)).toThrow(
      'a legacy row must be a JSON object',
    );
    expect(() => convertLegacyRow('{"email": "a@b", "email": "Jane Secret"}', () => undefined)).toThrow(
      'column "email" appears twice in the row',
    );
  });

  it('keep integers past 2^53 exact', () => {
    // Act
    const row = convertLegacyRow(
      '{"id": 9223372036854775807, "ids": [9007199254740993, null], "doc": {"n": 12345678901234567890}}',
      types({ id: 'bigint', ids: 'bigint[]', doc: 'jsonb' }),
    );

    // Assess
    expect(row).toEqual({
      id: '9223372036854775807',
      ids: '{"9007199254740993",NULL}',
      doc: '{"n": 12345678901234567890}',
    });
  });

  it('pass numeric strings with their full scale, and numeric NaN', () => {
    expect(convertOne('"1.500000"', 'numeric(12,6)')).toBe('1.500000');
    expect(convertOne('"-0.000000000000000000001"', 'numeric')).toBe('-0.000000000000000000001');
    expect(convertOne('"1E-8"', 'numeric')).toBe('1E-8');
    expect(convertOne('"NaN"', 'numeric')).toBe('NaN');
  });

  it('turn the bare NaN and infinity tokens into their PostgreSQL spelling', () => {
    expect(convertOne('NaN', 'double precision')).toBe('NaN');
    expect(convertOne('Infinity', 'real')).toBe('Infinity');
    expect(convertOne('-Infinity', 'double precision')).toBe('-Infinity');
    expect(convertOne('[NaN, -Infinity, 1.5, null]', 'double precision[]')).toBe(
      '{"NaN","-Infinity","1.5",NULL}',
    );
  });

  it('keep the sign of negative zero', () => {
    expect(convertOne('-0.0', 'double precision')).toBe('-0.0');
    expect(convertOne('-0', 'double precision')).toBe('-0');
  });

  it('strip the Z the tool appended to naive timestamps', () => {
    expect(convertOne('"2024-03-05T12:34:56.123456Z"', 'timestamp without time zone')).toBe(
      '2024-03-05T12:34:56.123456',
    );
    expect(convertOne('"2024-03-05T12:34:56Z"', 'timestamp(3) without time zone')).toBe(
      '2024-03-05T12:34:56',
    );
    // -infinity and infinity were written as the datetime limits: restored as those finite values.
    expect(convertOne('"9999-12-31T23:59:59.999999Z"', 'timestamp without time zone')).toBe(
      '9999-12-31T23:59:59.999999',
    );
    expect(convertOne('["2024-01-01T00:00:00Z", null]', 'timestamp without time zone[]')).toBe(
      '{"2024-01-01T00:00:00",NULL}',
    );
  });

  it('keep timestamptz offsets, dropping only a Z written after an offset', () => {
    expect(convertOne('"2024-03-05T12:34:56+00:00"', 'timestamp with time zone')).toBe(
      '2024-03-05T12:34:56+00:00',
    );
    expect(convertOne('"2024-03-05T12:34:56.5+00:00Z"', 'timestamp with time zone')).toBe(
      '2024-03-05T12:34:56.5+00:00',
    );
    expect(convertOne('"2024-03-05T12:34:56+00:00Z"', 'timestamp without time zone')).toBe(
      '2024-03-05T12:34:56+00:00',
    );
    expect(convertOne('"2024-03-05T12:34:56Z"', 'timestamp(6) with time zone')).toBe('2024-03-05T12:34:56Z');
  });

  it('turn base64 bytea into hex, NUL bytes included', () => {
    // Prepare
    const bytes = Buffer.from([0, 1, 0, 0xff, 0x5c, 0x22, 0]);

    // Act
    const hex = convertOne(JSON.stringify(bytes.toString('base64')), 'bytea');
    const array = convertOne(`[["${Buffer.from([0]).toString('base64')}", null], ["", "AQI="]]`, 'bytea[]');

    // Assess
    expect(hex).toBe('\\x000100ff5c2200');
    expect(array).toBe('{{"\\\\x00",NULL},{"\\\\x","\\\\x0102"}}');
  });

  it('refuse bytea that is not base64, naming the column only', () => {
    // Act
    const attempt = () => convertLegacyRow('{"secret": "Jane Secret"}', types({ secret: 'bytea' }));

    // Assess
    expect(attempt).toThrow('column "secret" (bytea): value is not valid base64');
    expect(attempt).not.toThrow(/Jane/);
  });

  it('pass json and jsonb strings as they are: they already are the JSON text', () => {
    expect(convertOne(JSON.stringify('{"a": 1, "b": [1.50, 1e400]}'), 'jsonb')).toBe(
      '{"a": 1, "b": [1.50, 1e400]}',
    );
    expect(convertOne(JSON.stringify('{ "a" :1 ,\n\t"a": 2 }'), 'json')).toBe('{ "a" :1 ,\n\t"a": 2 }');
    expect(convertOne(JSON.stringify('null'), 'jsonb')).toBe('null');
    expect(convertOne('null', 'jsonb')).toBeNull();
  });

  it('keep the exact source text of json objects and arrays', () => {
    expect(convertOne('{"b":  [1.50,\t9007199254740993] , "a": "x\u2028"}', 'jsonb')).toBe(
      '{"b":  [1.50,\t9007199254740993] , "a": "x\u2028"}',
    );
    expect(convertOne('[]', 'json')).toBe('[]');
  });

  it('write nested arrays as array literals with NULLs and escaped quotes and backslashes', () => {
    // Prepare
    const line = pythonJsonDumps({
      v: [
        ['a"b', null, 'NULL'],
        ['c\\d', '', ' {x,y} '],
      ],
    });

    // Act
    const text = convertLegacyRow(line, types({ v: 'character varying(20)[]' })).v;

    // Assess
    expect(text).toBe('{{"a\\"b",NULL,"NULL"},{"c\\\\d",""," {x,y} "}}');
    expect(convertOne('[]', 'integer[]')).toBe('{}');
    expect(convertOne('[true, false]', 'boolean[]')).toBe('{"true","false"}');
    expect(convertOne('[["{\\"a\\": 1}"]]', 'jsonb[]')).toBe('{{"{\\"a\\": 1}"}}');
  });

  it('pass booleans, uuids, inet, dates and text as PostgreSQL reads them', () => {
    // Act
    const row = convertLegacyRow(
      '{"ok": true, "no": false, "u": "4f0c3c4e-9d7e-4e57-8f43-2a1f6c2b7d10", "ip": "10.0.0.1", "d": "0001-01-01", "t": "a\u2028b\u2029c 😀"}',
      types({ ok: 'boolean', no: 'boolean', u: 'uuid', ip: 'inet', d: 'date', t: 'text' }),
    );

    // Assess
    expect(row).toEqual({
      ok: 'true',
      no: 'false',
      u: '4f0c3c4e-9d7e-4e57-8f43-2a1f6c2b7d10',
      ip: '10.0.0.1',
      d: '0001-01-01',
      t: 'a\u2028b\u2029c 😀',
    });
  });

  it('write Python timedelta text as an interval that reads the same under every IntervalStyle', () => {
    expect(convertOne('"-1 day, 23:59:59"', 'interval')).toBe('-1 days +23:59:59');
    expect(convertOne('"2 days, 0:00:00.500000"', 'interval')).toBe('2 days +0:00:00.500000');
    expect(convertOne('"0:00:01.250000"', 'interval')).toBe('0:00:01.250000');
  });

  it("drop the tool's added fields, even where a column of that name existed", () => {
    // Act
    const row = convertLegacyRow(
      '{"id": 1, "_batch_id": "3f1c0a9b8d7e6f50", "_archived_at": "2024-03-05T12:34:56+00:00Z", "_source_database": "app", "_source_table": "t"}',
      types({ id: 'bigint', _batch_id: 'text' }),
    );

    // Assess
    expect(row).toEqual({ id: '1' });
  });

  it('convert columns the target does not have generically', () => {
    // Act
    const row = convertLegacyRow(
      '{"s": "2024-01-01T00:00:00Z", "n": 1.50, "b": true, "a": [1, "x"], "o": {"k": 12345678901234567890}, "z": null, "__proto__": "p"}',
      () => undefined,
    );

    // Assess: "__proto__" is an ordinary column, not the row's prototype.
    expect(JSON.stringify(row)).toBe(
      '{"s":"2024-01-01T00:00:00Z","n":"1.50","b":"true","a":"[1, \\"x\\"]","o":"{\\"k\\": 12345678901234567890}","z":null,"__proto__":"p"}',
    );
  });
});

describe('LegacyLinesToCanonical', () => {
  const columnType = types({
    id: 'bigint',
    at: 'timestamp without time zone',
    payload: 'bytea',
    tags: 'text[]',
  });
  const rows = [
    { id: 9007199254740993n, at: '2024-01-01T00:00:00Z', payload: 'AAE=', tags: [['a', null]] },
    { id: 2, at: '2024-01-01T00:00:01Z', payload: null, tags: ['é\u2028😀', 'x"y'] },
  ];
  const expected = [
    { id: '9007199254740993', at: '2024-01-01T00:00:00', payload: '\\x0001', tags: '{{"a",NULL}}' },
    { id: '2', at: '2024-01-01T00:00:01', payload: null, tags: '{"é\u2028😀","x\\"y"}' },
  ]
    .map((row) => `${JSON.stringify(row)}\n`)
    .join('');

  it.each([1, 7, 1 << 16])(
    'convert a file without a trailing newline fed in %i-byte chunks',
    async (chunkSize) => {
      // Prepare
      const archive = writeLegacyArchive({
        prefix: '',
        database: 'app',
        schema: 'public',
        table: 'audit',
        runStamp: '20240305T123456Z',
        batch: 1,
        rows,
      });
      const input = gunzipSync(archive.files.get(archive.dataKey) ?? Buffer.alloc(0));
      const metadata = LegacyMetadataSchema.parse(
        JSON.parse(archive.files.get(archive.metadataKey)?.toString() ?? ''),
      );

      // Act
      const { output, figures } = await runTransform(input, chunkSize, columnType);

      // Assess
      expect(input.at(-1)).not.toBe(0x0a);
      expect(output).toBe(expected);
      expect(figures).toEqual({ rows: 2, contentSha256: sha256(input), uncompressedBytes: input.length });
      expect(figures.contentSha256).toBe(metadata.checksums.jsonl_sha256);
      expect(figures.rows).toBe(metadata.data_info.record_count);
    },
  );

  it('accept a trailing newline and take pre-serialized lines', async () => {
    // Prepare
    const input = Buffer.from('{"id": 1, "at": "2024-01-01T00:00:00Z"}\n{"id": 12345678901234567890}\n');

    // Act
    const { output, figures } = await runTransform(input, 3, columnType);

    // Assess
    expect(output).toBe('{"id":"1","at":"2024-01-01T00:00:00"}\n{"id":"12345678901234567890"}\n');
    expect(figures).toEqual({ rows: 2, contentSha256: sha256(input), uncompressedBytes: input.length });
  });

  it('name the row that cannot be converted, without its values', async () => {
    // Prepare
    const input = Buffer.from('{"id": 1}\n{"id": 2, "payload": "Jane Secret"}\n{"id": 3}');

    // Act
    const attempt = runTransform(input, 1, columnType);

    // Assess
    await expect(attempt).rejects.toThrow(LegacyFormatError);
    await expect(attempt).rejects.toThrow(
      'row 2 of the file cannot be converted: column "payload" (bytea): value is not valid base64',
    );
    await expect(attempt).rejects.not.toThrow(/Jane/);
  });

  it('refuse invalid UTF-8 and empty lines', async () => {
    await expect(runTransform(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), 1, columnType)).rejects.toThrow(
      'row 1 of the file cannot be converted: the line is not valid UTF-8',
    );
    await expect(runTransform(Buffer.from('{"id": 1}\n\n{"id": 3}'), 4, columnType)).rejects.toThrow(
      /^row 2 of the file cannot be converted: malformed legacy JSON at byte 0/,
    );
  });

  it('give no figures before the stream has ended', () => {
    expect(() => new LegacyLinesToCanonical(columnType).figures()).toThrow('stream not finished');
  });

  it('convert a 32 MB line arriving in 16 KiB chunks joining each byte once (a list of chunks per line)', async () => {
    // Prepare: smaller than the 128 MB of archive-stream's tests, as parsing dominates; a re-joined buffer per chunk
    // would still join about 1,000 times the line.
    const bytes = 32 * MB;
    const line = wideLine(bytes);
    const content = createHash('sha256');
    for (const piece of line.pieces()) content.update(piece);
    const meter = concatMeter();
    const transform = new LegacyLinesToCanonical(() => 'text');
    const sink = hashingSink();

    // Act
    try {
      await pipeline(rechunked(line.pieces(), 16 * 1024), transform, sink);
    } finally {
      meter.restore();
    }

    // Assess
    expect(meter.copied()).toBeLessThanOrEqual(2 * bytes);
    expect(transform.figures()).toEqual({
      rows: 1,
      contentSha256: content.digest('hex'),
      uncompressedBytes: bytes,
    });
    // Canonical JSON drops the five spaces of `{"id" : "1", "payload" : "…"}` and ends the line.
    expect(sink.bytes()).toBe(bytes - 5 + 1);
  });
});

describe('LegacyLinesToCanonical: a decompression bomb is refused as it arrives', () => {
  const key = 'legacy/app/audit/year=2024/month=03/day=05/audit_20240305T123456Z_batch_001.jsonl.gz';
  const block = Buffer.alloc(MB, 0x61);
  const columnType = () => 'text';

  /** `before`, then `lines` lines `{"id": "aaa…"}` of `mib` MiB of "a" each, handed over as it is read; counts what was. */
  function bomb(mib: number, lines: number, before = '') {
    let read = 0;
    function* parts(): Generator<Buffer> {
      yield Buffer.from(before);
      for (let l = 0; l < lines; l++) {
        yield Buffer.from('{"id": "');
        for (let i = 0; i < mib; i++) yield block;
        yield Buffer.from('"}\n');
      }
    }
    function* counted(): Generator<Buffer> {
      for (const part of parts()) {
        read += part.length;
        yield part;
      }
    }
    return { stream: Readable.from(counted(), { objectMode: false }), read: () => read };
  }
  const refusal = (transform: LegacyLinesToCanonical, source: Readable) =>
    pipeline(source, transform, hashingSink()).then(
      () => undefined,
      (error: unknown) => error,
    );

  it('stops a line at its bound, naming the archive and the row, before keeping more of it', async () => {
    // Prepare
    const source = bomb(64, 1, '{"id": 1}\n');
    const transform = new LegacyLinesToCanonical(columnType, { key, lineBytes: 2 * MB });

    // Act
    const error = await refusal(transform, source.stream);

    // Assess
    expect(error).toBeInstanceOf(ArchiveIntegrityError);
    expect((error as Error).message).toMatch(
      new RegExp(`^archive ${key}: row 2 is a line of more than ${2 * MB} bytes`),
    );
    expect(source.read()).toBeLessThanOrEqual(4 * MB);
  });

  it('stops at the bytes the metadata states, though every line is short', async () => {
    // Prepare: 1 GiB in lines of a MiB.
    const source = bomb(1, 1024);
    const transform = new LegacyLinesToCanonical(columnType, { key, uncompressedBytes: 3 * MB });

    // Act
    const error = await refusal(transform, source.stream);

    // Assess
    expect(error).toBeInstanceOf(ArchiveIntegrityError);
    expect((error as Error).message).toBe(
      `archive ${key} decompresses to more than the ${3 * MB} bytes its sidecar states; read no further`,
    );
    expect(source.read()).toBeLessThanOrEqual(6 * MB);
  });

  it('converts a file of exactly the stated bytes, its longest line exactly at the bound, as before', async () => {
    // Prepare
    const input = Buffer.from('{"id": 1}\n{"id": 12345678901234567890}');
    const transform = new LegacyLinesToCanonical(columnType, {
      key,
      uncompressedBytes: input.length,
      lineBytes: '{"id": 12345678901234567890}'.length,
    });
    const out: Buffer[] = [];

    // Act
    await pipeline(Readable.from([input.subarray(0, 5), input.subarray(5)]), transform, async (source) => {
      for await (const chunk of source) out.push(chunk as Buffer);
    });

    // Assess
    expect(Buffer.concat(out).toString()).toBe('{"id":"1"}\n{"id":"12345678901234567890"}\n');
    expect(transform.figures()).toEqual({
      rows: 2,
      contentSha256: sha256(input),
      uncompressedBytes: input.length,
    });
  });
});
