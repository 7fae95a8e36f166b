import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createTestDatabase, seedEvents, type TestDatabase } from '../../support/fixtures.js';

const root = new URL('../../../', import.meta.url).pathname;

/**
 * The wizard in a pseudo-terminal, as a user meets it: `script` (util-linux) gives it a terminal, so it prompts, and
 * the test types into it, waiting for each prompt before answering.
 */
class Terminal {
  private output = '';
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: Record<string, string>) {
    const command = [process.execPath, '--import', 'tsx', 'cli/main.ts', ...args]
      .map((part) => `'${part.replaceAll("'", "'\\''")}'`)
      .join(' ');
    this.child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: root,
      env: { ...process.env, ...env, TERM: 'xterm', NO_COLOR: '1' },
    });
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
    });
    this.exited = new Promise((resolve) => this.child.on('close', resolve));
  }

  /** Everything shown so far, without terminal control sequences. */
  get screen(): string {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI escape sequences
    return this.output.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
  }

  async waitFor(text: string | RegExp, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const seen = () => (typeof text === 'string' ? this.screen.includes(text) : text.test(this.screen));
    while (!seen()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${text}; screen:\n${this.screen}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  type(keys: string): void {
    this.child.stdin?.write(keys);
  }
}

const CLEAR_LINE = '\u0015';
const CTRL_C = '\u0003';

describe('audit-archiver wizard in a terminal', () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'audit-archiver-wizard-tty-'));
    await seedEvents(db.client, 'audit_events', 400, 400);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('asks again after a table that does not exist and a retention that is not a number, then writes the config', async () => {
    // Prepare
    const out = join(dir, 'typed.yaml');
    const terminal = new Terminal(['wizard', '--url-env', 'WIZARD_DB', '--out', out], { WIZARD_DB: db.url });

    // Act: a typo at each prompt, then a valid answer.
    await terminal.waitFor('Tables to archive');
    terminal.type('99\r');
    await terminal.waitFor('"99" is not a table of this database');
    terminal.type(`${CLEAR_LINE}public.audit_events\r`);
    await terminal.waitFor('Retention in days');
    terminal.type('half a year\r');
    await terminal.waitFor('a whole number of days');
    terminal.type(`${CLEAR_LINE}120\r`);
    await terminal.waitFor('Write the config to');
    terminal.type('\r');
    const code = await terminal.exited;

    // Assess: the wizard went on after each typo and wrote what was typed in the end.
    expect(code).toBe(0);
    expect(terminal.screen).not.toMatch(/ConfigError|--tables/);
    const config = parseYaml(readFileSync(out, 'utf8'));
    expect(config.defaults.retentionDays).toBe(120);
    expect(config.databases[0].tables.map((t: { name: string }) => t.name)).toEqual(['audit_events']);
  });

  it('leaves quietly on Ctrl-C, writing nothing', async () => {
    // Prepare
    const out = join(dir, 'interrupted.yaml');
    const terminal = new Terminal(['wizard', '--url-env', 'WIZARD_DB', '--out', out], { WIZARD_DB: db.url });

    // Act
    await terminal.waitFor('Tables to archive');
    terminal.type(CTRL_C);
    const code = await terminal.exited;

    // Assess: no stack, no error class, the shell's code for an interrupt, and no file.
    expect(terminal.screen).toContain('Stopped; nothing was written.');
    expect(terminal.screen).not.toMatch(/Error/);
    expect(code).toBe(130);
    expect(existsSync(out)).toBe(false);
  });
});
