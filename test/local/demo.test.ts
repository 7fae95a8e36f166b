import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../lambdas/shared/config/config.js';
import { readDemoState, writeDemoConfig, writeDemoState } from '../../local/demo.js';

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

describe('the demo config a --demo command rewrites', () => {
  it("keeps the database entry the demo's archives were made under: shop for a demo an earlier version ran", () => {
    // Prepare: the state of a demo before its entry was renamed, and of one after.
    const earlier = mkdtempSync(join(tmpdir(), 'demo-state-'));
    writeFileSync(join(earlier, 'demo.json'), `${JSON.stringify({ postgres: 18 })}\n`);
    const current = mkdtempSync(join(tmpdir(), 'demo-state-'));
    writeDemoState(current, 18);
    const url = 'postgres://postgres:pw@127.0.0.1:5432/shop';

    // Act: as withDemoDatabase does
    const names = [earlier, current].map(
      (dir) => loadConfigFile(writeDemoConfig(dir, url, readDemoState(dir).database)).databases[0]?.name,
    );

    // Assess: its inventory and archive keys are under that name; another finds nothing to restore.
    expect(names).toEqual(['shop', 'audit-archiver-demo']);
    for (const dir of [earlier, current]) rmSync(dir, { recursive: true, force: true });
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
