// Runs s3rver in its own process: it needs --openssl-legacy-provider (its list continuation tokens use DES,
// which current Node disables), and the flag must not weaken the archiver's own process.
// It exits when its parent goes away, so a killed local run never leaves a server behind.
// It counts the requests it answers by caller and S3 operation; the parent asks for them with { command: 'counts' }.
import S3rver from 's3rver';
import { callerOf } from './request-caller.mjs';

const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory,
  silent: true,
  configureBuckets: [{ name: bucket }],
});
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
