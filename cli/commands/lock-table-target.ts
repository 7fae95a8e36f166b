import type { Command } from 'commander';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { type ArchiveContext, type OperatorStores, withArchiveContext } from '../context.js';
import {
  CONFIG_OR_DEMO_OPTIONS,
  configPathOf,
  configureLogging,
  requireLocalState,
  STATE_DIR_OPTION,
} from './common.js';

/** Options of the commands that work on the lock table: local mode's, or the deployed one `--lock-table` names. */
export interface LockTableTargetOptions {
  config?: string;
  demo?: boolean;
  stateDir: string;
  lockTable?: string;
  bucket?: string;
  actor: string;
}

export const withLockTableOptions = (command: Command): Command =>
  command
    .option(...CONFIG_OR_DEMO_OPTIONS.config)
    .option(...CONFIG_OR_DEMO_OPTIONS.demo)
    .option(...STATE_DIR_OPTION)
    .option('--lock-table <name>', 'the deployed lock table (stack output); without it, local mode')
    .option('--bucket <name>', 'archive bucket of the audit trail (default: the config’s s3.bucket)')
    // An empty USER (some containers) is no name: the audit trail needs one.
    .option('--actor <name>', 'who acts, for the audit trail', process.env.USER || 'operator');

/**
 * Refuses an empty --actor (a script's unset variable) before anything changes: the audit trail refuses an event
 * without one, and the hold or lease change made before it stood with no event, while the command failed.
 */
export function requireActor(options: Pick<LockTableTargetOptions, 'actor'>): void {
  if (options.actor.trim() === '')
    throw new ConfigError('--actor must not be empty: it names who acts in the audit trail');
}

/**
 * In local mode (neither --lock-table nor --demo), refuses a state dir that is not there: a mistyped one holds no
 * run's state, and a change recorded in it (a hold) is one no run sees.
 */
export function requireLocalLockTable(
  options: Pick<LockTableTargetOptions, 'lockTable' | 'demo' | 'stateDir'>,
): void {
  if (!options.lockTable && !options.demo) requireLocalState(options.stateDir);
}

/** Local mode (the state dir's DynamoDB and S3) unless --lock-table names the deployed lock table. */
export async function withLockTableTarget<T>(
  options: LockTableTargetOptions,
  command: string,
  work: (
    ctx: Omit<ArchiveContext, 'lockTable'> & { lockTable: OperatorStores; mode: 'local' | 'aws' },
  ) => Promise<T>,
): Promise<T> {
  configureLogging(false);
  requireActor(options);
  if (options.demo && options.lockTable)
    throw new ConfigError('--demo is local mode: leave out --lock-table');
  const configPath = await configPathOf(options, command);
  const target = options.lockTable
    ? { mode: 'aws' as const, configPath, bucket: options.bucket, lockTable: options.lockTable }
    : { mode: 'local' as const, configPath, stateDir: options.stateDir };
  return withArchiveContext(target, ({ lockTable, ...context }) => {
    // Both targets have a lock table: local mode's own, or the one --lock-table names.
    if (!lockTable) throw new Error('no lock table opened');
    return work({ ...context, lockTable, mode: target.mode });
  });
}
