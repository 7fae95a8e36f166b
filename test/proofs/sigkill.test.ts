import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalEnvironment } from '../../local/run.js';
import {
  assertNoLossNoDuplicates,
  createTestDatabase,
  expireLease,
  fixedCutoffSql,
  resolvedTable,
  seedEvents,
  type TestDatabase,
  tableLines,
  writeTestConfig,
} from '../support/fixtures.js';
import { PROOF_SOAK, recordProof, seededRandom } from '../support/proof-ledger.js';

const CLI = fileURLToPath(new URL('../../bin/audit-archiver.mjs', import.meta.url));
const SEED = Number(process.env.SIGKILL_SEED ?? 20261123);
const KILLS = 3 * PROOF_SOAK;
const DAYS = 60 + 20 * KILLS;

function runCli(configPath: string, stateDir: string): ChildProcess {
  return spawn(process.execPath, [CLI, 'local', 'run', '--config', configPath, '--state-dir', stateDir], {
    env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true' },
    stdio: 'ignore',
  });
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });

describe(`local runs killed with SIGKILL at random moments (seed ${SEED})`, () => {
  let db: TestDatabase;
  let files: ReturnType<typeof writeTestConfig>;
  // 14 rows a day (13 on the first) in batches of 21: each batch spans two or three days, and all but the last
  // end mid-day.
  const spec = { schema: 'public', name: 'killed', timestampColumn: 'created_at', batchSize: 21 };

  beforeAll(async () => {
    db = await createTestDatabase();
    // 30 + 20 per kill days past the 30-day retention, two thirds as many batches: every run has work left when it is
    // killed (each killed run commits a few), and the final run, which archives what is left batch by batch, stays
    // short.
    await seedEvents(db.client, 'killed', 14 * DAYS, DAYS);
    files = writeTestConfig(db, [spec], { defaults: { maxBatchesPerRun: 800 } });
  });

  afterAll(async () => {
    files?.cleanup();
    await db?.drop();
  });

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const remainingRows = async () =>
    (await db.client.query('SELECT count(*)::int AS n FROM public.killed')).rows[0].n as number;

  /** Opens the persisted local state, checks the invariant, and lets the killed run's lease lapse (time passing). */
  async function checkAndExpireLease(
    original: string[],
  ): Promise<{ inDatabase: number; inArchives: number }> {
    const local = await openLocalEnvironment(files.configPath, join(files.dir, 'state'), { clock: db.now });
    try {
      const counts = await assertNoLossNoDuplicates(local, db.client, resolvedTable(spec), original);
      await expireLease(local, 'app', 'public.killed');
      return counts;
    } finally {
      await local.close();
    }
  }

  it(`loses no row and doubles none across ${KILLS} kills and a final run`, async () => {
    // Prepare
    const original = await tableLines(db.client, resolvedTable(spec));
    const next = seededRandom(SEED);
    const progress: number[] = [];

    // Act: start the CLI; once it has committed a delete, kill it a seeded 0-400 ms later (anywhere inside the next
    // batch's steps); check the invariant; let its lease lapse; repeat.
    for (let kill = 0; kill < KILLS; kill++) {
      const before = await remainingRows();
      const child = runCli(files.configPath, join(files.dir, 'state'));
      const deadline = Date.now() + 60_000;
      while ((await remainingRows()) === before && Date.now() < deadline) await sleep(50);
      await sleep(next() * 400);
      child.kill('SIGKILL');
      await exited(child);
      progress.push((await checkAndExpireLease(original)).inArchives);
      recordProof({ kind: 'fault', point: 'SIGKILL of the CLI at a seeded moment', iteration: kill });
    }
    const cutoff = await fixedCutoffSql(db.client);
    const final = runCli(files.configPath, join(files.dir, 'state'));
    const code = await exited(final);

    // Assess
    expect(code).toBe(0);
    const counts = await checkAndExpireLease(original);
    const old = await db.client.query(
      `SELECT count(*)::int AS n FROM public.killed WHERE created_at < ${cutoff}`,
    );
    expect(old.rows[0].n).toBe(0);
    expect(counts.inArchives + counts.inDatabase).toBe(original.length);
    // Each killed run had committed at least one batch, so the archived rows grew from kill to kill.
    expect(new Set(progress).size).toBe(KILLS);
    expect(progress.at(-1)).toBeLessThan(counts.inArchives);
  });
});
