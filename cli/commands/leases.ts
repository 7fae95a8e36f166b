import type { Command } from 'commander';
import { EXIT_FINDINGS, EXIT_OK } from '../exit-codes.js';
import {
  type LockTableTargetOptions,
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
        const statuses = await withLockTableTarget(options, 'status', ({ config, lockTable }) =>
          tableStatuses({ config, ...lockTable }, { database: options.database, tables: options.table }),
        );
        console.log(options.json ? JSON.stringify(statuses, null, 2) : formatStatuses(statuses));
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
    const { SFNClient } = await import('@aws-sdk/client-sfn');
    const outcome = await withLockTableTarget(options, 'lease break', ({ config, lockTable, store, mode }) =>
      breakLease(
        {
          config,
          ...lockTable,
          store,
          actor: options.actor,
          holderRunning: mode === 'aws' ? executionRunning(new SFNClient({})) : async () => false,
        },
        database,
        table,
      ),
    );
    if (outcome.broken) {
      console.log(
        `${database}/${table}: lease of ${outcome.owner} broken${outcome.inFlight ? `; its batch (${outcome.inFlight}) is settled first by the next run` : ''}`,
      );
      process.exitCode = EXIT_OK;
    } else {
      console.log(`${database}/${table}: not broken: ${outcome.reason}`);
      process.exitCode = EXIT_FINDINGS;
    }
  });
}
