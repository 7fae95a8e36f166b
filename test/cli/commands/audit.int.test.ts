import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli as cli } from '../../support/cli-process.js';
import {
  createTestDatabase,
  seedEvents,
  type TestDatabase,
  writeTestConfig,
} from '../../support/fixtures.js';

describe('audit -t / -d', () => {
  let db: TestDatabase;
  let files: ReturnType<typeof writeTestConfig>;
  const audit = (...args: string[]) =>
    cli('audit', '-c', files.configPath, '-s', join(files.dir, 'state'), ...args);

  beforeAll(async () => {
    // Prepare: a trail with a run of public.events and a restore into public.events_copy, a restore target the
    // config's tables do not list.
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 300, 40);
    files = writeTestConfig(db, [{ name: 'events', timestampColumn: 'created_at' }]);
    const state = join(files.dir, 'state');
    const run = cli('local', 'run', '-q', '-c', files.configPath, '-s', state);
    const restore = cli(
      ...['local', 'restore', '-q', '-c', files.configPath, '-s', state],
      ...['-d', 'app', '-t', 'public.events', '--target', 'public.events_copy'],
    );
    expect([run.status, restore.status]).toEqual([0, 0]);
  }, 120_000);
  afterAll(async () => {
    files?.cleanup();
    await db?.drop();
  });

  it.each([
    [
      'a table without its schema',
      ['-t', 'events'],
      /-t events: must be "schema\.name" \(did you mean public\.events\?\)/,
    ],
    [
      'a mistyped table',
      ['-t', 'public.event'],
      /public\.event is no table of the config.*no audit event names it/,
    ],
    ['a mistyped database', ['-d', 'ap'], /database ap is not in the config.*no audit event names it/],
  ])(
    'exits 2 for %s, naming it, rather than "No audit events in scope." and 0, read as nothing having happened',
    (_case, selection, message) => {
      // Act
      const result = audit(...selection);

      // Assess
      expect(result.stdout).not.toMatch(/No audit events in scope/);
      expect(result.stderr).toMatch(message);
      expect(result.status).toBe(2);
    },
  );

  it('lists the events of a table the config does not list when the trail names it, and an empty scope of a known name is no error', () => {
    // Act
    const target = audit('-t', 'public.events_copy');
    const later = audit('-t', 'public.events_copy', '--since', '2999-01-01');
    const noDrift = audit('-d', 'app', '-t', 'public.events', '--kind', 'schema-drift');

    // Assess
    expect(target.stdout).toMatch(/restore-finished +app\/public\.events_copy/);
    expect(target.status).toBe(0);
    expect(later.stdout).toMatch(/^No audit events in scope\.$/m);
    expect(later.status).toBe(0);
    expect(noDrift.stdout).toMatch(/^No audit events in scope\.$/m);
    expect(noDrift.status).toBe(0);
  });
});
