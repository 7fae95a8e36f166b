import { mkdtempSync, rmSync } from 'node:fs';
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
