import type { SFNClient } from '@aws-sdk/client-sfn';
import { formatIssues } from '../lambdas/shared/config/config.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import type { RestoreFileResult } from '../lambdas/shared/lock-table/restore-records.js';
import { type RestoreRequestInput, RestoreRequestSchema } from '../lambdas/shared/restore/restore-task.js';
import { formatNumber } from './report.js';

export interface RestoreOptions {
  database: string;
  table: string;
  key?: string;
  from?: string;
  to?: string;
  strategy: 'skip' | 'overwrite' | 'fail';
  target?: string;
  dryRun: boolean;
  ignoreWatermark: boolean;
  drift: 'strict' | 'lenient';
  requireInventory?: boolean;
  legacyDatabase?: string;
  legacyPrefix?: string;
  json: boolean;
}

/** The execution input these options stand for, validated by the same schema the state machine's plan uses. */
export function restoreRequest(options: RestoreOptions): RestoreRequestInput {
  const request: RestoreRequestInput = {
    database: options.database,
    table: options.table,
    mode: options.key ? 'key' : options.from || options.to ? 'range' : 'table',
    ...(options.key ? { key: options.key } : {}),
    ...(options.from ? { fromDay: options.from } : {}),
    ...(options.to ? { toDay: options.to } : {}),
    strategy: options.strategy,
    ...(options.target ? { targetTable: options.target } : {}),
    dryRun: options.dryRun,
    ignoreWatermark: options.ignoreWatermark,
    drift: options.drift,
    ...(options.requireInventory ? { requireInventory: true } : {}),
    ...(options.legacyDatabase
      ? {
          legacy: {
            database: options.legacyDatabase,
            ...(options.legacyPrefix !== undefined ? { prefix: options.legacyPrefix } : {}),
          },
        }
      : {}),
  };
  const parsed = RestoreRequestSchema.safeParse(request);
  if (!parsed.success) throw new ConfigError(`restore request is invalid:\n${formatIssues(parsed.error)}`);
  return request;
}

/** How a restore's row counts read: what it did, or for a dry run (rolled back) what it would have done. */
function rowWords(dryRun: boolean, inserted: number, skipped: number, overwritten: number): string {
  return dryRun
    ? `${formatNumber(inserted)} would be restored, ${formatNumber(skipped)} skipped, ${formatNumber(overwritten)} overwritten; nothing written`
    : `${formatNumber(inserted)} restored, ${formatNumber(skipped)} skipped, ${formatNumber(overwritten)} overwritten`;
}

/**
 * Per-archive lines and totals; failures first-class, so a partial restore can never read as a complete one, and a
 * dry run never as a restore.
 */
export function formatRestoreResults(results: RestoreFileResult[]): string {
  const lines: string[] = [];
  const sum = (pick: (r: RestoreFileResult) => number) => results.reduce((n, r) => n + pick(r), 0);
  const dryRun = results.length > 0 && results.every((r) => r.status === 'dry-run' || r.status === 'failed');
  // Every archive when few; otherwise only those that need attention, so failures never scroll away.
  const shown = results.length <= 20 ? results : results.filter((r) => r.error || r.warnings.length > 0);
  for (const r of shown) {
    const figures = `${formatNumber(r.rows)} rows: ${rowWords(r.status === 'dry-run', r.inserted, r.skipped, r.overwritten)}`;
    lines.push(`  ${r.status.padEnd(16)} ${r.key}${r.status === 'failed' ? '' : `  (${figures})`}`);
    if (r.error) lines.push(`      error: ${r.error}`);
    for (const warning of r.warnings) lines.push(`      warning: ${warning}`);
  }
  const failed = results.filter((r) => r.status === 'failed').length;
  lines.push(
    `Archives: ${results.length} (${failed} failed, ${results.filter((r) => r.status === 'already-restored').length} already restored); rows: ${rowWords(
      dryRun,
      sum((r) => r.inserted),
      sum((r) => r.skipped),
      sum((r) => r.overwritten),
    )}`,
  );
  return lines.join('\n');
}

export interface AwsRestoreOutcome {
  executionArn: string;
  status: string;
  output?: unknown;
  error?: string;
  cause?: string;
}

/**
 * Starts the deployed restore state machine and follows it to its end, reporting how many archives are done as
 * they finish (from the execution history). The same input the console takes.
 */
export async function runAwsRestore(
  sfn: Pick<SFNClient, 'send'>,
  stateMachineArn: string,
  request: RestoreRequestInput,
  options: { write: (line: string) => void; pollMs?: number },
): Promise<AwsRestoreOutcome> {
  const { DescribeExecutionCommand, StartExecutionCommand } = await import('@aws-sdk/client-sfn');
  const started = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(request) }),
  );
  const executionArn = started.executionArn ?? '';
  options.write(`Started ${executionArn}`);
  let reported = -1;
  for (;;) {
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status !== 'RUNNING') {
      return {
        executionArn,
        status: execution.status ?? 'UNKNOWN',
        // A restore with failed archives ends in a Fail state, which has no output: its summary is Finish's.
        output: execution.output ? JSON.parse(execution.output) : await finishOutput(sfn, executionArn),
        error: execution.error,
        cause: execution.cause,
      };
    }
    const done = await archivesDone(sfn, executionArn);
    if (done !== reported) {
      options.write(`  ${formatNumber(done)} archives done`);
      reported = done;
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 5000));
  }
}

/** Archives whose restore step has ended (succeeded, or failed for good and caught), from the history. */
async function archivesDone(sfn: Pick<SFNClient, 'send'>, executionArn: string): Promise<number> {
  const { GetExecutionHistoryCommand } = await import('@aws-sdk/client-sfn');
  let done = 0;
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new GetExecutionHistoryCommand({
        executionArn,
        nextToken,
        maxResults: 1000,
        includeExecutionData: false,
      }),
    );
    for (const event of page.events ?? []) {
      if (event.type === 'MapIterationSucceeded' || event.type === 'MapIterationFailed') done += 1;
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return done;
}

/** The summary the Finish step produced (with the failed archives and why), read from the end of the history. */
async function finishOutput(sfn: Pick<SFNClient, 'send'>, executionArn: string): Promise<unknown> {
  const { GetExecutionHistoryCommand } = await import('@aws-sdk/client-sfn');
  const page = await sfn.send(
    new GetExecutionHistoryCommand({
      executionArn,
      reverseOrder: true,
      maxResults: 50,
      includeExecutionData: true,
    }),
  );
  const finish = (page.events ?? []).find(
    (event) => event.type === 'TaskStateExited' && event.stateExitedEventDetails?.name === 'Finish',
  );
  const output = finish?.stateExitedEventDetails?.output;
  return output ? JSON.parse(output) : undefined;
}
