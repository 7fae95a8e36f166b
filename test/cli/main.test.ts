import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { DEFAULT_COMPRESSION_RATIO } from '../../cli/cost-model.js';
import { exitCodeOf } from '../../cli/exit-codes.js';
import { ConfigError, DatabaseUnavailableError } from '../../lambdas/shared/errors/step-errors.js';
import { startLocalServices } from '../../local/services.js';
import { runCli as cli, REPO_ROOT as root } from '../support/cli-process.js';

/** A config of one database, billing, with public.audit_logs, written into `dir`. */
function billingConfig(dir: string, url: string): string {
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      's3: { bucket: audit-archive }',
      'databases:',
      '  - name: billing',
      `    credentials: { url: "${url}" }`,
      '    tls: disable',
      '    tables: [{ schema: public, name: audit_logs, timestampColumn: created_at }]',
    ].join('\n'),
  );
  return config;
}

/** A port nothing listens on: taken, then freed. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

/** A command met the unreachable billing database: named, its password kept out, exit 1, within seconds. */
function expectUnreachableBilling(result: ReturnType<typeof cli>, seconds: number): void {
  expect(result.stderr).toMatch(/DatabaseUnavailableError: database billing cannot be reached/);
  expect(result.stderr).not.toContain('secret');
  expect(result.status).toBe(1);
  expect(seconds).toBeLessThan(15);
}

