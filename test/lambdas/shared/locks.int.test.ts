import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseLostError } from '../../../lambdas/shared/errors.js';
import { type InFlight, LockTable } from '../../../lambdas/shared/locks.js';
import { type LocalServices, startLocalServices } from '../../../local/services.js';

const batch = (stage: InFlight['stage']): InFlight => ({
  stage,
  batchId: 'b1',
  runId: 'r1',
  day: '2024-01-01',
  cutoff: '2024-02-01T00:00:00.000Z',
  stagingKey: 's',
  archiveKey: 'a',
  bounds: {
    from: '2024-01-01T00:00:00.000Z',
    to: '2024-01-02T00:00:00.000Z',
    firstKey: ['1'],
    lastKey: ['9'],
  },
  figures: {
    rowCount: 9,
    contentSha256: 'a'.repeat(64),
    compressedSha256: 'b'.repeat(64),
    uncompressedBytes: 90,
    compressedBytes: 40,
    rowDigest: 'c'.repeat(32),
  },
});

describe('LockTable on a local DynamoDB', () => {
  let services: LocalServices;
  let dir: string;
  let clock = 1_700_000_000_000;
  let locks: LockTable;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'locks-test-'));
    services = await startLocalServices(dir, 'locks-test');
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: services.dynamoEndpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      }),
      { marshallOptions: { removeUndefinedValues: true } },
    );
    locks = new LockTable(ddb, services.lockTable, () => clock);
  });

  afterAll(async () => {
    await services?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('grants the lease to one owner and reports the holder to the next', async () => {
    // Act
    const first = await locks.acquire('db', 't1', 'exec-A', 60);
    const second = await locks.acquire('db', 't1', 'exec-B', 60);

    // Assess
    expect(first).toMatchObject({ acquired: true, lease: { owner: 'exec-A', token: 1 } });
    expect(second).toEqual({ acquired: false, holder: 'exec-A', expiresAt: clock + 60_000 });
  });

  it('lets a new owner take over an expired lease, with a higher fencing token, and fences the old one out', async () => {
    // Prepare
    const old = await locks.acquire('db', 't2', 'exec-A', 60);
    if (!old.acquired) throw new Error('setup');
    await locks.setInFlight('db', 't2', old.lease, 60, batch('exported'), 'none');
    clock += 61_000;

    // Act
    const takeover = await locks.acquire('db', 't2', 'exec-B', 60);

    // Assess
    expect(takeover).toMatchObject({ acquired: true, lease: { owner: 'exec-B', token: 2 } });
    await expect(
      locks.setInFlight('db', 't2', old.lease, 60, batch('uploaded'), ['exported']),
    ).rejects.toThrow(LeaseLostError);
    await expect(locks.clearInFlight('db', 't2', old.lease, batch('exported'))).rejects.toThrow(
      /no longer held by this execution/,
    );
    expect(await locks.release('db', 't2', old.lease)).toBe(false);
    expect((await locks.get('db', 't2')).owner).toBe('exec-B');
  });

  it('refuses a step whose own lease expired even if nobody took it over', async () => {
    // Prepare
    const lease = await locks.acquire('db', 't3', 'exec-A', 60);
    if (!lease.acquired) throw new Error('setup');
    clock += 61_000;

    // Act / Assess
    await expect(locks.setInFlight('db', 't3', lease.lease, 60, batch('exported'), 'none')).rejects.toThrow(
      /expired/,
    );
  });

  it('guards in-flight stages and adds committed batches to the totals', async () => {
    // Prepare
    const acquired = await locks.acquire('db', 't4', 'exec-A', 60);
    if (!acquired.acquired) throw new Error('setup');
    const { lease } = acquired;
    await locks.setInFlight('db', 't4', lease, 60, batch('exported'), 'none');

    // Act / Assess
    await expect(locks.setInFlight('db', 't4', lease, 60, batch('exported'), 'none')).rejects.toThrow(
      LeaseLostError,
    );
    await expect(locks.setInFlight('db', 't4', lease, 60, batch('deleting'), ['verified'])).rejects.toThrow(
      /changed under this execution/,
    );
    await locks.clearInFlight('db', 't4', lease, batch('exported'), { rows: 9, bytes: 40 });
    expect(await locks.get('db', 't4')).toMatchObject({
      inFlight: undefined,
      totalRows: 9,
      totalBytes: 40,
      totalBatches: 1,
    });
    expect(await locks.release('db', 't4', lease)).toBe(true);
    expect((await locks.acquire('db', 't4', 'exec-C', 60)).acquired).toBe(true);
  });
});
