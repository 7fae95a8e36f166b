import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateCommand } from '../../cli/archives.js';
import { loadDeploymentConfigFile } from '../../lambdas/shared/config/deployment-schema.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  expireLease,
  fixedCutoffSql,
  resolvedTable,
  seedEvents,
  type TableSpec,
  tableLines,
  writeTestConfig,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * "a"."b.c" and "a.b"."c" are two tables whose lock-table name is the one string "a.b.c", so they share the
 * inventory's partition, while their S3 folders differ (`app/a.b%2Ec/` and `app/a%2Eb.c/`). The config refuses the
 * two in one database entry, but not one after the other: the operator archives "a"."b.c", then replaces it in the
 * config with "a.b"."c".
 */
class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

const older = { schema: 'a', name: 'b.c', timestampColumn: 'created_at' };
const newer = { schema: 'a.b', name: 'c', timestampColumn: 'created_at' };

/**
 * A testbed whose config archives `older`, both tables seeded with 200 rows over 60 days, and the config the operator
 * writes replacing `older` by `newer`: the same bucket, prefix and lock table.
 */
function replacingBed(older: TableSpec, newer: TableSpec) {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        `CREATE SCHEMA ${pg.escapeIdentifier(older.schema ?? 'public')}; CREATE SCHEMA ${pg.escapeIdentifier(newer.schema ?? 'public')}`,
      );
      await seedEvents(db.client, older.name, 200, 60, older.schema);
      await seedEvents(db.client, newer.name, 200, 60, newer.schema);
    },
    [older],
  );
  let replaced: ReturnType<typeof writeTestConfig> | undefined;
  beforeAll(() => {
    replaced = writeTestConfig(bed.db, [newer]);
    bed.redeployedWith(replaced.configPath);
  });
  afterAll(() => replaced?.cleanup());
  /** Run options under the replacing config. */
  const withReplaced = () => ({ retryIntervalScale: 0, env: { ARCHIVER_CONFIG_PATH: replaced?.configPath } });
  return { bed, withReplaced, replacedPath: () => replaced?.configPath ?? '' };
}

describe('a table configured after another whose lock-table name is the same, the dot elsewhere', () => {
  const { bed, withReplaced, replacedPath } = replacingBed(older, newer);
  const count = async (table: string) =>
    Number((await bed.db.client.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n);

  it('restores and validates "a.b"."c" from its own archives, not counting the other table’s as missing', async () => {
    // Prepare: "a"."b.c" is archived under the first config, then "a.b"."c" under the second.
    const first = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    const second = await runLocalArchive(bed.local, {}, withReplaced());
    expect([first.execution.status, second.execution.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    const archived = 200 - (await count('"a.b".c'));
    expect(archived).toBeGreaterThan(0);

    // Act: a restore of "a.b"."c" into a new table, and validate, both through the current config.
    const restore = await runLocalRestore(
      bed.local,
      { database: 'app', table: { schema: 'a.b', name: 'c' }, targetTable: 'public.c_copy' },
      withReplaced(),
    );
    const lines: string[] = [];
    const code = await validateCommand(
      bed.local.deps().store,
      loadDeploymentConfigFile(replacedPath()),
      { json: false, strict: false },
      (line) => lines.push(line),
      bed.local.deps().inventory,
    );

    // Assess: before, the restore failed in its plan, taking the other table's 30 archives for its own missing ones,
    // and validate reported each as a missing archive.
    const restored = restore.execution.status === 'SUCCEEDED' ? await count('public.c_copy') : 0;
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'replaces "a"."b.c" in the config by "a.b"."c" (one lock-table name), then restores and validates it',
      held: restored === archived && code === 0,
    });
    expect([restore.execution.status, restore.execution.error?.message]).toEqual(['SUCCEEDED', undefined]);
    expect(restored).toBe(archived);
    expect([code, lines.filter((line) => line.includes('ERROR'))]).toEqual([0, []]);
  });
});

describe('a batch of a table left in flight when the config replaces it by one of the same lock-table name', () => {
  const older = { schema: 'x', name: 'y.z', timestampColumn: 'created_at', batchSize: 40 };
  const newer = { schema: 'x.y', name: 'z', timestampColumn: 'created_at', batchSize: 40 };
  const { bed, withReplaced } = replacingBed(older, newer);

  it('neither deletes the old table’s rows from the new one nor loses any of either', async () => {
    // Prepare: "x"."y.z"'s first batch is verified, then its run dies; its lease expires with the batch in flight.
    const olderLines = await tableLines(bed.db.client, resolvedTable(older));
    const newerLines = await tableLines(bed.db.client, resolvedTable(newer));
    const crashAfterVerify = (event: StepEvent) => {
      if (event.functionName === 'verify') throw new InjectedCrash('the run dies after verify');
    };
    const crashed = await runLocalArchive(
      bed.local,
      {},
      { retryIntervalScale: 0, afterStep: crashAfterVerify },
    );
    const inFlight = (await bed.local.deps().locks.get('app', 'x.y.z')).inFlight;
    await expireLease(bed.local, 'app', 'x.y.z');

    // Act: the operator replaces "x"."y.z" by "x.y"."z" in the config, whose run meets that batch in the shared item.
    const run = await runLocalArchive(bed.local, {}, withReplaced());

    // Assess: the run withdraws the old table's batch (its rows stay, its objects go) and archives the new table.
    const olderCounts = await assertNoLossNoDuplicates(
      bed.local,
      bed.db.client,
      resolvedTable(older),
      olderLines,
    );
    const newerCounts = await assertNoLossNoDuplicates(
      bed.local,
      bed.db.client,
      resolvedTable(newer),
      newerLines,
    );
    const left = await bed.db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "x.y".z WHERE created_at < ${await fixedCutoffSql(bed.db.client)}`,
    );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'replaces "x"."y.z" by "x.y"."z" in the config (one lock-table name) while a verified batch of the first is in flight',
      held: olderCounts.inArchives + olderCounts.inDatabase === olderLines.length,
    });
    expect(crashed.execution.status).not.toBe('SUCCEEDED');
    expect(inFlight?.stage).toBe('verified');
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', withdrawnBatches: 1 });
    expect(olderCounts.inDatabase).toBe(olderLines.length);
    expect(newerCounts.inArchives).toBeGreaterThan(0);
    expect(left.rows[0]?.n).toBe(0);
  });
});
