import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { LockTableClient } from '../../lambdas/shared/lock-table/table-client.js';
import type { FaultPoint, StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { type FlakyProxy, startFlakyProxy } from '../support/flaky-proxy.js';
import { recordProof } from '../support/proof-ledger.js';

/** How long an endpoint stays down: longer than one attempt with the SDK's own retries, shorter than the ASL's. */
const DOWN_MS = 1500;
/** Scales the ASL's Retry intervals (5 s, 5 attempts) to 0.5 s: the retries span DOWN_MS. */
const RETRY_SCALE = 0.1;

describe('outages: connections reset or endpoints down mid-run are retried, and nothing is lost', () => {
  const spec = (name: string, batchSize?: number) => ({
    schema: 'public',
    name,
    timestampColumn: 'created_at',
    ...(batchSize ? { batchSize } : {}),
  });
  let database: FlakyProxy | undefined;

  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 's3_outage', 900);
      await seedEvents(db.client, 'db_outage', 900);
      for (const name of ['s3_down', 'db_down', 'dynamodb_down', 'dynamodb_throttled', 'commit_lost'])
        await seedEvents(db.client, name, 330, 33);
      // The archiver reaches the database through a proxy that a test can take down.
      const url = new URL(db.url);
      database = await startFlakyProxy(Number(url.port));
      url.hostname = '127.0.0.1';
      url.port = String(database.port);
      Object.assign(db, { url: url.toString() });
    },
    // db_outage: 15 rows a day in batches of 20, so the second batch spans two days.
    [
      spec('s3_outage'),
      spec('db_outage', 20),
      spec('s3_down'),
      spec('db_down'),
      spec('dynamodb_down'),
      spec('dynamodb_throttled'),
      spec('commit_lost', 20),
    ],
  );
  afterAll(async () => database?.stop());

  it('S3 connections reset during upload: the step is retried and the run completes', async () => {
    // Prepare: S3 reached through a proxy that drops every connection once the first object is published.
    const table = resolvedTable(spec('s3_outage'));
    const original = await tableLines(bed.db.client, table);
    const proxy = await startFlakyProxy(Number(new URL(bed.local.services.s3Endpoint).port));
    let cuts = 0;
    const fault = (point: FaultPoint) => {
      if (point === 'upload:afterCopy' && cuts++ === 0) proxy.cut(8);
    };
    const failures: string[] = [];

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.s3_outage'] },
      {
        fault,
        retryIntervalScale: 0,
        onStep: (event) => {
          if (event.error) failures.push(`${event.functionName}:${event.error.name}`);
        },
        env: { AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${proxy.port}` },
      },
    );
    await proxy.stop();

    // Assess
    expect(proxy.resets()).toBeGreaterThanOrEqual(8);
    expect(failures).toContain('upload:StorageUnavailableError');
    expect(run.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    recordProof({ kind: 'fault', point: 'outage: S3 connections reset', iteration: 0 });
  });

  it('database connection killed inside the delete transaction: rolled back, retried, completed', async () => {
    // Prepare: kill the archiver's own backend right before its COMMIT, on the second batch.
    const table = resolvedTable(spec('db_outage', 20));
    const original = await tableLines(bed.db.client, table);
    let batches = 0;
    let struckObjects = 0;
    const fault = async (point: FaultPoint) => {
      if (point !== 'delete:beforeCommit' || ++batches !== 2) return;
      struckObjects =
        (await bed.local.deps().locks.get('app', 'public.db_outage')).inFlight?.objects.length ?? 0;
      await bed.db.client.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'audit-archiver' AND datname = current_database() AND state = 'idle in transaction'",
      );
    };
    const steps: string[] = [];

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.db_outage'] },
      {
        fault,
        retryIntervalScale: 0,
        onStep: (event) => {
          if (event.error) steps.push(`${event.functionName}:${event.error.name}`);
        },
      },
    );

    // Assess: the transaction killed held the DELETEs of several days.
    expect(struckObjects).toBeGreaterThan(1);
    expect(steps).toContain('delete:DatabaseUnavailableError');
    expect(run.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    recordProof({ kind: 'fault', point: 'outage: database backend killed before COMMIT', iteration: 0 });
  });

  /** An endpoint taken down at the first `point` for DOWN_MS, then back: each step retries until it answers. */
  async function downThenUp(
    name: string,
    point: FaultPoint,
    target: () => Promise<{ proxy: FlakyProxy; env?: NodeJS.ProcessEnv }>,
  ) {
    const table = resolvedTable(spec(name));
    const original = await tableLines(bed.db.client, table);
    const { proxy, env } = await target();
    let downs = 0;
    const fault = async (at: FaultPoint) => {
      if (at === point && downs++ === 0) await proxy.down(DOWN_MS);
    };
    const failures: string[] = [];
    const started = Date.now();
    const run = await runLocalArchive(
      bed.local,
      { tables: [`public.${name}`] },
      {
        fault,
        env,
        retryIntervalScale: RETRY_SCALE,
        onStep: (event) => {
          if (event.error) failures.push(`${event.functionName}:${event.error.name}`);
        },
      },
    );
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    return { run, failures, counts, elapsed: Date.now() - started };
  }

  it('S3 endpoint down for a while, then up: the steps retry until it is back, nothing lost', async () => {
    // Prepare
    const proxy = await startFlakyProxy(Number(new URL(bed.local.services.s3Endpoint).port));

    // Act
    const { run, failures, counts, elapsed } = await downThenUp('s3_down', 'upload:afterCopy', async () => ({
      proxy,
      env: { AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${proxy.port}` },
    }));
    await proxy.stop();

    // Assess
    expect(failures[0]).toBe('upload:StorageUnavailableError');
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(elapsed).toBeGreaterThan(DOWN_MS);
    expect(counts.inArchives).toBeGreaterThan(0);
    recordProof({ kind: 'fault', point: 'outage: S3 endpoint down, then up', iteration: 0 });
  });

  it('database endpoint down for a while, then up: the steps retry until it is back, nothing lost', async () => {
    // Act: down after verify read the object, so the delete that follows finds it down.
    const { run, failures, counts } = await downThenUp('db_down', 'verify:afterRead', async () => ({
      proxy: database as FlakyProxy,
    }));

    // Assess
    expect(failures[0]).toBe('delete:DatabaseUnavailableError');
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(counts.inArchives).toBeGreaterThan(0);
    recordProof({ kind: 'fault', point: 'outage: database endpoint down, then up', iteration: 0 });
  });

  it('lock table endpoint down for a while, then up: the steps retry until it is back, nothing lost', async () => {
    // Prepare
    const proxy = await startFlakyProxy(Number(new URL(bed.local.services.dynamoEndpoint).port));

    // Act: down after verify read the object, before it records the batch as verified.
    const { run, failures, counts } = await downThenUp('dynamodb_down', 'verify:afterRead', async () => ({
      proxy,
      env: { AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${proxy.port}` },
    }));
    await proxy.stop();

    // Assess
    expect(failures[0]).toBe('verify:LockStoreUnavailableError');
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(counts.inArchives).toBeGreaterThan(0);
    recordProof({ kind: 'fault', point: 'outage: lock table endpoint down, then up', iteration: 0 });
  });

  it('lock table throttled past the SDK retries (ProvisionedThroughputExceededException): the step retries, nothing lost', async () => {
    // Prepare: after verify read the object, the next lock-table request is refused as DynamoDB refuses a hot
    // partition (HTTP 400) once the SDK's retries are spent: the watermarks of a restore all share one partition key,
    // and so does a table's lease item.
    const table = resolvedTable(spec('dynamodb_throttled'));
    const original = await tableLines(bed.db.client, table);
    const throttle = { armed: false, thrown: 0 };
    const fault = (point: FaultPoint) => {
      if (point === 'verify:afterRead' && throttle.thrown === 0) throttle.armed = true;
    };
    const throttled = (deps: StepDeps): StepDeps => {
      const { ddb } = (deps.inventory as unknown as { lockTable: LockTableClient }).lockTable;
      const send = ddb.send.bind(ddb) as (...args: unknown[]) => Promise<unknown>;
      Object.assign(ddb, {
        send: async (...args: unknown[]) => {
          if (throttle.armed) {
            throttle.armed = false;
            throttle.thrown += 1;
            throw Object.assign(
              new Error('The level of configured provisioned throughput for the table was exceeded'),
              {
                name: 'ProvisionedThroughputExceededException',
                $fault: 'client',
                $metadata: { httpStatusCode: 400 },
              },
            );
          }
          return send(...args);
        },
      });
      return deps;
    };
    const failures: string[] = [];

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.dynamodb_throttled'] },
      {
        fault,
        deps: throttled,
        retryIntervalScale: 0,
        onStep: (event) => {
          if (event.error) failures.push(`${event.functionName}:${event.error.name}`);
        },
      },
    );
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);

    // Assess
    expect(throttle.thrown).toBe(1);
    expect(failures).toEqual(['verify:LockStoreUnavailableError']);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(counts.inArchives).toBeGreaterThan(0);
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack:
        'the lock table throttles a step past the SDK retries (ProvisionedThroughputExceededException, HTTP 400)',
      held: run.execution.status === 'SUCCEEDED',
    });
  });

  it("the answer to a delete's COMMIT lost with its connection: the retry settles the batch as committed, nothing lost", async () => {
    // Prepare: the COMMIT of the second batch's delete reaches the server, then its connection breaks before the
    // answer is read.
    const table = resolvedTable(spec('commit_lost', 20));
    const original = await tableLines(bed.db.client, table);
    let deletes = 0;
    let lost = 0;
    const loseAnswer = (client: pg.PoolClient): pg.PoolClient => {
      let deleting = false;
      return new Proxy(client, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target);
          if (prop !== 'query') return typeof value === 'function' ? value.bind(target) : value;
          return (...args: unknown[]) => {
            const run = () => (target.query as (...a: unknown[]) => unknown)(...args);
            if (typeof args[0] === 'string' && args[0].startsWith('WITH deleted AS (DELETE')) deleting = true;
            if (args[0] !== 'COMMIT' || !deleting) return run();
            deleting = false;
            if (++deletes !== 2) return run();
            return (run() as Promise<unknown>).then(() => {
              lost += 1;
              (
                target as unknown as { connection: { stream: { destroy(): void } } }
              ).connection.stream.destroy();
              throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
            });
          };
        },
      });
    };
    const deps = (inner: StepDeps): StepDeps => ({
      ...inner,
      async database(name) {
        const db = await inner.database(name);
        return { ...db, withConnection: (work) => db.withConnection((client) => work(loseAnswer(client))) };
      },
    });
    const failures: string[] = [];

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.commit_lost'] },
      {
        deps,
        retryIntervalScale: 0,
        onStep: (event) => {
          if (event.error) failures.push(`${event.functionName}:${event.error.name}`);
        },
      },
    );
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);

    // Assess
    expect(lost).toBe(1);
    expect(failures).toEqual(['delete:DatabaseUnavailableError']);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(counts.inArchives).toBeGreaterThan(0);
    recordProof({ kind: 'fault', point: "outage: the answer to a delete's COMMIT lost", iteration: 0 });
  });
});
