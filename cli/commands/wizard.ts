import type { Command } from 'commander';
import { withDemoDatabase } from '../demo-database.js';
import { STATE_DIR_OPTION } from './common.js';

/** `wizard`: looks at a database and writes a config for its audit tables. */
export function registerWizard(program: Command): void {
  program
    .command('wizard')
    .description(
      'Look at a database, find its audit tables (timestamp column, usable key, size, rows, age, index) and write a config that validates, with a suggested retention.',
    )
    .option('--database-url <url>', 'postgres:// URL to look at (written into the config: prefer --url-env)')
    .option('--url-env <name>', 'environment variable holding the URL (the config names the variable)')
    .option('--name <name>', 'logical database name in the config (default: from the database name)')
    .option('--tables <schema.name...>', 'tables to archive (default: the usable audit-like ones)')
    .option('--retention-days <n>', 'retention (default: suggested from the rows’ age)')
    .option(
      '--tls <mode>',
      'verify-full, require or disable (default: disable on loopback, else verify-full)',
    )
    .option('--bucket <name>', 'archive bucket (s3.bucket)')
    .option('-o, --out <file>', 'where to write the config', 'archiver.yaml')
    .option('-y, --yes', 'ask nothing, overwrite --out', false)
    .option('--demo', 'look at the demo database of `npm start`', false)
    .option(...STATE_DIR_OPTION)
    .addHelpText(
      'after',
      `
Interactive when the terminal is one (and without --yes): it asks for the database, the tables and the retention.
Examples:
  DATABASE_URL=postgres://... audit-archiver wizard --url-env DATABASE_URL
  audit-archiver wizard --url-env DATABASE_URL --tables public.audit_logs --retention-days 180 --out archiver.yaml --yes
  audit-archiver wizard --demo --yes`,
    )
    .action(async (raw: Record<string, unknown> & { demo: boolean; stateDir: string }) => {
      // Loaded on use: the wizard's catalog queries need pg (see common.ts).
      const wizard = await import('../wizard.js');
      const { createInterface } = await import('node:readline/promises');
      const { demo, stateDir, ...rest } = raw;
      const run = async (url?: string) => {
        const options = wizard.parseWizardOptions(url ? { ...rest, databaseUrl: url } : rest);
        const interactive = process.stdin.isTTY === true && !options.yes;
        const rl = interactive
          ? createInterface({ input: process.stdin, output: process.stdout })
          : undefined;
        try {
          await wizard.runWizard(options, {
            prompter: rl && {
              ask: async (question, fallback) =>
                (await rl.question(`${question} [${fallback}]: `)).trim() || fallback,
            },
            write: (line) => console.log(line),
            env: process.env,
            now: () => new Date(),
          });
        } finally {
          rl?.close();
        }
      };
      if (!demo) return run();
      await withDemoDatabase(stateDir, ({ url }) => run(url));
    });
}
