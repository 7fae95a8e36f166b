import type { Command } from 'commander';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { withLocalEnvironmentReadOnly } from '../context.js';
import { withDemoDatabase } from '../demo-database.js';
import { print, safeJson } from '../output.js';
import { configureLogging, STATE_DIR_OPTION } from './common.js';

interface PlanCommandOptions {
  config?: string;
  demo: boolean;
  stateDir: string;
  database?: string;
  table?: string[];
  json: boolean;
}

/** `plan`: a dry run of the archive workflow in local mode. */
export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description(
      'Dry run in local mode: per table the eligible rows, batches, estimated bytes, cut-off, oldest row, lock, legal hold, retention policy and encryption. Changes nothing. Exits 1 if a run would refuse a table.',
    )
    .option('-c, --config <file>', 'config file (YAML); not needed with --demo')
    .option('--demo', 'plan the demo database of `npm start`', false)
    .option(...STATE_DIR_OPTION)
    .option('-d, --database <name>', 'only this database')
    .option('-t, --table <schema.name...>', 'only these tables')
    .option('--json', 'print the report as JSON', false)
    .action(async (options: PlanCommandOptions) => {
      configureLogging(false);
      // Loaded on use: the plan step's database layer (see common.ts).
      const { planLocally, formatPlanReport, planExitCode } = await import('../plan.js');
      const plan = (configPath: string) =>
        withLocalEnvironmentReadOnly(configPath, options.stateDir, async (env) => {
          const report = await planLocally(env, { database: options.database, tables: options.table });
          print(options.json ? safeJson(report) : formatPlanReport(report));
          process.exitCode = planExitCode(report);
        });
      if (options.demo) return withDemoDatabase(options.stateDir, ({ configPath }) => plan(configPath));
      if (!options.config) throw new ConfigError('plan needs --config (or --demo)');
      return plan(options.config);
    });
}
