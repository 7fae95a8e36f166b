import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadDeploymentConfigFile } from '../../lambdas/shared/config/deployment-schema.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { boundedRequests } from '../../lambdas/shared/runtime/aws-requests.js';
import { archiveBucket, withLocalEnvironment } from '../context.js';
import { EXIT_FINDINGS, EXIT_OK } from '../exit-codes.js';
import { print, safeJson, safeLine } from '../output.js';
import { configPathOf, configureLogging } from './common.js';
import {
  type LockTableTargetOptions,
  requireActor,
  requireLocalLockTable,
  withLockTableOptions,
  withLockTableTarget,
} from './lock-table-target.js';

/** Loaded on use (see common.ts). */
const loadLeases = () => import('../leases.js');

/** `status` (per table: lease, batch in flight, hold, last outcomes) and `lease break`. */
export function registerLeases(program: Command): void {
  withLockTableOptions(
    program
      .command('status')
      .description(
        'Per table: the lease (holder, expiry), a batch in flight, a legal hold, the last run’s outcome and the last success.',
      ),
  )
    .option('-d, --database <name>', 'only this database')
    .option('-t, --table <schema.name...>', 'only these tables')
    .option('--json', 'print the tables as a JSON array', false)
    .action(
      async (options: LockTableTargetOptions & { database?: string; table?: string[]; json: boolean }) => {
        const { tableStatuses, formatStatuses } = await loadLeases();
        requireLocalLockTable(options);
        const statuses = await withLockTableTarget(options, 'status', ({ config, lockTable }) =>
          tableStatuses({ config, ...lockTable }, { database: options.database, tables: options.table }),
        );
        print(options.json ? safeJson(statuses) : formatStatuses(statuses));
        process.exitCode = EXIT_OK;
      },
    );

  const lease = program.command('lease').description('A table’s lease in the lock table.');
  withLockTableOptions(
    lease
      .command('break <database> <table>')
      .description(
        'Release the lease a run that died left on a table, so the next run need not wait for it to expire. Refused while its execution runs (AWS: Step Functions says so; local mode: this command holds the state dir, so no local run does).',
      ),
  ).action(async (database: string, table: string, options: LockTableTargetOptions) => {
    const { breakLease, executionRunning } = await loadLeases();
    requireLocalLockTable(options);
    const { SFNClient } = await import('@aws-sdk/client-sfn');
    const outcome = await withLockTableTarget(options, 'lease break', ({ config, lockTable, store, mode }) =>
      breakLease(
        {
          config,
          ...lockTable,
          store,
          actor: options.actor,
          holderRunning:
            mode === 'aws'
              ? executionRunning(new SFNClient({ requestHandler: boundedRequests() }))
              : async () => false,
        },
        database,
        table,
      ),
    );
    conclude(
      outcome.broken,
      outcome.broken
        ? `${database}/${table}: lease of ${outcome.owner} broken${outcome.inFlight ? `; its batch (${outcome.inFlight}) is settled first by the next run` : ''}`
        : `${database}/${table}: not broken: ${outcome.reason}`,
    );
  });

  const batch = program.command('batch').description('A table’s batch in flight.');
  withLockTableOptions(
    batch
      .command('settle <database> <table>')
      .description(
        'Settle a batch stopped by BatchOutcomeUnknownError, as the runbook describes: --as committed keeps its archives (no row can be lost), --as aborted withdraws them (refused unless every archived row is still in the table).',
      ),
  )
    .requiredOption('--as <outcome>', 'committed or aborted')
    .action(async (database: string, table: string, options: LockTableTargetOptions & { as: string }) => {
      if (options.as !== 'committed' && options.as !== 'aborted')
        throw new ConfigError(`--as must be committed or aborted, not "${options.as}"`);
      requireActor(options);
      const as = options.as;
      const { settleBatch } = await import('../batch-settle.js');
      const { executionRunning } = await loadLeases();
      configureLogging(false);
      if (options.demo && options.lockTable)
        throw new ConfigError('--demo is local mode: leave out --lock-table');
      requireLocalLockTable(options);
      const configPath = await configPathOf(options, 'batch settle');
      const outcome = options.lockTable
        ? await (async () => {
            const { depsFromEnv } = await import('../../lambdas/shared/runtime/deps.js');
            const { SFNClient } = await import('@aws-sdk/client-sfn');
            const config = loadDeploymentConfigFile(configPath);
            const deps = depsFromEnv({
              ...process.env,
              ARCHIVER_CONFIG_PATH: resolve(configPath),
              LOCK_TABLE_NAME: options.lockTable,
              ARCHIVE_BUCKET: archiveBucket(config, options.bucket),
            });
            const holderRunning = executionRunning(new SFNClient({ requestHandler: boundedRequests() }));
            return settleBatch({ ...deps, actor: options.actor, holderRunning }, database, table, as);
          })()
        : await withLocalEnvironment(configPath, options.stateDir, (local) =>
            settleBatch(
              { ...local.deps(), actor: options.actor, holderRunning: async () => false },
              database,
              table,
              as,
            ),
          );
      conclude(
        outcome.settled,
        outcome.settled
          ? `${database}/${table}: batch settled as ${outcome.as} (${outcome.objects} objects, ${outcome.rows} rows)`
          : `${database}/${table}: not settled: ${outcome.reason}`,
      );
    });
}

/** The command's one line for the operator, and its exit code: 0 when done, 1 when refused (a finding). */
function conclude(done: boolean, line: string): void {
  // The table as the operator typed it, and a reason that may carry the database's or an operator's text.
  print(safeLine(line));
  process.exitCode = done ? EXIT_OK : EXIT_FINDINGS;
}
