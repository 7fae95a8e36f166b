import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withLocalEnvironment } from '../../cli/context.js';

const dir = mkdtempSync(join(tmpdir(), 'cli-context-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('withLocalEnvironment', () => {
  it('fails the command, saying why, when the local S3 server died while it ran (it used to exit 0 silently)', async () => {
    // Prepare
    const configPath = join(dir, 'archiver.yaml');
    writeFileSync(
      configPath,
      's3:\n  prefix: archive/\ndatabases:\n  - name: app\n    credentials:\n      urlEnv: APP_URL\n    tls: disable\n    tables:\n      - name: audit_logs\n        timestampColumn: created_at\n',
    );
    const stateDir = join(dir, 'state');

    // Act: the command's work ends after the server was killed (a crash, the OOM killer)
    const ended = withLocalEnvironment(configPath, stateDir, async () => {
      const pid = Number(
        execFileSync('pgrep', ['-f', `s3-server.mjs ${join(stateDir, 's3')}`], { encoding: 'utf8' }).split(
          '\n',
        )[0],
      );
      process.kill(pid, 'SIGKILL');
      // Until this process has reaped it (and so seen it end): a fixed wait could end first on a loaded machine.
      for (let reaped = false; !reaped; ) {
        try {
          process.kill(pid, 0);
          await new Promise((resolve) => setTimeout(resolve, 20));
        } catch {
          reaped = true;
        }
      }
      return 'done';
    });

    // Assess
    const outcome = await Promise.race([
      ended.then(
        () => 'resolved',
        (error: Error) => error.message,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 10_000)),
    ]);
    expect(outcome).toMatch(/^the local S3 server ended \(SIGKILL\) before the command did/);
  });
});
