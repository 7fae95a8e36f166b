import type { Command } from 'commander';
import { withDemoDatabase } from '../demo-database.js';
import { print, safeLine } from '../output.js';
import type { Prompter } from '../wizard.js';
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
      const { input } = await import('@inquirer/prompts');
      const { demo, stateDir, ...rest } = raw;
      // @inquirer/prompts re-asks while `check` refuses an answer, and ends a prompt on Ctrl-C with ExitPromptError.
      const prompter: Prompter = {
        ask: async (message, fallback, check) =>
          (
            await input({
              message,
              default: fallback,
              validate: (answer) => check?.(answer.trim() || fallback) ?? true,
            })
          ).trim() || fallback,
      };
      const run = async (url?: string) => {
        const options = wizard.parseWizardOptions(url ? { ...rest, databaseUrl: url, demo } : rest);
        const interactive = process.stdin.isTTY === true && !options.yes;
        await wizard.runWizard(options, {
          prompter: interactive ? prompter : undefined,
          write: print,
          env: process.env,
          now: () => new Date(),
        });
      };
      try {
        if (!demo) return await run();
        await withDemoDatabase(stateDir, ({ url }) => run(url));
      } catch (error) {
        if ((error as Error).name !== 'ExitPromptError') throw error;
        // Ctrl-C at a prompt: the user chose to stop; nothing was written. 130 is the shell's code for SIGINT.
        print(safeLine('Stopped; nothing was written.'));
        process.exitCode = 130;
      }
    });
}
