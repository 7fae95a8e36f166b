import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { depsFromEnv } from '../../lambdas/shared/runtime/deps.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import { ensureLockTable } from '../../local/services.js';
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
  writeTestConfig,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };
const table = resolvedTable(spec);
const elsewhere = { schema: 'public', name: 'elsewhere', timestampColumn: 'created_at' };
const SECOND_LOCK_TABLE = 'second-deployment-locks';

/**
 * The stack deployed twice against one database (two lock tables), into one bucket and prefix or under two prefixes:
 * each deployment's inventory knows only its own commits.
 */
describe('two deployments archiving one table', () => {
  let db: TestDatabase;
  let env: Awaited<ReturnType<typeof openTestEnvironment>>;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 40, 60);
    await seedEvents(db.client, 'elsewhere', 40, 60);
    env = await openTestEnvironment(db, [spec, elsewhere]);
    await ensureLockTable(env.local.services.dynamoEndpoint, SECOND_LOCK_TABLE);
  });
  afterAll(async () => {
    await env?.close();
    await db?.drop();
  });

  /**
   * Every row of every archive object under `prefixes` (a table's folders) that has its manifest, whichever
   * deployment committed it.
   */
  async function rowsInBucket(prefixes: readonly string[]): Promise<string[]> {
    const lines: string[] = [];
    for (const prefix of prefixes) {
      const keys = await listKeys(env.local, prefix);
      const archives = keys.filter((k) => k.endsWith('.jsonl.gz') && keys.includes(manifestKeyFor(k)));
      for (const key of archives) {
        const text = gunzipSync(await getObject(env.local, key)).toString('utf8');
        lines.push(...text.split('\n').filter((line) => line.length > 0));
      }
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
    const { lost, doubled } = compareRows(original, [
      ...remaining,
      ...(await rowsInBucket([`${env.local.config.s3.prefix}app/public.events/`])),
    ]);
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

  it("under another prefix: the second deployment's delete finds the rows gone and withdraws only its own archive", async () => {
    // Prepare: deployment B's config writes under its own prefix
    const second = writeTestConfig(db, [elsewhere], { prefix: 'second/' });
    const secondEnv = { LOCK_TABLE_NAME: SECOND_LOCK_TABLE, ARCHIVER_CONFIG_PATH: second.configPath };
    const elsewhereTable = resolvedTable(elsewhere);
    const original = await tableLines(db.client, elsewhereTable);
    let first: Awaited<ReturnType<typeof runLocalArchive>> | undefined;
    const fault = async (point: FaultPoint) => {
      if (point !== 'verify:afterRead' || first) return;
      first = await runLocalArchive(env.local, { tables: ['public.elsewhere'] }, { retryIntervalScale: 0 });
    };

    // Act: B verifies its batch, then A archives the same rows and commits before B's delete
    const late = await runLocalArchive(
      env.local,
      { tables: ['public.elsewhere'] },
      { env: secondEnv, fault, retryIntervalScale: 0 },
    );

    // Assess: A committed; B's delete rolled back and its batch was withdrawn; every row is in the table or in one
    // archive
    const [withdrawn] = await depsFromEnv({ ...env.local.env, ...secondEnv }).runRecords.listOutcomes(
      late.execution.executionName,
    );
    second.cleanup();
    expect(first?.outcomes).toMatchObject([{ status: 'succeeded', batches: 1 }]);
    expect(withdrawn).toMatchObject({ status: 'succeeded', batches: 0, withdrawnBatches: 1 });
    const remaining = await tableLines(db.client, elsewhereTable);
    const archived = await rowsInBucket([
      `${env.local.config.s3.prefix}app/public.elsewhere/`,
      'second/app/public.elsewhere/',
    ]);
    const { lost, doubled } = compareRows(original, [...remaining, ...archived]);
    recordProof({ kind: 'invariant', rows: original.length, lost, doubled });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'two deployments (two lock tables) archive one table under two prefixes',
      held: lost === 0 && doubled === 0,
    });
    expect(remaining.length).toBeLessThan(original.length);
    expect({ lost, doubled }).toEqual({ lost: 0, doubled: 0 });
  });
});
