import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ArchiveStore } from '../lambdas/shared/archive/store.js';
import {
  type DeploymentConfig,
  loadDeploymentConfigFile,
} from '../lambdas/shared/config/deployment-schema.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import type { ArchiveInventory } from '../lambdas/shared/lock-table/archive-inventory.js';
import type { LeaseStore } from '../lambdas/shared/lock-table/lease-store.js';
import type { LegalHolds } from '../lambdas/shared/lock-table/legal-holds.js';
import type { RunRecords } from '../lambdas/shared/lock-table/run-records.js';
import type { LocalEnvironment } from '../local/run.js';
import { printError, safeLine } from './output.js';

/**
 * How every command opens what it works on: the config, the archive store and the lock table, either in local mode
 * (the state dir's S3 and DynamoDB stand-ins) or in AWS (credentials of the environment). The AWS SDK and local mode
 * load here, when a command opens them (see commands/common.ts).
 */

/** Local mode for a config, closed (its servers stopped) when `work` ends. */
export async function withLocalEnvironment<T>(
  configPath: string,
  stateDir: string,
  work: (env: LocalEnvironment) => Promise<T>,
): Promise<T> {
  const { openLocalEnvironment } = await import('../local/run.js');
  const env = await openLocalEnvironment(configPath, stateDir);
  let result: T;
  try {
    result = await work(env);
  } catch (error) {
    // The command's own error is what the operator needs (and decides the exit code), whatever closing meets.
    await env.close().catch(() => undefined);
    throw error;
  }
  // A local server that died while the command ran throws here, and says so (exit 1).
  await env.close();
  return result;
}

/**
 * Local mode for a command that only reads the state dir (plan, cost, doctor): one that is not there is read as a
 * state dir no run has used, in a scratch dir removed afterwards, and a note on stderr says so. Opening the mistyped
 * dir itself would create it, after which the commands that refuse a missing one (hold list, status) take it too.
 */
export async function withLocalEnvironmentReadOnly<T>(
  configPath: string,
  stateDir: string,
  work: (env: LocalEnvironment) => Promise<T>,
): Promise<T> {
  if (existsSync(stateDir)) return withLocalEnvironment(configPath, stateDir, work);
  printError(
    safeLine(
      `note: no local state in ${resolve(stateDir)}: read as a state dir no run has used (no leases, legal holds, progress or archives), and not created; give --state-dir if your runs use another`,
    ),
  );
  const scratch = mkdtempSync(join(tmpdir(), 'audit-archiver-state-'));
  try {
    return await withLocalEnvironment(configPath, join(scratch, 'state'), work);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The deployed archive bucket: --bucket, else the config's s3.bucket. */
export function archiveBucket(config: DeploymentConfig, bucket: string | undefined): string {
  const name = bucket ?? config.s3.bucket;
  if (!name) throw new ConfigError('give --bucket: the config names no s3.bucket');
  return name;
}

/** The deployed archive store, and the S3 client it uses (Object Lock calls go around the store). */
export async function openArchiveStore(
  config: DeploymentConfig,
  bucket: string | undefined,
): Promise<{ store: ArchiveStore; s3: S3Client }> {
  const name = archiveBucket(config, bucket);
  const { ArchiveStore } = await import('../lambdas/shared/archive/store.js');
  const { s3 } = await deployedClients();
  return { store: new ArchiveStore(s3, name), s3 };
}

/** The functions' own SDK clients (timeouts, marshalling), at AWS's endpoints: loaded only by commands that reach AWS. */
async function deployedClients() {
  const { awsClients } = await import('../lambdas/shared/runtime/deps.js');
  return awsClients({});
}

/** The stores of the deployed lock table (its name is the stack output LockTableName) that operator commands use. */
export interface OperatorStores {
  inventory: ArchiveInventory;
  holds: LegalHolds;
  leases: LeaseStore;
  runRecords: RunRecords;
}

/** Opens the deployed lock table's stores that operator commands use. */
async function openLockTable(name: string): Promise<OperatorStores> {
  const { LockTableClient } = await import('../lambdas/shared/lock-table/table-client.js');
  const { ArchiveInventory } = await import('../lambdas/shared/lock-table/archive-inventory.js');
  const { LegalHolds } = await import('../lambdas/shared/lock-table/legal-holds.js');
  const { LeaseStore } = await import('../lambdas/shared/lock-table/lease-store.js');
  const { RunRecords } = await import('../lambdas/shared/lock-table/run-records.js');
  const client = new LockTableClient((await deployedClients()).ddb, name);
  return {
    inventory: new ArchiveInventory(client),
    holds: new LegalHolds(client),
    leases: new LeaseStore(client),
    runRecords: new RunRecords(client),
  };
}

/** Local mode in a state dir, or AWS with the config's (or --bucket's) bucket and, if named, the deployed lock table. */
export type ArchiveTarget =
  | { mode: 'local'; configPath: string; stateDir: string }
  | { mode: 'aws'; configPath: string; bucket?: string; lockTable?: string };

export interface ArchiveContext {
  config: DeploymentConfig;
  store: ArchiveStore;
  /** Always in local mode; in AWS only when the target names the lock table. */
  lockTable?: OperatorStores;
  /** The S3 client of the store's bucket. */
  s3: S3Client;
}

/** The config, archive store and lock table of a target, for as long as `work` runs. */
export async function withArchiveContext<T>(
  target: ArchiveTarget,
  work: (context: ArchiveContext) => Promise<T>,
): Promise<T> {
  if (target.mode === 'local') {
    return withLocalEnvironment(target.configPath, target.stateDir, async (env) => {
      const { S3Client } = await import('@aws-sdk/client-s3');
      const { store, inventory, holds, locks, runRecords } = env.deps();
      const s3 = new S3Client({ endpoint: env.services.s3Endpoint, forcePathStyle: true });
      return work({
        config: env.config,
        store,
        lockTable: { inventory, holds, leases: locks, runRecords },
        s3,
      });
    });
  }
  const config = loadDeploymentConfigFile(target.configPath);
  const { store, s3 } = await openArchiveStore(config, target.bucket);
  const lockTable = target.lockTable ? await openLockTable(target.lockTable) : undefined;
  return work({ config, store, lockTable, s3 });
}
