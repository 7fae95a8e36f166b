import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import {
  LockStoreUnavailableError,
  StorageUnavailableError,
} from '../../../../lambdas/shared/errors/step-errors.js';
import { LockTableClient } from '../../../../lambdas/shared/lock-table/table-client.js';
import { AWS_REQUEST_TIMEOUTS, awsClients } from '../../../../lambdas/shared/runtime/deps.js';

/** An endpoint that accepts connections and reads requests but never answers: a stalled S3 or DynamoDB. */
async function silentEndpoint(): Promise<{ server: Server; url: string; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { server, url: `http://127.0.0.1:${address.port}`, sockets };
}

describe('AWS clients of the functions', () => {
  let endpoint: Awaited<ReturnType<typeof silentEndpoint>>;
  beforeAll(async () => {
    // The clients find region and credentials as in Lambda: from the environment.
    vi.stubEnv('AWS_REGION', 'eu-west-1');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
    endpoint = await silentEndpoint();
  });
  afterAll(() => {
    vi.unstubAllEnvs();
    for (const socket of endpoint.sockets) socket.destroy();
    endpoint.server.close();
  });

  it('bounds the wait to connect and the silence of a request', () => {
    // Assess: finite, and a silent socket is allowed far longer than a connection (a large object streams slowly).
    expect(AWS_REQUEST_TIMEOUTS.connectionTimeout).toBeGreaterThan(0);
    expect(AWS_REQUEST_TIMEOUTS.socketTimeout).toBeGreaterThan(AWS_REQUEST_TIMEOUTS.connectionTimeout);
    expect(AWS_REQUEST_TIMEOUTS.socketTimeout).toBeLessThanOrEqual(120_000);
  });

  it('fails an S3 request that gets no answer as StorageUnavailableError, after the SDK retries', async () => {
    // Prepare
    const { s3 } = awsClients({ s3: endpoint.url }, { connectionTimeout: 1_000, socketTimeout: 300 });
    const store = new ArchiveStore(s3, 'archive');
    const started = Date.now();

    // Act
    const head = store.head('audit/day=2026-01-01/a.jsonl.gz');

    // Assess: the step's Retry sees a named, transient error in seconds, not at Lambda's timeout.
    await expect(head).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(head).rejects.toThrow(/TimeoutError/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(endpoint.sockets.length).toBeGreaterThanOrEqual(2);
  });

  it('fails a DynamoDB request that gets no answer as LockStoreUnavailableError', async () => {
    // Prepare
    const { ddb } = awsClients({ dynamodb: endpoint.url }, { connectionTimeout: 1_000, socketTimeout: 300 });
    const table = new LockTableClient(ddb, 'locks');

    // Act
    const read = table.getItem({ pk: 'LEASE#db#t', sk: 'LEASE' });

    // Assess
    await expect(read).rejects.toBeInstanceOf(LockStoreUnavailableError);
  });
});
