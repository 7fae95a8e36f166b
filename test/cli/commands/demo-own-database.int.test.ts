import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withLocalEnvironment } from '../../../cli/context.js';
import { demoDataDir } from '../../../local/demo.js';
import { runCli as cli } from '../../support/cli-process.js';

describe('npm start in a state dir that local runs of an operator database named shop use', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-own-'));
  const stateDir = join(dir, 'state');
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(demoDataDir(stateDir, 18), { recursive: true, force: true });
  });

  it("leaves that database's lock-table state as it was: the demo's tables are under a name of its own", async () => {
    // Prepare: the operator's config names a database shop with a table public.audit_logs (the demo's tables' names),
    // whose lease a local run of theirs holds in the state dir's lock table.
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const configPath = join(dir, 'operator.yaml');
    writeFileSync(
      configPath,
      `s3: { bucket: operator-archives }
databases:
  - name: shop
    credentials: { url: "postgres://app:app@127.0.0.1:1/shop" }
    tables: [{ name: audit_logs, timestampColumn: created_at }]
`,
    );
    const lease = () =>
      withLocalEnvironment(configPath, stateDir, async (local) =>
        local.deps().locks.get('shop', 'public.audit_logs'),
      );
    await withLocalEnvironment(configPath, stateDir, (local) =>
      local.deps().locks.acquire('shop', 'public.audit_logs', 'local-operator', 3600),
    );

    // Act
    const demo = cli('demo', '--rows', '200', '-q', '-s', stateDir);

    // Assess
    expect(demo.status, demo.stderr).toBe(0);
    expect((await lease()).owner).toBe('local-operator');
  });
});
