import type { StorageClass } from '../lambdas/shared/config/storage-classes.js';

/**
 * S3 prices per class in US East (N. Virginia) and Europe (Ireland): the pricing page lists the same figures for both
 * at the first tier for these classes.
 */
const US_EAST_1_AND_EU_WEST_1 = {
  STANDARD: {
    storagePerGbMonth: 0.023,
    putPer1000: 0.005,
    getPer1000: 0.0004,
    retrievalPerGb: 0,
    restoreRequestPer1000: 0,
    transitionPer1000: 0,
    minDays: 0,
    minBillableBytes: 0,
  },
  STANDARD_IA: {
    storagePerGbMonth: 0.0125,
    putPer1000: 0.01,
    getPer1000: 0.001,
    retrievalPerGb: 0.01,
    restoreRequestPer1000: 0,
    transitionPer1000: 0.01,
    minDays: 30,
    minBillableBytes: 128 * 1024,
  },
  ONEZONE_IA: {
    storagePerGbMonth: 0.01,
    putPer1000: 0.01,
    getPer1000: 0.001,
    retrievalPerGb: 0.01,
    restoreRequestPer1000: 0,
    transitionPer1000: 0.01,
    minDays: 30,
    minBillableBytes: 128 * 1024,
  },
  /** Frequent access tier; the automatic tiers and the monitoring fee are in `intelligentTiering`. */
  INTELLIGENT_TIERING: {
    storagePerGbMonth: 0.023,
    putPer1000: 0.005,
    getPer1000: 0.0004,
    retrievalPerGb: 0,
    restoreRequestPer1000: 0,
    transitionPer1000: 0.01,
    minDays: 0,
    minBillableBytes: 0,
  },
  GLACIER_IR: {
    storagePerGbMonth: 0.004,
    putPer1000: 0.02,
    getPer1000: 0.01,
    retrievalPerGb: 0.03,
    restoreRequestPer1000: 0,
    transitionPer1000: 0.02,
    minDays: 90,
    minBillableBytes: 128 * 1024,
  },
  /** Glacier Flexible Retrieval; retrieval is the Standard tier (3-5 hours). */
  GLACIER: {
    storagePerGbMonth: 0.0036,
    putPer1000: 0.03,
    getPer1000: 0.0004,
    retrievalPerGb: 0.01,
    restoreRequestPer1000: 0.05,
    transitionPer1000: 0.03,
    minDays: 90,
    minBillableBytes: 0,
  },
  /** Retrieval is the Standard tier (within 12 hours). */
  DEEP_ARCHIVE: {
    storagePerGbMonth: 0.00099,
    putPer1000: 0.05,
    getPer1000: 0.0004,
    retrievalPerGb: 0.02,
    restoreRequestPer1000: 0.1,
    transitionPer1000: 0.05,
    minDays: 180,
    minBillableBytes: 0,
  },
} as const;

/** The automatic tiers of S3 Intelligent-Tiering, the same in both regions. */
const INTELLIGENT_TIERING = {
  infrequentAfterDays: 30,
  infrequentPerGbMonth: 0.0125,
  archiveInstantAfterDays: 90,
  archiveInstantPerGbMonth: 0.004,
  monitoringPer1000Objects: 0.0025,
  /** Smaller objects are not monitored: no fee, always billed at the frequent tier. */
  monitoredFromBytes: 128 * 1024,
} as const;

/**
 * The one price table `audit-archiver cost` uses. Source: the Amazon S3 pricing page (aws.amazon.com/s3/pricing),
 * regions US East (N. Virginia) and Europe (Ireland), storage at the first tier (the first 50 TB a month), in USD: the figures that page has
 * listed for these classes since the 2023 Glacier price changes. `takenOn` is the day they were entered here, from a
 * machine that could not open the page: re-check them against it before relying on an estimate. Prices change:
 * update this table and `takenOn` together, and add a region by copying its figures from the same page. Each region
 * prices every class of storage-classes.ts (the type checks it).
 */
export const S3_PRICES = {
  source: 'Amazon S3 pricing page (https://aws.amazon.com/s3/pricing/)',
  takenOn: '2026-11-29',
  currency: 'USD',
  regions: {
    'us-east-1': US_EAST_1_AND_EU_WEST_1,
    'eu-west-1': US_EAST_1_AND_EU_WEST_1,
  },
  /** S3 Intelligent-Tiering moves an object not read for 30 days to Infrequent Access, for 90 days to Archive Instant. */
  intelligentTiering: {
    'us-east-1': INTELLIGENT_TIERING,
    'eu-west-1': INTELLIGENT_TIERING,
  },
  /**
   * Per object in GLACIER or DEEP_ARCHIVE, S3 keeps 32 KiB of index at that class's rate and 8 KiB of metadata at
   * the STANDARD rate.
   */
  archiveOverhead: { classBytes: 32 * 1024, standardBytes: 8 * 1024 },
} as const satisfies { regions: Record<string, Record<StorageClass, object>>; [other: string]: unknown };

export type PricedRegion = keyof typeof S3_PRICES.regions;
export type ClassPrice = (typeof S3_PRICES.regions)[PricedRegion][StorageClass];

/**
 * What running the workflows costs besides the bucket: Lambda (arm64, as the stack deploys), Step Functions Standard
 * workflows and DynamoDB on demand (the lock table), in USD, US East (N. Virginia) and Europe (Ireland), from each service's pricing page
 * (aws.amazon.com/lambda/pricing, /step-functions/pricing, /dynamodb/pricing/on-demand). Entered on `takenOn` from a
 * machine that could not open the pages, as S3_PRICES: re-check them before relying on an estimate.
 */
export const RUN_PRICES = {
  sources: ['Lambda pricing page', 'Step Functions pricing page', 'DynamoDB on-demand pricing page'],
  takenOn: '2026-12-03',
  currency: 'USD',
  regions: {
    'us-east-1': {
      lambdaPerMillionRequests: 0.2,
      /** arm64, the first tier (6 billion GB-seconds a month). */
      lambdaPerGbSecond: 0.0000133334,
      stateTransitionPer1000: 0.025,
      /** On-demand request units: a write of up to 1 KB, a strongly consistent read of up to 4 KB. */
      dynamoWritePerMillion: 0.625,
      dynamoReadPerMillion: 0.125,
    },
    /** Lambda and Step Functions as in US East; DynamoDB on demand is dearer in Ireland. */
    'eu-west-1': {
      lambdaPerMillionRequests: 0.2,
      lambdaPerGbSecond: 0.0000133334,
      stateTransitionPer1000: 0.025,
      dynamoWritePerMillion: 0.7063,
      dynamoReadPerMillion: 0.1413,
    },
  },
} as const satisfies { regions: Record<PricedRegion, object>; [other: string]: unknown };
