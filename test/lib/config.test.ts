import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveKey,
  manifestKeyFor,
  quarantineKey,
  stagingKey,
} from '../../lambdas/shared/archive/format.js';
import type { DeploymentConfig } from '../../lambdas/shared/config/deployment-schema.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { archiveLayout } from '../../lib/archive-layout.js';
import {
  databaseCaBundleFile,
  deploymentWarnings,
  loadDeploymentConfig,
} from '../../lib/deployment-config.js';
import { fixture } from './synth.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('loadDeploymentConfig', () => {
  it('accepts the fixture config', () => {
    // Act
    const config = loadDeploymentConfig(fixture('archiver.yaml'));
    // Assess
    expect(config.s3.prefix).toBe('audit/');
    expect(config.databases.map((db) => db.name)).toEqual(['billing', 'crm']);
  });

  it('reports schema problems as "field: reason" lines', () => {
    // Act
    const load = () => loadDeploymentConfig(fixture('invalid.yaml'));
    // Assess
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/^.*invalid\.yaml is invalid:\n/);
    expect(load).toThrow(/\ns3\.prefix: must be empty or end with "\/"/);
    expect(load).toThrow(/\ndatabases\.0\.tables: must list at least one table/);
  });

  it('refuses what IAM cannot scope: a secret without ARN, a key alias', () => {
    // Act
    const load = () => loadDeploymentConfig(fixture('undeployable.yaml'));
    // Assess
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/undeployable\.yaml cannot be deployed:\n/);
    expect(load).toThrow(/databases\.0\.credentials\.secretArn: must be a Secrets Manager secret ARN/);
    expect(load).toThrow(/s3\.kmsKeyId: must be a KMS key ARN or key id/);
  });

  it('warns about URL credentials, which Lambda would get in plain text or not at all', () => {
    // Prepare
    const config = loadDeploymentConfig(fixture('local-credentials.yaml'));
    // Act
    const warnings = deploymentWarnings(config);
    // Assess
    expect(warnings.map((w) => w.path)).toEqual([
      'databases.0.credentials.url',
      'databases.1.credentials.urlEnv',
    ]);
  });
});

describe('deploymentWarnings on archive expiry', () => {
  /** The fixture with every deployment option (expiry and Object Lock at 2,555 days), its storage block replaced. */
  const withStorage = (storage: Partial<DeploymentConfig['aws']['storage']>): DeploymentConfig => {
    const config = loadDeploymentConfig(fixture('production.yaml'));
    const base = config.aws.storage ?? { transitions: [] };
    return { ...config, aws: { ...config.aws, storage: { ...base, ...storage } } };
  };
  const expiryWarnings = (config: DeploymentConfig) =>
    deploymentWarnings(config).filter((w) => w.path === 'aws.storage.expireAfterDays');

  it('warns when a delete marker on an archive could remove it for good before it expires', () => {
    // Prepare: noncurrent archive versions expire 30 days after they become so, whoever wrote the delete marker.
    const unlocked = withStorage({ objectLock: undefined });
    const lockedShorter = withStorage({ objectLock: { mode: 'GOVERNANCE', retentionDays: 365 } });
    // Act
    const found = [expiryWarnings(unlocked), expiryWarnings(lockedShorter)];
    // Assess
    for (const warnings of found) {
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.message).toMatch(/delete marker/);
      expect(warnings[0]?.message).toMatch(/objectLock/);
    }
  });

  it('says nothing when Object Lock keeps every archive version until it expires, or nothing expires', () => {
    // Act & Assess
    expect(expiryWarnings(withStorage({}))).toEqual([]);
    expect(expiryWarnings(withStorage({ expireAfterDays: undefined, objectLock: undefined }))).toEqual([]);
  });
});

