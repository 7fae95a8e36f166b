import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../lambdas/shared/config/config.js';
import { writeDemoConfig } from '../../local/demo.js';

describe('the demo (npm start)', () => {
  it('writes a config that the shared schema accepts, with both demo tables', () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'demo-config-'));

    // Act
    const config = loadConfigFile(writeDemoConfig(dir, 'postgres://postgres:pw@127.0.0.1:5432/shop'));

    // Assess
    expect(config.databases[0]?.tables.map((t) => `${t.schema}.${t.name}`)).toEqual([
      'public.audit_logs',
      'billing.Invoice Events',
    ]);
    expect(config.defaults.maxBatchesPerRun).toBeGreaterThanOrEqual(400);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('the demo config', () => {
  it('is written for its owner only (it holds the password), also over a file an earlier version left readable', () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'demo-config-'));
    const path = join(dir, 'demo-config.yaml');
    writeFileSync(path, 'old\n', { mode: 0o644 });
    chmodSync(path, 0o644);

    // Act
    writeDemoConfig(dir, 'postgres://postgres:pw@127.0.0.1:5432/shop');

    // Assess
    expect(statSync(path).mode & 0o777).toBe(0o600);
    rmSync(dir, { recursive: true, force: true });
  });
});
