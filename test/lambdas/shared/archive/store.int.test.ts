import { type ChildProcess, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  RestoreObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import {
  ArchiveInColdStorageError,
  ArchiveIntegrityError,
  ConfigError,
} from '../../../../lambdas/shared/errors/step-errors.js';
import { unreadableColdArchives } from '../../../../lambdas/shared/restore/cold-archives.js';
import { type LocalServices, startLocalServices } from '../../../../local/services.js';

/**
 * What the local S3 (s3rver) does with what pinning relies on, so the tests built on it claim no more than it does:
 * its ETag is the MD5 of the bytes (for copies and multipart uploads too, unlike S3's "-N" multipart ETags), it
 * ignores If-Match on reads (the store compares the ETag it is given itself), and it cannot copy in parts. Its own
 * store answered a PUT before the bytes were on disk, and ignored If-None-Match on writes; local/s3-server.mjs makes
 * it answer once the object is whole, and refuse a conditional write into an existing key.
 */
/** A client of a local S3 server (s3rver's credentials; no streamed checksums, which s3rver would store). */
const s3ClientAt = (endpoint: string) =>
  new S3Client({
    endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });

describe('s3rver and object pins', () => {
  let dir = '';
  let services: LocalServices;
  let s3: S3Client;
  let store: ArchiveStore;
  const md5 = (body: string) => `"${createHash('md5').update(body).digest('hex')}"`;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 's3-pins-'));
    services = await startLocalServices(dir, 'pins');
    s3 = s3ClientAt(services.s3Endpoint);
    store = new ArchiveStore(s3, 'pins', { inPartsAboveBytes: Number.MAX_SAFE_INTEGER });
  });
  afterAll(async () => {
    s3?.destroy();
    await services?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives copies the ETag of their bytes, and a pinned read refuses an overwritten object though s3rver ignores If-Match', async () => {
    // Prepare
    await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: 'src', Body: 'original bytes' }));
    await store.copyOnce('src', 'dst', { storageClass: 'STANDARD' }, { a: 'b' }, 14);
    const pinned = (await store.head('dst'))?.pin;

    // Act
    await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: 'dst', Body: 'forged! bytes!' }));
    const ignored = await s3.send(
      new GetObjectCommand({ Bucket: 'pins', Key: 'dst', IfMatch: pinned?.etag }),
    );
    const refused = store.getStream('dst', pinned);

    // Assess
    expect(pinned).toEqual({ etag: md5('original bytes') });
    expect(ignored.ETag).toBe(md5('forged! bytes!'));
    await expect(refused).rejects.toThrow(ArchiveIntegrityError);
    await expect(refused).rejects.toThrow(/dst is not the pinned object/);
    expect((await store.head('dst'))?.pin).toEqual({ etag: md5('forged! bytes!') });
  });

  it('keeps an object moved to GLACIER unreadable until it is restored, as S3 does, and the store says so by name', async () => {
    // Prepare: an object copied onto itself with a cold class, what a lifecycle transition amounts to here
    await s3.send(
      new PutObjectCommand({ Bucket: 'pins', Key: 'cold/a', Body: 'cold bytes', Metadata: { kept: 'yes' } }),
    );
    await s3.send(
      new CopyObjectCommand({
        Bucket: 'pins',
        Key: 'cold/a',
        CopySource: 'pins/cold/a',
        MetadataDirective: 'REPLACE',
        Metadata: { kept: 'yes' },
        StorageClass: 'GLACIER',
      }),
    );
    const listed = async () =>
      (await s3.send(new ListObjectsV2Command({ Bucket: 'pins', Prefix: 'cold/' }))).Contents?.map(
        (c) => c.StorageClass,
      );

    // Act
    const classBefore = await listed();
    const headBefore = await store.head('cold/a');
    const readBefore = await store.getStream('cold/a').catch((error: unknown) => error);
    const textBefore = await store.getText('cold/a').catch((error: unknown) => error);
    const unreadableBefore = await unreadableColdArchives(store, [
      { key: 'cold/a', storageClass: 'GLACIER' },
    ]);
    const restoring = await s3.send(
      new RestoreObjectCommand({ Bucket: 'pins', Key: 'cold/a', RestoreRequest: { Days: 1 } }),
    );
    const headAfter = await store.head('cold/a');
    const readAfter = await store.getStream('cold/a');
    const unreadableAfter = await unreadableColdArchives(store, [{ key: 'cold/a', storageClass: 'GLACIER' }]);

    // Assess
    expect(classBefore).toEqual(['GLACIER']);
    expect(headBefore).toMatchObject({ storageClass: 'GLACIER', metadata: { kept: 'yes' } });
    expect(headBefore?.restore).toBeUndefined();
    expect(readBefore).toBeInstanceOf(ArchiveInColdStorageError);
    expect(textBefore).toBeInstanceOf(ArchiveInColdStorageError);
    expect((readBefore as Error).message).toMatch(/cold\/a is in GLACIER and not restored from it/);
    expect(unreadableBefore).toEqual([{ key: 'cold/a', storageClass: 'GLACIER', state: 'not-restored' }]);
    expect(restoring.$metadata.httpStatusCode).toBe(202);
    expect(headAfter?.restore).toMatch(/ongoing-request="false"/);
    expect(Buffer.concat((await readAfter?.toArray()) ?? []).toString()).toBe('cold bytes');
    expect(unreadableAfter).toEqual([]);
    expect(await listed()).toEqual(['GLACIER']);
  });

  it('refuses a PutObject, CopyObject or multipart completion into an existing key under If-None-Match, as S3 does', async () => {
    // Prepare
    await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: 'taken', Body: 'first' }));
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'pins', Key: 'taken' }));
    const taken = { Bucket: 'pins', Key: 'taken', IfNoneMatch: '*' };
    const parts = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'pins', Key: 'taken' }));
    const part = await s3.send(
      new UploadPartCommand({
        Bucket: 'pins',
        Key: 'taken',
        UploadId: parts.UploadId,
        PartNumber: 1,
        Body: 'x',
      }),
    );

    // Act
    const refused = await Promise.allSettled([
      s3.send(new PutObjectCommand({ ...taken, Body: 'second' })),
      s3.send(new CopyObjectCommand({ ...taken, CopySource: 'pins/src' })),
      s3.send(
        new CompleteMultipartUploadCommand({
          ...taken,
          UploadId: parts.UploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
        }),
      ),
    ]);
    const fresh = await s3.send(
      new PutObjectCommand({ Bucket: 'pins', Key: 'fresh', Body: 'new', IfNoneMatch: '*' }),
    );

    // Assess
    expect(refused.map((outcome) => outcome.status === 'rejected' && outcome.reason.name)).toEqual([
      'PreconditionFailed',
      'PreconditionFailed',
      'PreconditionFailed',
    ]);
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'pins', Key: 'taken' }))).ETag).toBe(head.ETag);
    expect(fresh.ETag).toBe(md5('new'));
  });

  it('refuses a key longer than 1,024 bytes with KeyTooLongError, as S3 does, and takes one of 1,024', async () => {
    // Prepare: two-byte characters, so bytes and characters differ.
    const key = (bytes: number) => `${'k/'.repeat(100)}${'é'.repeat((bytes - 200) / 2)}`;

    // Act
    const refused = await Promise.allSettled([
      s3.send(new PutObjectCommand({ Bucket: 'pins', Key: key(1026), Body: 'x' })),
      s3.send(new CopyObjectCommand({ Bucket: 'pins', Key: key(1026), CopySource: 'pins/src' })),
      s3.send(new CreateMultipartUploadCommand({ Bucket: 'pins', Key: key(1026) })),
    ]);
    await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: key(1024), Body: 'x' }));

    // Assess
    expect(refused.map((outcome) => outcome.status === 'rejected' && outcome.reason.name)).toEqual([
      'KeyTooLongError',
      'KeyTooLongError',
      'KeyTooLongError',
    ]);
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'pins', Key: key(1024) }))).ContentLength).toBe(1);
  });

  it('copies only the source with the ETag it is given (x-amz-copy-source-if-match), as S3 does, and refuses another or none', async () => {
    // Prepare
    await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: 'staged', Body: 'staged bytes' }));
    const etag = (await store.head('staged'))?.pin?.etag;
    const copy = (source: string, destination: string, sourceEtag: string | undefined) =>
      store.copyOnce(source, destination, { storageClass: 'STANDARD' }, {}, 12, sourceEtag);

    // Act
    const matching = await copy('staged', 'published-1', etag);
    await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: 'staged', Body: 'forged bytes' }));
    const changed = await copy('staged', 'published-2', etag);
    const missing = await copy('never-staged', 'published-3', etag);

    // Assess
    expect([matching, changed, missing]).toEqual(['copied', 'refused', 'refused']);
    expect(await store.getText('published-1')).toBe('staged bytes');
    expect(await store.head('published-2')).toBeUndefined();
    expect(await store.head('published-3')).toBeUndefined();
  });

  it('copies a source whose key holds characters S3 decodes and decodeURI does not (a prefix may hold them)', async () => {
    // Prepare
    const source = "odd +$,:@&;=' prefix/day=2026-01-01/x.jsonl.gz";
    await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: source, Body: 'odd bytes' }));
    const etag = (await store.head(source))?.pin?.etag;

    // Act
    const plain = await store.copyOnce(source, 'odd-1', { storageClass: 'STANDARD' }, {}, 9);
    const conditional = await store.copyOnce(source, 'odd-2', { storageClass: 'STANDARD' }, {}, 9, etag);

    // Assess
    expect([plain, conditional]).toEqual(['copied', 'copied']);
    expect(await store.getText('odd-2')).toBe('odd bytes');
  });

  it('lets one of many racing conditional writes to a key win, and answers UploadPartCopy with NotImplemented', async () => {
    // Prepare
    const bodies = Array.from({ length: 8 }, (_, i) => `racer ${i}`);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'pins', Key: 'parts' }));

    // Act
    const outcomes = await Promise.allSettled(
      bodies.map((Body) =>
        s3.send(new PutObjectCommand({ Bucket: 'pins', Key: 'raced', Body, IfNoneMatch: '*' })),
      ),
    );
    const partCopy = await s3
      .send(
        new UploadPartCopyCommand({
          Bucket: 'pins',
          Key: 'parts',
          UploadId,
          PartNumber: 1,
          CopySource: 'pins/src',
          CopySourceRange: 'bytes=0-3',
        }),
      )
      .then(
        () => undefined,
        (error: unknown) => error,
      );

    // Assess
    const won = outcomes.flatMap((outcome, i) => (outcome.status === 'fulfilled' ? [bodies[i]] : []));
    expect(won).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toHaveLength(7);
    const stored = await s3.send(new GetObjectCommand({ Bucket: 'pins', Key: 'raced' }));
    expect(await stored.Body?.transformToString()).toBe(won[0]);
    expect(partCopy).toMatchObject({ name: 'NotImplemented' });
  });

  it('proves write-once against the local S3, and refuses a server that ignores If-None-Match, as bare s3rver does', async () => {
    // Prepare: s3rver without local/s3-server.mjs, which writes over an existing key whatever the request says.
    const bare = new S3rver({
      address: '127.0.0.1',
      port: 0,
      directory: join(dir, 'bare'),
      silent: true,
      configureBuckets: [{ name: 'bare', configs: [] }],
    });
    const { port } = await bare.run();
    const bareClient = s3ClientAt(`http://127.0.0.1:${port}`);
    try {
      // Act: all three at once, settled together, so no rejection waits unobserved while another is awaited.
      const [local, again, ignored] = await Promise.allSettled([
        store.requireWriteOnce('probe', { storageClass: 'STANDARD' }),
        store.requireWriteOnce('probe', { storageClass: 'STANDARD' }),
        new ArchiveStore(bareClient, 'bare').requireWriteOnce('probe', { storageClass: 'STANDARD' }),
      ]);

      // Assess
      expect(local).toEqual({ status: 'fulfilled', value: undefined });
      expect(again).toEqual({ status: 'fulfilled', value: undefined });
      expect(ignored.status).toBe('rejected');
      const reason = (ignored as PromiseRejectedResult).reason;
      expect(reason).toBeInstanceOf(ConfigError);
      expect(String(reason.message)).toMatch(/wrote s3:\/\/bare\/probe twice despite If-None-Match/);
    } finally {
      bareClient.destroy();
      await bare.close();
    }
  });

  it('finishes a PutObject under way before it exits when its parent goes away, so no object is left half written', async () => {
    // Prepare: a server of its own, and a body whose second half comes after the parent has gone away.
    const directory = join(dir, 'parent-gone');
    const start = async () => {
      const child = fork(
        fileURLToPath(new URL('../../../../local/s3-server.mjs', import.meta.url)),
        [directory, 'own'],
        {
          execArgv: ['--openssl-legacy-provider'],
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        },
      );
      const port = await new Promise<number>((resolve) =>
        child.once('message', (m) => resolve((m as { port: number }).port)),
      );
      const client = s3ClientAt(`http://127.0.0.1:${port}`);
      // Listened for from the start: its end may come before the answer to the PUT is read.
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      return { child, client, exited };
    };
    /** Until the server answers a PutObject: a fixed wait would let a slow machine's parent go before it arrived. */
    const answering = async (child: ChildProcess) => {
      for (let asked = 0; asked < 1000; asked++) {
        const reply = new Promise<{ counts: { operation: string }[] }>((resolve) =>
          child.once('message', (m) => resolve(m as { counts: { operation: string }[] })),
        );
        child.send({ command: 'counts' });
        if ((await reply).counts.some((c) => c.operation === 'PutObject')) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error('setup: the PutObject never reached the server');
    };
    const first = await start();
    const half = Buffer.alloc(4 * 1024 * 1024, 7);
    let parentGone: () => void = () => undefined;
    const gone = new Promise<void>((resolve) => {
      parentGone = resolve;
    });
    const body = Readable.from(
      (async function* () {
        yield half;
        await gone;
        await new Promise((resolve) => setTimeout(resolve, 250));
        yield half;
      })(),
    );

    // Act
    const put = first.client
      .send(
        new PutObjectCommand({
          Bucket: 'own',
          Key: 'object',
          Body: body,
          ContentLength: 2 * half.length,
          Metadata: { a: 'b' },
        }),
      )
      .then(
        () => 'stored',
        (error: Error) => error.name,
      );
    await answering(first.child);
    first.child.disconnect();
    parentGone();
    const answered = await put;
    const exitCode = await first.exited;
    first.client.destroy();
    const second = await start();
    const stored = await second.client.send(new GetObjectCommand({ Bucket: 'own', Key: 'object' }));
    const bytes = Buffer.from((await stored.Body?.transformToByteArray()) ?? []);
    second.client.destroy();
    second.child.kill();

    // Assess
    expect(answered).toBe('stored');
    expect(exitCode).toBe(0);
    expect(bytes.equals(Buffer.concat([half, half]))).toBe(true);
    expect(stored.Metadata).toEqual({ a: 'b' });
  });

  it('answers a PutObject and a multipart upload only once the object is whole; a racing read of same-size bodies sees one whole', async () => {
    // Prepare: bodies of one size, large enough that writing one to disk takes a while.
    const size = 24 * 1024 * 1024;
    const bodies = Array.from({ length: 6 }, (_, i) => Buffer.alloc(size, i + 1));
    const read = async (Key: string) => {
      const body = (await s3.send(new GetObjectCommand({ Bucket: 'pins', Key }))).Body;
      return Buffer.from((await body?.transformToByteArray()) ?? []);
    };
    await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: 'whole', Body: bodies[0] }));

    // Act: each overwrite is read back at once, while another reader reads the key throughout.
    let writing = true;
    const seenMidway: Buffer[] = [];
    const reader = (async () => {
      while (writing) seenMidway.push(await read('whole'));
    })();
    const afterPut: boolean[] = [];
    for (const body of bodies) {
      await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: 'whole', Body: body }));
      afterPut.push((await read('whole')).equals(body));
    }
    const multipart = Buffer.concat([bodies[2] ?? Buffer.alloc(0), bodies[3] ?? Buffer.alloc(0)]);
    await new Upload({
      client: s3,
      params: { Bucket: 'pins', Key: 'whole-in-parts', Body: multipart },
      partSize: 8 * 1024 * 1024,
    }).done();
    const afterParts = await read('whole-in-parts');
    writing = false;
    await reader;

    // Assess
    expect(afterPut).toEqual(bodies.map(() => true));
    expect(afterParts.equals(multipart)).toBe(true);
    const torn = seenMidway.filter((seen) => !bodies.some((body) => seen.equals(body)));
    expect(seenMidway.length).toBeGreaterThan(0);
    expect(torn.map((seen) => seen.length)).toEqual([]);
  });

  it('deletes a batch of keys in one DeleteObjects request, a missing key among them', async () => {
    // Prepare
    const keys = Array.from({ length: 10 }, (_, i) => `staging/k${i}`);
    for (const key of keys.slice(1))
      await s3.send(new PutObjectCommand({ Bucket: 'pins', Key: key, Body: key }));

    // Act
    await store.deleteKeys(keys);

    // Assess
    for (const key of keys) expect(await store.head(key)).toBeUndefined();
  });
});
