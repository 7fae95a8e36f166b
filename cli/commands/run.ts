import type { Command } from 'commander';
import { boundedRequests } from '../../lambdas/shared/runtime/aws-requests.js';
import { print, printError, safeJson } from '../output.js';

interface RunOptions {
  stateMachineArn: string;
  database?: string;
  table?: string[];
  dryRun: boolean;
  json: boolean;
}

/** `run`: an archive execution of the deployed stack, started and followed as the schedule's would be. */
export function registerRun(program: Command): void {
  program
    .command('run')
    .description(
      'Start the deployed archive state machine (all tables, one database or some tables, or a dry run) and follow it to its end. Exit 1 unless it succeeded.',
    )
    .requiredOption(
      '--state-machine-arn <arn>',
      'the archive state machine (stack output ArchiveStateMachineArn)',
      process.env.AUDIT_ARCHIVER_ARCHIVE_ARN,
    )
    .option('-d, --database <name>', 'only this database')
    .option(
      '-t, --table <schema.name...>',
      'only these tables (with --database when several databases have them)',
    )
    .option('--dry-run', 'plan only: what a run would do per table, changing nothing', false)
    .option('--json', 'print the outcome as one JSON document (progress lines on stderr)', false)
    .action(async (options: RunOptions) => {
      // Loaded on use: the AWS SDK (see common.ts).
      const { SFNClient } = await import('@aws-sdk/client-sfn');
      const { runAwsArchive, formatRunOutcome, runExitCode } = await import('../aws-run.js');
      const { formatPlanReport } = await import('../plan.js');
      const input = {
        ...(options.database ? { database: options.database } : {}),
        ...(options.table ? { tables: options.table } : {}),
        ...(options.dryRun ? { dryRun: true } : {}),
      };
      const outcome = await runAwsArchive(
        new SFNClient({ requestHandler: boundedRequests() }),
        options.stateMachineArn,
        input,
        {
          // Under --json the ARN still reaches the operator (on stderr): following can fail while the run goes on.
          write: options.json ? printError : print,
        },
      );
      if (options.json) print(safeJson(outcome));
      else print(outcome.plan ? formatPlanReport(outcome.plan) : formatRunOutcome(outcome));
      process.exitCode = runExitCode(outcome);
    });
}
