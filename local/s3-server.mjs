// Runs s3rver in its own process: it needs --openssl-legacy-provider (its list continuation tokens use DES,
// which current Node disables), and the flag must not weaken the archiver's own process.
// It exits when its parent goes away, so a killed local run never leaves a server behind.
// It counts the requests it answers by caller and S3 operation; the parent asks for them with { command: 'counts' },
// and for each request described with { command: 'requests' }.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, rmdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import S3rver from 's3rver';
import S3Error from 's3rver/lib/models/error.js';
import S3Object from 's3rver/lib/models/object.js';
import FilesystemStore from 's3rver/lib/stores/filesystem.js';
import { callerOf } from './request-caller.mjs';

/**
 * s3rver keeps each key as a file path, so a key segment longer than a file name may be (255 bytes) failed with
 * ENAMETOOLONG, answered as a 500: a table whose non-ASCII schema and table names, each within PostgreSQL's 63 bytes,
 * become 300 characters of percent-encoding in one segment could never be archived here, where S3 takes keys of up to
 * 1,024 bytes. A long segment is kept as several directories, each closed by a marker no key holds; a listing joins
 * them again. Room is left in each piece for s3rver's and this server's suffixes (`._S3rver_object.<uuid>.partial`).
 */
const SEGMENT_BYTES = 160;
const CONTINUED = '._S3rver_continued';
function splitSegment(segment) {
  if (Buffer.byteLength(segment) <= SEGMENT_BYTES) return segment;
  const pieces = [''];
  for (const character of segment) {
    const last = pieces.length - 1;
    if (Buffer.byteLength(pieces[last] + character) > SEGMENT_BYTES) pieces.push(character);
    else pieces[last] += character;
  }
  return pieces.join(`${CONTINUED}/`);
}
FilesystemStore.encodeKeyPath = (key) => key.split('/').map(splitSegment).join('/');
FilesystemStore.decodeKeyPath = (keyPath) => keyPath.replaceAll(`${CONTINUED}/`, '');

// Objects are archives of personal data: files only their owner reads, whatever the user's umask.
process.umask(0o077);
const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory,
  silent: true,
  configureBuckets: [{ name: bucket }],
});

/**
 * Writes a body to a temporary file beside its path, writes what describes it (`describe`: metadata and MD5), then
 * renames the bytes into place: s3rver's own store answered a PUT (and UploadPart) once it had handed the bytes to a
 * write stream, before they were on disk, and wrote the metadata after them, so a read right after a write could come
 * back short, and a server stopped mid-write left half an object. A new object appears whole, with its metadata, at
 * the rename, as in S3. Unlike S3, a read racing an overwrite can still see the new metadata with the old bytes, or a
 * mix: nothing here reads an object while it is being overwritten.
 */
