import { type Command, Option } from 'commander';
import { RestoreSummarySchema } from '../../lambdas/restore-summary/schema.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import type { RestoreFileResult } from '../../lambdas/shared/lock-table/restore-records.js';
import { boundedRequests } from '../../lambdas/shared/runtime/aws-requests.js';
import type { ExecutionResult } from '../../local/workflow.js';
import { withLocalEnvironment } from '../context.js';
import { withDemoDatabase } from '../demo-database.js';
import { executionExitCode } from '../exit-codes.js';
import { print, printError, safeJson, safeLine } from '../output.js';
import { commandOutput, type OutputOptions } from '../progress.js';
import {
  formatExecutionFailure,
  formatRestoreResults,
  type RestoreOptions,
  restoreOnAws,
  restoreRequest,
} from '../restore.js';
import { configureLogging, requireLocalState, STATE_DIR_OPTION } from './common.js';

/** `restore` (the deployed restore state machine) and `local restore` (the same ASL and handlers, in-process). */
export function registerRestore(program: Command, local: Command): void {
  withRestoreOptions(
    local
      .command('restore')
      .description(
        'Restore archives with the local restore workflow (same ASL and handlers as the deployed one). With --demo: every demo table archived by `npm start`, compared with the originals afterwards.',
      )
      .option('-c, --config <file>', 'config file (YAML); not needed with --demo')
      .option(...STATE_DIR_OPTION)
      .option(
        '--demo',
        'restore the demo database of `npm start` and compare it with the original rows',
        false,
      ),
    false,
  )
    .option('-v, --verbose', 'print the functions’ JSON logs and metrics', false)
    .option('-q, --quiet', 'print only the final summary and errors (no progress)', false)
    .action(async (options: LocalRestoreOptions & { demo: boolean }) => {
      // With --json, stdout holds the result alone: no function logs there.
      configureLogging(options.verbose === true && options.json !== true);
      process.exitCode = options.demo ? await restoreDemo(options) : await restoreLocally(options);
    });

  withRestoreOptions(
    program
      .command('restore')
      .description('Start the deployed restore state machine with these options and follow it to its end.')
      .requiredOption(
        '--state-machine-arn <arn>',
        'the restore state machine (stack output RestoreStateMachineArn)',
        process.env.AUDIT_ARCHIVER_RESTORE_ARN,
      ),
  ).action(async (options: RestoreOptions & { stateMachineArn: string }) => {
    // Loaded on use: the AWS SDK (see common.ts).
    const { SFNClient } = await import('@aws-sdk/client-sfn');
    process.exitCode = await restoreOnAws(
      new SFNClient({ requestHandler: boundedRequests() }),
      options.stateMachineArn,
      options,
      { write: print, writeProgress: printError },
    );
  });
}

/** The restore request options, shared by `restore` (AWS) and `local restore` (where none is required: --demo). */
function withRestoreOptions(command: Command, required = true): Command {
  const table = new Option('-t, --table <schema.name>', 'the archived table');
  const database = new Option('-d, --database <name>', 'database name as in the config');
  if (required) {
    table.makeOptionMandatory();
    database.makeOptionMandatory();
  }
  return command
    .addOption(database)
    .addOption(table)
    .option('-k, --key <key>', 'restore this one archive (its S3 key)')
    .option('--from <YYYY-MM-DD>', 'first day partition to restore')
    .option('--to <YYYY-MM-DD>', 'last day partition to restore')
    .addOption(
      new Option('--strategy <strategy>', 'rows whose key already exists')
        .choices(['skip', 'overwrite', 'fail'])
        .default('skip'),
    )
    .option('--target <schema.name>', 'restore into this table (created like the source if missing)')
    .option('--dry-run', 'verify and report what would be restored; write nothing', false)
    .option('--ignore-watermark', 'restore archives already restored into the target', false)
    .addOption(
      new Option('--drift <mode>', 'a column removed since archiving: fail or drop it')
        .choices(['strict', 'lenient'])
        .default('strict'),
    )
    .option(
      '--require-inventory',
      'refuse archives the inventory of committed archives does not list (those written before it)',
      false,
    )
    .addOption(
      new Option(
        '--unlisted-archives <choice>',
        "archives the inventory does not list though dated after the table's archives began to be recorded there: refuse the restore, skip them, or restore them",
      )
        .choices(['refuse', 'skip', 'restore'])
        .default('refuse'),
    )
    .option(
      '--allow-missing-archives',
      'restore what is left when committed archives are not in the bucket (prefix or bucket changed, deleted); they are counted in the summary',
      false,
    )
    .option('--legacy-database <name>', "read the Python tool's archives of this PostgreSQL database")
    .option(
      '--legacy-prefix <prefix>',
      "S3 prefix of the Python tool's archives, below the config's s3.prefix (default: s3.prefix)",
    )
    .option('--json', 'print the result alone on stdout, as one JSON document', false);
}

type LocalRestoreOptions = RestoreOptions & { config?: string; stateDir: string } & OutputOptions;

