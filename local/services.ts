import { type ChildProcess, fork } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { z } from 'zod';
import { COPY_OBJECT_MAX_BYTES } from '../lambdas/shared/archive/store-copy.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { callerOf } from './request-caller.mjs';
import { claimStateDir } from './state-dir-claim.js';

/**
 * Requests a local server answered, by the function that sent them (the SDK's user-agent app id, which local mode's
 * function processes set; empty for other clients) and by operation.
 */
const RequestCountSchema = z.object({
  service: z.enum(['s3', 'dynamodb']),
  caller: z.string(),
  operation: z.string(),
  count: z.number().int(),
  /** DynamoDB request units: one per request, one per item of a batch request (what on demand bills). */
  units: z.number().int().optional(),
});
export type RequestCount = z.infer<typeof RequestCountSchema>;

/**
 * One request a local server answered, with what IAM would authorize it on: S3's object key (or a DeleteObjects
 * request's keys), copy source, listing prefix and version; DynamoDB's table and the partition keys it names.
 */
const LoggedRequestSchema = z.object({
  service: z.enum(['s3', 'dynamodb']),
  caller: z.string(),
  operation: z.string(),
  status: z.number().int(),
  key: z.string().optional(),
  keys: z.array(z.string()).optional(),
  sourceKey: z.string().optional(),
  prefix: z.string().optional(),
  versionId: z.string().optional(),
  table: z.string().optional(),
  leadingKeys: z.array(z.string()).optional(),
});
export type LoggedRequest = z.infer<typeof LoggedRequestSchema>;

/** Endpoints of the local stand-ins, exported as the AWS SDK's own endpoint variables. */
export interface LocalServices {
  s3Endpoint: string;
  dynamoEndpoint: string;
  bucket: string;
  lockTable: string;
  /** Environment for the steps: the same variable names a deployed function gets, pointed at local servers. */
  env: Record<string, string>;
  /** Every request the servers answered since they started; the bench prices them. */
  requestCounts(): Promise<RequestCount[]>;
  /** Every request the servers answered since they started, described; tests check them against the roles. */
  requestLog(): Promise<LoggedRequest[]>;
  stop(): Promise<void>;
}

const LOCK_TABLE = 'audit-archiver-locks';

/** Local credentials: the ones s3rver expects (dynalite takes any); real AWS credentials are never used locally. */
const LOCAL_AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  // Local mode runs on Node 20; the deployed functions run on Node 22, where the SDK has nothing to warn about.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  // s3rver would store the aws-chunked framing as the object body if the SDK streamed checksums.
  AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
  AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
};

async function startS3(directory: string, bucket: string): Promise<{ port: number; child: ChildProcess }> {
  const child = fork(fileURLToPath(new URL('./s3-server.mjs', import.meta.url)), [directory, bucket], {
    execArgv: ['--openssl-legacy-provider'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message) => resolve((message as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`local S3 server exited (${code}) before it started`)));
  });
  return { port, child };
}

/** Asks the S3 server's process for what `command` names, and reads its answer with `schema`. */
function askS3<T>(child: ChildProcess, command: 'counts' | 'requests', schema: z.ZodType<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    const exited = (code: number | null, signal: NodeJS.Signals | null) =>
      new Error(`local S3 server exited (${signal ?? code})`);
    // A server already gone exits no more: waiting for its 'exit' would wait forever.
    if (child.exitCode !== null || child.signalCode !== null)
      return reject(exited(child.exitCode, child.signalCode));
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      child.off('message', onMessage);
      reject(exited(code, signal));
    };
    const onMessage = (message: unknown) => {
      child.off('exit', onExit);
      resolve(schema.parse(message));
    };
    child.once('exit', onExit);
    child.once('message', onMessage);
    // With a callback, a channel already closed fails the question; without one, it is an 'error' event of the child,
    // which nothing listens to: an uncaught exception.
    child.send({ command }, (error) => {
      if (!error) return;
      child.off('exit', onExit);
      child.off('message', onMessage);
      reject(error);
    });
  });
}

