import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;

describe('audit-archiver', () => {
  it('prints the package version with --version and exits 0', () => {
    // Prepare
    const { version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };

    // Act
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', '--version'], {
      cwd: root,
      encoding: 'utf8',
    });

    // Assess
    expect(result.stdout.trim()).toBe(version);
    expect(result.status).toBe(0);
  });
});
