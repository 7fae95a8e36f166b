import { join, resolve } from 'node:path';
import {
  type DeploymentConfig,
  loadDeploymentConfigFile,
} from '../lambdas/shared/config/deployment-schema.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import type { RestoreFileResult } from '../lambdas/shared/lock-table/restore-records.js';
import type { TableOutcome } from '../lambdas/shared/lock-table/run-records.js';
import { closeProcessDatabases, depsFromEnv } from '../lambdas/shared/runtime/deps.js';
import type { FaultInjector, StepDeps } from '../lambdas/shared/step/step-deps.js';
import { type LocalServices, startLocalServices } from './services.js';
import {
  type ExecutionResult,
  type FunctionName,
  type FunctionRunner,
  LocalWorkflow,
  type LocalWorkflowOptions,
  type StepEvent,
} from './workflow.js';

export const DEFAULT_STATE_DIR = '.audit-archiver';
const DEFAULT_LOCAL_BUCKET = 'audit-archiver-local';
/** Local mode has no SNS: the summary step writes its would-be messages here, in the state dir. */
export const NOTIFICATIONS_FILE = 'notifications.jsonl';

export interface WorkflowOptions {
  /** Runs the functions elsewhere (each in a process of its own); `fault`, `env` and `deps` act in this process only. */
  functions?: FunctionRunner;
  fault?: FaultInjector;
  retryIntervalScale?: number;
  /** As every function invocation starts (see LocalWorkflowOptions.onInvoke). */
  onInvoke?: LocalWorkflowOptions['onInvoke'];
  onStep?: (event: StepEvent) => void;
  /** Awaited between steps (see LocalWorkflowOptions.afterStep); tests inject faults at step boundaries. */
  afterStep?: (event: StepEvent) => Promise<void> | void;
  /** Every interpreter event of every execution (see LocalWorkflowOptions.onEvent). */
  onEvent?: LocalWorkflowOptions['onEvent'];
  /** Environment overrides for the functions (tests route an endpoint through a proxy). */
  env?: NodeJS.ProcessEnv;
  /** Wraps the functions' dependencies (tests record telemetry or damage a stream). */
  deps?: (deps: StepDeps) => StepDeps;
}

export interface LocalEnvironment {
  config: DeploymentConfig;
  services: LocalServices;
  /** The environment a deployed function would have, with local endpoints. */
  env: NodeJS.ProcessEnv;
  deps(fault?: FaultInjector): StepDeps;
  workflow(options?: WorkflowOptions): LocalWorkflow;
  /** Dates each archive run's start (LocalWorkflowOptions.clock; the system clock unless the environment has one). */
  clock(): Date;
  /** The functions this process has run (in-process workflows): each names itself to the local servers. */
  readonly functionsRun: ReadonlySet<FunctionName>;
  close(): Promise<void>;
}

/**
 * Local mode reaches no AWS service (its SDK clients carry the local servers' keys): a secret ARN would be asked of
 * Secrets Manager in AWS with those keys, and fail after the retries of an outage. Refused at once instead, unless an
 * endpoint for it is given (AWS_ENDPOINT_URL_SECRETS_MANAGER, a stand-in of one's own).
 */
function refuseSecretsWithoutEndpoint(config: DeploymentConfig, configPath: string): void {
  if (process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER) return;
  const i = config.databases.findIndex((db) => 'secretArn' in db.credentials);
  if (i >= 0)
    throw new ConfigError(
      `${configPath}: databases.${i}.credentials.secretArn: local mode reaches no AWS service, so it cannot read a Secrets Manager secret; give url or urlEnv for local runs`,
    );
}

/**
 * Brings up local mode for a config: the local S3 and DynamoDB (state under `stateDir`) and the environment the
 * steps read. What differs from AWS is only endpoints and credentials: the config's own credentials (URL or env
 * var) reach the user's PostgreSQL, local dummy AWS credentials reach the stand-ins.
 */