async function writeWhole(path, content, describe) {
  const temporary = `${path}.${randomUUID()}.partial`;
  const file = await createInFolder(temporary);
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
    await pipeline(source, measure, createWriteStream(temporary, { fd: file }));
    // S3 dates an object (LastModified) by its own clock; s3rver reports the file's mtime, which the kernel sets by
    // the real clock even when this process's clock is moved (faketime, the suite at any hour).
    const now = new Date();
    await utimes(temporary, now, now);
    const written = { size, md5: md5.digest('hex') };
    await describe(written);
    await rename(temporary, path);
    return written;
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * Creates a new file and the folders it goes in. A delete of a folder's last object removes the folders it leaves
 * empty (store.deleteObject): one that does so while they are created, or before the file is, is outrun by creating
 * them again.
 */
async function createInFolder(path) {
  for (;;) {
    try {
      await mkdir(dirname(path), { recursive: true });
      return await open(path, 'wx');
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
  }
}

/** Writes a small file whole or not at all: a stopped server never leaves half a metadata file behind. */
async function writeFileWhole(path, content) {
  const temporary = `${path}.${randomUUID()}.partial`;
  try {
    await writeFile(temporary, content);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

const { store } = server;
store.putMetadata = async (bucket, key, metadata, md5) => {
  const json = Object.fromEntries(
    Object.entries(metadata).filter(
      ([name]) => S3Object.ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-'),
    ),
  );
  if (md5) await writeFileWhole(store.getResourcePath(bucket, key, 'object.md5'), md5);
  await writeFileWhole(store.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(json, null, 2));
};
store.putObject = (object) =>
  writeWhole(store.getResourcePath(object.bucket, object.key, 'object'), object.content, (written) =>
    store.putMetadata(object.bucket, object.key, object.metadata, written.md5),
  );
store.putPart = (bucket, uploadId, partNumber, content) => {
  const partPath = join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
  return writeWhole(partPath, content, (written) => writeFileWhole(`${partPath}.md5`, written.md5));
};
/**
 * Removes an object's files, then the folders that leaves empty. s3rver's own read each folder before removing it, so
 * two deletes in one folder at once (a DeleteObjects of a batch's staged objects, two uploads of one batch) failed
 * the later with a 500 once the earlier had removed the folder: S3 never fails a delete so. rmdir refuses a folder
 * that is not empty, whoever wrote in it meanwhile.
 */
store.deleteObject = async (bucket, key) => {
  await Promise.all(
    ['object', 'object.md5', 'metadata.json'].map((file) =>
      rm(store.getResourcePath(bucket, key, file), { force: true }),
    ),
  );
  const folders = key.split('/').slice(0, -1);
  for (let depth = folders.length; depth > 0; depth -= 1) {
    try {
      await rmdir(join(store.getBucketPath(bucket), ...folders.slice(0, depth)));
    } catch (error) {
      if (error.code === 'ENOTEMPTY' || error.code === 'EEXIST') return;
      if (error.code !== 'ENOENT') throw error;
    }
  }
};
// s3rver copies the bytes in place, then the metadata, and leaves the destination's old MD5 (its ETag) behind.
store.copyObject = async (sourceBucket, sourceKey, bucket, key, replacementMetadata) => {
  const source = store.getResourcePath(sourceBucket, sourceKey, 'object');
  const metadata =
    replacementMetadata ??
    JSON.parse(await readFile(store.getResourcePath(sourceBucket, sourceKey, 'metadata.json'), 'utf8'));
  if (source === store.getResourcePath(bucket, key, 'object')) {
    // A copy onto itself (a change of class or metadata) dates the object anew, as in S3.
    await store.putMetadata(bucket, key, metadata);
    const now = new Date();
    await utimes(source, now, now);
  } else
    await writeWhole(store.getResourcePath(bucket, key, 'object'), createReadStream(source), (written) =>
      store.putMetadata(bucket, key, metadata, written.md5),
    );
  return store.getMetadata(bucket, key);
};

/** S3 refuses a write to a key longer than 1,024 bytes (UTF-8); s3rver takes any a file path can hold. */
const S3_MAX_KEY_BYTES = 1024;
async function keyLength(ctx, next) {
  const [, bucketName, ...key] = ctx.path.split('/');
  const writes =
    ctx.method === 'PUT' || (ctx.method === 'POST' && ('uploads' in ctx.query || 'uploadId' in ctx.query));
  if (writes && bucketName && Buffer.byteLength(decodeURIComponent(key.join('/'))) > S3_MAX_KEY_BYTES)
    throw new S3Error('KeyTooLongError', 'Your key is too long');
  return next();
}

/**
 * Conditional writes (If-None-Match: *) on PutObject, CopyObject and CompleteMultipartUpload, which s3rver ignores:
 * S3 refuses such a write with 412 PreconditionFailed when the key exists, and the archiver's write-once objects
 * rely on it. Writes to one key are taken in turn, so two racing conditional writes cannot both find the key free.
 */
const writesByKey = new Map();
async function conditionalWrites(ctx, next) {
  // The path as s3rver's router matches it (not normalised as a URL would be), so both name the same key.
  const writesObject =
    (ctx.method === 'PUT' && !('uploadId' in ctx.query) && !('tagging' in ctx.query)) ||
    (ctx.method === 'POST' && 'uploadId' in ctx.query);
  const [, bucketName, ...key] = ctx.path.split('/');
  if (ctx.get('if-none-match') !== '*' || !writesObject || !bucketName || key.length === 0) return next();
  const bucket = decodeURIComponent(bucketName);
  const objectKey = decodeURIComponent(key.join('/'));
  const id = `${bucket}/${objectKey}`;
  const before = writesByKey.get(id) ?? Promise.resolve();
  let release;
  const done = new Promise((resolve) => (release = resolve));
  const mine = before.then(() => done);
  writesByKey.set(id, mine);
  await before;
  try {
    if (await store.existsObject(bucket, objectKey))
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
/**
 * The copy source as S3 reads it, and x-amz-copy-source-if-match, which s3rver ignores. S3 URL-decodes every segment
 * of x-amz-copy-source; s3rver applies decodeURI, which leaves reserved characters (`+ $ , : @ & ; = ? #`) encoded, so
 * the header is handed on in the form decodeURI turns into the same key. S3 refuses a copy with 412
 * PreconditionFailed when the source's ETag is another (quotes aside); a missing source stays s3rver's 404. Upload
 * copies only the staged object export wrote, by this condition.
 */
async function copySourceConditions(ctx, next) {
  const header = ctx.get('x-amz-copy-source');
  if (ctx.method !== 'PUT' || !header) return next();
  const [sourceBucket, ...sourceKey] = header
    .replace(/^\//, '')
    .split('/')
    .map((segment) => decodeURIComponent(segment));
  ctx.request.headers['x-amz-copy-source'] = [sourceBucket, ...sourceKey].map(encodeURI).join('/');
  const expected = ctx.get('x-amz-copy-source-if-match');
  if (!expected) return next();
  const metadata = await store.getMetadata(sourceBucket, sourceKey.join('/')).catch(() => undefined);
  const unquoted = (etag) => etag.replaceAll('"', '');
  if (metadata && unquoted(metadata.etag) !== unquoted(expected))
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
      Condition: 'x-amz-copy-source-If-Match',
    });
  return next();
}

/**
 * Cold storage as S3 has it: an object whose class is GLACIER or DEEP_ARCHIVE (written so, or copied onto itself with
 * that class, which is what a lifecycle transition amounts to here) is listed in its class, and a GET of it is refused
 * (403 InvalidObjectState) until RestoreObject (POST ?restore) restored it; HEAD answers with its class and restore
 * status. s3rver lists every object as STANDARD and knows no restore. A restore completes at once here, and its copy
 * never expires.
 */
const COLD_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);
S3Object.ALLOWED_METADATA.push('x-amz-restore');
const restored = (restore) => /ongoing-request="false"/.test(restore ?? '');
async function coldStorage(ctx, next) {
  const [, bucketName, ...key] = ctx.path.split('/');
  if (ctx.method === 'POST' && 'restore' in ctx.query && bucketName && key.length > 0) {
    const bucket = decodeURIComponent(bucketName);
    const objectKey = decodeURIComponent(key.join('/'));
    const metadata = await store.getMetadata(bucket, objectKey).catch(() => undefined);
    if (!metadata) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: objectKey });
    if (!COLD_CLASSES.has(metadata['x-amz-storage-class']))
      throw new S3Error(
        'InvalidObjectState',
        "Restore is not allowed for the object's current storage class",
      );
    const already = restored(metadata['x-amz-restore']);
    const expiry = new Date(Date.now() + 100 * 365 * 86_400_000).toUTCString();
    await store.putMetadata(bucket, objectKey, {
      ...metadata,
      'x-amz-restore': `ongoing-request="false", expiry-date="${expiry}"`,
    });
    ctx.status = already ? 200 : 202;
    return;
  }
  await next();
  if (ctx.method !== 'GET' || ctx.status >= 300) return;
  const storageClass = ctx.response.get('x-amz-storage-class');
  if (!COLD_CLASSES.has(storageClass) || restored(ctx.response.get('x-amz-restore'))) return;
  ctx.body?.destroy?.();
  throw new S3Error('InvalidObjectState', "The operation is not valid for the object's storage class", {
    StorageClass: storageClass,
  });
}

/** Each listed object's class, by bucket and key, as the store read it with the listing (see listedInClass). */
const listedClasses = new Map();
const listObjects = store.listObjects.bind(store);
store.listObjects = async (bucketName, options) => {
  const result = await listObjects(bucketName, options);
  for (const object of result.objects) {
    const storageClass = object.metadata['x-amz-storage-class'];
    if (storageClass && storageClass !== 'STANDARD')
      listedClasses.set(`${bucketName}/${object.key}`, storageClass);
    else listedClasses.delete(`${bucketName}/${object.key}`);
  }
  return result;
};
/** Runs right before s3rver's routes: a listing's entries carry each object's class, not STANDARD for all. */
async function listedInClass(ctx, next) {
  await next();
  const listing = ctx.body?.ListBucketResult;
  if (!listing?.Contents) return;
  const bucketName = decodeURIComponent(ctx.path.split('/')[1] ?? '');
  for (const entry of listing.Contents) {
    entry.StorageClass = listedClasses.get(`${bucketName}/${entry.Key}`) ?? entry.StorageClass;
  }
}

/**
 * Requests being answered: when the parent goes away (a killed local run), the server finishes them before it exits,
 * so no object is left half written; S3 never shows half an object.
 */
let answering = 0;
async function counted(_ctx, next) {
  answering += 1;
  try {
    await next();
  } finally {
    answering -= 1;
  }
}
async function exitWhenIdle() {
  for (let waited = 0; answering > 0 && waited < 30_000; waited += 10) await sleep(10);
  process.exit(0);
}

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
      if (query('restore')) return 'RestoreObject';
      return query('uploads') ? 'CreateMultipartUpload' : 'CompleteMultipartUpload';
    case 'DELETE':
      return query('uploadId') ? 'AbortMultipartUpload' : hasKey ? 'DeleteObject' : 'DeleteBucket';
    default:
      return `${request.method} ${hasKey ? 'object' : 'bucket'}`;
  }
}

