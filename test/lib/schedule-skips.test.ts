import { describe, expect, it } from 'vitest';
import { skippedRun } from '../../lib/schedule-skips.js';

describe('skippedRun: the runs daylight saving time takes away', () => {
  it.each([
    ['cron(30 2 * * ? *)', 'Europe/Paris', '02:30', '02:00 to 03:00'],
    ['cron(0,30 2 * * ? *)', 'America/New_York', '02:00, 02:30', '02:00 to 03:00'],
    ['cron(15 2 * * ? *)', 'Australia/Lord_Howe', '02:15', '02:00 to 02:30'],
    // Europe and the United States put their clocks forward on a Sunday: a weekly run then has none that week.
    ['cron(30 2 ? * SUN *)', 'Europe/Paris', '02:30', '02:00 to 03:00'],
    ['cron(30 2 ? * 1 *)', 'America/New_York', '02:30', '02:00 to 03:00'],
    ['cron(30 2 ? * FRI-SUN *)', 'Europe/Berlin', '02:30', '02:00 to 03:00'],
  ])('finds that %s in %s has no run one day a year', (expression, timeZone, at, span) => {
    // Act
    const why = skippedRun(expression, timeZone);

    // Assess: every year from any date holds one such day.
    expect(why).toContain(`runs only at ${at} in ${timeZone}, which daylight saving time skips on `);
    expect(why).toMatch(new RegExp(`skips on \\d{4}-\\d{2}-\\d{2} \\([A-Z]{3}, ${span}\\)`));
  });

  it.each([
    ['cron(30 2 * * ? *)', 'UTC'],
    ['cron(0 3 * * ? *)', 'Europe/Paris'],
    ['cron(45 2 * * ? *)', 'Australia/Lord_Howe'],
    ['cron(30 2,4 * * ? *)', 'Europe/Paris'],
    ['cron(30 */6 * * ? *)', 'Europe/Paris'],
    ['cron(30 2 ? * MON-FRI *)', 'Europe/Paris'],
    ['cron(30 2 ? * 2-6 *)', 'America/New_York'],
    ['rate(1 day)', 'Europe/Paris'],
  ])('finds no day without a run for %s in %s', (expression, timeZone) => {
    // Act, Assess
    expect(skippedRun(expression, timeZone)).toBeUndefined();
  });
});
