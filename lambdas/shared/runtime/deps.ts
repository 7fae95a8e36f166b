import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SNSClient } from '@aws-sdk/client-sns';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { ArchiveStore } from '../archive/store.js';
import { loadConfigFile } from '../config/config.js';
import { findDatabase } from '../config/resolved-table.js';
import type { ArchiverConfig } from '../config/schema.js';
import { forgetCachedConnection, resolveConnection } from '../database/credentials.js';
import { createDatabase, type Database } from '../database/db.js';
import { ConfigError } from '../errors/step-errors.js';
import { ArchiveInventory } from '../lock-table/archive-inventory.js';
import { LeaseStore } from '../lock-table/lease-store.js';
import { LegalHolds } from '../lock-table/legal-holds.js';
import { RestoreRecords } from '../lock-table/restore-records.js';
import { RunRecords } from '../lock-table/run-records.js';
import { LockTableClient } from '../lock-table/table-client.js';
import type { FaultInjector, StepDeps } from '../step/step-deps.js';
import { filePublisher, snsPublisher } from '../telemetry/notifications.js';
import { powertoolsTelemetry } from '../telemetry/powertools.js';
import { boundedRequests } from './aws-requests.js';

interface ProcessClients {
  s3: S3Client;
  ddb: DynamoDBDocumentClient;
  secrets: SecretsManagerClient;
  sns: SNSClient;
}

const clients = new Map<string, ProcessClients>();
const configs = new Map<string, ArchiverConfig>();
const databases = new Map<string, Promise<Database>>();

/** Endpoints of the clients: unset in AWS (the regional ones); local servers in local mode. */
export interface ClientEndpoints {
  s3?: string;
  dynamodb?: string;
  secrets?: string;
}

/**
 * The SDK clients of one set of endpoints, with the request timeouts. `appId` names the caller in the user agent;
 * unset, the SDK reads AWS_SDK_UA_APP_ID from the process, as in AWS.
 */
export function awsClients(
  endpoints: ClientEndpoints,
  timeouts?: Parameters<typeof boundedRequests>[0],
  appId?: string,
): ProcessClients {
  const requestHandler = boundedRequests(timeouts);
  const common = { requestHandler, ...(appId ? { userAgentAppId: appId } : {}) };
  return {
    s3: unlogged(
      new S3Client({ endpoint: endpoints.s3, forcePathStyle: endpoints.s3 !== undefined, ...common }),
    ),
    ddb: DynamoDBDocumentClient.from(
      unlogged(new DynamoDBClient({ endpoint: endpoints.dynamodb, ...common })),
      {
        marshallOptions: { removeUndefinedValues: true },
      },
    ),
    secrets: unlogged(new SecretsManagerClient({ endpoint: endpoints.secrets, ...common })),
    sns: unlogged(new SNSClient(common)),
  };
}

/**
 * The client without the SDK's logger middleware: with no logger configured it still runs every request's input and
 * response through the service schema's sensitive-data filter (a walk of the whole item: a DynamoDB read of the batch
 * in flight copies every object of it) to hand the copies to a logger that drops them: 0.05 to 0.07 ms of CPU a
 * request (about 5% of a HEAD's, measured against the local servers). Nothing here gives the SDK a logger; failures
 * reach the steps as errors.
 */
function unlogged<T extends { middlewareStack: { remove(name: string): boolean } }>(client: T): T {
  client.middlewareStack.remove(SDK_LOGGER_MIDDLEWARE);
  return client;
}

/** The name the SDK gives its logger middleware in every client's stack. */
export const SDK_LOGGER_MIDDLEWARE = 'loggerMiddleware';

/**
 * SDK clients are created once per process (Lambda container) and reused across invocations. Endpoints are the
 * SDK's own AWS_ENDPOINT_URL_* variables, read from `env` so a local run can point one process at its servers;
 * in AWS they are unset and the SDK uses the regional endpoints. So is the user-agent app id, which local mode sets
 * per function when the functions share its process, so the local servers can tell who sent a request.
 */
