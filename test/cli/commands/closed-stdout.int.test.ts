import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli as cli, REPO_ROOT as root } from '../../support/cli-process.js';
import {
  createTestDatabase,
  seedEvents,
  type TestDatabase,
  writeTestConfig,
} from '../../support/fixtures.js';

/**
 * `local run … | head -3` or `| grep -m1 '"type":"table"'`: the reader goes away while the run still writes its JSON
 * progress lines. The closed pipe is the reader's business, not the run's: a write that fails with EPIPE must not end
 * the process mid-batch (an uncaught 'error' event: a stack trace, exit 1, the table's lease held until it expires).
 */
describe('local run whose stdout is closed by its reader', () => {
  let db: TestDatabase;
  let files: ReturnType<typeof writeTestConfig>;

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events_piped', 20_000, 40);
    files = writeTestConfig(db, [{ name: 'events_piped', timestampColumn: 'created_at' }]);
  });
  afterAll(async () => {
    files?.cleanup();
    await db?.drop();
  });

  /** Starts `local run` and closes its stdout once the first batch line arrived, as `head -1` does. */
  function runReadOnce(stateDir: string) {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'local', 'run', '-c', files.configPath, '-s', stateDir],
      { cwd: root },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (stdout.includes('"type":"batch"')) child.stdout.destroy();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    return new Promise<{ status: number | null; stderr: string }>((resolve) =>
      child.on('close', (status) => resolve({ status, stderr })),
    );
  }

  it('runs to its end, gives its lease back and exits 0', async () => {
    // Prepare
    const stateDir = join(files.dir, 'state');

    // Act
    const piped = await runReadOnce(stateDir);
    const status = cli('status', '--json', '-c', files.configPath, '-s', stateDir);
    const next = cli('local', 'run', '--json', '-c', files.configPath, '-s', stateDir);

    // Assess: no crash, the table free, and archived to the end: the next run finds nothing left
    expect(piped.stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(piped.status).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject([
      { table: 'public.events_piped', lease: { state: 'free' } },
    ]);
    expect(JSON.parse(next.stdout)).toMatchObject({
      tables: [{ table: 'public.events_piped', status: 'succeeded', rowsArchived: 0 }],
    });
  });
});