describe('deploymentErrors', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'deploy-rules-'));
    writeFileSync(join(dir, 'not-a-cert.pem'), 'just text\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The stack fixture with `extra` YAML appended (an `aws:` block), loaded through the deployment rules. */
  const loadWith = (name: string, extra: string, replace: [string, string] = ['', '']) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `${readFileSync(fixture('archiver.yaml'), 'utf8').replace(...replace)}${extra}`);
    return () => loadDeploymentConfig(file);
  };

  it('refuses a daily schedule whose only run daylight saving time skips one day a year, naming the field', () => {
    // Prepare: EventBridge Scheduler skips a run at a local time that does not exist.
    const load = loadWith(
      'schedule-skipped',
      'aws:\n  schedule:\n    expression: cron(30 2 * * ? *)\n    timeZone: Europe/Paris\n',
    );

    // Act, Assess: refused where it deploys; the other commands still read the config (lambdas' schema takes it).
    expect(load).toThrow(
      /aws\.schedule\.expression: runs only at 02:30 in Europe\/Paris, which daylight saving time skips/,
    );
  });

  it('accepts the fixture with every deployment option, resolving the CA bundle next to the config', () => {
    // Act
    const config = loadDeploymentConfig(fixture('production.yaml'));
    // Assess
    expect(databaseCaBundleFile(config, fixture('production.yaml'))).toBe(fixture('test-ca.pem'));
    expect(databaseCaBundleFile(loadDeploymentConfig(fixture('archiver.yaml')), 'x.yaml')).toBeUndefined();
  });

  it.each([
    [
      'a CA bundle file that does not exist',
      'aws:\n  databaseCaBundlePath: certs/missing.pem\n',
      /aws\.databaseCaBundlePath: cannot read .*certs\/missing\.pem: ENOENT/,
    ],
    [
      'a CA bundle that holds no certificate',
      'aws:\n  databaseCaBundlePath: not-a-cert.pem\n',
      /aws\.databaseCaBundlePath: .*holds no PEM certificate/,
    ],
    [
      'a transition to a class warmer than the written one',
      'aws:\n  storage:\n    transitions: [{ storageClass: STANDARD_IA, afterDays: 30 }]\n',
      /aws\.storage\.transitions\.0\.storageClass: archives are written as STANDARD_IA \(s3\.storageClass\); S3 cannot move them to STANDARD_IA/,
    ],
    [
      'Athena columns for a table that is not configured',
      'aws:\n  athena:\n    tables: [{ database: billing, table: public.nope, columns: [id] }]\n',
      /aws\.athena\.tables\.0: public\.nope of database "billing" is not a configured table/,
    ],
    [
      'reserved concurrency below the tables archived at once',
      'aws:\n  databaseFunctionConcurrency: 3\n',
      /aws\.databaseFunctionConcurrency: must be at least 4 \(run\.maxConcurrency/,
    ],
    [
      'a table under a config legal hold whose archives expire without Object Lock',
      'aws:\n  storage:\n    expireAfterDays: 400\n',
      /databases\.0\.tables\.0\.legalHold: cannot keep this table's archives while aws\.storage\.expireAfterDays \(400\) deletes them/,
      [
        '        timestampColumn: created_at\n',
        '        timestampColumn: created_at\n        legalHold: case 2026-17\n',
      ],
    ],
    [
      'state machine logs off, where a failed table would be in no log',
      "aws:\n  stateMachineLogLevel: 'OFF'\n",
      /aws\.stateMachineLogLevel: .*"ERROR"\|"ALL"/,
    ],
    [
      'a connection URL that holds a password, which every function asset would ship',
      '',
      /databases\.0\.credentials\.url: holds a password, which would be shipped in plain text inside every function/,
      [
        'secretArn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:audit-archiver/billing-AbCdEf',
        'url: postgres://archiver:s3cret@db.example.com:5432/billing',
      ],
    ],
    [
      'a secret ARN holding an IAM wildcard, which would grant read on every secret it matches',
      '',
      /databases\.0\.credentials\.secretArn: must be a Secrets Manager secret ARN whose name has only letters/,
      ['secret:audit-archiver/billing-AbCdEf', 'secret:*'],
    ],
    [
      'an s3.prefix holding an IAM wildcard, which would widen every S3 grant scoped by it',
      '',
      /s3\.prefix: must not contain "\*", "\?" or "\$" in AWS/,
      ['prefix: audit/', 'prefix: "aud*/"'],
    ],
    [
      'an s3.prefix holding an IAM policy variable',
      '',
      /s3\.prefix: must not contain "\*", "\?" or "\$" in AWS/,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, as written in a config
      ['prefix: audit/', 'prefix: "${aws:username}/"'],
    ],
  ] as [string, string, RegExp, [string, string]?][])(
    'refuses %s, naming the field',
    (name, extra, expected, replace) => {
      // Act
      const load = loadWith(name.replaceAll(' ', '-'), extra, replace);
      // Assess
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(expected);
    },
  );

  it('warns that tls: disable sends passwords and rows in clear text', () => {
    // Prepare
    const load = loadWith('tls-disable', '', [
      '    maxConnections: 2\n',
      '    maxConnections: 2\n    tls: disable\n',
    ]);
    // Act
    const warnings = deploymentWarnings(load());
    // Assess
    expect(warnings).toEqual([{ path: 'databases.0.tls', message: expect.stringContaining('unencrypted') }]);
  });
});

describe('bin/app.ts', () => {
  const runApp = (config: string) => {
    const outdir = mkdtempSync(join(tmpdir(), 'cdk-app-'));
    try {
      return spawnSync(process.execPath, ['--import', 'tsx', 'bin/app.ts'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: JSON.stringify({ config }) },
      });
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  };

  it.each([
    ['fails the shared schema', 'invalid.yaml', 'databases.0.tables: must list at least one table'],
    [
      'cannot be deployed',
      'undeployable.yaml',
      'databases.0.credentials.secretArn: must be a Secrets Manager secret ARN',
    ],
  ])(
    'exits non-zero with the readable message when the config %s, before synthesizing',
    (_case, file, line) => {
      // Act
      const result = runApp(fixture(file));
      // Assess
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(`audit-archiver: ${fixture(file)}`);
      expect(result.stderr).toContain(line);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      expect(result.stdout).toBe('');
    },
    30_000,
  );
});

describe('archiveLayout', () => {
  it('covers every key the steps write, each in its own area', () => {
    // Prepare
    const config = loadDeploymentConfig(fixture('archiver.yaml'));
    const layout = archiveLayout(config);
    const location = {
      prefix: config.s3.prefix,
      database: 'billing',
      schema: 'audit',
      table: 'invoice_events',
    };
    const within = (pattern: string, key: string) => key.startsWith(pattern.replace(/\*$/, ''));
    // Act
    const staged = stagingKey(location, '2024-01-02', 'b42');
    const archived = archiveKey(location, '2024-01-02', 'a'.repeat(64));
    const manifest = manifestKeyFor(archived);
    const quarantined = quarantineKey(config.s3.prefix, archived, 'integrity');
    // Assess
    expect(layout.archives).toEqual(['audit/billing/*', 'audit/crm/*']);
    expect(within(layout.staging, staged)).toBe(true);
    expect(within(layout.staging, manifestKeyFor(staged))).toBe(true);
    expect(within(layout.quarantine, quarantined)).toBe(true);
    expect(layout.archives.filter((p) => within(p, archived))).toEqual(['audit/billing/*']);
    expect(layout.archives.filter((p) => within(p, manifest))).toEqual(['audit/billing/*']);
    for (const key of [staged, quarantined]) expect(layout.archives.some((p) => within(p, key))).toBe(false);
  });
});