function processClients(env: NodeJS.ProcessEnv): ProcessClients {
  const endpoints: ClientEndpoints = {
    s3: env.AWS_ENDPOINT_URL_S3,
    dynamodb: env.AWS_ENDPOINT_URL_DYNAMODB,
    secrets: env.AWS_ENDPOINT_URL_SECRETS_MANAGER,
  };
  const appId = env.AWS_SDK_UA_APP_ID;
  const key = JSON.stringify({ ...endpoints, appId });
  let cached = clients.get(key);
  if (!cached) {
    cached = awsClients(endpoints, undefined, appId);
    clients.set(key, cached);
  }
  return cached;
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new ConfigError(`environment variable ${name} is not set`);
  return value;
}

/** A byte count from the environment: a typo must fail, not become NaN, which every size comparison would pass. */
function byteCount(env: NodeJS.ProcessEnv, name: string): number {
  const parsed = z.coerce.number().int().min(0).safeParse(env[name]);
  if (!parsed.success) throw new ConfigError(`environment variable ${name} must be a whole number of bytes`);
  return parsed.data;
}

/**
 * Builds step dependencies from the environment: the one place that reads it. In AWS the variables come from the
 * stack; in local mode the runner sets the same names to local endpoints (AWS_ENDPOINT_URL_*) and state paths.
 */
export function depsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  fault: FaultInjector = () => undefined,
): StepDeps {
  const configPath = required(env, 'ARCHIVER_CONFIG_PATH');
  let config = configs.get(configPath);
  if (!config) {
    config = loadConfigFile(configPath);
    configs.set(configPath, config);
  }
  const { s3, ddb, secrets, sns } = processClients(env);
  const resolvedConfig = config;
  const lockTableName = required(env, 'LOCK_TABLE_NAME');
  const lockTable = new LockTableClient(ddb, lockTableName);
  return {
    config,
    store: new ArchiveStore(
      s3,
      env.ARCHIVE_BUCKET ?? resolvedConfig.s3.bucket ?? required(env, 'ARCHIVE_BUCKET'),
      // Unset in AWS: every copy goes in parts (see CopyOptions); local mode sets it for s3rver.
      env.ARCHIVER_COPY_IN_PARTS_ABOVE_BYTES
        ? { inPartsAboveBytes: byteCount(env, 'ARCHIVER_COPY_IN_PARTS_ABOVE_BYTES') }
        : {},
    ),
    locks: new LeaseStore(lockTable),
    inventory: new ArchiveInventory(lockTable),
    holds: new LegalHolds(lockTable),
    runRecords: new RunRecords(lockTable),
    restoreRecords: new RestoreRecords(lockTable),
    database(name) {
      const key = `${configPath}\u0000${name}`;
      let db = databases.get(key);
      if (!db) {
        const dbConfig = findDatabase(resolvedConfig, name);
        const resolve = () => resolveConnection(dbConfig, { secrets, env });
        db = resolve().then((settings) =>
          createDatabase(settings, {
            name: dbConfig.name,
            tls: dbConfig.tls,
            maxConnections: dbConfig.maxConnections,
            limits: resolvedConfig.defaults,
            password: async () => (await resolve()).password,
            onAuthFailure: () => forgetCachedConnection(dbConfig),
          }),
        );
        db.catch(() => databases.delete(key));
        databases.set(key, db);
      }
      return db;
    },
    telemetry: powertoolsTelemetry(lockTableName),
    now: () => new Date(),
    fault,
    // The stack sets the topic; local mode sets the file (it has no SNS stand-in).
    publisher: env.NOTIFICATION_TOPIC_ARN
      ? snsPublisher(sns, env.NOTIFICATION_TOPIC_ARN)
      : env.ARCHIVER_NOTIFICATIONS_FILE
        ? filePublisher(env.ARCHIVER_NOTIFICATIONS_FILE)
        : undefined,
  };
}

/** Closes pooled connections; local mode calls it before exit so the process can end. */
export async function closeProcessDatabases(): Promise<void> {
  const pending = [...databases.values()];
  databases.clear();
  await Promise.all(pending.map(async (db) => (await db.catch(() => undefined))?.end()));
}
