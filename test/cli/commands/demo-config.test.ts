import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeDemoConfig } from '../../../local/demo.js';
import { runCli as cli } from '../../support/cli-process.js';

/**
 * Commands that need no database read the config the demo left in the state dir, so they work after `npm start`
 * although the demo's PostgreSQL (and the port its url names) is gone.
 */
describe('--demo on the commands that need no database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('validate, list and hold list read the demo config; without a demo, they say to run npm start (exit 2)', () => {
    // Prepare: a demo state dir whose database is long gone.
    const demoDir = join(dir, 'demo');
    mkdirSync(demoDir);
    writeDemoConfig(demoDir, 'postgres://postgres:postgres@127.0.0.1:1/shop');

    // Act
    const validate = cli('local', 'validate', '--demo', '-s', demoDir, '--json');
    const list = cli('local', 'list', '--demo', '-s', demoDir, '--json');
    const holds = cli('hold', 'list', '--demo', '-s', demoDir, '--json');
    const noDemo = cli('hold', 'list', '--demo', '-s', join(dir, 'empty'));

    // Assess
    expect(validate.status, validate.stderr).toBe(0);
    expect(list.status, list.stderr).toBe(0);
    expect(holds.status, holds.stderr).toBe(0);
    expect(JSON.parse(holds.stdout)).toEqual([]);
    expect(noDemo.status).toBe(2);
    expect(noDemo.stderr).toMatch(/ConfigError: --demo: no demo in .*; run `npm start` first/);
  });

  it('validate, list, audit, status and hold list refuse a state dir that does not exist rather than report nothing as OK (exit 2)', () => {
    // Prepare: a config, and a state dir mistyped (none was ever made there).
    const config = join(dir, 'archiver.yaml');
    writeFileSync(
      config,
      's3: { bucket: archive-bucket }\ndatabases:\n  - name: app\n    credentials: { url: "postgres://u:p@127.0.0.1:1/app" }\n    tables: [{ name: audit, timestampColumn: at }]\n',
    );
    const mistyped = join(dir, 'stae');

    // Act
    const runs = [
      cli('local', 'validate', '-c', config, '-s', mistyped),
      cli('local', 'list', '-c', config, '-s', mistyped),
      cli('audit', '-c', config, '-s', mistyped),
      cli('status', '-c', config, '-s', mistyped),
      cli('hold', 'list', '-c', config, '-s', mistyped),
    ];

    // Assess: nothing is made there either.
    for (const run of runs) {
      expect(run.status, run.stdout).toBe(2);
      expect(run.stderr).toMatch(/^ConfigError: --state-dir: no local state in .*stae/);
    }
    expect(existsSync(mistyped)).toBe(false);
  });

  it('a demo.json another version left, or a damaged one: says what to do (exit 2), not a raw parse error', () => {
    // Prepare: one names a PostgreSQL major this version does not run, one is no JSON; and none at all
    const otherVersion = join(dir, 'other-version');
    const damaged = join(dir, 'damaged');
    for (const [stateDir, text] of [
      [otherVersion, '{"postgres":16,"database":"shop"}\n'],
      [damaged, 'not json\n'],
    ] as const) {
      mkdirSync(stateDir);
      writeFileSync(join(stateDir, 'demo.json'), text);
    }

    // Act: commands that start the demo's PostgreSQL read demo.json
    const runs = [
      cli('local', 'restore', '--demo', '-q', '-s', otherVersion),
      cli('local', 'restore', '--demo', '-q', '-s', damaged),
      cli('local', 'restore', '--demo', '-q', '-s', join(dir, 'none')),
    ];

    // Assess
    for (const run of runs) {
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/^ConfigError: --demo: .*run `npm start`/);
      expect(run.stderr).not.toMatch(/ZodError|SyntaxError/);
    }
    expect(runs[0]?.stderr).toMatch(/demo\.json is not one this version reads/);
  });
});
