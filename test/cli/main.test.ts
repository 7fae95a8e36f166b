import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../cli/exit-codes.js';
import { ConfigError, DatabaseUnavailableError } from '../../lambdas/shared/errors/step-errors.js';

const root = new URL('../../', import.meta.url).pathname;
const cli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { cwd: root, encoding: 'utf8' });

describe('audit-archiver', () => {
  it('prints the package version with --version and exits 0', () => {
    // Prepare
    const { version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };

    // Act
    const result = cli('--version');

    // Assess
    expect(result.stdout.trim()).toBe(version);
    expect(result.status).toBe(0);
  });

  it('exits 2 on a usage error, a missing option or a config error, and 0 for help', () => {
    // Act
    const unknownOption = cli('plan', '--no-such-option');
    const missingOption = cli('doctor');
    const noConfig = cli('plan');
    const help = cli('cost', '--help');

    // Assess
    expect(unknownOption.status).toBe(2);
    expect(unknownOption.stderr).toMatch(/unknown option/);
    expect(missingOption.status).toBe(2);
    expect(noConfig.status).toBe(2);
    expect(noConfig.stderr).toMatch(/^ConfigError: plan needs --config/m);
    expect(help.status).toBe(0);
  });

  it('maps an error that ended a command: the user’s input 2, a failure of the work 1', () => {
    // Act and assess
    expect(exitCodeOf(new ConfigError('bad field'))).toBe(2);
    expect(exitCodeOf(new DatabaseUnavailableError('down'))).toBe(1);
    expect(exitCodeOf(new Error('unexpected'))).toBe(1);
  });
});
