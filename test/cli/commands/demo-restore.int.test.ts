import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoDataDir } from '../../../local/demo.js';
import { startLocalPostgres } from '../../../local/postgres.js';
import { runCli as cli, REPO_ROOT as root } from '../../support/cli-process.js';

describe('local restore --demo', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-dry-run-'));
  const stateDir = join(dir, 'state');
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(demoDataDir(stateDir, 18), { recursive: true, force: true });
  });
  beforeAll(() => {
    const demo = cli('demo', '--rows', '200', '-q', '-s', stateDir);
    expect(demo.status, demo.stderr).toBe(0);
  });

  it('stopped by a signal to its own process (kill, timeout, a scheduler), stops the demo PostgreSQL it started', async () => {
    // Prepare: a dry run, so the restore below still has every archive to restore
    const postmasterPid = join(demoDataDir(stateDir, 18), 'postmaster.pid');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'local', 'restore', '--demo', '--dry-run', '-q', '-s', stateDir],
      { cwd: root, stdio: 'ignore' },
    );
    const ended = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    while (!existsSync(postmasterPid)) await new Promise((resolve) => setTimeout(resolve, 100));

    // Act
    child.kill('SIGTERM');
    const code = await ended;

    // Assess: the shell's code for SIGTERM, and the server gone (it removes its pid file as it stops)
    expect(code).toBe(143);
    for (let waited = 0; existsSync(postmasterPid) && waited < 100; waited++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(existsSync(postmasterPid)).toBe(false);
  });

  it('succeeds without calling the tables different from the originals: it restored nothing to compare', () => {
    // Act: the dry run, then the restore it previewed
    const dryRun = cli('local', 'restore', '--demo', '--dry-run', '-q', '-s', stateDir);
    const restore = cli('local', 'restore', '--demo', '-q', '-s', stateDir);

    // Assess
    expect(dryRun.stderr).toBe('');
    expect(dryRun.stdout).not.toMatch(/DIFFERS/);
    expect(dryRun.stdout).toMatch(/^Dry run: nothing was restored, so the tables were not compared/m);
    expect(dryRun.status).toBe(0);
    expect(restore.stdout).toMatch(/^public\.audit_logs: 140 rows; identical to the original rows$/m);
    expect(restore.status).toBe(0);
  });

  it('--json prints one JSON document on stdout, with --verbose too: each table’s restore, then the comparison', () => {
    // Act: after the restore above, so every archive is met again as already restored
    const dryRun = cli('local', 'restore', '--demo', '--dry-run', '--json', '--verbose', '-s', stateDir);
    const restore = cli('local', 'restore', '--demo', '--json', '--verbose', '-s', stateDir);

    // Assess
    expect(dryRun.status, dryRun.stderr).toBe(0);
    const previewed = JSON.parse(dryRun.stdout) as { restores: { table: string }[]; comparison?: unknown };
    expect(previewed.restores.map((r) => r.table)).toEqual(['public.audit_logs', 'billing.Invoice Events']);
    expect(previewed.comparison).toBeUndefined();
    expect(restore.status, restore.stderr).toBe(0);
    const restored = JSON.parse(restore.stdout) as {
      restores: { table: string; execution: { status: string } }[];
      comparison: { table: string; missing: number; extra: number }[];
    };
    expect(restored.restores.map((r) => [r.table, r.execution.status])).toEqual([
      ['public.audit_logs', 'SUCCEEDED'],
      ['billing.Invoice Events', 'SUCCEEDED'],
    ]);
    expect(restored.comparison).toEqual([
      expect.objectContaining({ table: 'public.audit_logs', missing: 0, extra: 0 }),
      expect.objectContaining({ table: 'billing.Invoice Events', missing: 0, extra: 0 }),
    ]);
  });

  it('a demo PostgreSQL another process left running (killed with SIGKILL): says which process and what to do', async () => {
    // Prepare: the demo's server, started by a process that is not the command
    const left = await startLocalPostgres(18, { dataDir: demoDataDir(stateDir, 18) });
    try {
      // Act
      const run = cli('local', 'restore', '--demo', '--dry-run', '-q', '-s', stateDir);

      // Assess
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(
        /a PostgreSQL \(PID \d+\) already runs on .*: another command is using it, or one killed by SIGKILL left it running; once no command uses it, stop it \(kill -INT \d+\) and try again/,
      );
    } finally {
      await left.stop();
    }
  });
});
