import { mkdirSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { z } from 'zod';
import { withLocalEnvironment } from '../context.js';
import { startDemoPostgres } from '../demo-database.js';
import { print, safeLine } from '../output.js';
import type { OutputOptions } from '../progress.js';
import { configureLogging, STATE_DIR_OPTION } from './common.js';
import { archiveLocally, JSON_RESULT_OPTION } from './local-run.js';

/** `demo` (`npm start`): an embedded PostgreSQL with a seeded demo database, archived locally. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'Start an embedded PostgreSQL with a demo database, archive it locally, and print a summary.',
    )
    .option(...STATE_DIR_OPTION)
    .option('-r, --rows <n>', 'rows to seed across the demo tables (2 to 50,000,000)', parseDemoRows, 250_000)
    .addOption(
      new Option('--postgres <major>', 'PostgreSQL major version').choices(['14', '18']).default('18'),
    )
    .option('-v, --verbose', 'print the functions’ JSON logs and metrics, and the run’s notifications', false)
    .option('-q, --quiet', 'print only the final summary and errors (no progress)', false)
    .option(...JSON_RESULT_OPTION)
    .action(runDemo);
}

async function runDemo(options: { stateDir: string; rows: number; postgres: '14' | '18' } & OutputOptions) {
  // With --json, stdout holds the result alone: no function logs there.
  configureLogging(options.verbose === true && options.json !== true);
  // Loaded on use: the demo's seeding and pg (see common.ts).
  const demo = await import('../../local/demo.js');
  const { default: pg } = await import('pg');
  const say = (line: string) => {
    if (!options.quiet && !options.json) print(safeLine(line));
  };
  // Only the owner reads the state: archives of personal data, and a config with the demo's password.
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  demo.clearDemoArchives(options.stateDir);
  say(`Starting embedded PostgreSQL ${options.postgres} ...`);
  const server = await startDemoPostgres(options.stateDir, Number(options.postgres) as 14 | 18);
  try {
    say(`Seeding ${options.rows.toLocaleString('en-US')} audit rows spread over 400 days ...`);
    const url = await demo.seedDemoDatabase(server.url(), options.rows);
    demo.writeDemoState(options.stateDir, server.version);
    const configPath = demo.writeDemoConfig(options.stateDir, url);
    await withLocalEnvironment(configPath, options.stateDir, (local) =>
      demo.forgetDemoTables(local.services),
    );
    // A connection of its own per count, once the run is over: one held idle through the run, without a listener,
    // crashed the demo with an unhandled 'error' event when the server ended it meanwhile.
    const countRows = (_database: string, table: string) =>
      demo.withDemoClient(url, async (client) => {
        const [schema = '', ...name] = table.split('.');
        const result = await client.query(
          `SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name.join('.'))}`,
        );
        return Number(result.rows[0].n);
      });
    const exitCode = await archiveLocally(configPath, options.stateDir, {}, countRows, options);
    process.exitCode = exitCode;
    const hint = demoRestoreHint(options.stateDir, exitCode);
    if (hint) say(hint);
  } finally {
    await server.stop();
  }
}

/** How to restore the demo just archived, in the state dir it used; nothing after a run that failed. */
export function demoRestoreHint(stateDir: string, exitCode: number): string | undefined {
  if (exitCode !== 0) return undefined;
  const where = stateDir === STATE_DIR_OPTION[2] ? '' : ` --state-dir ${shellWord(stateDir)}`;
  return `Bring the rows back with: npm run cli -- local restore --demo${where}`;
}

/** A path as one shell word: as it is when plain, else single-quoted. */
const shellWord = (text: string) => (/^[\w./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`);

/** Both demo tables get rows, and a seed this machine fills in minutes at most. */
const DemoRowsSchema = z.coerce.number().int().min(2).max(50_000_000);

function parseDemoRows(value: string): number {
  const rows = DemoRowsSchema.safeParse(value);
  if (!rows.success) throw new InvalidArgumentError(`"${value}" is not a whole number from 2 to 50,000,000`);
  return rows.data;
}