/** A DynamoDB item key or item as the wire carries it: its partition key `pk` is a string. */
type WireItem = { pk?: { S?: string } } | undefined;
const partitionKeyOf = (item: WireItem) => item?.pk?.S ?? '';

/** The partition key a Query's key condition names (`pk = :value`, the name maybe through `#name`). */
function queriedPartition(body: {
  KeyConditionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, { S?: string }>;
}): string {
  for (const [, name, value] of (body.KeyConditionExpression ?? '').matchAll(/([#\w]+)\s*=\s*(:\w+)/g)) {
    const attribute = name?.startsWith('#') ? body.ExpressionAttributeNames?.[name] : name;
    if (attribute === 'pk') return body.ExpressionAttributeValues?.[value ?? '']?.S ?? '';
  }
  return '';
}

/**
 * What a DynamoDB request touched, as IAM authorizes it: per table, the partition keys of the items it names
 * (`dynamodb:LeadingKeys`), and its billed request units (one per item of a batch request). A Scan names none.
 */
function describeDynamoRequest(
  operation: string,
  text: string,
): { tables: { table: string; leadingKeys: string[] }[]; units: number } {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { tables: [], units: 1 };
  }
  if (operation === 'BatchGetItem' || operation === 'BatchWriteItem') {
    const perTable = Object.entries((body.RequestItems ?? {}) as Record<string, unknown>).map(
      ([table, items]) => {
        const keys = Array.isArray(items)
          ? (items as { PutRequest?: { Item: WireItem }; DeleteRequest?: { Key: WireItem } }[]).map(
              (request) => request.PutRequest?.Item ?? request.DeleteRequest?.Key,
            )
          : ((items as { Keys?: WireItem[] }).Keys ?? []);
        return { table, leadingKeys: keys.map(partitionKeyOf) };
      },
    );
    return { tables: perTable, units: perTable.reduce((total, t) => total + t.leadingKeys.length, 0) };
  }
  const table = String(body.TableName ?? '');
  const leadingKeys =
    operation === 'Query'
      ? [queriedPartition(body)]
      : operation === 'Scan'
        ? []
        : [partitionKeyOf((body.Key ?? body.Item) as WireItem)];
  return { tables: table ? [{ table, leadingKeys }] : [], units: 1 };
}

async function startDynamo(path: string): Promise<{
  port: number;
  server: Server;
  counts: Map<string, { count: number; units: number }>;
  requests: LoggedRequest[];
}> {
  const server = dynalite({ path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 }) as Server;
  // The operation is the X-Amz-Target header's action (DynamoDB_20120810.GetItem).
  const counts = new Map<string, { count: number; units: number }>();
  const requests: LoggedRequest[] = [];
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const target = String(request.headers['x-amz-target'] ?? '');
    const operation = target.slice(target.indexOf('.') + 1);
    const caller = callerOf(request.headers);
    const key = JSON.stringify([caller, operation]);
    const counted = counts.get(key) ?? { count: 0, units: 0 };
    counts.set(key, counted);
    counted.count += 1;
    // dynalite reads the body through 'data' events too; this listener sees the same chunks.
    const body: Buffer[] = [];
    request.on('data', (chunk: Buffer) => body.push(chunk));
    request.on('end', () => {
      const { tables, units } = describeDynamoRequest(operation, Buffer.concat(body).toString('utf8'));
      counted.units += units;
      response.on('finish', () => {
        for (const { table, leadingKeys } of tables) {
          requests.push({
            service: 'dynamodb',
            caller,
            operation,
            table,
            leadingKeys,
            status: response.statusCode,
          });
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, server, counts, requests };
}

/** Creates the lock table (or another of its shape: a second deployment's) unless it exists, and waits until it is ACTIVE. */
export async function ensureLockTable(endpoint: string, tableName = LOCK_TABLE): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: {
      accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID,
      secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY,
    },
  });
  const status = () =>
    client.send(new DescribeTableCommand({ TableName: tableName })).then(
      (described) => described.Table?.TableStatus,
      () => undefined,
    );
  try {
    if ((await status()) === undefined) {
      await client.send(
        new CreateTableCommand({
          TableName: tableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: 'pk', AttributeType: 'S' },
            { AttributeName: 'sk', AttributeType: 'S' },
          ],
          KeySchema: [
            { AttributeName: 'pk', KeyType: 'HASH' },
            { AttributeName: 'sk', KeyType: 'RANGE' },
          ],
        }),
      );
    }
    // dynalite answers "not found" until the new table is ACTIVE, which a loaded machine can delay past the first use.
    for (let attempt = 0; (await status()) !== 'ACTIVE'; attempt += 1) {
      if (attempt === 100) throw new Error(`local DynamoDB table ${tableName} did not become active`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    client.destroy();
  }
}

/**
 * Starts a local S3 server and a local DynamoDB whose data persist under `stateDir` (s3/ and dynamodb/), so later
 * commands find the archives and the table states of earlier runs.
 */
export async function startLocalServices(stateDir: string, bucket: string): Promise<LocalServices> {
  if (existsSync(stateDir) && !statSync(stateDir).isDirectory())
    throw new ConfigError(
      `--state-dir: ${stateDir} is a file, not a directory: give the state dir your runs use`,
    );
  // The archives are personal data (the only copy of deleted rows): only the owner reads the state, also in a state dir
  // an earlier version created for everyone to read.
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  for (const store of ['s3', 'dynamodb']) {
    mkdirSync(join(stateDir, store), { recursive: true, mode: 0o700 });
    chmodSync(join(stateDir, store), 0o700);
  }
  const release = claimStateDir(stateDir);
  let s3: Awaited<ReturnType<typeof startS3>>;
  let dynamo: Awaited<ReturnType<typeof startDynamo>>;
  try {
    s3 = await startS3(join(stateDir, 's3'), bucket);
    try {
      dynamo = await startDynamo(join(stateDir, 'dynamodb'));
    } catch (error) {
      s3.child.kill();
      throw error;
    }
  } catch (error) {
    release();
    throw error;
  }
  const s3Endpoint = `http://127.0.0.1:${s3.port}`;
  const dynamoEndpoint = `http://127.0.0.1:${dynamo.port}`;
  await ensureLockTable(dynamoEndpoint);
  return {
    s3Endpoint,
    dynamoEndpoint,
    bucket,
    lockTable: LOCK_TABLE,
    env: {
      ...LOCAL_AWS_ENV,
      AWS_ENDPOINT_URL_S3: s3Endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
      ARCHIVE_BUCKET: bucket,
      LOCK_TABLE_NAME: LOCK_TABLE,
      // s3rver answers UploadPartCopy with NotImplemented: whole-object copies, up to S3's CopyObject limit.
      ARCHIVER_COPY_IN_PARTS_ABOVE_BYTES: String(COPY_OBJECT_MAX_BYTES),
    },
    async requestCounts() {
      const dynamoCounts = [...dynamo.counts].map(([key, { count, units }]) => {
        const [caller = '', operation = ''] = JSON.parse(key) as string[];
        return { service: 'dynamodb' as const, caller, operation, count, units };
      });
      const { counts } = await askS3(s3.child, 'counts', z.object({ counts: z.array(RequestCountSchema) }));
      return [...counts, ...dynamoCounts];
    },
    async requestLog() {
      const s3Log = await askS3(
        s3.child,
        'requests',
        z.object({ requests: z.array(LoggedRequestSchema.omit({ service: true })) }),
      );
      return [
        ...s3Log.requests.map((request) => ({ service: 's3' as const, ...request })),
        ...dynamo.requests,
      ];
    },
    async stop() {
      // A server that ended before it was asked to (a crash, the OOM killer) fails the command that used it.
      const { exitCode, signalCode } = s3.child;
      await new Promise<void>((resolve) => dynamo.server.close(() => resolve()));
      await new Promise<void>((resolve) => {
        if (s3.child.exitCode !== null || s3.child.signalCode !== null) return resolve();
        s3.child.once('exit', () => resolve());
        s3.child.kill('SIGTERM');
      });
      release();
      if (exitCode !== null || signalCode !== null) {
        throw new Error(
          `the local S3 server ended (${signalCode ?? `exit code ${exitCode}`}) before the command did: what the command read or wrote after that failed or is missing; run it again`,
        );
      }
    },
  };
}
