import { describe, expect, it } from 'vitest';
import {
  formatRestoreResults,
  type RestoreOptions,
  restoreOnAws,
  restoreRequest,
} from '../../cli/restore.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { RestoreRequestSchema } from '../../lambdas/shared/restore/restore-task.js';

const base: RestoreOptions = {
  database: 'app',
  table: 'public.audit_logs',
  strategy: 'skip',
  dryRun: false,
  ignoreWatermark: false,
  drift: 'strict',
  json: false,
};

describe('restore options → execution input', () => {
  it('picks the mode from the options: one key, a day range, or the whole table', () => {
    // Act
    const byKey = restoreRequest({ ...base, key: 'archive/app/x.jsonl.gz' });
    const byRange = restoreRequest({ ...base, from: '2025-01-01', to: '2025-01-31' });
    const whole = restoreRequest({ ...base, target: 'inspect.audit_logs', legacyDatabase: 'prod' });

    // Assess
    expect(byKey).toMatchObject({ mode: 'key', key: 'archive/app/x.jsonl.gz' });
    expect(byRange).toMatchObject({ mode: 'range', fromDay: '2025-01-01', toDay: '2025-01-31' });
    expect(whole).toMatchObject({
      mode: 'table',
      targetTable: 'inspect.audit_logs',
      legacy: { database: 'prod' },
    });
  });

  it('passes --allow-missing-archives to the request; without it the request leaves the default (refuse)', () => {
    // Act
    const allowing = restoreRequest({ ...base, allowMissingArchives: true });
    const plain = restoreRequest(base);

    // Assess
    expect(allowing).toMatchObject({ allowMissingArchives: true });
    expect(RestoreRequestSchema.parse(allowing).allowMissingArchives).toBe(true);
    expect(plain).not.toHaveProperty('allowMissingArchives');
    expect(RestoreRequestSchema.parse(plain).allowMissingArchives).toBe(false);
  });

  it('names the option and the reason when the options make no valid request', () => {
    // Act
    const noSchema = () => restoreRequest({ ...base, table: 'no_schema' });
    const backwards = () => restoreRequest({ ...base, from: '2025-02-01', to: '2025-01-01' });
    const unpadded = () => restoreRequest({ ...base, from: '2025-1-5' });

    // Assess: by the option typed (before, by the execution input's field: "fromDay" for --from).
    expect(noSchema).toThrow(ConfigError);
    expect(noSchema).toThrow(/\n--table: must be "schema.name"/);
    expect(backwards).toThrow(/\n--to: must not be before fromDay/);
    expect(unpadded).toThrow(/\n--from: must be a day, YYYY-MM-DD/);
  });

  it('refuses --legacy-prefix without --legacy-database rather than restoring the native archives instead', () => {
    // Act
    const prefixAlone = () => restoreRequest({ ...base, legacyPrefix: 'old/' });
    const both = restoreRequest({ ...base, legacyPrefix: 'old/', legacyDatabase: 'prod' });

    // Assess
    expect(prefixAlone).toThrow(ConfigError);
    expect(prefixAlone).toThrow(/--legacy-prefix needs --legacy-database/);
    expect(both).toMatchObject({ legacy: { database: 'prod', prefix: 'old/' } });
  });

  it('refuses --key with --from or --to in the options’ own words, not the request’s', () => {
    // Act
    const keyAndDays = () => restoreRequest({ ...base, key: 'archive/app/x.jsonl.gz', from: '2025-01-01' });

    // Assess
    expect(keyAndDays).toThrow(ConfigError);
    expect(keyAndDays).toThrow(/--key restores one archive: leave out --from and --to/);
  });

  it('refuses a --from or --to its month does not have, before starting anything', () => {
    // Act
    const from = () => restoreRequest({ ...base, from: '2020-02-30' });
    const to = () => restoreRequest({ ...base, from: '2020-01-01', to: '2020-04-31' });

    // Assess
    expect(from).toThrow(ConfigError);
    expect(from).toThrow(/\n--from: must be a day of the calendar/);
    expect(to).toThrow(/\n--to: must be a day of the calendar/);
  });
});

