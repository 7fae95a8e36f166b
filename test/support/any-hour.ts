/**
 * `npm run test:hours`: runs tests as if the clock showed other UTC hours and dates, to prove that no figure a test
 * asserts depends on when it runs. `faketime` (Debian package `faketime`) moves the clock of vitest and of every
 * process it starts, the embedded PostgreSQL included, so fixtures, the plan's cut-off and `now()` in SQL all see the
 * same shifted time, and it keeps running from there.
 *
 *   npm run test:hours                                  the unit and pg18 projects at the default instants
 *   npm run test:hours -- --at 2027-03-28T01:30 -- test/local/workflow.test.ts
 *   AT_HOURS_PROJECTS=pg14 npm run test:hours           other vitest projects (comma-separated)
 *
 * The default instants cover the hours that once broke the suite (00:30, 17:30, 23:30 UTC) and days where calendar
 * arithmetic goes wrong: the end of February, the night of a European and a US daylight-saving change, a leap day.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

const DEFAULT_INSTANTS = [
  '2027-03-01T00:30', // after a 28-day February: "30 days ago" lands in January
  '2027-03-14T06:30', // the day US clocks spring forward
  '2027-03-28T17:30', // the day European clocks spring forward; the hour that once failed the batch test
  '2028-02-29T23:30', // a leap day, half an hour before midnight
];

function main(): number {
  const { values, positionals } = parseArgs({
    options: { at: { type: 'string', multiple: true } },
    allowPositionals: true,
  });
  const which = spawnSync('faketime', ['-f', '+0', 'true']);
  if (which.error || which.status !== 0) {
    process.stderr.write('test:hours needs faketime: apt-get install -y faketime\n');
    return 2;
  }
  const instants = values.at ?? DEFAULT_INSTANTS;
  const projects = (process.env.AT_HOURS_PROJECTS ?? 'unit,pg18').split(',').flatMap((p) => ['--project', p]);
  const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
  const results: string[] = [];
  for (const instant of instants) {
    const at = new Date(`${instant}:00Z`);
    if (Number.isNaN(at.getTime())) {
      process.stderr.write(`--at ${instant}: not a UTC time such as 2027-03-01T00:30\n`);
      return 2;
    }
    const stamp = at.toISOString().slice(0, 19).replace('T', ' ');
    process.stdout.write(`\n=== tests as if it were ${stamp} UTC ===\n`);
    const run = spawnSync('faketime', [stamp, process.execPath, vitest, 'run', ...projects, ...positionals], {
      stdio: 'inherit',
      env: { ...process.env, TZ: 'UTC' },
    });
    results.push(`${stamp} UTC  ${run.status === 0 ? 'passed' : 'FAILED'}`);
  }
  process.stdout.write(`\n${results.join('\n')}\n`);
  return results.every((r) => r.endsWith('passed')) ? 0 : 1;
}

process.exitCode = main();
