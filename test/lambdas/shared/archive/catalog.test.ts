import { Readable, Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readExpectation, streamArchive } from '../../../../lambdas/shared/archive/catalog.js';
import { type Manifest, manifestKeyFor } from '../../../../lambdas/shared/archive/format.js';
import { MAX_LEGACY_LINE_BYTES } from '../../../../lambdas/shared/archive/legacy-rows.js';
import type { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import { ArchiveIntegrityError } from '../../../../lambdas/shared/errors/step-errors.js';
import { writeLegacyArchive } from '../../../support/legacy-archive.js';
import { FIXTURE_ARCHIVE_KEY, fixtureManifest } from '../../../support/manifest-fixture.js';

const MiB = 1024 * 1024;
const MIB_OF_A = gzipSync(Buffer.alloc(MiB, 0x61));

/** `lines` lines of `head`, `mib` MiB of "a" and `tail`, as gzip members (a MiB of "a" compressed once): a few KiB a GiB. */
function* bombParts(head: string, mib: number, tail: string, lines: number): Generator<Buffer> {
  const first = gzipSync(head);
  const last = gzipSync(tail);
  for (let l = 0; l < lines; l++) {
    yield first;
    for (let i = 0; i < mib; i++) yield MIB_OF_A;
    yield last;
  }
}

/** A store holding `texts` (sidecars) and `objects` (data, produced as read); counts the object bytes read. */
function fakeStore(texts: Map<string, string>, objects: Map<string, () => Iterable<Buffer>>) {
  const read = { bytes: 0, texts: [] as string[] };
  const store = {
    getText: async (key: string) => {
      read.texts.push(key);
      return texts.get(key);
    },
    getStream: async (key: string) => {
      const object = objects.get(key);
      if (!object) return undefined;
      return Readable.from(
        (function* () {
          for (const part of object()) {
            read.bytes += part.length;
            yield part;
          }
        })(),
        { objectMode: false },
      );
    },
  } as unknown as ArchiveStore;
  return { store, read };
}

/** A COPY sink stand-in: counts what it receives. */
function copySink(): Writable & { received: number } {
  const sink = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        sink.received += chunk.length;
        callback();
      },
    }),
    { received: 0 },
  );
  return sink;
}

const failure = (attempt: Promise<unknown>) =>
  attempt.then(
    () => undefined,
    (error: unknown) => error as Error,
  );

describe('streamArchive: a decompression bomb is refused as it arrives', () => {
  const key = 'archive/app/public/events/year=2024/month=01/day=01/bomb.jsonl.gz';

  it.each([
    ['reference path (binary COPY of whole lines)', undefined],
    ['fast path (COPY text rows)', ['id']],
  ])(
    'a native archive inflating past the bytes its manifest states, on the %s',
    async (_path, copyColumns) => {
      // Prepare: 1 GiB in lines of a MiB, from about 1 MiB of gzip; the manifest states 2 MiB.
      const { store, read } = fakeStore(
        new Map(),
        new Map([[key, () => bombParts('{"id" : "', 1, '"}\n', 1024)]]),
      );
      const sink = copySink();

      // Act
      const error = await failure(
        streamArchive(
          store,
          { key, format: 'native' },
          {
            openSink: () => sink,
            copyColumns,
            expected: { uncompressedBytes: 2 * MiB },
          },
        ),
      );

      // Assess: named, stopped within some KiB of gzip past the bound (what the streams buffer), the COPY ended.
      expect(error).toBeInstanceOf(ArchiveIntegrityError);
      expect(error?.message).toBe(
        `archive ${key} decompresses to more than the ${2 * MiB} bytes its sidecar states; read no further`,
      );
      expect(read.bytes).toBeLessThan(64 * MIB_OF_A.length);
      expect(sink.destroyed).toBe(true);
      expect(sink.received).toBeLessThanOrEqual(2 * MiB);
    },
  );

  describe('a legacy archive, bounded by its metadata', () => {
    const legacy = writeLegacyArchive({
      prefix: '',
      database: 'app',
      schema: 'public',
      table: 'audit',
      runStamp: '20240305T123456Z',
      batch: 1,
      rows: [{ id: 1 }, { id: 2 }],
    });
    const metadata = legacy.files.get(legacy.metadataKey)?.toString('utf8') ?? '';
    const ref = { key: legacy.dataKey, format: 'legacy' as const };
    const withSize = (bytes: number) =>
      metadata.replace(/"uncompressed_size_bytes": \d+/, `"uncompressed_size_bytes": ${bytes}`);

    it('reads a genuine one as before', async () => {
      // Prepare
      const { store, read } = fakeStore(
        new Map([[legacy.metadataKey, metadata]]),
        new Map([[legacy.dataKey, () => [legacy.files.get(legacy.dataKey) ?? Buffer.alloc(0)]]]),
      );

      // Act
      const measured = await streamArchive(store, ref, { expected: await readExpectation(store, ref) });

      // Assess
      expect(read.texts).toEqual([legacy.metadataKey]);
      expect(measured).toMatchObject({ rows: 2, uncompressedBytes: legacy.content.length });
    });

    it('refuses one inflating past the size its metadata states', async () => {
      // Prepare: the data object replaced by 1 GiB of lines.
      const { store, read } = fakeStore(
        new Map([[legacy.metadataKey, metadata]]),
        new Map([[legacy.dataKey, () => bombParts('{"id": "', 1, '"}\n', 1024)]]),
      );

      // Act
      const error = await failure(streamArchive(store, ref, { expected: await readExpectation(store, ref) }));

      // Assess
      expect(error).toBeInstanceOf(ArchiveIntegrityError);
      expect(error?.message).toBe(
        `archive ${legacy.dataKey} decompresses to more than the ${legacy.content.length} bytes its sidecar states; read no further`,
      );
      expect(read.bytes).toBeLessThan(64 * MIB_OF_A.length);
    });

    it('refuses one line longer than any restore can load, though its metadata states its size', async () => {
      // Prepare: one line of twice the bound, stated truthfully.
      const bound = MAX_LEGACY_LINE_BYTES / MiB;
      const mib = 2 * bound;
      const { store, read } = fakeStore(
        new Map([[legacy.metadataKey, withSize(mib * MiB + 10)]]),
        new Map([[legacy.dataKey, () => bombParts('{"id": "', mib, '"}', 1)]]),
      );

      // Act
      const error = await failure(streamArchive(store, ref, { expected: await readExpectation(store, ref) }));

      // Assess
      expect(error).toBeInstanceOf(ArchiveIntegrityError);
      expect(error?.message).toMatch(
        new RegExp(`^archive ${legacy.dataKey}: row 1 is a line of more than ${MAX_LEGACY_LINE_BYTES} bytes`),
      );
      // Stopped at the bound: past it, only what the streams buffer (16 KiB of gzip a stage, MiBs inflated).
      expect(read.bytes).toBeLessThan((bound + 128) * MIB_OF_A.length);
    });
  });
});

