import { describe, expect, it } from 'vitest';
import { formatIssues } from '../../../../lambdas/shared/config/config.js';
import { RestoreRequestSchema, RestoreTaskSchema } from '../../../../lambdas/shared/restore/restore-task.js';
import { restoreTaskOf } from '../../../support/fixtures.js';

const request = { database: 'app', table: 'public.audit_logs', mode: 'range' };
const task = restoreTaskOf('audit_logs');
const problems = (result: { success: boolean; error?: Parameters<typeof formatIssues>[0] }) =>
  result.error ? formatIssues(result.error) : '';

describe('the day fields of a restore request and task', () => {
  it('refuses a day its month does not have, naming the field, instead of reading it as a day of the next month', () => {
    // Act
    const from = RestoreRequestSchema.safeParse({ ...request, fromDay: '2020-02-30' });
    const to = RestoreRequestSchema.safeParse({ ...request, fromDay: '2021-01-01', toDay: '2021-02-29' });
    const april = RestoreRequestSchema.safeParse({ ...request, toDay: '2025-04-31' });
    const inTask = RestoreTaskSchema.safeParse({ ...task, fromDay: '2020-02-30' });

    // Assess
    expect(from.success).toBe(false);
    expect(problems(from)).toBe('fromDay: must be a day of the calendar, YYYY-MM-DD: there is no such day');
    expect(problems(to)).toBe('toDay: must be a day of the calendar, YYYY-MM-DD: there is no such day');
    expect(problems(april)).toMatch(/^toDay: must be a day of the calendar/);
    expect(problems(inTask)).toMatch(/^fromDay: must be a day of the calendar/);
  });

  it('takes every real day, a leap day included, and says once what is wrong with text that is no day at all', () => {
    // Act
    const leap = RestoreRequestSchema.safeParse({ ...request, fromDay: '2020-02-29', toDay: '2020-12-31' });
    const month13 = RestoreRequestSchema.safeParse({ ...request, fromDay: '2020-13-01' });
    const shape = RestoreRequestSchema.safeParse({ ...request, fromDay: '1 March 2020' });

    // Assess
    expect(leap.success).toBe(true);
    expect(leap.data).toMatchObject({ fromDay: '2020-02-29', toDay: '2020-12-31' });
    expect(problems(month13)).toBe(
      'fromDay: must be a day of the calendar, YYYY-MM-DD: there is no such day',
    );
    expect(problems(shape)).toBe('fromDay: must be a day, YYYY-MM-DD');
  });
});
