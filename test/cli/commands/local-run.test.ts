import { describe, expect, it } from 'vitest';
import { localRunExitCode } from '../../../cli/commands/local-run.js';

describe('local run exit code', () => {
  it('is 0 for a succeeded run that took every table, held ones included', () => {
    // Act and assess
    expect(localRunExitCode('SUCCEEDED', [{ status: 'succeeded' }, { status: 'held' }])).toBe(0);
  });

  it('is 1 when a table was skipped because another (or a crashed) run holds its lease, so cron sees it', () => {
    // Act and assess
    expect(localRunExitCode('SUCCEEDED', [{ status: 'succeeded' }, { status: 'skipped' }])).toBe(1);
  });

  it('is 1 when the run failed', () => {
    // Act and assess
    expect(localRunExitCode('FAILED', [{ status: 'failed' }])).toBe(1);
  });
});
