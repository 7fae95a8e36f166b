import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { depsFromEnv } from '../../lambdas/shared/runtime/deps.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { uploadBatch } from '../../lambdas/upload/core.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { ensureLockTable } from '../../local/services.js';
import { batchThrough } from '../support/batch-stages.js';
import {
  assertNoLossNoDuplicates,
  createTestDatabase,
  openTestEnvironment,
  resolvedTable,
  seedEvents,
  type TestDatabase,
  tableLines,
} from '../support/fixtures.js';

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };
const inFlightSpec = { schema: 'public', name: 'in_flight', timestampColumn: 'created_at' };
const table = resolvedTable(spec);
const RESTORED_LOCK_TABLE = 'audit-archiver-locks-restored';
const fast = { retryIntervalScale: 0 };

/**
 * DynamoDB restores a table (point-in-time recovery, a backup) only under a new name: the deployment then runs on a
 * copy of its own lock table, every lease, inventory entry and commit in it, under another name.
 */
describe('the lock table restored under a new name', () => {
  let db: TestDatabase;
  let env: Awaited<ReturnType<typeof openTestEnvironment>>;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 40, 60);
    await seedEvents(db.client, 'in_flight', 40);
    env = await openTestEnvironment(db, [spec, inFlightSpec]);
  });
  afterAll(async () => {
    await env?.close();
    await db?.drop();
  });

  /** Copies every item of the deployment's lock table into a new table, as a restore does. */
  async function restoreLockTableAs(name: string): Promise<void> {
    const client = new DynamoDBClient({ endpoint: env.local.services.dynamoEndpoint });
    const ddb = DynamoDBDocumentClient.from(client);
    try {
      await ensureLockTable(env.local.services.dynamoEndpoint, name);
      let start: Record<string, unknown> | undefined;
      do {
        const page = await ddb.send(
          new ScanCommand({ TableName: env.local.services.lockTable, ExclusiveStartKey: start }),
        );
        for (const item of page.Items ?? []) await ddb.send(new PutCommand({ TableName: name, Item: item }));
        start = page.LastEvaluatedKey;
      } while (start);
    } finally {
      ddb.destroy();
    }
  }

  it('archives again the rows restored into the table, whose archives its own inventory lists as committed', async () => {
    // Prepare: archive, restore every row into the table, then the lock table restored under a new name.
    const original = await tableLines(db.client, table);
    expect((await runLocalArchive(env.local, { tables: ['public.events'] }, fast)).execution.status).toBe(
      'SUCCEEDED',
    );
    const back = await runLocalRestore(env.local, { database: 'app', table: 'public.events' }, fast);
    expect(back.execution.status).toBe('SUCCEEDED');
    await restoreLockTableAs(RESTORED_LOCK_TABLE);

    // Act
    const again = await runLocalArchive(
      env.local,
      { tables: ['public.events'] },
      { ...fast, env: { LOCK_TABLE_NAME: RESTORED_LOCK_TABLE } },
    );

    // Assess: the table goes on, not refused as another deployment's; every row in one archive once.
    const deps = depsFromEnv({ ...env.local.env, LOCK_TABLE_NAME: RESTORED_LOCK_TABLE });
    const outcomes = await deps.runRecords.listOutcomes(again.execution.executionName);
    expect(outcomes.map((o) => `${o.status} ${o.error ?? ''}`.trim())).toEqual(['succeeded']);
    await assertNoLossNoDuplicates(env.local, db.client, table, original);
  });

  it('completes the upload of its batch in flight whose objects it copied under the earlier name', async () => {
    // Prepare: an upload crashed after its copies; then the lock table restored under a new name.
    const crashAfterCopy = (point: FaultPoint) => {
      if (point === 'upload:afterCopy') throw new Error('crashed after the copy');
    };
    const { task, inFlight } = await batchThrough(env.local.deps(), 'public.in_flight', 'exported');
    await expect(uploadBatch(task, env.local.deps(crashAfterCopy))).rejects.toThrow(/crashed after the copy/);
    const name = `${RESTORED_LOCK_TABLE}-2`;
    await restoreLockTableAs(name);

    // Act
    const deps = depsFromEnv({ ...env.local.env, LOCK_TABLE_NAME: name });
    const retried = await uploadBatch(task, deps);

    // Assess: the batch's own objects are recognised as its own, whatever lock table they name.
    expect(retried.objects).toBe(inFlight.objects.length);
    expect(retried.created).toBe(inFlight.objects.length);
    expect((await deps.locks.get('app', 'public.in_flight')).inFlight).toMatchObject({ stage: 'uploaded' });
  });
});
