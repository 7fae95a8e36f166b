import { describe, expect, it } from 'vitest';
import { localRunExitCode, skippedTables } from '../../../cli/commands/local-run.js';

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

describe('local run, tables skipped on a held lease', () => {
  it('names each with its holder and says how to free a lease an interrupted local run left', () => {
    // Act
    const said = skippedTables([
      {
        database: 'shop',
        table: 'public.audit_logs',
        status: 'skipped',
        reason: 'locked by local-1 until 2026-12-05T12:00:00.000Z',
      },
      { database: 'shop', table: 'public.orders', status: 'succeeded' },
    ]);

    // Assess
    expect(said).toMatch(
      /^1 table\(s\) skipped: shop\/public\.audit_logs \(locked by local-1 until 2026-12-05T12:00:00\.000Z\)\./,
    );
    expect(said).toContain('`npm run cli -- lease break shop public.audit_logs` frees it');
  });

  it('says nothing when no table was skipped', () => {
    // Act and assess
    expect(
      skippedTables([{ database: 'shop', table: 'public.orders', status: 'succeeded' }]),
    ).toBeUndefined();
  });
});