describe('restore results as the operator reads them', () => {
  const result = (status: 'restored' | 'dry-run', key: string) => ({
    key,
    status,
    rows: 21_000,
    inserted: 21_000,
    skipped: 0,
    overwritten: 0,
    warnings: [],
  });

  it('says a dry run would restore the rows and wrote nothing, never that it restored them', () => {
    // Act
    const text = formatRestoreResults([result('dry-run', 'a'), result('dry-run', 'b')], { dryRun: true });

    // Assess
    expect(text).not.toMatch(/\d restored/);
    expect(text).toMatch(/rows: 42,000 would be restored, 0 skipped, 0 overwritten; nothing written$/);
  });

  it('says a restore restored them', () => {
    // Act
    const text = formatRestoreResults([result('restored', 'a'), result('restored', 'b')], { dryRun: false });

    // Assess
    expect(text).toMatch(/rows: 42,000 restored, 0 skipped, 0 overwritten$/);
  });

  it('says a restore whose every archive failed restored nothing, not that it would have (a dry run)', () => {
    // Prepare
    const failed = {
      ...result('restored', 'a'),
      status: 'failed' as const,
      rows: 0,
      inserted: 0,
      error: 'X: y',
    };

    // Act
    const text = formatRestoreResults([failed], { dryRun: false });

    // Assess
    expect(text).not.toMatch(/would be restored|nothing written/);
    expect(text).toMatch(
      /Archives: 1 \(1 failed, 0 already restored\); rows: 0 restored, 0 skipped, 0 overwritten$/,
    );
  });
});

describe('restore (AWS) with --json', () => {
  const EXECUTION = 'arn:aws:states:us-east-1:111122223333:execution:audit-archiver-restore:cli-1';

  /** A deployed execution that runs for one poll, then ends as `ended` says. */
  const sfnEnding = (ended: Record<string, unknown>) => {
    let polls = 0;
    return {
      send: async (command: { constructor: { name: string } }) => {
        if (command.constructor.name === 'StartExecutionCommand') return { executionArn: EXECUTION };
        if (command.constructor.name === 'DescribeExecutionCommand') {
          polls += 1;
          return polls === 1 ? { status: 'RUNNING' } : ended;
        }
        return { events: [] };
      },
    };
  };

  it('prints the outcome alone, as one JSON document a script can parse, whether the execution succeeded or failed', async () => {
    // Prepare
    const summary = { status: 'succeeded', totals: { files: 2, failedFiles: 0 } };
    const succeeded = sfnEnding({ status: 'SUCCEEDED', output: JSON.stringify(summary) });
    const failed = sfnEnding({ status: 'FAILED', error: 'ConfigError', cause: 'no archive selected' });
    const lines: string[] = [];
    const failedLines: string[] = [];
    const progress: string[] = [];

    // Act
    const code = await restoreOnAws(
      succeeded as never,
      'arn:aws:states:::stateMachine:restore',
      { ...base, json: true },
      { write: (text) => lines.push(text), writeProgress: (text) => progress.push(text), pollMs: 1 },
    );
    const failedCode = await restoreOnAws(
      failed as never,
      'arn:aws:states:::stateMachine:restore',
      { ...base, json: true },
      { write: (text) => failedLines.push(text), writeProgress: () => undefined, pollMs: 1 },
    );

    // Assess: no progress or status line around it; the exit code as without --json
    expect(JSON.parse(lines.join('\n'))).toEqual({
      executionArn: EXECUTION,
      status: 'SUCCEEDED',
      output: summary,
    });
    expect(code).toBe(0);
    expect(JSON.parse(failedLines.join('\n'))).toEqual({
      executionArn: EXECUTION,
      status: 'FAILED',
      error: 'ConfigError',
      cause: 'no archive selected',
    });
    expect(failedCode).toBe(2);
    // The ARN goes to the progress stream (stderr): if following fails, the operator still knows the execution
    expect(progress[0]).toBe(`Started ${EXECUTION}`);
  });
});
