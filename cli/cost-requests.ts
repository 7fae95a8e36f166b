import { pricesFor } from './cost-model.js';
import { type PricedRegion, RUN_PRICES } from './cost-prices.js';

/**
 * The price of running the workflows, from what a run was measured to do (the bench counts it): Lambda invocations
 * and compute, Step Functions state transitions, S3 and DynamoDB requests. Storage is cost-model.ts's subject.
 */

/** What one or more runs did. */
export interface RequestTally {
  lambdaInvocations: number;
  /** Lambda compute: each invocation's wall seconds times its function's memory size in GB, summed. */
  lambdaGbSeconds: number;
  stateTransitions: number;
  /** By S3 operation (GetObject, PutObject, ...). */
  s3: Record<string, number>;
  /** By DynamoDB action (GetItem, UpdateItem, ...). */
  dynamodb: Record<string, number>;
  /**
   * DynamoDB request units by action, where they differ from the requests: on demand bills a batch request (BatchGetItem,
   * BatchWriteItem) per item it reads or writes. An action missing here bills one unit per request.
   */
  dynamodbUnits?: Record<string, number>;
}

export interface RequestCosts {
  lambdaRequests: number;
  lambdaCompute: number;
  stateTransitions: number;
  s3: number;
  dynamodb: number;
  total: number;
}

/** S3 bills PUT, COPY, POST and LIST at one rate, DELETE and the abort of an upload not at all, the rest as GET. */
const S3_PUT_CLASS = new Set([
  'PutObject',
  'CopyObject',
  'CreateMultipartUpload',
  'UploadPart',
  'UploadPartCopy',
  'CompleteMultipartUpload',
  'DeleteObjects',
  'ListObjects',
  'ListObjectsV2',
  'ListParts',
  'ListMultipartUploads',
]);
const S3_FREE = new Set(['DeleteObject', 'AbortMultipartUpload']);
const DYNAMO_WRITES = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
]);
const DYNAMO_READS = new Set(['GetItem', 'Query', 'Scan', 'BatchGetItem', 'TransactGetItems']);

const sum = (counts: Record<string, number>, pick: (operation: string) => boolean) =>
  Object.entries(counts).reduce((total, [operation, n]) => total + (pick(operation) ? n : 0), 0);

/** The request units a tally's DynamoDB requests bill, by action. */
const dynamoUnits = (tally: RequestTally): Record<string, number> => ({
  ...tally.dynamodb,
  ...tally.dynamodbUnits,
});

/**
 * Prices a tally. S3 requests at the STANDARD class's rates (staging is always STANDARD; price archives written in
 * another class with the `cost` command); each DynamoDB item read or written as one request unit (the lock table's
 * items are under 1 KB and its reads strongly consistent); Lambda compute by its GB-seconds.
 */
export function priceTally(tally: RequestTally, region: PricedRegion = 'us-east-1'): RequestCosts {
  const run = RUN_PRICES.regions[region];
  const s3 = pricesFor(region).STANDARD;
  const costs = {
    lambdaRequests: (tally.lambdaInvocations / 1e6) * run.lambdaPerMillionRequests,
    lambdaCompute: tally.lambdaGbSeconds * run.lambdaPerGbSecond,
    stateTransitions: (tally.stateTransitions / 1000) * run.stateTransitionPer1000,
    s3:
      (sum(tally.s3, (op) => S3_PUT_CLASS.has(op)) / 1000) * s3.putPer1000 +
      (sum(tally.s3, (op) => !S3_PUT_CLASS.has(op) && !S3_FREE.has(op)) / 1000) * s3.getPer1000,
    dynamodb:
      (sum(dynamoUnits(tally), (op) => DYNAMO_WRITES.has(op)) / 1e6) * run.dynamoWritePerMillion +
      (sum(dynamoUnits(tally), (op) => DYNAMO_READS.has(op)) / 1e6) * run.dynamoReadPerMillion,
  };
  return {
    ...costs,
    total: costs.lambdaRequests + costs.lambdaCompute + costs.stateTransitions + costs.s3 + costs.dynamodb,
  };
}

const scaleCounts = (counts: Record<string, number>, factor: number) =>
  Object.fromEntries(Object.entries(counts).map(([op, n]) => [op, n * factor]));

/** `a + factor × b`, field by field: a run's fixed part plus a number of objects' or rows' worth. */
export function addScaled(a: RequestTally, b: RequestTally, factor: number): RequestTally {
  const merge = (x: Record<string, number>, y: Record<string, number>) => {
    const merged = { ...x };
    for (const [op, n] of Object.entries(scaleCounts(y, factor))) merged[op] = (merged[op] ?? 0) + n;
    return merged;
  };
  return {
    lambdaInvocations: a.lambdaInvocations + factor * b.lambdaInvocations,
    lambdaGbSeconds: a.lambdaGbSeconds + factor * b.lambdaGbSeconds,
    stateTransitions: a.stateTransitions + factor * b.stateTransitions,
    s3: merge(a.s3, b.s3),
    dynamodb: merge(a.dynamodb, b.dynamodb),
    dynamodbUnits: merge(a.dynamodbUnits ?? {}, b.dynamodbUnits ?? {}),
  };
}

export const EMPTY_TALLY: RequestTally = {
  lambdaInvocations: 0,
  lambdaGbSeconds: 0,
  stateTransitions: 0,
  s3: {},
  dynamodb: {},
};
