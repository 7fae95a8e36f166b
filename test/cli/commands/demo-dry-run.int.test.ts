import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { demoDataDir } from '../../../local/demo.js';

const root = new URL('../../../', import.meta.url).pathname;
const cli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { cwd: root, encoding: 'utf8' });

describe('local restore --demo --dry-run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-dry-run-'));
  const stateDir = join(dir, 'state');
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(demoDataDir(stateDir, 18), { recursive: true, force: true });
  });

  it('succeeds without calling the tables different from the originals: it restored nothing to compare', () => {
    // Prepare
    const demo = cli('demo', '--rows', '200', '-q', '-s', stateDir);
    expect(demo.status, demo.stderr).toBe(0);

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
});
