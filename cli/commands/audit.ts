import type { Command } from 'commander';
import { type AuditOptions, auditCommand } from '../audit.js';
import { withArchiveContext } from '../context.js';
import { print } from '../output.js';
import { configPathOf, configureLogging, requireLocalState, STATE_DIR_OPTION } from './common.js';

/** `audit`: the audit trail in the archive bucket, local or in AWS. */
export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description(
      'List the audit trail (runs, table outcomes, restores, schema drift, legal holds, config changes), oldest first. Reads the local state dir; with --aws the config’s bucket in AWS.',
    )
    .option('-c, --config <file>', 'config file (YAML); not needed with --demo')
    .option('--demo', 'the audit trail of the demo (`npm start`)', false)
    .option(...STATE_DIR_OPTION)
    .option('--aws', 'read the bucket in AWS instead of the local state dir', false)
    .option('--bucket <name>', 'archive bucket with --aws (default: the config’s s3.bucket)')
    .option('--since <time>', 'from this UTC day (YYYY-MM-DD) or ISO-8601 time with its offset (…Z)')
    .option('--until <time>', 'up to this UTC day (inclusive) or time with its offset')
    .option('--kind <kind...>', 'only these kinds')
    .option('-d, --database <name>', 'only this database')
    .option('-t, --table <schema.name>', 'only this table')
    .option('--json', 'print the events as JSON', false)
    .action(
      async (
        options: AuditOptions & {
          config?: string;
          demo: boolean;
          stateDir: string;
          aws: boolean;
          bucket?: string;
        },
      ) => {
        configureLogging(false);
        // The demo's trail needs no database, only the config the demo left.
        const configPath = await configPathOf(options, 'audit');
        if (!options.aws) requireLocalState(options.stateDir);
        const target = options.aws
          ? { mode: 'aws' as const, configPath, bucket: options.bucket }
          : { mode: 'local' as const, configPath, stateDir: options.stateDir };
        process.exitCode = await withArchiveContext(target, ({ config, store }) =>
          auditCommand(store, config, options, print),
        );
      },
    );
}
