import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url).pathname;
const cli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { cwd: root, encoding: 'utf8' });

describe('doctor --help', () => {
  it.each([['doctor'], ['local', 'doctor']])(
    'states the exit codes doctorExitCode gives: %s',
    (...command) => {
      // Act
      const help = cli(...command, '--help');

      // Assess: warnings alone exit 0, anything critical 1 (docs/operating.md, Exit codes)
      expect(help.status).toBe(0);
      expect(help.stdout).toContain(
        'Exit code 0 when every check is ok or only warns (1 with --strict), 1 when any is critical, 2 on a usage or config error.',
      );
      expect(help.stdout).not.toMatch(/1 warnings|2 anything critical/);
    },
  );
});
