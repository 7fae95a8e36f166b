import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseStore } from '../../lambdas/shared/lock-table/lease-store.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { type LocalEnvironment, openLocalEnvironment, runLocalArchive } from '../../local/run.js';
import {
  assertNoLossNoDuplicates,
  createTestDatabase,
  resolvedTable,
  seedEvents,
  type TableSpec,
  type TestDatabase,
  tableLines,
  writeTestConfig,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/** The identity of a server the delete's transaction id means nothing on: a failover, or a restored cluster. */
const OTHER_SERVER = { ':other': '0000000000000000000:1' };

/**
 * The operator changes how the config reads a table (its key, its timestamp zone) while a batch is in flight: a run
 * crashed between verify and the delete's commit. The batch's bounds are values of its old key and its windows
 * instants of its old zone; read through the new ones they select other rows, none, or fail to cast. The next run
 * must settle and take the batch back by what it was, then archive every row once under the new reading.
 */
describe('a config change while a batch is in flight', () => {
  let db: TestDatabase;
  const cleanups: (() => void)[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'keyed', 600);
    await db.client.query(`ALTER TABLE keyed ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid()`);
    await db.client.query(`CREATE UNIQUE INDEX ON keyed (uid)`);
    for (const name of ['rekeyed', 'unrecorded']) {
      await seedEvents(db.client, name, 600);
      await db.client.query(
        `ALTER TABLE ${name} ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE`,
      );
    }
    await db.client.query(
      `CREATE TABLE zoned (id bigserial PRIMARY KEY, created_at timestamp without time zone NOT NULL, actor text NOT NULL)`,
    );
    // One row an hour over 60 days, in the zone's wall-clock time.
    await db.client.query(
      `INSERT INTO zoned (created_at, actor)
       SELECT (pg_catalog.date_trunc('day', pg_catalog.now() AT TIME ZONE 'UTC') - make_interval(hours => g)), 'u' || g
         FROM generate_series(1, 1440) AS g`,
    );
  });
  afterAll(async () => {
    for (const cleanup of cleanups) cleanup();
    await db?.drop();
  });

  /** Local mode on one state dir, with the config a test gives it now (each version its own file). */
  async function openWith(
    spec: TableSpec,
    stateDir?: string,
  ): Promise<{ local: LocalEnvironment; stateDir: string }> {
    const files = writeTestConfig(db, [spec], { defaults: { batchSize: 150 } });
    cleanups.push(files.cleanup);
    const dir = stateDir ?? join(files.dir, 'state');
    return { local: await openLocalEnvironment(files.configPath, dir), stateDir: dir };
  }

  /** Rewrites the table's lease item as a failover (another server) or an earlier version's record would have it. */
  async function rewriteRecord(
    local: LocalEnvironment,
    table: string,
    update: string,
    values?: Record<string, unknown>,
  ): Promise<void> {
    const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: local.services.dynamoEndpoint }));
    await ddb.send(
      new UpdateCommand({
        TableName: local.services.lockTable,
        Key: LeaseStore.stateKey('app', table),
        UpdateExpression: update,
        ExpressionAttributeValues: values,
      }),
    );
    ddb.destroy();
  }

  function crashOnce(point: FaultPoint) {
    let fired = false;
    return {
      fired: () => fired,
      fault: async (reached: FaultPoint) => {
        if (reached !== point || fired) return;
        fired = true;
        throw new Error(`injected crash at ${reached}`);
      },
    };
  }

  it('keyColumns now a key of another type (bigint to uuid): the verified batch is taken back, every row archived once', async () => {
    // Prepare: a run crashes inside the delete transaction (rolled back), leaving a verified batch keyed by id.
    const spec = { schema: 'public', name: 'keyed', timestampColumn: 'created_at' };
    const table = resolvedTable(spec);
    const original = await tableLines(db.client, table);
    const { local: first, stateDir } = await openWith({ ...spec, keyColumns: ['id'] });
    const crash = crashOnce('delete:betweenObjects');
    await runLocalArchive(first, { tables: ['public.keyed'] }, { fault: crash.fault, retryIntervalScale: 0 });
    const stage = (await first.deps().locks.get('app', 'public.keyed')).inFlight?.stage;
    await first.close();

    // Act: the config now names the uuid key.
    const { local: second } = await openWith({ ...spec, keyColumns: ['uid'] }, stateDir);
    const run = await runLocalArchive(second, { tables: ['public.keyed'] }, { retryIntervalScale: 0 });

    // Assess
    const counts = await assertNoLossNoDuplicates(second, db.client, table, original).catch(
      (error: Error) => error,
    );
    await second.close();
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'changes keyColumns to a key of another type while a verified batch is in flight',
      held: run.execution.status === 'SUCCEEDED' && !(counts instanceof Error),
    });
    expect(crash.fired()).toBe(true);
    expect(stage).toBe('verified');
    expect(run.execution.status).toBe('SUCCEEDED');
    if (counts instanceof Error) throw counts;
    expect(counts.inArchives).toBeGreaterThan(0);
  });

  it('timestampTimeZone changed while a delete is unknown to the server: settled by the batch’s own windows, never counted as committed', async () => {
    // Prepare: a run stops before its delete commits; the server then cannot tell (a failover or a restored
    // cluster: another server identity), so the rows decide whether it committed.
    const spec = { schema: 'public', name: 'zoned', timestampColumn: 'created_at' };
    const table = resolvedTable(spec);
    const original = await tableLines(db.client, table);
    const { local: first, stateDir } = await openWith({ ...spec, timestampTimeZone: 'UTC' });
    const crash = crashOnce('delete:beforeCommit');
    await runLocalArchive(first, { tables: ['public.zoned'] }, { fault: crash.fault, retryIntervalScale: 0 });
    const stage = (await first.deps().locks.get('app', 'public.zoned')).inFlight?.stage;
    await rewriteRecord(first, 'public.zoned', 'SET inFlight.deleteServer = :other', OTHER_SERVER);
    await first.close();

    // Act: the zone moves the days by 14 hours; read in it, the batch's windows hold none of its rows.
    const { local: second } = await openWith({ ...spec, timestampTimeZone: 'Pacific/Kiritimati' }, stateDir);
    const run = await runLocalArchive(second, { tables: ['public.zoned'] }, { retryIntervalScale: 0 });

    // Assess: no row in two committed archives, none lost.
    const counts = await assertNoLossNoDuplicates(second, db.client, table, original).catch(
      (error: Error) => error,
    );
    await second.close();
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'changes timestampTimeZone while a delete whose outcome the server cannot tell is in flight',
      held: run.execution.status === 'SUCCEEDED' && !(counts instanceof Error),
    });
    expect(crash.fired()).toBe(true);
    expect(stage).toBe('deleting');
    expect(run.execution.status).toBe('SUCCEEDED');
    if (counts instanceof Error) throw counts;
    expect(counts.inArchives).toBeGreaterThan(0);
  });

  it('a committed delete the server cannot tell, then the primary key moved (keyColumns unset): settled by its rows as committed', async () => {
    // Prepare: the delete commits, the run stops before recording it; then a failover, and a migration that moves
    // the primary key to uid (the batch's id bounds no longer name a unique key, and need not: rows are counted).
    const spec = { schema: 'public', name: 'rekeyed', timestampColumn: 'created_at' };
    const table = resolvedTable(spec);
    const original = await tableLines(db.client, table);
    const { local: first, stateDir } = await openWith(spec);
    const crash = crashOnce('delete:afterCommit');
    await runLocalArchive(
      first,
      { tables: ['public.rekeyed'] },
      { fault: crash.fault, retryIntervalScale: 0 },
    );
    const stage = (await first.deps().locks.get('app', 'public.rekeyed')).inFlight?.stage;
    await rewriteRecord(first, 'public.rekeyed', 'SET inFlight.deleteServer = :other', OTHER_SERVER);
    await first.close();
    await db.client.query('ALTER TABLE rekeyed DROP CONSTRAINT rekeyed_pkey, ADD PRIMARY KEY (uid)');

    // Act
    const { local: second } = await openWith(spec, stateDir);
    const run = await runLocalArchive(second, { tables: ['public.rekeyed'] }, { retryIntervalScale: 0 });

    // Assess: the committed batch's archives are recorded, every row is once in the table or an archive.
    const counts = await assertNoLossNoDuplicates(second, db.client, table, original).catch(
      (error: Error) => error,
    );
    await second.close();
    expect(crash.fired()).toBe(true);
    expect(stage).toBe('deleting');
    expect(run.execution.status).toBe('SUCCEEDED');
    if (counts instanceof Error) throw counts;
    expect(counts.inArchives).toBeGreaterThan(0);
  });

  it('a verified batch whose record an earlier version wrote (no manifest), then keyColumns changed: taken back, every row archived once', async () => {
    // Prepare: a verified batch keyed by id, its record as an earlier version kept it: it does not say its key.
    const spec = { schema: 'public', name: 'unrecorded', timestampColumn: 'created_at' };
    const table = resolvedTable(spec);
    const original = await tableLines(db.client, table);
    const { local: first, stateDir } = await openWith({ ...spec, keyColumns: ['id'] });
    const crash = crashOnce('delete:betweenObjects');
    await runLocalArchive(
      first,
      { tables: ['public.unrecorded'] },
      { fault: crash.fault, retryIntervalScale: 0 },
    );
    await rewriteRecord(first, 'public.unrecorded', 'REMOVE inFlight.manifest');
    const stage = (await first.deps().locks.get('app', 'public.unrecorded')).inFlight?.stage;
    await first.close();

    // Act
    const { local: second } = await openWith({ ...spec, keyColumns: ['uid'] }, stateDir);
    const run = await runLocalArchive(second, { tables: ['public.unrecorded'] }, { retryIntervalScale: 0 });

    // Assess
    const counts = await assertNoLossNoDuplicates(second, db.client, table, original).catch(
      (error: Error) => error,
    );
    await second.close();
    expect(stage).toBe('verified');
    expect(run.execution.status).toBe('SUCCEEDED');
    if (counts instanceof Error) throw counts;
    expect(counts.inArchives).toBeGreaterThan(0);
  });
});
