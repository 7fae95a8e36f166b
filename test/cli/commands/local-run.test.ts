import { describe, expect, it } from 'vitest';
import { localRunExitCode } from '../../../cli/commands/local-run.js';

describe('local run exit code', () => {
  it('is 0 for a succeeded run that took every table, held ones included', () => {
    // Act and assess
    expect(localRunExitCode({ status: 'SUCCEEDED' }, [{ status: 'succeeded' }, { status: 'held' }])).toBe(0);
  });

  it('is 1 when a table was skipped because another (or a crashed) run holds its lease, so cron sees it', () => {
    // Act and assess
    expect(localRunExitCode({ status: 'SUCCEEDED' }, [{ status: 'succeeded' }, { status: 'skipped' }])).toBe(
      1,
    );
  });

  it.each([['ConfigError'], ['InvalidInputError']])(
    'is 2, a usage or config error, when the plan refused the input with %s (a table not in the config)',
    (name) => {
      // Act and assess
      expect(localRunExitCode({ status: 'FAILED', error: { name } }, [])).toBe(2);
    },
  );

  it('is 1 when the run failed', () => {
    // Act and assess
    expect(
      localRunExitCode({ status: 'FAILED', error: { name: 'ArchiveRunFailed' } }, [{ status: 'failed' }]),
    ).toBe(1);
  });
});
