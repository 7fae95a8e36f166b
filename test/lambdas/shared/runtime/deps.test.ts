import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import {
  LockStoreUnavailableError,
  StorageUnavailableError,
} from '../../../../lambdas/shared/errors/step-errors.js';
import { LockTableClient } from '../../../../lambdas/shared/lock-table/table-client.js';
import { awsClients, depsFromEnv, SDK_LOGGER_MIDDLEWARE } from '../../../../lambdas/shared/runtime/deps.js';

/** Short bounds, so a test sees them act in a second; the functions' own are AWS_REQUEST_TIMEOUTS. */
const TEST_TIMEOUTS = { connectionTimeout: 1_000, requestTimeout: 300 };

async function listening(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}`;
}

describe('AWS clients of the functions', () => {
  /** Accepts connections and reads requests but never answers: a stalled S3 or DynamoDB. */
  const sockets: Socket[] = [];
  const silent = createServer((socket) => {
    sockets.push(socket);
    socket.resume();
  });
  /** Answers every GET with half of its body at once and the rest a second later, three request timeouts on. */
  const body = Buffer.alloc(256 * 1024, 7);
  const slowBody = createHttpServer((_request, response) => {
    response.writeHead(200, { 'Content-Length': body.length, ETag: '"slow"' });
    response.write(body.subarray(0, body.length / 2));
    setTimeout(() => response.end(body.subarray(body.length / 2)), 1_000);
  });
  let silentUrl = '';
  let slowBodyUrl = '';

  beforeAll(async () => {
    // The clients find region and credentials as in Lambda: from the environment.
    vi.stubEnv('AWS_REGION', 'eu-west-1');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
    silentUrl = await listening(silent);
    slowBodyUrl = await listening(slowBody);
  });
  afterAll(() => {
    vi.unstubAllEnvs();
    for (const socket of sockets) socket.destroy();
    silent.close();
    slowBody.closeAllConnections();
    slowBody.close();
  });

  it('sends requests without the SDK logger middleware, which copies every input and output for a logger that drops them', () => {
    // Prepare
    const clients = awsClients({});

    // Act
    const stacks = Object.entries(clients).map(([name, client]) => ({
      name,
      middleware: client.middlewareStack.identify(),
    }));

    // Assess: the stacks are listed (the SDK's serializer is there), without the logger.
    for (const { name, middleware } of stacks) {
      expect(
        middleware.some((m: string) => m.startsWith('serializerMiddleware')),
        name,
      ).toBe(true);
      expect(
        middleware.filter((m: string) => m.startsWith(SDK_LOGGER_MIDDLEWARE)),
        name,
      ).toEqual([]);
    }
  });

  it('fails an S3 request that gets no answer as StorageUnavailableError, after the SDK retries', async () => {
    // Prepare
    const { s3 } = awsClients({ s3: silentUrl }, TEST_TIMEOUTS);
    const store = new ArchiveStore(s3, 'archive');
    const started = Date.now();

    // Act
    const head = store.head('audit/day=2026-01-01/a.jsonl.gz');

    // Assess: the step's Retry sees a named, transient error in seconds, not at Lambda's timeout.
    await expect(head).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(head).rejects.toThrow(/TimeoutError/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(sockets.length).toBeGreaterThanOrEqual(2);
    s3.destroy();
  });

  it('fails a DynamoDB request that gets no answer as LockStoreUnavailableError', async () => {
    // Prepare
    const { ddb } = awsClients({ dynamodb: silentUrl }, TEST_TIMEOUTS);
    const table = new LockTableClient(ddb, 'locks');

    // Act
    const read = table.getItem({ pk: 'LEASE#db#t', sk: 'LEASE' });

    // Assess
    await expect(read).rejects.toBeInstanceOf(LockStoreUnavailableError);
    ddb.destroy();
  });

  it('lets a body whose answer began go silent for longer than the bound: a reader may pause it (restore’s COPY)', async () => {
    // Prepare
    const { s3 } = awsClients({ s3: slowBodyUrl }, TEST_TIMEOUTS);
    const store = new ArchiveStore(s3, 'archive');

    // Act
    const opened = await store.open('audit/day=2026-01-01/a.jsonl.gz');
    const read = opened ? await buffer(opened.body) : undefined;

    // Assess: every byte, after a second of silence, three times the request timeout.
    expect(read?.equals(body)).toBe(true);
    s3.destroy();
  });
});

describe('step dependencies from the environment', () => {
  it('refuse a copy threshold that is not a whole number of bytes, naming the variable', () => {
    // Prepare: what the stack or local mode sets, with a typo in the threshold
    const env = {
      ARCHIVER_CONFIG_PATH: new URL('../../../../config/archiver.example.yaml', import.meta.url).pathname,
      LOCK_TABLE_NAME: 'locks',
      ARCHIVE_BUCKET: 'archive',
      AWS_REGION: 'eu-west-1',
    };

    // Act
    const typo = () => depsFromEnv({ ...env, ARCHIVER_COPY_IN_PARTS_ABOVE_BYTES: '10MB' });
    const bytes = depsFromEnv({ ...env, ARCHIVER_COPY_IN_PARTS_ABOVE_BYTES: '10485760' });

    // Assess
    expect(typo).toThrow(
      /^environment variable ARCHIVER_COPY_IN_PARTS_ABOVE_BYTES must be a whole number of bytes$/,
    );
    expect(bytes.store).toBeInstanceOf(ArchiveStore);
  });
});
