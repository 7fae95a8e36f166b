import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { archiveLocally } from '../../../cli/commands/local-run.js';
import type { FaultPoint } from '../../../lambdas/shared/step/step-deps.js';
import { openLocalEnvironment } from '../../../local/run.js';
import {
  createTestDatabase,
  seedEvents,
  type TestDatabase,
  writeTestConfig,
} from '../../support/fixtures.js';

/**
 * The application updates a row of every other batch between export and delete: those batches are withdrawn, nothing
 * deleted (the next export takes their rows again). The state machine counts them against the batch budget with the committed ones, and the table's outcome
 * carries that count; the run's summary must say the batches it committed, as `status` does, and how many were
 * withdrawn.
 */
describe('local run summary with withdrawn batches', () => {
  let db: TestDatabase;
  let files: ReturnType<typeof writeTestConfig>;

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'churn', 300, 60);
    files = writeTestConfig(db, [{ name: 'churn', timestampColumn: 'created_at' }], {
      defaults: { batchSize: 20 },
    });
  });
  afterAll(async () => {
    files?.cleanup();
    await db?.drop();
  });

  it('counts the batches committed, as status does, and says how many were withdrawn', async () => {
    // Prepare: the oldest row left is in the batch in flight; every other export sees it updated once it has read it.
    let exported = 0;
    let updated = 0;
    const fault = async (point: FaultPoint) => {
      if (point !== 'export:afterStaging' || exported++ % 2 === 1) return;
      updated += 1;
      await db.client.query(
        `UPDATE public.churn SET actor = actor || '.' WHERE id = (SELECT min(id) FROM public.churn)`,
      );
    };
    const stateDir = join(files.dir, 'state');
    const printed: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((text: string) => void printed.push(text));

    // Act
    let exitCode: number;
    try {
      exitCode = await archiveLocally(
        files.configPath,
        stateDir,
        {},
        undefined,
        { quiet: true },
        {
          fault,
          retryIntervalScale: 0,
        },
      );
    } finally {
      log.mockRestore();
    }
    const local = await openLocalEnvironment(files.configPath, stateDir);
    // What `status` reads: the batches committed, ever (this is the table's first run).
    const status = await local.deps().locks.get('app', 'public.churn');
    await local.close();

    // Assess: every update withdrew its batch; the summary's batches are the committed ones.
    expect(exitCode).toBe(0);
    expect(status.totalBatches).toBeGreaterThan(1);
    expect(updated).toBeGreaterThan(1);
    expect(printed.join('\n')).toContain(
      `archived ${status.totalRows.toLocaleString('en-US')} rows in ${status.totalBatches} batches (${updated} more withdrawn: rows changed under them, nothing deleted),`,
    );
  });
});
