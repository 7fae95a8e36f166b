import { gunzipSync } from 'node:zlib';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { depsFromEnv } from '../../lambdas/shared/runtime/deps.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  compareRows,
  createTestDatabase,
  getObject,
  listKeys,
  openTestEnvironment,
  resolvedTable,
  seedEvents,
  type TestDatabase,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };
const table = resolvedTable(spec);
const SECOND_LOCK_TABLE = 'second-deployment-locks';

/**
 * The stack deployed twice against one database and one bucket and prefix (two lock tables): each deployment's
 * inventory knows only its own commits.
 */
describe('two deployments archiving one table into one bucket and prefix', () => {
  let db: TestDatabase;
  let env: Awaited<ReturnType<typeof openTestEnvironment>>;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 40, 60);
    env = await openTestEnvironment(db, [spec]);
    const client = new DynamoDBClient({ endpoint: env.local.services.dynamoEndpoint });
    await client.send(
      new CreateTableCommand({
        TableName: SECOND_LOCK_TABLE,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
    client.destroy();
  });
  afterAll(async () => {
    await env?.close();
    await db?.drop();
  });

  /** Every row of every data object in the bucket that has its manifest, whichever deployment committed it. */
  async function rowsInBucket(): Promise<string[]> {
    const keys = await listKeys(env.local, env.local.config.s3.prefix);
    const lines: string[] = [];
    for (const key of keys.filter((k) => k.endsWith('.jsonl.gz') && !k.includes('/_staging/'))) {
      const text = gunzipSync(await getObject(env.local, key)).toString('utf8');
      lines.push(...text.split('\n').filter((line) => line.length > 0));
    }
    return lines;
  }

  it("refuses to adopt the other deployment's archive: its withdrawal cannot remove a committed archive, no row lost", async () => {
    // Prepare: deployment A has uploaded and verified its batch; before its delete, deployment B archives the same
    // rows (same content, so the same archive key, where A's object already is)
    const original = await tableLines(db.client, table);
    let second: Awaited<ReturnType<typeof runLocalArchive>> | undefined;
    const fault = async (point: FaultPoint) => {
      if (point !== 'verify:afterRead' || second) return;
      second = await runLocalArchive(
        env.local,
        { tables: ['public.events'] },
        { env: { LOCK_TABLE_NAME: SECOND_LOCK_TABLE }, retryIntervalScale: 0 },
      );
    };

    // Act
    const first = await runLocalArchive(
      env.local,
      { tables: ['public.events'] },
      { fault, retryIntervalScale: 0 },
    );

    // Assess: B stops at its upload, naming A's lock table, and deletes nothing; A commits its batch; every row is
    // in the table or in an archive in the bucket
    const secondDeps = depsFromEnv({ ...env.local.env, LOCK_TABLE_NAME: SECOND_LOCK_TABLE });
    const [refused] = await secondDeps.runRecords.listOutcomes(second?.execution.executionName ?? '');
    expect(refused).toMatchObject({ status: 'failed', rowsArchived: 0 });
    expect(refused?.error).toMatch(/ConfigError.*lock table is audit-archiver-locks.*two deployments/s);
    expect(first.outcomes).toMatchObject([{ status: 'succeeded', batches: 1 }]);
    expect(first.outcomes[0]?.withdrawnBatches).toBeUndefined();
    const remaining = await tableLines(db.client, table);
    const { lost, doubled } = compareRows(original, [...remaining, ...(await rowsInBucket())]);
    recordProof({ kind: 'invariant', rows: original.length, lost, doubled });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'two deployments (two lock tables) archive one table into one bucket and prefix',
      held: lost === 0 && doubled === 0,
    });
    expect(remaining.length).toBeLessThan(original.length);
    expect({ lost, doubled }).toEqual({ lost: 0, doubled: 0 });
  });
});
