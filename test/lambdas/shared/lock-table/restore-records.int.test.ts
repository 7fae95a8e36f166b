import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RestoreRecords } from '../../../../lambdas/shared/lock-table/restore-records.js';
import { LockTableClient } from '../../../../lambdas/shared/lock-table/table-client.js';
import { type LocalServices, startLocalServices } from '../../../../local/services.js';

describe('RestoreRecords on a local DynamoDB', () => {
  let services: LocalServices;
  let dir: string;
  let records: RestoreRecords;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'restore-records-test-'));
    services = await startLocalServices(dir, 'restore-records-test');
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: services.dynamoEndpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      }),
    );
    records = new RestoreRecords(new LockTableClient(ddb, services.lockTable));
  });

  afterAll(async () => {
    await services?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the watermarks of a group in batches of 100 keys: each archive marked for this target, and only those', async () => {
    // Prepare: 150 archives, every third one restored into the target, one of them into another target too.
    const keys = Array.from(
      { length: 150 },
      (_, i) => `archive/app/public.t/day=${String(i).padStart(3, '0')}.jsonl.gz`,
    );
    const marked = keys.filter((_, i) => i % 3 === 0);
    for (const [i, key] of marked.entries()) {
      await records.markRestored('app', 'public.r@1.2', key, {
        restoreId: 'r1',
        restoredAt: '2026-12-01T00:00:00.000Z',
        rows: i,
        written: { inserted: i, skipped: 0, overwritten: 0 },
      });
    }
    await records.markRestored('app', 'public.other@3.4', keys[1] ?? '', {
      restoreId: 'r0',
      restoredAt: '2026-12-01T00:00:00.000Z',
      rows: 1,
    });

    // Act
    const marks = await records.restoredMarks('app', 'public.r@1.2', keys);

    // Assess
    expect([...marks.keys()].sort()).toEqual(marked);
    expect(marks.get(marked[4] ?? '')).toMatchObject({ restoreId: 'r1', rows: 4, written: { inserted: 4 } });
  });
});