describe('audit-archiver', () => {
  it('prints the package version with --version and exits 0', () => {
    // Prepare
    const { version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };

    // Act
    const result = cli('--version');

    // Assess
    expect(result.stdout.trim()).toBe(version);
    expect(result.status).toBe(0);
  });

  it('exits 2 on a usage error, a missing option or a config error, and 0 for help', () => {
    // Act
    const unknownOption = cli('plan', '--no-such-option');
    const missingOption = cli('doctor');
    const noConfig = cli('plan');
    const badRows = cli('demo', '--rows', '-5');
    const help = cli('cost', '--help');
    const zeroSize = cli('cost', '--size', '0', '--days', '1');
    const zeroRows = cli('cost', '--rows', '0', '--days', '1');

    // Assess
    expect(unknownOption.status).toBe(2);
    expect(unknownOption.stderr).toMatch(/unknown option/);
    expect(missingOption.status).toBe(2);
    expect(noConfig.status).toBe(2);
    expect(noConfig.stderr).toMatch(/^ConfigError: plan needs --config/m);
    expect(badRows.status).toBe(2);
    expect(badRows.stderr).toMatch(/"-5" is not a whole number from 2 to 50,000,000/);
    expect(help.status).toBe(0);
    expect([zeroSize.status, zeroRows.status]).toEqual([2, 2]);
    expect(zeroSize.stderr).toMatch(/size: must be positive/);
    expect(zeroRows.stderr).toMatch(/rows: must be positive/);
  });

  it('maps an error that ended a command: the user’s input 2, a failure of the work 1', () => {
    // Act and assess
    expect(exitCodeOf(new ConfigError('bad field'))).toBe(2);
    expect(exitCodeOf(new DatabaseUnavailableError('down'))).toBe(1);
    expect(exitCodeOf(new Error('unexpected'))).toBe(1);
  });

  it('plan fails within seconds, naming the database and exiting 1, when the database cannot be reached', async () => {
    // Prepare: a port nothing listens on (taken, then freed), and a config pointing at it.
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'plan-unreachable-'));
    const config = billingConfig(dir, `postgres://archiver:secret@127.0.0.1:${port}/billing`);

    // Act
    const started = Date.now();
    const result = cli('plan', '-c', config, '--state-dir', join(dir, 'state'));
    const seconds = (Date.now() - started) / 1000;
    rmSync(dir, { recursive: true, force: true });

    // Assess
    expectUnreachableBilling(result, seconds);
  });

  it('local restore fails within seconds, naming the database and exiting 1, when the database cannot be reached', async () => {
    // Prepare: a port nothing listens on (taken, then freed), and a config pointing at it.
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'restore-unreachable-'));
    const config = billingConfig(dir, `postgres://archiver:secret@127.0.0.1:${port}/billing`);
    // An archive to restore: with none, the plan refuses the request before it needs the database.
    const services = await startLocalServices(join(dir, 'state'), 'audit-archive');
    const s3 = new S3Client({
      endpoint: services.s3Endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    await s3.send(
      new PutObjectCommand({
        Bucket: 'audit-archive',
        Key: 'billing/public.audit_logs/year=2025/month=01/day=07/20250107-0a1b2c.jsonl.gz',
        Body: 'an archive',
      }),
    );
    s3.destroy();
    await services.stop();

    // Act
    const started = Date.now();
    const result = cli(
      'local',
      'restore',
      '-c',
      config,
      '--state-dir',
      join(dir, 'state'),
      '-d',
      'billing',
      '-t',
      'public.audit_logs',
      '-q',
    );
    const seconds = (Date.now() - started) / 1000;
    rmSync(dir, { recursive: true, force: true });

    // Assess
    expectUnreachableBilling(result, seconds);
  });

  it('validate --json against a bucket, without --lock-table, prints the report alone on stdout and its note on stderr', async () => {
    // Prepare: an S3 endpoint whose every listing is empty, and a config of one table
    const s3 = createHttpServer((_request, response) => {
      response.setHeader('content-type', 'application/xml');
      response.end(
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>audit-archive</Name><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>',
      );
    });
    await new Promise<void>((resolve) => s3.listen(0, '127.0.0.1', resolve));
    const dir = mkdtempSync(join(tmpdir(), 'validate-json-'));
    const config = billingConfig(dir, 'postgres://archiver@127.0.0.1:1/billing');
    const env = {
      ...process.env,
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(s3.address() as AddressInfo).port}`,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    };

    // Act: a process of its own, while this one answers its requests
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'validate', '-c', config, '--json'],
      {
        cwd: root,
        env,
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    s3.close();
    rmSync(dir, { recursive: true, force: true });

    // Assess
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, errors: 0 });
    expect(stderr).toMatch(/^note: without --lock-table the archives are not compared with the inventory/m);
    expect(code).toBe(0);
  });

  it('status exits 0 and shows each table; lease break exits 1 when there is nothing to break; run needs the deployed machine', () => {
    // Prepare: local mode needs no database for either (the url is never reached)
    const dir = mkdtempSync(join(tmpdir(), 'status-'));
    const config = billingConfig(dir, 'postgres://archiver@127.0.0.1:1/billing');
    const state = ['-c', config, '--state-dir', join(dir, 'state')];
    // A state dir that is there, though empty (status refuses a missing one, as a mistyped one).
    mkdirSync(join(dir, 'state'));

    // Act
    const status = cli('status', ...state);
    const json = cli('status', ...state, '--json');
    const nothing = cli('lease', 'break', 'billing', 'public.audit_logs', ...state);
    const unknown = cli('lease', 'break', 'billing', 'public.nope', ...state);
    const run = cli('run');
    rmSync(dir, { recursive: true, force: true });

    // Assess
    expect(status.status).toBe(0);
    expect(status.stdout).toMatch(
      /^billing\/public.audit_logs\n {2}lease: free\n {2}last run: none recorded/,
    );
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({ database: 'billing', table: 'public.audit_logs', lease: { state: 'free' } }),
    ]);
    expect(nothing.status).toBe(1);
    expect(nothing.stdout).toContain('not broken: billing/public.audit_logs has no lease to break');
    expect(unknown.status).toBe(2);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--state-machine-arn/);
  });
  it('refuses a config whose url has an unencoded "/" in the password as a config error naming the field, never the password', () => {
    // Prepare: a generated password holding "/", pasted into the URL without percent-encoding
    const dir = mkdtempSync(join(tmpdir(), 'audit-archiver-url-'));
    const config = billingConfig(dir, 'postgres://archiver:Hunter2/Secret@127.0.0.1:5432/billing');

    // Act
    const plan = cli('plan', '-c', config, '--state-dir', join(dir, 'state'));
    rmSync(dir, { recursive: true, force: true });

    // Assess: exit 2 (a config to fix), not a failure of the work; the field named, and how to write it
    expect(`${plan.stdout}\n${plan.stderr}`).not.toContain('Hunter2');
    expect(plan.stderr).toMatch(/databases\.0\.credentials(\.url)?:.*is not a valid URL:.*percent-encoded/);
    expect(plan.status).toBe(2);
  });

  it('refuses a config that is not valid YAML naming the line and column, never quoting its lines (a url holds a password)', () => {
    // Prepare: a flow map left unclosed on the line of a url with a password
    const dir = mkdtempSync(join(tmpdir(), 'audit-archiver-yaml-'));
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        's3: { bucket: audit-archive }',
        'databases:',
        '  - name: billing',
        '    credentials: { url: "postgres://archiver:Hunter2Secret@127.0.0.1:5432/billing"',
        '    tls: disable',
        '    tables: [{ schema: public, name: audit_logs, timestampColumn: created_at }]',
      ].join('\n'),
    );

    // Act
    const plan = cli('plan', '-c', config, '--state-dir', join(dir, 'state'));
    rmSync(dir, { recursive: true, force: true });

    // Assess: exit 2, where the YAML breaks and why, and no line of the file
    expect(`${plan.stdout}\n${plan.stderr}`).not.toContain('Hunter2');
    expect(plan.stderr).toMatch(
      /config\.yaml is not valid YAML at line 5, column 5: Flow map in block collection/,
    );
    expect(plan.status).toBe(2);
  });

  it('`npm run cli` reads the paths it is given from the folder it was typed in, not from the package’s', () => {
    // Prepare: the operator's folder, outside the package, with their config in it
    const dir = mkdtempSync(join(tmpdir(), 'audit-archiver-ops-'));
    billingConfig(dir, 'postgres://archiver@127.0.0.1:1/billing');
    // The state dir its runs use, beside the config (lease break refuses one that is not there).
    mkdirSync(join(dir, 'state'));
    const npmRun = (...args: string[]) =>
      spawnSync('npm', ['--prefix', root, 'run', '-s', 'cli', '--', ...args], { cwd: dir, encoding: 'utf8' });

    // Act
    const roleSql = npmRun('role-sql', '-c', 'config.yaml');
    const leaseBreak = npmRun(
      'lease',
      'break',
      'billing',
      'public.audit_logs',
      '-c',
      'config.yaml',
      '-s',
      'state',
    );
    const stateUsed = existsSync(join(dir, 'state', 'dynamodb'));
    rmSync(dir, { recursive: true, force: true });

    // Assess: the config found, and the relative state dir beside it used
    expect(roleSql.stderr).toBe('');
    expect(roleSql.stdout).toContain('-- audit-archiver role for database billing (public.audit_logs).');
    expect(roleSql.status).toBe(0);
    expect(leaseBreak.stdout).toContain('no lease to break');
    expect(stateUsed).toBe(true);
  });

  it("`npm run cli` typed in another folder keeps the package's state dir as its default; the installed command, its own folder's", () => {
    // Prepare: a folder other than the package's (a subfolder's INIT_CWD is the same to npm)
    const dir = mkdtempSync(join(tmpdir(), 'audit-archiver-ops-'));

    // Act
    const npmHelp = spawnSync(
      'npm',
      ['--prefix', root, 'run', '-s', 'cli', '--', 'local', 'list', '--help'],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    );
    const installedHelp = cli('local', 'list', '--help');
    rmSync(dir, { recursive: true, force: true });

    // Assess: every npm command of a clone opens the one state dir `npm start` made, wherever it is typed.
    const words = (help: string) => help.replace(/\s+/g, ' ');
    expect(words(npmHelp.stdout)).toContain(`persist (default: "${join(root, '.audit-archiver')}")`);
    expect(words(installedHelp.stdout)).toContain('persist (default: ".audit-archiver")');
  });

  it('cost --help gives the compression ratio the estimate assumes, and only where one is assumed', () => {
    // Act
    const help = cli('cost', '--help');

    // Assess: the ratio --avg-row-bytes is divided by unless given; a --size without it is the archives' size.
    const ratio = /--compression-ratio <n>\s+(.*?)(?=\n {2}-)/s.exec(help.stdout)?.[1]?.replace(/\s+/g, ' ');
    expect(help.status).toBe(0);
    expect(ratio).toContain(`default ${DEFAULT_COMPRESSION_RATIO}`);
    expect(ratio).toContain('--size without it is the archives’ size');
  });

  it('local run --help says that it deletes the rows it archives, and where their only copy then is', () => {
    // Act
    const help = cli('local', 'run', '--help');
    const local = cli('local', '--help');

    // Assess: local S3 and DynamoDB do not make it a trial run
    expect(help.status).toBe(0);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      'rows archived are DELETED from the database, and their archives in the state dir are then their only copy',
    );
    expect(local.stdout).toMatch(/run \[options\] +Archive the tables of a config against your PostgreSQL/);
  });
});