describe('streamArchive: a failure is the stage’s that failed first', () => {
  const key = 'archive/app/public/events/year=2024/month=01/day=01/lines.jsonl.gz';
  const lines = gzipSync('{"id" : "1"}\n{"id" : "2"}\n');

  it('the sink’s error, the database driver’s without a code included, is thrown as it is: the database’s to classify', async () => {
    // Prepare: a sink failing as pg does on a connection it knows is broken.
    const { store } = fakeStore(new Map(), new Map([[key, () => [lines]]]));
    const lost = new Error('Client has encountered a connection error and is not queryable');
    const sink = new Writable({
      write(_chunk, _encoding, callback) {
        callback(lost);
      },
    });

    // Act
    const error = await failure(
      streamArchive(
        store,
        { key, format: 'native' },
        { openSink: () => sink, expected: { uncompressedBytes: MiB } },
      ),
    );

    // Assess
    expect(error).toBe(lost);
  });

  it('the body’s error is the store’s, whatever its code (EPIPE has five letters, as SQLSTATEs have)', async () => {
    // Prepare: the object's connection breaks as it is read.
    const broken = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    const store = {
      getStream: async () =>
        new Readable({
          read() {
            this.destroy(broken);
          },
        }),
    } as unknown as ArchiveStore;

    // Act
    const error = await failure(
      streamArchive(
        store,
        { key, format: 'native' },
        { openSink: () => copySink(), expected: { uncompressedBytes: MiB } },
      ),
    );

    // Assess
    expect(error?.name).toBe('StorageUnavailableError');
    expect(error?.message).toMatch(/^reading .* failed: write EPIPE$/);
  });
});

describe('readExpectation: a native manifest must fit the partition its archive is under', () => {
  const key = FIXTURE_ARCHIVE_KEY;
  /** A manifest of the archive under `key` whose rows lie from its day's start to `to`. */
  const manifestTo = (to: string): Manifest => {
    const manifest = fixtureManifest();
    return { ...manifest, bounds: { ...manifest.bounds, to } };
  };
  const read = (manifest: Manifest) =>
    readExpectation(fakeStore(new Map([[manifestKeyFor(key), JSON.stringify(manifest)]]), new Map()).store, {
      key,
      format: 'native',
    });

  it('accepts rows up to the end of its day, and refuses a manifest whose rows reach past it', async () => {
    // Act
    const whole = await read(manifestTo('2025-01-08T00:00:00.000Z'));
    const past = read(manifestTo('2025-01-08T00:00:00.001Z'));

    // Assess: a range filter trusts the partition, so rows said to lie past it would be missed by one.
    expect(whole.rows).toBe(2);
    await expect(past).rejects.toThrow(ArchiveIntegrityError);
    await expect(past).rejects.toThrow(/its partition is not the manifest's day/);
  });
});
