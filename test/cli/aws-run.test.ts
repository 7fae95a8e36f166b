import { describe, expect, it } from 'vitest';
import { type AwsRunOutcome, runExitCode } from '../../cli/aws-run.js';

describe('run: the exit code of a deployed run', () => {
  const summary = (skipped: number, held = 0): AwsRunOutcome['summary'] => ({
    runId: 'run-1',
    tables: 2,
    succeeded: 2 - skipped - held,
    skipped,
    held,
    failed: 0,
    rowsArchived: 10,
    bytesArchived: 100,
    batches: 1,
    perTable: [],
    perTableTruncated: false,
  });
  const outcome = (status: string, extra: Partial<AwsRunOutcome> = {}): AwsRunOutcome => ({
    executionArn: 'arn:aws:states:us-east-1:111122223333:execution:archive:cli-1',
    status,
    ...extra,
  });

  it('is 1 when the run succeeded but skipped a table whose lease another run held, as local run says', () => {
    // Act & Assess: a cron job must not read a table left unarchived as done (docs: exit 1 for a run that skipped one)
    expect(runExitCode(outcome('SUCCEEDED', { summary: summary(1) }))).toBe(1);
    expect(runExitCode(outcome('SUCCEEDED', { summary: summary(0) }))).toBe(0);
    // A held table is what the operator asked for, as in local run and plan
    expect(runExitCode(outcome('SUCCEEDED', { summary: summary(0, 1) }))).toBe(0);
    expect(runExitCode(outcome('FAILED', { error: 'ArchiveRunFailed' }))).toBe(1);
    expect(runExitCode(outcome('FAILED', { error: 'ConfigError' }))).toBe(2);
  });
});
