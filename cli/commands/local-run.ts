import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { tablePrefix } from '../../lambdas/shared/archive/format.js';
import type { PlanReport } from '../../lambdas/shared/batch/plan-report.js';
import type { TableOutcome } from '../../lambdas/shared/lock-table/run-records.js';
import type { WorkflowOptions } from '../../local/run.js';
import { withLocalEnvironment } from '../context.js';
import { EXIT_FINDINGS, EXIT_OK, executionExitCode } from '../exit-codes.js';
import { releasingOnInterrupt } from '../interrupt.js';
import { LeasesTaken } from '../leases-taken.js';
import { print, printError, safeJson, safeLine, safeLines } from '../output.js';
import { commandOutput, notificationsOfRun, type OutputOptions, progressMode } from '../progress.js';
import { formatSummary } from '../report.js';
import { formatExecutionFailure } from '../restore.js';
import { configureLogging, STATE_DIR_OPTION } from './common.js';

/** `local run`: the archive workflow against the user's PostgreSQL, with local S3 and DynamoDB. */
export function registerLocalRun(local: Command): void {
  local
    .command('run')
    // Local S3 and DynamoDB do not make it a trial: say that rows go, and where their only copy then is.
    .description(
      'Archive the tables of a config against your PostgreSQL, with local S3 and DynamoDB: rows archived are DELETED from the database, and their archives in the state dir are then their only copy (see plan for a dry run).',
    )
    .requiredOption('-c, --config <file>', 'config file (YAML)')
    .option(...STATE_DIR_OPTION)
    .option('-d, --database <name>', 'only this database')
    .option('-t, --table <schema.name...>', 'only these tables')
    .option('-v, --verbose', 'print the functions’ JSON logs and metrics, and the run’s notifications', false)
    .option('-q, --quiet', 'print only the final summary and errors (no progress)', false)
    .option(...JSON_RESULT_OPTION)
    .action(
      async (options: {
        config: string;
        stateDir: string;
        database?: string;
        table?: string[];
        verbose: boolean;
        quiet: boolean;
        json: boolean;
      }) => {
        // With --json, stdout holds the result alone: no function logs there.
        configureLogging(options.verbose && !options.json);
        const input = {
          ...(options.database ? { database: options.database } : {}),
          ...(options.table ? { tables: options.table } : {}),
        };
        process.exitCode = await archiveLocally(options.config, options.stateDir, input, undefined, options);
      },
    );
}

/**
 * One local archive execution with progress and the summary; `rowsKept` counts what a table keeps (the demo does).
 * Returns the exit code: 0 when the execution succeeded.
 */
export async function archiveLocally(
  configPath: string,
  stateDir: string,
  input: Record<string, unknown>,
  rowsKept: ((database: string, table: string) => Promise<number>) | undefined,
  output: OutputOptions,
  /** Tests only: faults injected into the steps, and the retry intervals' scale. */
  workflow: Pick<WorkflowOptions, 'fault' | 'retryIntervalScale'> = {},
): Promise<number> {
  // Loaded on use: local mode and the database layer (see common.ts).
  const { runLocalArchive, NOTIFICATIONS_FILE } = await import('../../local/run.js');
  const { refuseCriticalTablesLocally, planLocally } = await import('../plan.js');
  return withLocalEnvironment(configPath, stateDir, async (local) => {
    refuseCriticalTablesLocally(local.config, input);
    // Bars fill towards what a dry run counts (the rows this run can take), with a rate and the time left.
    const bars = progressMode(output, process.stdout.isTTY === true) === 'bars';
    const totals = bars ? runTotals(await planLocally(local, input)) : undefined;
    const { display, say } = commandOutput(output, process.stdout, totals);
    const started = Date.now();
    say(`Archiving with the local workflow (state in ${resolve(stateDir)}) ...`);
    const leases = new LeasesTaken();
    const { execution, outcomes } = await releasingOnInterrupt(
      () => leases.releaseAll(local.deps().locks),
      () =>
        runLocalArchive(local, input, {
          ...workflow,
          onInvoke: (name, payload) => leases.started(name, payload),
          onStep: (event) => {
            leases.note(event);
            display.onStep(event);
          },
        }),
    );
    display.finish();
    const notifications = join(resolve(stateDir), NOTIFICATIONS_FILE);
    if (output.verbose && !output.json && existsSync(notifications)) {
      // The message's own line breaks are kept (a notification is several lines); each line is made printable.
      for (const message of notificationsOfRun(readFileSync(notifications, 'utf8'), execution.executionName))
        print(
          safeLines(
            `Notification (local mode writes it to ${NOTIFICATIONS_FILE}; AWS sends it to SNS):\n${message}`.split(
              '\n',
            ),
          ),
        );
    }
    const seconds = (Date.now() - started) / 1000;
    const reports = await Promise.all(
      outcomes.map(async (outcome) => {
        const [schema = '', ...rest] = outcome.table.split('.');
        const prefix = tablePrefix({
          prefix: local.config.s3.prefix,
          database: outcome.database,
          schema,
          table: rest.join('.'),
        });
        return {
          outcome,
          rowsKept: rowsKept ? await rowsKept(outcome.database, outcome.table) : undefined,
          archiveLocation: join(resolve(stateDir), 's3', local.services.bucket, prefix),
        };
      }),
    );
    if (output.json) {
      print(safeJson(runResult(execution, seconds, reports)));
      return localRunExitCode(execution, outcomes);
    }
    print(formatSummary(reports, seconds));
    if (execution.status !== 'SUCCEEDED') {
      printError(formatExecutionFailure(execution));
    } else print(safeLine(`Execution ${execution.executionName} succeeded.`));
    // A run that could not take a table archived nothing there: a cron job must not read it as done.
    const skipped = skippedTables(outcomes);
    if (skipped) printError(safeLine(skipped));
    return localRunExitCode(execution, outcomes);
  });
}

