import type { Command } from 'commander';
import { type ArchiveScopeOptions, listCommand, validateCommand } from '../archives.js';
import { type ArchiveTarget, withArchiveContext } from '../context.js';
import { print, printError, safeLine } from '../output.js';
import {
  CONFIG_OR_DEMO_OPTIONS,
  configPathOf,
  configureLogging,
  requireLocalState,
  STATE_DIR_OPTION,
} from './common.js';

type ScopeCommandOptions = ArchiveScopeOptions & {
  config?: string;
  demo?: boolean;
  strict: boolean;
  stateDir?: string;
  bucket?: string;
  lockTable?: string;
};

/** `validate` and `list`, each locally (local S3 in the state dir) and against AWS S3 (the config's bucket). */
export function registerArchiveCommands(program: Command, local: Command): void {
  for (const [name, description, run] of [
    [
      'validate',
      'Re-read every archive in scope and check checksums, row counts and sidecars; find orphans, staging leftovers and day gaps. Exit 1 on errors (and on warnings with --strict).',
      validateCommand,
    ],
    ['list', 'List the archives in scope with day, rows, bytes and storage class.', listCommand],
  ] as const) {
    for (const [parent, where] of [
      [local, 'local'],
      [program, 'aws'],
    ] as const) {
      const command = withArchiveScope(parent.command(name).description(description));
      if (name === 'validate') command.option('--strict', 'warnings fail too (exit 1)', false);
      if (where === 'local')
        command
          .option(...CONFIG_OR_DEMO_OPTIONS.config)
          .option(...CONFIG_OR_DEMO_OPTIONS.demo)
          .option(...STATE_DIR_OPTION);
      else {
        command.requiredOption('-c, --config <file>', 'config file (YAML)');
        command.option('--bucket <name>', 'archive bucket (default: the config’s s3.bucket)');
        if (name === 'validate')
          command.option(
            '--lock-table <name>',
            'the deployed lock table: compare the archives with its inventory of committed archives',
          );
      }
      command.action(async (options: ScopeCommandOptions) => {
        configureLogging(false);
        const configPath = await configPathOf(options, name);
        if (options.stateDir !== undefined) requireLocalState(options.stateDir);
        // Only the local commands have --state-dir (it has a default there).
        const target: ArchiveTarget =
          options.stateDir === undefined
            ? { mode: 'aws', configPath, bucket: options.bucket, lockTable: options.lockTable }
            : { mode: 'local', configPath, stateDir: options.stateDir };
        process.exitCode = await withArchiveContext(target, async ({ config, store, lockTable }) => {
          if (target.mode === 'aws' && !lockTable && name === 'validate') {
            // With --json, stdout holds the report alone.
            (options.json ? printError : print)(
              safeLine(
                'note: without --lock-table the archives are not compared with the inventory of committed archives',
              ),
            );
          }
          return run(store, config, options, print, lockTable?.inventory);
        });
      });
    }
  }
}

/** Which archives a command looks at, shared by `validate` and `list` (local and AWS). */
function withArchiveScope(command: Command): Command {
  return command
    .option('-d, --database <name>', 'only this database (default: every database of the config)')
    .option('-t, --table <schema.name...>', 'only these tables (default: every table of the database)')
    .option('--from <YYYY-MM-DD>', 'first day partition')
    .option('--to <YYYY-MM-DD>', 'last day partition')
    .option(
      '--legacy-database <name>',
      "look at the Python tool's archives of this PostgreSQL database instead",
    )
    .option(
      '--legacy-prefix <prefix>',
      "S3 prefix of the Python tool's archives (default: the config's s3.prefix)",
    )
    .option('--json', 'print JSON', false);
}
