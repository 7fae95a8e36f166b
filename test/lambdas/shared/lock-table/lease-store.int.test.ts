import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { largestObject, RecordRoom } from '../../../../lambdas/shared/batch/batch-objects.js';
import { LeaseLostError } from '../../../../lambdas/shared/errors/step-errors.js';
import { LeaseStore } from '../../../../lambdas/shared/lock-table/lease-store.js';
import { LockTableClient } from '../../../../lambdas/shared/lock-table/table-client.js';
import type { InFlight } from '../../../../lambdas/shared/lock-table/table-state.js';
import { type LocalServices, startLocalServices } from '../../../../local/services.js';
import { localLockTable } from '../../../support/fixtures.js';
import { recordProof } from '../../../support/proof-ledger.js';

const batch = (stage: InFlight['stage']): InFlight => ({
  stage,
  batchId: 'b1',
  runId: 'r1',
  cutoff: '2024-02-01T00:00:00.000Z',
  objects: [
    {
      day: '2024-01-01',
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
    },
  ],
});

describe('LeaseStore on a local DynamoDB', () => {
  let clock = 1_700_000_000_000;
  const local = localLockTable('locks-test', () => clock);
  let locks: LeaseStore;

  beforeAll(() => {
    locks = new LeaseStore(local.lockTable);
  });

  it('holds every object the record’s room took, each at its largest, beside the widest columns; a few more do not fit', async () => {
    // Prepare: 1,600 columns, the last archive's too, and keys of 2,600 characters: the room runs out before 100.
    const columns = Array.from({ length: 1600 }, (_, i) => ({
      name: String(i).padStart(20, 'c'),
      type: 'timestamp(6) with time zone',
      nullable: true,
      generated: false,
    }));
    const location = { prefix: 'archive/', database: 'app', schema: 'public', table: 'full' };
    const keyed = (i: number) => ({
      day: `2024-01-${String((i % 28) + 1).padStart(2, '0')}`,
      bounds: {
        from: '2024-01-01T00:00:00.000Z',
        to: '2024-01-02T00:00:00.000Z',
        firstKey: [`${i}`.padEnd(2600, 'a')],
        lastKey: [`${i}`.padEnd(2600, 'z')],
      },
    });
    const acquired = await locks.acquire('db', 'public.full', 'exec-1', 60);
    if (!acquired.acquired) throw new Error('not acquired');
    const { lease } = acquired;
    await locks.setInFlight('db', 'public.full', lease, 60, { ...batch('verified'), columns }, 'none');
    await locks.clearInFlight(
      'db',
      'public.full',
      lease,
      { ...batch('verified'), columns },
      { rows: 9, bytes: 40 },
    );
    const room = new RecordRoom(columns, [columns], undefined);
    const objects = [];
    while (room.take(location, 'day', keyed(objects.length))) {
      const { day, bounds } = keyed(objects.length);
      objects.push(largestObject(location, 'day', day, bounds));
    }
    const full: InFlight = {
      ...batch('deleting'),
      batchId: 'b2',
      objects,
      versionDigest: 'f'.repeat(16),
      deleteXid: '18446744073709551615',
      deleteServer: '7300000000000000000:4294967295',
      columns,
      exportedAt: clock,
      busySessions: 1_000_000,
      manifest: {
        formatVersion: 1,
        tool: { name: 'audit-archiver', version: '0.1.0' },
        database: location.database,
        schema: location.schema,
        table: location.table,
        keyColumns: ['id'],
        timestampColumn: 'created_at',
        timestampType: 'timestamptz',
        timestampTimeZone: 'UTC',
        compression: { format: 'gzip', level: 6 },
        encoding: 'jsonl-pg-text',
        exportedAt: new Date(clock).toISOString(),
      },
    };
    const extra = Array.from({ length: 4 }, (_, i) => {
      const { day, bounds } = keyed(objects.length + i);
      return largestObject(location, 'day', day, bounds);
    });

    // Act
    await locks.setInFlight('db', 'public.full', lease, 60, full, 'none');
    const overfull = await locks
      .setInFlight(
        'db',
        'public.full',
        lease,
        60,
        { ...full, objects: [...objects, ...extra] },
        { unchanged: full },
      )
      .then(
        () => undefined,
        (error: unknown) => error,
      );

    // Assess
    expect(objects.length).toBeGreaterThan(1);
    expect(objects.length).toBeLessThan(100);
    expect((await locks.get('db', 'public.full')).inFlight?.objects).toHaveLength(objects.length);
    expect(String(overfull)).toMatch(/Item size .* exceeded/);
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
    // Another batch while one is in flight (writing the very same record again is a retry, and accepted).
    await expect(
      locks.setInFlight('db', 't4', lease, 60, { ...batch('exported'), batchId: 'b2' }, 'none'),
    ).rejects.toThrow(LeaseLostError);
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

  it('reads a batch an earlier version left in flight (one object, its fields at the top level) as a batch of one', async () => {
    // Prepare: the record as the earlier version wrote it, next to the lease it was written under.
    const acquired = await locks.acquire('db', 't9', 'exec-A', 60);
    if (!acquired.acquired) throw new Error('setup');
    const { objects, ...batchFields } = batch('verified');
    const [object] = objects;
    const earlier = { ...batchFields, ...object };
    await local.ddb.send(
      new UpdateCommand({
        TableName: local.services.lockTable,
        Key: LeaseStore.stateKey('db', 't9'),
        UpdateExpression: 'SET inFlight = :inFlight',
        ExpressionAttributeValues: { ':inFlight': earlier },
      }),
    );

    // Act
    const { inFlight } = await locks.get('db', 't9');
    await locks.setInFlight(
      'db',
      't9',
      acquired.lease,
      60,
      { ...batch('deleting'), deleteXid: '7' },
      {
        unchanged: batch('verified'),
      },
    );

    // Assess: the same batch, and the conditions on its top-level fields still hold for the record as written.
    expect(inFlight).toEqual(batch('verified'));
    expect((await locks.get('db', 't9')).inFlight).toMatchObject({
      stage: 'deleting',
      deleteXid: '7',
      objects,
    });
  });
});

describe('LeaseStore when DynamoDB applied a write but its response was lost', () => {
  let services: LocalServices;
  let dir: string;
  let locks: LeaseStore;
  const lost: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'locks-lost-'));
    services = await startLocalServices(dir, 'locks-lost');
    const client = new DynamoDBClient({
      endpoint: services.dynamoEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    // The real client against dynalite, with the first response to every conditional write dropped after the write
    // was applied: the SDK sees a connection reset and sends the same request again, whose condition now fails.
    const seen = new Set<string>();
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        const input = args.input as { ConditionExpression?: string };
        const request = JSON.stringify(args.input);
        if (context.commandName === 'UpdateItemCommand' && input.ConditionExpression && !seen.has(request)) {
          seen.add(request);
          lost.push(input.ConditionExpression);
          throw Object.assign(new Error('socket hang up after the write'), { code: 'ECONNRESET' });
        }
        return result;
      },
      { step: 'deserialize', name: 'loseFirstResponse' },
    );
    locks = new LeaseStore(
      new LockTableClient(
        DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
        services.lockTable,
      ),
    );
  });

  afterAll(async () => {
    await services?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('recognises its own write in the retried request: the batch moves on, is counted once, the lease released', async () => {
    // Prepare
    const acquired = await locks.acquire('db', 'public.lost', 'exec-1', 1200);
    if (!acquired.acquired) throw new Error('not acquired');
    const { lease } = acquired;

    // Act
    await locks.setInFlight('db', 'public.lost', lease, 1200, batch('exported'), 'none');
    await locks.setInFlight('db', 'public.lost', lease, 1200, batch('uploaded'), ['exported']);
    await locks.setInFlight('db', 'public.lost', lease, 1200, batch('verified'), ['uploaded', 'verified']);
    await locks.clearInFlight('db', 'public.lost', lease, batch('verified'), { rows: 9, bytes: 40 });
    const released = await locks.release('db', 'public.lost', lease);

    // Assess: every write lost its first response, and each was recognised, not taken for a lost lease.
    const state = await locks.get('db', 'public.lost');
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'SDK retry of a conditional write that was applied',
      held: released && state.totalBatches === 1 && state.inFlight === undefined,
    });
    expect(lost.length).toBeGreaterThanOrEqual(5);
    expect(released).toBe(true);
    expect(state).toMatchObject({ owner: undefined, inFlight: undefined, totalBatches: 1, totalRows: 9 });
  });
});