export async function openLocalEnvironment(
  configPath: string,
  stateDir = DEFAULT_STATE_DIR,
  { clock }: Pick<LocalWorkflowOptions, 'clock'> = {},
): Promise<LocalEnvironment> {
  const absoluteConfig = resolve(configPath);
  const config = loadDeploymentConfigFile(absoluteConfig);
  refuseSecretsWithoutEndpoint(config, absoluteConfig);
  const services = await startLocalServices(resolve(stateDir), config.s3.bucket ?? DEFAULT_LOCAL_BUCKET);
  // The SDK reads region, credentials and checksum mode from the process environment when a client is built.
  for (const [name, value] of Object.entries(services.env)) {
    if (name.startsWith('AWS_') && !name.startsWith('AWS_ENDPOINT_URL')) process.env[name] = value;
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...services.env,
    ARCHIVER_CONFIG_PATH: absoluteConfig,
    ARCHIVER_NOTIFICATIONS_FILE: join(resolve(stateDir), NOTIFICATIONS_FILE),
  };
  const functionsRun = new Set<FunctionName>();
  return {
    config,
    services,
    env,
    functionsRun,
    clock: () => clock?.() ?? new Date(),
    deps: (fault) => depsFromEnv(env, fault),
    workflow: (options = {}) => {
      if (options.functions && (options.fault || options.env || options.deps)) {
        throw new Error('fault, env and deps reach only functions that run in this process');
      }
      return new LocalWorkflow({
        functions: options.functions,
        // Each function's SDK clients name it in their user agent, as its own process does (function-processes.ts).
        getDeps: (name) => {
          functionsRun.add(name);
          const deps = depsFromEnv({ ...env, AWS_SDK_UA_APP_ID: name, ...options.env }, options.fault);
          return options.deps ? options.deps(deps) : deps;
        },
        retryIntervalScale: options.retryIntervalScale,
        clock,
        onInvoke: options.onInvoke,
        onStep: options.onStep,
        afterStep: options.afterStep,
        onEvent: options.onEvent,
      });
    },
    async close() {
      await closeProcessDatabases();
      await services.stop();
    },
  };
}

export interface LocalRunResult {
  execution: ExecutionResult;
  outcomes: TableOutcome[];
}

/** One archive execution in local mode, with the per-table outcomes it recorded. */
export async function runLocalArchive(
  local: LocalEnvironment,
  input: unknown = {},
  options: WorkflowOptions = {},
): Promise<LocalRunResult> {
  const execution = await local.workflow(options).runArchive(input);
  const outcomes = await local.deps().runRecords.listOutcomes(execution.executionName);
  return { execution, outcomes };
}

export interface LocalRestoreResult {
  execution: ExecutionResult;
  /** Per archive, as the restore recorded them (also when the execution failed). */
  results: RestoreFileResult[];
}

/** One restore execution in local mode, with the per-archive results it recorded. */
export async function runLocalRestore(
  local: LocalEnvironment,
  request: unknown,
  options: WorkflowOptions = {},
): Promise<LocalRestoreResult> {
  let startedAt: string | undefined;
  const execution = await local
    .workflow({
      ...options,
      onStep: (event) => {
        startedAt ??= planStartedAt(event);
        options.onStep?.(event);
      },
    })
    .runRestore(request);
  // No plan, no results; an earlier restore of the name may have left some.
  const results = startedAt
    ? await local.deps().restoreRecords.listResults(execution.executionName, startedAt)
    : [];
  return { execution, results };
}

/**
 * The execution's start as its plan received it (`$$.Execution.StartTime`, which the interpreter sets itself): the
 * results it records carry it, and an earlier execution of the name left others.
 */
export function planStartedAt(event: StepEvent): string | undefined {
  const payload = event.payload as { action?: unknown; startedAt?: unknown } | undefined;
  return event.functionName === 'restore-plan' &&
    payload?.action === 'plan' &&
    typeof payload.startedAt === 'string'
    ? payload.startedAt
    : undefined;
}
