import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { demoDataDir } from '../../../local/demo.js';
import { runCli as cli } from '../../support/cli-process.js';

describe('npm start run again in the same state dir', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-again-'));
  const stateDir = join(dir, 'state');
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(demoDataDir(stateDir, 18), { recursive: true, force: true });
  });

  it('forgets the earlier demo with its archives: local restore --demo brings back every row of the new one', () => {
    // Act: a demo, another one (a new database, the earlier archives cleared), then the documented restore
    const first = cli('demo', '--rows', '200', '-q', '-s', stateDir);
    const second = cli('demo', '--rows', '200', '-q', '-s', stateDir);
    const restore = cli('local', 'restore', '--demo', '-q', '-s', stateDir);

    // Assess
    expect(first.status, first.stderr).toBe(0);
    expect(second.status, second.stderr).toBe(0);
    expect(restore.stderr).toBe('');
    expect(restore.stdout).toMatch(/^public\.audit_logs: 140 rows; identical to the original rows$/m);
    expect(restore.stdout).toMatch(/^billing\.Invoice Events: 60 rows; identical to the original rows$/m);
    expect(restore.status).toBe(0);
  });
});
