import type { Command } from 'commander';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import type { ArchiveContext } from '../context.js';
import { EXIT_FINDINGS } from '../exit-codes.js';
import type { HoldContext } from '../holds.js';
import { print, safeLine } from '../output.js';
import {
  type LockTableTargetOptions,
  requireLocalLockTable,
  withLockTableOptions,
  withLockTableTarget,
} from './lock-table-target.js';

type HoldCommandOptions = LockTableTargetOptions;

/** `hold` (legal holds in the lock table) and `legal-hold` (S3 Object Lock on a table's archives). */
export function registerHolds(program: Command): void {
  const hold = program
    .command('hold')
    .description(
      'Legal hold on a table, in the lock table: a held table is skipped (status held) until cleared.',
    );
  withHoldOptions(hold.command('set <database> <table>').description('Put a table under legal hold.'))
    .requiredOption('--reason <text>', 'why (kept with the hold and in the audit trail)')
    .option(
      '--new-state',
      'local mode: make the state dir, for a hold placed before the first local run',
      false,
    )
    .action(
      async (
        database: string,
        table: string,
        options: HoldCommandOptions & { reason: string; newState: boolean },
      ) => {
        const { setHold } = await loadHolds();
        // A hold recorded in a mistyped state dir is one no run sees: the held rows would be archived and deleted.
        if (!options.newState) requireLocalLockTable(options);
        const set = await withHoldContext(options, (ctx) => setHold(ctx, database, table, options.reason));
        print(safeLine(`${database}/${table} is under legal hold: ${set.reason}`));
      },
    );
  withHoldOptions(hold.command('clear <database> <table>').description('Lift a table’s legal hold.')).action(
    async (database: string, table: string, options: HoldCommandOptions) => {
      const { clearHold, configHold } = await loadHolds();
      requireLocalLockTable(options);
      const { cleared, held } = await withHoldContext(options, async (ctx) => ({
        cleared: await clearHold(ctx, database, table),
        held: configHold(ctx.config, database, table),
      }));
      // The config's own hold stays: "hold cleared" and exit 0 would read as the table being free for the next run.
      if (held !== undefined) {
        print(
          safeLine(
            `${database}/${table}: ${cleared ? "the lock table's hold is cleared" : 'no hold in the lock table'}; ${database}/${table} stays under the config's legal hold (${held}): runs skip it until legalHold is taken out of its config entry (and deployed)`,
          ),
        );
        process.exitCode = EXIT_FINDINGS;
        return;
      }
      print(
        safeLine(
          cleared
            ? `${database}/${table}: hold cleared`
            : `${database}/${table} had no hold in the lock table`,
        ),
      );
    },
  );
  withHoldOptions(hold.command('list').description('List the legal holds in the lock table.'))
    .option('--json', 'print the holds as a JSON array', false)
    .action(async (options: HoldCommandOptions & { json: boolean }) => {
      const { formatHolds } = await loadHolds();
      requireLocalLockTable(options);
      print(
        await withHoldContext(options, async (ctx) =>
          formatHolds(await ctx.holds.list(), { json: options.json }),
        ),
      );
    });

  const legalHold = program
    .command('legal-hold')
    .description('S3 Object Lock legal hold on a table’s archives (a bucket with Object Lock, so AWS only).');
  for (const [action, status] of [
    ['place', 'ON'],
    ['lift', 'OFF'],
  ] as const) {
    withHoldOptions(
      legalHold
        .command(`${action} <database> <table>`)
        .description(
          `${action === 'place' ? 'Place' : 'Lift'} the legal hold on every archive and manifest of the table, or of a day range.`,
        )
        .option('--from <day>', 'first day partition (YYYY-MM-DD)')
        .option('--to <day>', 'last day partition (YYYY-MM-DD)'),
    ).action(
      async (
        database: string,
        table: string,
        options: HoldCommandOptions & { from?: string; to?: string },
      ) => {
        const { setObjectLegalHold } = await loadHolds();
        if (!options.lockTable) {
          throw new ConfigError(
            'legal-hold needs S3 Object Lock, which local S3 does not implement: run it against AWS (--lock-table)',
          );
        }
        const done = await withHoldContext(options, (ctx) =>
          setObjectLegalHold(ctx, database, table, status, { fromDay: options.from, toDay: options.to }),
        );
        print(
          safeLine(
            `${database}/${table}: legal hold ${status} on ${done.objects} objects (${done.archives} archives)`,
          ),
        );
      },
    );
  }
}

/** Loaded on use: the hold commands' S3 Object Lock calls need the AWS SDK (see common.ts). */
const loadHolds = () => import('../holds.js');

const withHoldOptions = withLockTableOptions;

async function withHoldContext<T>(
  options: LockTableTargetOptions,
  work: (ctx: HoldContext & Pick<ArchiveContext, 's3'>) => Promise<T>,
): Promise<T> {
  return withLockTableTarget(options, 'hold', ({ config, store, lockTable, s3 }) =>
    work({ config, holds: lockTable.holds, store, actor: options.actor, s3 }),
  );
}
