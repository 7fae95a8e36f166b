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
  expectRequestsWithinRoles,
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
    for (const name of ['prefixed_upload', 'prefixed_verify']) await seedEvents(db.client, name, 600);
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
    prefix?: string,
  ): Promise<{ local: LocalEnvironment; stateDir: string }> {
    const files = writeTestConfig(db, [spec], { defaults: { batchSize: 150 }, prefix });
    cleanups.push(files.cleanup);
    const dir = stateDir ?? join(files.dir, 'state');
    return { local: await openLocalEnvironment(files.configPath, dir, { clock: db.now }), stateDir: dir };
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

  /**
   * Runs the table until a crash at `stopAt` leaves a batch in flight, lets `meanwhile` happen (a failover, a
   * migration), then runs it again under the entry `after`. What the batch was left at, and what the second run made
   * of the table: its status, and the rows once in the table or an archive (or why not).
   */
  async function interruptedThenChanged(change: {
    before: TableSpec;
    after: TableSpec;
    stopAt: FaultPoint;
    meanwhile?: (local: LocalEnvironment) => Promise<void>;
    /** The `s3.prefix` deployed for the second run (the first runs under archive/). */
    afterPrefix?: string;
  }) {
    const table = resolvedTable(change.before);
    const ref = `${table.schema}.${table.name}`;
    const original = await tableLines(db.client, table);
    const { local: first, stateDir } = await openWith(change.before);
    let crashed = false;
    const crash = async (reached: FaultPoint) => {
      if (reached !== change.stopAt || crashed) return;
      crashed = true;
      throw new Error(`injected crash at ${reached}`);
    };
    await runLocalArchive(first, { tables: [ref] }, { fault: crash, retryIntervalScale: 0 });
    await change.meanwhile?.(first);
    const stage = crashed ? (await first.deps().locks.get('app', ref)).inFlight?.stage : 'no crash';
    try {
      await expectRequestsWithinRoles(first);
    } finally {
      await first.close();
    }
    const { local: second } = await openWith(change.after, stateDir, change.afterPrefix);
    try {
      const run = await runLocalArchive(second, { tables: [ref] }, { retryIntervalScale: 0 });
      const counts = await assertNoLossNoDuplicates(second, db.client, table, original).catch(
        (error: Error) => error,
      );
      await expectRequestsWithinRoles(second);
      return {
        stage,
        status: run.execution.status,
        counts,
        error: run.outcomes[0]?.error,
        stateDir,
        original,
      };
    } finally {
      await second.close();
    }
  }

  const held = (outcome: Awaited<ReturnType<typeof interruptedThenChanged>>) =>
    outcome.status === 'SUCCEEDED' && !(outcome.counts instanceof Error);

  function assertEveryRowOnce(outcome: Awaited<ReturnType<typeof interruptedThenChanged>>): void {
    expect(outcome.status).toBe('SUCCEEDED');
    if (outcome.counts instanceof Error) throw outcome.counts;
    expect(outcome.counts.inArchives).toBeGreaterThan(0);
  }

  it.each([
    ['upload:afterCopy', 'prefixed_upload'],
    ['verify:afterRead', 'prefixed_verify'],
  ] as const)(
    's3.prefix changed with a batch in flight (stopped at %s): the run stops naming the prefix to deploy again, touching nothing',
    async (stopAt, name) => {
      // Prepare
      const spec = { schema: 'public', name, timestampColumn: 'created_at' };
      const table = resolvedTable(spec);

      // Act: the second run under the new prefix (its roles checked), then one under the old prefix again
      const moved = await interruptedThenChanged({
        before: spec,
        after: spec,
        stopAt,
        afterPrefix: 'moved/',
      });
      const { local: back } = await openWith(spec, moved.stateDir);
      const finished = await runLocalArchive(back, { tables: [`public.${name}`] }, { retryIntervalScale: 0 });
      const { inFlight } = await back.deps().locks.get('app', `public.${name}`);
      const counts = await assertNoLossNoDuplicates(back, db.client, table, moved.original).finally(() =>
        back.close(),
      );

      // Assess
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `changes s3.prefix while a batch is in flight (${stopAt})`,
        held: moved.status === 'FAILED' && finished.execution.status === 'SUCCEEDED',
      });
      expect(moved.status).toBe('FAILED');
      expect(moved.error).toMatch(
        /^ConfigError: the batch in flight of app\/public\.prefixed_\w+ \(\w+\) keeps its objects under the s3\.prefix "archive\/", not under this deployment's "moved\/"/,
      );
      if (moved.counts instanceof Error) throw moved.counts;
      expect(finished.execution.status).toBe('SUCCEEDED');
      expect(inFlight).toBeUndefined();
      expect(counts.inArchives).toBeGreaterThan(0);
    },
  );

  it('keyColumns now a key of another type (bigint to uuid): the verified batch is taken back, every row archived once', async () => {
    // Prepare: a crash inside the delete transaction (rolled back) leaves a verified batch keyed by id.
    const spec = { schema: 'public', name: 'keyed', timestampColumn: 'created_at' };

    // Act: the config now names the uuid key.
    const outcome = await interruptedThenChanged({
      before: { ...spec, keyColumns: ['id'] },
      after: { ...spec, keyColumns: ['uid'] },
      stopAt: 'delete:afterDelete',
    });

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'changes keyColumns to a key of another type while a verified batch is in flight',
      held: held(outcome),
    });
    expect(outcome.stage).toBe('verified');
    assertEveryRowOnce(outcome);
  });

  it('timestampTimeZone changed while a delete is unknown to the server: settled by the batch’s own windows, never counted as committed', async () => {
    // Prepare: the run stops before its delete commits; the server then cannot tell (a failover or a restored
    // cluster: another server identity), so the rows decide whether it committed.
    const spec = { schema: 'public', name: 'zoned', timestampColumn: 'created_at' };

    // Act: the zone moves the days by 14 hours; read in it, the batch's windows hold none of its rows.
    const outcome = await interruptedThenChanged({
      before: { ...spec, timestampTimeZone: 'UTC' },
      after: { ...spec, timestampTimeZone: 'Pacific/Kiritimati' },
      stopAt: 'delete:beforeCommit',
      meanwhile: (local) =>
        rewriteRecord(local, 'public.zoned', 'SET inFlight.deleteServer = :other', OTHER_SERVER),
    });

    // Assess: no row in two committed archives, none lost.
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'changes timestampTimeZone while a delete whose outcome the server cannot tell is in flight',
      held: held(outcome),
    });
    expect(outcome.stage).toBe('deleting');
    assertEveryRowOnce(outcome);
  });

  it('a committed delete the server cannot tell, then the primary key moved (keyColumns unset): settled by its rows as committed', async () => {
    // Prepare: the delete commits, the run stops before recording it; then a failover, and a migration that moves
    // the primary key to uid (the batch's id bounds no longer name a unique key, and need not: rows are counted).
    const spec = { schema: 'public', name: 'rekeyed', timestampColumn: 'created_at' };
    const meanwhile = async (local: LocalEnvironment) => {
      await rewriteRecord(local, 'public.rekeyed', 'SET inFlight.deleteServer = :other', OTHER_SERVER);
      await db.client.query('ALTER TABLE rekeyed DROP CONSTRAINT rekeyed_pkey, ADD PRIMARY KEY (uid)');
    };

    // Act
    const outcome = await interruptedThenChanged({
      before: spec,
      after: spec,
      stopAt: 'delete:afterCommit',
      meanwhile,
    });

    // Assess: the committed batch's archives are recorded, every row is once in the table or an archive.
    expect(outcome.stage).toBe('deleting');
    assertEveryRowOnce(outcome);
  });

  it('a verified batch whose record an earlier version wrote (no manifest), then keyColumns changed: taken back, every row archived once', async () => {
    // Prepare: a verified batch keyed by id, its record as an earlier version kept it: it does not say its key.
    const spec = { schema: 'public', name: 'unrecorded', timestampColumn: 'created_at' };

    // Act
    const outcome = await interruptedThenChanged({
      before: { ...spec, keyColumns: ['id'] },
      after: { ...spec, keyColumns: ['uid'] },
      stopAt: 'delete:afterDelete',
      meanwhile: (local) => rewriteRecord(local, 'public.unrecorded', 'REMOVE inFlight.manifest'),
    });

    // Assess
    expect(outcome.stage).toBe('verified');
    assertEveryRowOnce(outcome);
  });
});
