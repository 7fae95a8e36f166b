import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli as cli, REPO_ROOT as root } from '../../support/cli-process.js';
import {
  createTestDatabase,
  seedEvents,
  type TestDatabase,
  writeTestConfig,
} from '../../support/fixtures.js';

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

describe('local run stopped by a signal', () => {
  let db: TestDatabase;
  let files: ReturnType<typeof writeTestConfig>;

  beforeAll(async () => {
    db = await createTestDatabase();
    // One table per signal: each test's next run archives its table to the end.
    for (const name of ['events_sigint', 'events_sigterm']) await seedEvents(db.client, name, 40_000, 40);
    files = writeTestConfig(
      db,
      ['events_sigint', 'events_sigterm'].map((name) => ({ name, timestampColumn: 'created_at' })),
    );
  });
  afterAll(async () => {
    files?.cleanup();
    await db?.drop();
  });

  /** Starts `local run`, sends `signal` once its first batch committed, and resolves when it has ended. */
  function runStoppedBy(signal: NodeJS.Signals, stateDir: string, table: string) {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'local', 'run', '-c', files.configPath, '-s', stateDir, '-t', table],
      { cwd: root },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (stdout.includes('"type":"batch"') && child.signalCode === null) child.kill(signal);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
      child.on('close', (status) => resolve({ status, stdout, stderr })),
    );
  }

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    'gives its lease back on %s and exits %i, so the next run is not refused the table',
    async (signal, code) => {
      // Prepare
      const stateDir = join(files.dir, `state-${signal}`);
      const table = `public.events_${signal.toLowerCase()}`;

      // Act: stopped mid-table, then status and the next run, as a cron job would start it
      const stopped = await runStoppedBy(signal, stateDir, table);
      const status = cli('status', '--json', '-c', files.configPath, '-s', stateDir, '-t', table);
      const next = cli('local', 'run', '--json', '-c', files.configPath, '-s', stateDir, '-t', table);

      // Assess: it stopped before it was done, said what it released, and left the table free
      expect(stopped.stdout).not.toMatch(/"type":"table"/);
      expect(stopped.status).toBe(code);
      expect(stopped.stderr).toContain(`Stopped by ${signal}: released the lease of app/${table}`);
      expect(JSON.parse(status.stdout)).toMatchObject([{ table, lease: { state: 'free' } }]);
      expect(next.status).toBe(0);
      expect(JSON.parse(next.stdout)).toMatchObject({ tables: [{ table, status: 'succeeded' }] });
    },
  );
});

describe('local mode with a config whose credentials are a Secrets Manager secret', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'secret-config-'));
    writeFileSync(
      join(dir, 'archiver.yaml'),
      `s3: {bucket: audit-archive}
databases:
  - name: app
    credentials: {secretArn: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:audit-archiver/app-AbCdEf"}
    tables: [{name: events, timestampColumn: created_at}]
`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['local run', ['local', 'run']],
    ['plan', ['plan']],
  ])('%s refuses it as a usage error naming the field, at once, creating no state', (_name, command) => {
    // Act
    const started = Date.now();
    const result = cli(...command, '-c', join(dir, 'archiver.yaml'), '-s', join(dir, 'state'));

    // Assess: before, the SDK asked Secrets Manager in AWS with local mode's keys, and local run retried that as an
    // outage for about 25 s before failing with "cannot read its secret: Error" (exit 1).
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(
      'databases.0.credentials.secretArn: local mode reaches no AWS service, so it cannot read a Secrets Manager secret; give url or urlEnv for local runs',
    );
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });
});