async function restoreLocally(options: LocalRestoreOptions): Promise<number> {
  if (!options.config || !options.database || !options.table) {
    throw new ConfigError('local restore needs --config, --database and --table (or --demo)');
  }
  // Archives to restore are in the state dir of the runs that made them: a missing one is a mistyped one.
  requireLocalState(options.stateDir);
  // Loaded on use: local mode (see common.ts).
  const { runLocalRestore } = await import('../../local/run.js');
  const { assertDatabasesReachable } = await import('../plan.js');
  const request = restoreRequest(options);
  return withLocalEnvironment(options.config, options.stateDir, async (local) => {
    await assertDatabasesReachable(local, { database: request.database });
    const { display } = commandOutput(options);
    const started = Date.now();
    const { execution, results } = await runLocalRestore(local, request, { onStep: display.onStep });
    display.finish();
    const report = { execution, results, seconds: (Date.now() - started) / 1000 };
    if (options.json) print(safeJson(report));
    return reportRestore(report, { json: options.json, dryRun: options.dryRun });
  });
}

/** Restores both demo tables into themselves, then (unless a dry run) compares them with the copies taken before archiving. */
async function restoreDemo(options: LocalRestoreOptions): Promise<number> {
  if (options.database || options.table || options.target || options.key) {
    throw new ConfigError(
      '--demo restores both demo tables into themselves: leave out --database, --table, --target and --key',
    );
  }
  // Loaded on use: local mode and the demo (see common.ts).
  const { runLocalRestore } = await import('../../local/run.js');
  const { compareWithOriginals, withDemoClient } = await import('../../local/demo.js');
  // With --json, one document for both tables and the comparison, printed at the end.
  const restores: (RestoreReport & { database: string; table: string })[] = [];
  return withDemoDatabase(options.stateDir, async ({ url, configPath }) => {
    let exitCode = await withLocalEnvironment(configPath, options.stateDir, async (local) => {
      let worst = 0;
      // The entry the demo's state records (an earlier version's demo has its archives under another).
      const [demo] = local.config.databases;
      if (!demo) throw new Error('the demo config lists no database');
      for (const table of demo.tables) {
        const { display, say } = commandOutput(options);
        say(`Restoring ${demo.name}/${table.schema}.${table.name} ...`);
        const started = Date.now();
        const { execution, results } = await runLocalRestore(
          local,
          restoreRequest({ ...options, database: demo.name, table: `${table.schema}.${table.name}` }),
          { onStep: display.onStep },
        );
        display.finish();
        const report = { execution, results, seconds: (Date.now() - started) / 1000 };
        if (options.json)
          restores.push({ database: demo.name, table: `${table.schema}.${table.name}`, ...report });
        worst = Math.max(worst, reportRestore(report, { json: options.json, dryRun: options.dryRun }));
      }
      return worst;
    });
    // A dry run wrote nothing: the comparison would call every archived row missing and fail a preview that worked.
    if (options.dryRun) {
      if (options.json) print(safeJson({ restores }));
      else
        print(
          safeLine('Dry run: nothing was restored, so the tables were not compared with the original rows.'),
        );
      return exitCode;
    }
    // Its connection listens for errors: one the server ends mid-comparison fails the command rather than crash it.
    const comparison = await withDemoClient(url, compareWithOriginals);
    if (comparison.some((c) => c.missing > 0 || c.extra > 0)) exitCode = 1;
    if (options.json) print(safeJson({ restores, comparison }));
    else
      for (const c of comparison) {
        const same = c.missing === 0 && c.extra === 0;
        print(
          safeLine(
            `${c.table}: ${c.rows.toLocaleString('en-US')} rows; ${same ? 'identical to the original rows' : `DIFFERS from the original rows: ${c.missing} missing, ${c.extra} extra`}`,
          ),
        );
      }
    return exitCode;
  });
}

/** One restore execution of a local command: its results, and how long it took. */
interface RestoreReport {
  execution: ExecutionResult;
  results: RestoreFileResult[];
  seconds: number;
}

/** Prints a restore's results for a person (with --json the caller prints the document); its exit code. */
function reportRestore(
  { execution, results, seconds }: RestoreReport,
  { json, dryRun }: { json: boolean; dryRun: boolean },
): number {
  if (!json) {
    print(formatRestoreResults(results, { dryRun, seconds }));
    for (const warning of summaryWarnings(execution.output)) print(safeLine(`warning: ${warning}`));
    if (execution.status === 'SUCCEEDED') print(safeLine(`Execution ${execution.executionName} succeeded.`));
    else printError(formatExecutionFailure(execution));
  }
  return executionExitCode(execution.status, execution.error?.name);
}

/** The summary's warnings (committed archives left out, sequences left behind), when the execution has a summary. */
function summaryWarnings(output: unknown): string[] {
  const summary = RestoreSummarySchema.pick({ warnings: true }).safeParse(output);
  return summary.success ? summary.data.warnings : [];
}
