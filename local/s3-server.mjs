// Runs s3rver in its own process: it needs --openssl-legacy-provider (its list continuation tokens use DES,
// which current Node disables), and the flag must not weaken the archiver's own process.
// It exits when its parent goes away, so a killed local run never leaves a server behind.
// It counts the requests it answers by caller and S3 operation; the parent asks for them with { command: 'counts' }.
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';
import S3Error from 's3rver/lib/models/error.js';
import { callerOf } from './request-caller.mjs';

const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory,
  silent: true,
  configureBuckets: [{ name: bucket }],
});

/**
 * Writes a body to a temporary file beside its path, then renames it into place: s3rver's own store answers a PUT
 * (and UploadPart) once it has handed the bytes to a write stream, before they are on disk, so a read right after an
 * overwrite could come back short or mixed. S3 answers once the object is whole, and the tests and the local mode
 * rely on that. Returns the size and MD5 s3rver records. Unlike S3, a read racing an overwrite can still see a mix:
 * s3rver takes the size before it opens the file and writes the ETag after the bytes; nothing here reads an object
 * while it is being overwritten.
 */
async function writeWhole(path, content) {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomUUID()}.partial`;
  const md5 = createHash('md5');
  let size = 0;
  const measure = new Transform({
    transform(chunk, _encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  const source = Buffer.isBuffer(content) ? Readable.from([content]) : content;
  try {
    await pipeline(source, measure, createWriteStream(temporary));
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return { size, md5: md5.digest('hex') };
}

const { store } = server;
store.putObject = async (object) => {
  const written = await writeWhole(
    store.getResourcePath(object.bucket, object.key, 'object'),
    object.content,
  );
  await store.putMetadata(object.bucket, object.key, object.metadata, written.md5);
  return written;
};
store.putPart = async (bucket, uploadId, partNumber, content) => {
  const partPath = join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
  const written = await writeWhole(partPath, content);
  await writeFile(`${partPath}.md5`, written.md5);
  return written;
};

/**
 * Conditional writes (If-None-Match: *) on PutObject, CopyObject and CompleteMultipartUpload, which s3rver ignores:
 * S3 refuses such a write with 412 PreconditionFailed when the key exists, and the archiver's write-once objects
 * rely on it. Writes to one key are taken in turn, so two racing conditional writes cannot both find the key free.
 */
const writesByKey = new Map();
async function conditionalWrites(ctx, next) {
  const url = new URL(ctx.url, 'http://local');
  const writesObject =
    (ctx.method === 'PUT' && !url.searchParams.has('uploadId') && !url.searchParams.has('tagging')) ||
    (ctx.method === 'POST' && url.searchParams.has('uploadId'));
  const [, bucketName, ...key] = url.pathname.split('/');
  if (ctx.get('if-none-match') !== '*' || !writesObject || !bucketName || key.length === 0) return next();
  const id = `${decodeURIComponent(bucketName)}/${decodeURIComponent(key.join('/'))}`;
  const before = writesByKey.get(id) ?? Promise.resolve();
  let release;
  const done = new Promise((resolve) => (release = resolve));
  const mine = before.then(() => done);
  writesByKey.set(id, mine);
  await before;
  try {
    if (await store.existsObject(decodeURIComponent(bucketName), decodeURIComponent(key.join('/'))))
      throw new S3Error(
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        {
          Condition: 'If-None-Match',
        },
      );
    await next();
  } finally {
    release();
    if (writesByKey.get(id) === mine) writesByKey.delete(id);
  }
}
// First of all middleware (Koa composes it when the server starts), so the check precedes the write.
server.middleware.unshift(conditionalWrites);

const { port } = await server.run();

/** The S3 operation of a path-style request, as S3 bills it (by the API call, not by the HTTP method alone). */
function operation(request) {
  const url = new URL(request.url ?? '/', 'http://local');
  const hasKey = url.pathname.split('/').filter(Boolean).length > 1;
  const query = (name) => url.searchParams.has(name);
  const copy = request.headers['x-amz-copy-source'] !== undefined;
  switch (request.method) {
    case 'HEAD':
      return hasKey ? 'HeadObject' : 'HeadBucket';
    case 'GET':
      if (!hasKey)
        return query('uploads')
          ? 'ListMultipartUploads'
          : query('list-type')
            ? 'ListObjectsV2'
            : 'ListObjects';
      return query('uploadId') ? 'ListParts' : 'GetObject';
    case 'PUT':
      if (query('uploadId')) return copy ? 'UploadPartCopy' : 'UploadPart';
      return copy ? 'CopyObject' : hasKey ? 'PutObject' : 'CreateBucket';
    case 'POST':
      if (query('delete')) return 'DeleteObjects';
      return query('uploads') ? 'CreateMultipartUpload' : 'CompleteMultipartUpload';
    case 'DELETE':
      return query('uploadId') ? 'AbortMultipartUpload' : hasKey ? 'DeleteObject' : 'DeleteBucket';
    default:
      return `${request.method} ${hasKey ? 'object' : 'bucket'}`;
  }
}

const counts = new Map();
server.httpServer.on('request', (request) => {
  const key = JSON.stringify([callerOf(request.headers), operation(request)]);
  counts.set(key, (counts.get(key) ?? 0) + 1);
});
process.on('message', (message) => {
  if (message?.command !== 'counts') return;
  process.send?.({
    counts: [...counts].map(([key, count]) => {
      const [caller, op] = JSON.parse(key);
      return { service: 's3', caller, operation: op, count };
    }),
  });
});
process.send?.({ port });
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