/**
 * What a local run says of the tables it skipped because a lease was held, or undefined. No other command holds the
 * state dir meanwhile, so the holder is a local run that ended without releasing it (killed, or a crash): the lease
 * would hold the table until it expires (`leaseSeconds`), and `lease break` frees it now.
 */
export function skippedTables(
  outcomes: readonly Pick<TableOutcome, 'database' | 'table' | 'status' | 'reason'>[],
) {
  const skipped = outcomes.filter((o) => o.status === 'skipped');
  if (skipped.length === 0) return undefined;
  const listed = skipped.map((o) => `${o.database}/${o.table} (${o.reason ?? 'locked'})`).join('; ');
  const [first] = skipped;
  return `${skipped.length} table(s) skipped: ${listed}. A local run that ended without releasing a lease (killed, or a crash) holds it until it expires; with the same config and state dir, \`npm run cli -- lease break ${first?.database} ${first?.table}\` frees it, and the next run settles its batch in flight.`;
}

/**
 * Rows each table's run can take, by "database/table": its eligible rows, or with more batches than a run's budget
 * (`runsNeeded` > 1) about one run's share of them.
 */
export function runTotals(report: PlanReport): Map<string, number> {
  return new Map(
    report.tables
      .filter((t) => t.action === 'archive')
      .map((t) => [`${t.database}/${t.table}`, Math.round(t.eligibleRows / Math.max(1, t.runsNeeded))]),
  );
}

/** `--json` of `local run` and `demo`. */
export const JSON_RESULT_OPTION = [
  '--json',
  'print the result as one JSON document on stdout, and nothing else there (no progress); exit codes as without it',
  false,
] as const;

/** The run's result for `--json`: the execution, then per table its outcome, figures and archives' location. */
function runResult(
  execution: { executionName: string; status: string; error?: { name?: string; message?: string } },
  seconds: number,
  reports: { outcome: TableOutcome; rowsKept?: number; archiveLocation: string }[],
) {
  return {
    execution: {
      name: execution.executionName,
      status: execution.status,
      ...(execution.error ? { error: { name: execution.error.name, message: execution.error.message } } : {}),
    },
    seconds,
    tables: reports.map(({ outcome, rowsKept, archiveLocation }) => ({
      ...outcome,
      ...(rowsKept !== undefined ? { rowsKept } : {}),
      archiveLocation,
    })),
  };
}

/**
 * 0 when the run succeeded and took every table it was given; 1 when it failed or skipped a table (locked); 2 when
 * the plan refused the input (executionExitCode).
 */
export function localRunExitCode(
  execution: { status: string; error?: { name?: string } },
  outcomes: Pick<TableOutcome, 'status'>[],
): number {
  if (execution.status !== 'SUCCEEDED') return executionExitCode(execution.status, execution.error?.name);
  return outcomes.every((o) => o.status !== 'skipped') ? EXIT_OK : EXIT_FINDINGS;
}