/**
 * What a request touched, as IAM authorizes it: the object key (a DeleteObjects request's keys, as s3rver parsed its
 * body), the copy source, the listing prefix, the version asked for, and the status it got (a missing key's 404
 * needs ListBucket). Kept for local mode's check of each function's requests against its role.
 */
const requests = [];
async function logged(ctx, next) {
  const request = ctx.req;
  const url = new URL(request.url ?? '/', 'http://local');
  const [, , ...key] = url.pathname.split('/');
  const source = request.headers['x-amz-copy-source'];
  const entry = {
    caller: callerOf(request.headers),
    operation: operation(request),
    ...(key.length > 0 ? { key: decodeURIComponent(key.join('/')) } : {}),
    ...(source
      ? {
          sourceKey: decodeURIComponent(String(source).replace(/^\//, '').split('?')[0])
            .split('/')
            .slice(1)
            .join('/'),
        }
      : {}),
    ...(url.searchParams.has('prefix') ? { prefix: url.searchParams.get('prefix') } : {}),
    ...(url.searchParams.has('versionId') ? { versionId: url.searchParams.get('versionId') } : {}),
  };
  ctx.res.on('finish', () => requests.push({ ...entry, status: ctx.res.statusCode }));
  try {
    await next();
  } finally {
    if (entry.operation === 'DeleteObjects') {
      entry.keys = [].concat(ctx.request.body?.Delete?.Object ?? []).map((object) => String(object.Key));
    }
  }
}

// First of all middleware (Koa composes it when the server starts): counted, then checked, then written.
server.middleware.unshift(counted, logged, keyLength, conditionalWrites, copySourceConditions, coldStorage);
server.middleware.splice(server.middleware.length - 1, 0, listedInClass);

const { port } = await server.run();

const counts = new Map();
server.httpServer.on('request', (request) => {
  const key = JSON.stringify([callerOf(request.headers), operation(request)]);
  counts.set(key, (counts.get(key) ?? 0) + 1);
});
process.on('message', (message) => {
  if (message?.command === 'requests') {
    process.send?.({ requests });
    return;
  }
  if (message?.command !== 'counts') return;
  process.send?.({
    counts: [...counts].map(([key, count]) => {
      const [caller, op] = JSON.parse(key);
      return { service: 's3', caller, operation: op, count };
    }),
  });
});
process.send?.({ port });
process.on('disconnect', () => void exitWhenIdle());
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
