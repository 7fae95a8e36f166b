import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateCommand } from '../../cli/archives.js';
import { loadDeploymentConfigFile } from '../../lambdas/shared/config/deployment-schema.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, seedEvents, writeTestConfig } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * "a"."b.c" and "a.b"."c" are two tables whose lock-table name is the one string "a.b.c", so they share the
 * inventory's partition, while their S3 folders differ (`app/a.b%2Ec/` and `app/a%2Eb.c/`). The config refuses the
 * two in one database entry, but not one after the other: the operator archives "a"."b.c", then replaces it in the
 * config with "a.b"."c".
 */
const older = { schema: 'a', name: 'b.c', timestampColumn: 'created_at' };
const newer = { schema: 'a.b', name: 'c', timestampColumn: 'created_at' };

describe('a table configured after another whose lock-table name is the same, the dot elsewhere', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query('CREATE SCHEMA a; CREATE SCHEMA "a.b"');
      await seedEvents(db.client, 'b.c', 200, 60, 'a');
      await seedEvents(db.client, 'c', 200, 60, 'a.b');
    },
    [older],
  );
  /** The config after the operator replaced "a"."b.c" by "a.b"."c": the same bucket, prefix and lock table. */
  let replaced: ReturnType<typeof writeTestConfig>;
  beforeAll(() => {
    replaced = writeTestConfig(bed.db, [newer]);
    bed.redeployedWith(replaced.configPath);
  });
  afterAll(() => replaced?.cleanup());
  const withReplaced = () => ({ retryIntervalScale: 0, env: { ARCHIVER_CONFIG_PATH: replaced.configPath } });
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
      loadDeploymentConfigFile(replaced.configPath),
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
