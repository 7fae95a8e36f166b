import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { demoConfigPath, demoDataDir } from '../../../local/demo.js';
import { REPO_ROOT as root } from '../../support/cli-process.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('npm start while the server ends connections of its own', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-connection-'));
  const stateDir = join(dir, 'state');
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(demoDataDir(stateDir, 18), { recursive: true, force: true });
  });

  it('archives on when the server ends every idle connection that is not the archiver’s: the demo is not ended by it', {
    timeout: 240_000,
  }, async () => {
    // Prepare: the demo in a process of its own, its output kept.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'demo', '--rows', '200', '-q', '-s', stateDir],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += String(chunk);
    });
    child.stderr.on('data', (chunk) => {
      stderr += String(chunk);
    });
    let exited = false;
    const ended = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => {
        exited = true;
        resolve(code);
      }),
    );

    // Act: once the demo's database is seeded (its config names it), the server ends, again and again until the demo
    // is over, each connection of it idle for a while that is neither the archiver's (named) nor this test's.
    const config = demoConfigPath(stateDir);
    while (!existsSync(config) && !exited) await sleep(50);
    let terminated = 0;
    if (!exited) {
      const { databases } = parse(readFileSync(config, 'utf8')) as {
        databases: { credentials: { url: string } }[];
      };
      const admin = new pg.Client({ connectionString: databases[0]?.credentials.url });
      // The demo stops its server as it ends, and this connection with it.
      admin.on('error', () => undefined);
      await admin.connect();
      while (!exited) {
        const { rows } = await admin
          .query<{ ended: boolean }>(
            `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid()
                AND application_name = '' AND state = 'idle' AND state_change < now() - interval '3 s'`,
          )
          .catch(() => ({ rows: [] }));
        terminated += rows.filter((row) => row.ended).length;
        await sleep(50);
      }
      await admin.end().catch(() => undefined);
    }
    const code = await ended;

    // Assess: the run ends as it would have, with its summary and nothing on stderr.
    expect(stderr, `${terminated} connection(s) ended`).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/succeeded/);
  });
});
