import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  seedEvents,
  type TestDatabase,
  writeTestConfig,
} from '../../support/fixtures.js';

const root = new URL('../../../', import.meta.url).pathname;
const cli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { cwd: root, encoding: 'utf8' });

describe('local run --json', () => {
  let db: TestDatabase;
  let files: ReturnType<typeof writeTestConfig>;

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 300, 40);
    files = writeTestConfig(db, [{ name: 'events', timestampColumn: 'created_at' }]);
  });
  afterAll(async () => {
    files?.cleanup();
    await db?.drop();
  });

  it('prints the run as one JSON document on stdout and nothing else, even with --verbose, and exits 0', async () => {
    // Act
    const result = cli(
      'local',
      'run',
      '-c',
      files.configPath,
      '-s',
      join(files.dir, 'state'),
      '--json',
      '-v',
    );

    // Assess: stdout parses whole; the table's figures match the database.
    const parsed = JSON.parse(result.stdout) as {
      execution: { status: string };
      tables: {
        database: string;
        table: string;
        status: string;
        rowsArchived: number;
        archiveLocation: string;
      }[];
    };
    const left = await db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
    expect(result.status).toBe(0);
    expect(parsed.execution.status).toBe('SUCCEEDED');
    expect(parsed.tables).toHaveLength(1);
    expect(parsed.tables[0]).toMatchObject({ database: 'app', table: 'public.events', status: 'succeeded' });
    expect((parsed.tables[0]?.rowsArchived ?? 0) + (left.rows[0]?.n ?? 0)).toBe(300);
    expect(parsed.tables[0]?.rowsArchived).toBeGreaterThan(0);
  });

  it.each([
    ['a table not in the config', ['-t', 'public.nosuch']],
    ['a database not in the config', ['-d', 'nosuch']],
  ])('exits 2, a usage or config error, for %s, saying which', (_case, selection) => {
    // Act
    const result = cli(
      'local',
      'run',
      '-q',
      '-c',
      files.configPath,
      '-s',
      join(files.dir, 'state'),
      ...selection,
    );

    // Assess
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/failed: ConfigError: .*nosuch/);
  });
});
