import { describe, expect, it } from 'vitest';
import { runCli as cli } from '../../support/cli-process.js';

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
