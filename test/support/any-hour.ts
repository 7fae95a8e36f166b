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
 * By default it runs at the next 00:30, 06:30, 17:30 and 23:30 UTC, each less than a day ahead: the hours that once
 * broke the suite, and the half hour before midnight. A shift of days works too (`--at 2028-02-29T23:30`): the local S3
 * server dates each object it writes by its own (shifted) clock, as S3 does, not by the file's modification time,
 * which the kernel sets by the real clock.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

const DEFAULT_HOURS = ['00:30', '06:30', '17:30', '23:30'];

/** The next instant, from now, at which a UTC clock shows `hhmm`. */
function nextAt(hhmm: string, now = Date.now()): string {
  const today = new Date(now).toISOString().slice(0, 10);
  let at = Date.parse(`${today}T${hhmm}:00Z`);
  if (at <= now) at += 86_400_000;
  return new Date(at).toISOString().slice(0, 16);
}

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
  const instants = values.at ?? DEFAULT_HOURS.map((hhmm) => nextAt(hhmm));
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
