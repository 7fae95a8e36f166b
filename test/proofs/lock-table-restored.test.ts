import { gunzipSync } from 'node:zlib';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../../lambdas/shared/archive/store.js';
import { LOCK_TABLE_METADATA } from '../../lambdas/shared/batch/batch.js';
import { ArchiveInventory } from '../../lambdas/shared/lock-table/archive-inventory.js';
import { depsFromEnv } from '../../lambdas/shared/runtime/deps.js';
import type { FaultPoint, StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { uploadBatch } from '../../lambdas/upload/core.js';
import { verifyBatch } from '../../lambdas/verify/core.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { ensureLockTable } from '../../local/services.js';
import { batchThrough } from '../support/batch-stages.js';
import {
  assertNoLossNoDuplicates,
  compareRows,
  createTestDatabase,
  getObject,
  listKeys,
  openTestEnvironment,
  readLiveArchives,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  type TestDatabase,
  tableLines,
} from '../support/fixtures.js';

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };
const inFlightSpec = { schema: 'public', name: 'in_flight', timestampColumn: 'created_at' };
const POINT_STAGES = ['exported', 'uploaded', 'verified'] as const;
const pointSpecs = POINT_STAGES.map((stage) => ({
  schema: 'public',
  name: `point_${stage}`,
  timestampColumn: 'created_at',
}));
const recreatedSpec = { schema: 'public', name: 'recreated', timestampColumn: 'created_at' };
const behindSpec = { schema: 'public', name: 'clock_behind', timestampColumn: 'created_at' };
const versionedSpecs = ['versioned', 'reversioned'].map((name) => ({
  schema: 'public',
  name,
  timestampColumn: 'created_at',
}));
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
    await seedEvents(db.client, 'recreated', 40, 60);
    await seedEvents(db.client, 'clock_behind', 40, 60);
    for (const point of pointSpecs) await seedEvents(db.client, point.name, 40);
    for (const versioned of versionedSpecs) await seedEvents(db.client, versioned.name, 40, 60);
    env = await openTestEnvironment(db, [
      spec,
      inFlightSpec,
      recreatedSpec,
      behindSpec,
      ...pointSpecs,
      ...versionedSpecs,
    ]);
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

  /**
   * Moves the commit its inventory entry records `ms` earlier, as if the archive had been committed then; with
   * `versionId`, records it in the entry's pin, as verify pins an object of a bucket that keeps versions.
   */
  async function backdateCommit(
    table: string,
    archiveKey: string,
    ms: number,
    versionId?: string,
  ): Promise<void> {
    const entry = (await env.local.deps().inventory.entries('app', table, [archiveKey])).get(archiveKey);
    if (!entry) throw new Error(`setup: no inventory entry for ${archiveKey}`);
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: env.local.services.dynamoEndpoint }),
    );
    try {
      await ddb.send(
        new UpdateCommand({
          TableName: env.local.services.lockTable,
          Key: ArchiveInventory.key('app', table, archiveKey),
          UpdateExpression: `SET #archive.committedAt = :at${versionId ? ', #archive.pin.versionId = :version' : ''}`,
          ExpressionAttributeNames: { '#archive': 'archive' },
          ExpressionAttributeValues: {
            ':at': new Date(Date.parse(entry.committedAt) - ms).toISOString(),
            ...(versionId ? { ':version': versionId } : {}),
          },
        }),
      );
    } finally {
      ddb.destroy();
    }
  }

  /**
   * Archives `name` and restores every row into it; then, as in a bucket that keeps versions, records a version in
   * the pin of each of its inventory entries, with the commit `earlierMs` earlier; then restores the lock table under a
   * new name. The deps of the deployment on that table, whose S3 HEAD reports each archive under the version
   * `reported` gives. The local S3 server keeps no versions: the HEAD responses are mocked here for that alone.
   */
  async function versionedDeployment(
    name: string,
    { earlierMs, reported }: { earlierMs: number; reported: (pinned: string) => string },
  ): Promise<StepDeps> {
    const ref = `public.${name}`;
    expect((await runLocalArchive(env.local, { tables: [ref] }, fast)).execution.status).toBe('SUCCEEDED');
    expect((await runLocalRestore(env.local, { database: 'app', table: ref }, fast)).execution.status).toBe(
      'SUCCEEDED',
    );
    const versions = new Map<string, string>();
    for (const [i, entry] of (await env.local.deps().inventory.list('app', ref)).entries()) {
      const pinned = `version-${i}`;
      await backdateCommit(ref, entry.archiveKey, earlierMs, pinned);
      versions.set(entry.archiveKey, reported(pinned));
    }
    const lockTable = `${RESTORED_LOCK_TABLE}-${name}`;
    await restoreLockTableAs(lockTable);
    const deps = depsFromEnv({ ...env.local.env, LOCK_TABLE_NAME: lockTable });
    const store = Object.create(deps.store) as ArchiveStore;
    store.head = async (key) => {
      const head = await deps.store.head(key);
      const versionId = versions.get(key);
      return head?.pin && versionId ? { ...head, pin: { ...head.pin, versionId } } : head;
    };
    return { ...deps, store };
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

  it('archives again under the restored table when the functions’ clock, which dated the commits, runs two minutes behind S3’s', async () => {
    // Prepare: archived by functions whose clock is two minutes behind (S3 dates each archive after its commit);
    // every row restored into the table; the lock table restored under a new name.
    const ref = 'public.clock_behind';
    const behind = resolvedTable(behindSpec);
    const original = await tableLines(db.client, behind);
    const slow = (step: StepDeps): StepDeps => ({
      ...step,
      now: () => new Date(step.now().getTime() - 120_000),
    });
    expect(
      (await runLocalArchive(env.local, { tables: [ref] }, { ...fast, deps: slow })).execution.status,
    ).toBe('SUCCEEDED');
    expect((await runLocalRestore(env.local, { database: 'app', table: ref }, fast)).execution.status).toBe(
      'SUCCEEDED',
    );
    const name = `${RESTORED_LOCK_TABLE}-behind`;
    await restoreLockTableAs(name);

    // Act
    const again = await runLocalArchive(
      env.local,
      { tables: [ref] },
      { ...fast, env: { LOCK_TABLE_NAME: name } },
    );

    // Assess: its own archives are adopted, not refused as re-created; every row in one archive once.
    const deps = depsFromEnv({ ...env.local.env, LOCK_TABLE_NAME: name });
    const outcomes = await deps.runRecords.listOutcomes(again.execution.executionName);
    expect(outcomes.map((o) => `${o.status} ${o.error ?? ''}`.trim())).toEqual(['succeeded']);
    await assertNoLossNoDuplicates(env.local, db.client, behind, original);
  });

  it('adopts its own archive by the version its commit pinned, however far behind S3 the functions’ clock ran (a bucket that keeps versions)', async () => {
    // Prepare: each commit dated ten minutes before S3 dated its archive (the functions' clock far behind), and S3
    // reporting each archive under the version its commit pinned.
    const deps = await versionedDeployment('versioned', {
      earlierMs: 10 * 60_000,
      reported: (pinned) => pinned,
    });
    const { task, inFlight } = await batchThrough(deps, 'public.versioned', 'exported');

    // Act
    const uploaded = await uploadBatch(task, deps);

    // Assess: its archives adopted, not refused as re-created by another deployment.
    expect(uploaded).toEqual({ objects: inFlight.objects.length, created: 0 });
    expect((await deps.locks.get('app', 'public.versioned')).inFlight).toMatchObject({ stage: 'uploaded' });
  });

  it('refuses an archive S3 reports under another version than its commit pinned, however close to the commit S3 dates it', async () => {
    // Prepare: each commit as dated, but S3 reporting each archive under another version (re-created since).
    const deps = await versionedDeployment('reversioned', {
      earlierMs: 0,
      reported: (pinned) => `${pinned}-recreated`,
    });
    const { task } = await batchThrough(deps, 'public.reversioned', 'exported');

    // Act
    const uploaded = uploadBatch(task, deps);

    // Assess
    await expect(uploaded).rejects.toMatchObject({
      name: 'ConfigError',
      message: expect.stringContaining(`lock table is ${env.local.services.lockTable},`),
    });
    expect((await deps.locks.get('app', 'public.reversioned')).inFlight).toMatchObject({ stage: 'exported' });
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

  for (const [i, stage] of POINT_STAGES.entries()) {
    it(`keeps the rows of a batch ${stage} at the restore's point that the earlier table went on to commit`, async () => {
      // Prepare: the lock table restored to a point with a batch in flight; the stack still ran on the earlier table
      // until it was pointed at the restored one, and committed that batch (its rows deleted).
      const point = pointSpecs[i] ?? spec;
      const pointTable = resolvedTable(point);
      const qualified = `public.${point.name}`;
      const original = await tableLines(db.client, pointTable);
      const { task } = await batchThrough(env.local.deps(), qualified, stage);
      const name = `${RESTORED_LOCK_TABLE}-${stage}`;
      await restoreLockTableAs(name);
      if (stage === 'exported') await uploadBatch(task, env.local.deps());
      if (stage !== 'verified') await verifyBatch(task, env.local.deps());
      await env.local.deps().locks.release('app', qualified, task.lease);
      const earlier = await runLocalArchive(env.local, { tables: [qualified] }, fast);
      expect(earlier.execution.status).toBe('SUCCEEDED');
      const restored = depsFromEnv({ ...env.local.env, LOCK_TABLE_NAME: name });
      // The lease the restored table holds from its point has expired.
      await restored.locks.release('app', qualified, task.lease);

      // Act
      await runLocalArchive(env.local, { tables: [qualified] }, { ...fast, env: { LOCK_TABLE_NAME: name } });

      // Assess: the batch the restored table withdraws was committed by the earlier one, its rows deleted: its
      // archive is kept in the quarantine, not removed as the only copy of them.
      const remaining = await tableLines(db.client, pointTable);
      const live = (await readLiveArchives(env.local, 'public', point.name, db.client)).flatMap(
        (a) => a.lines,
      );
      const quarantined: string[] = [];
      for (const key of await listKeys(env.local, 'archive/_quarantine/'))
        if (key.includes(`/public.${point.name}/`) && key.endsWith('.jsonl.gz'))
          quarantined.push(
            ...gunzipSync(await getObject(env.local, key))
              .toString('utf8')
              .split('\n'),
          );
      const { lost } = compareRows(original, [...remaining, ...live, ...quarantined.filter((l) => l !== '')]);
      expect(lost).toBe(0);
      // Each kept archive has its manifest in the quarantine too: what types its lines.
      const kept = (await listKeys(env.local, 'archive/_quarantine/')).filter((key) =>
        key.includes(`/public.${point.name}/`),
      );
      const archivesKept = kept.filter((key) => key.endsWith('.jsonl.gz'));
      expect(archivesKept.length).toBeGreaterThan(0);
      // Beside it: under the same withdrawal's folder, where the operator who finds the archive looks for it.
      expect(kept.filter((key) => key.endsWith('.manifest.json')).sort()).toEqual(
        archivesKept.map((key) => manifestKeyFor(key)).sort(),
      );
    });
  }

  it('refuses an archive another deployment re-created, identical, after the one its inventory lists was gone', async () => {
    // Prepare: archived and restored into the table; then one archive expired and put back, the same bytes, by a
    // deployment whose lock table is another, ten minutes after the commit (its inventory entry backdated).
    const ref = 'public.recreated';
    const recreated = resolvedTable(recreatedSpec);
    const original = await tableLines(db.client, recreated);
    expect((await runLocalArchive(env.local, { tables: [ref] }, fast)).execution.status).toBe('SUCCEEDED');
    expect((await runLocalRestore(env.local, { database: 'app', table: ref }, fast)).execution.status).toBe(
      'SUCCEEDED',
    );
    const [archive] = await readLiveArchives(env.local, 'public', 'recreated');
    if (!archive) throw new Error('setup: nothing archived');
    const s3 = s3ClientFor(env.local);
    const Bucket = env.local.services.bucket;
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key: archive.key }));
    const body = await getObject(env.local, archive.key);
    await backdateCommit(ref, archive.key, 10 * 60_000);
    await s3.send(new DeleteObjectCommand({ Bucket, Key: archive.key }));
    await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: archive.key,
        Body: body,
        Metadata: { ...head.Metadata, [LOCK_TABLE_METADATA]: 'another-deployment-locks' },
      }),
    );

    // Act
    const again = await runLocalArchive(env.local, { tables: [ref] }, fast);

    // Assess: refused as the other deployment's, whose withdrawal could remove it; no row deleted.
    expect(again.outcomes.map((o) => `${o.status} ${o.error ?? ''}`)).toEqual([
      expect.stringMatching(/^failed ConfigError: .* lock table is another-deployment-locks/),
    ]);
    expect((await tableLines(db.client, recreated)).sort()).toEqual([...original].sort());
  });
});
