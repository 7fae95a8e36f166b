import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  archiveKey,
  manifestKeyFor,
  quarantineKey,
  stagingKey,
} from '../../lambdas/shared/archive-format.js';
import { ConfigError } from '../../lambdas/shared/errors.js';
import { archiveLayout } from '../../lib/archive-layout.js';
import { deploymentWarnings, loadDeploymentConfig } from '../../lib/deployment-config.js';
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

  it('exits non-zero with the readable message when the config is invalid, before synthesizing', () => {
    // Act
    const result = runApp(fixture('undeployable.yaml'));
    // Assess
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('audit-archiver: ');
    expect(result.stderr).toContain(
      'databases.0.credentials.secretArn: must be a Secrets Manager secret ARN',
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  }, 30_000);
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
    const staged = stagingKey(location, '2024-01-02', ['42']);
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
