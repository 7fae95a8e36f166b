import { describe, expect, it } from 'vitest';
import { addScaled, EMPTY_TALLY, priceTally } from '../../cli/cost-requests.js';

describe('priceTally', () => {
  it('prices S3 requests by class (PUT, COPY, POST and LIST; GET and HEAD; DELETE free) and DynamoDB writes and reads apart', () => {
    // Act
    const costs = priceTally({
      ...EMPTY_TALLY,
      s3: {
        PutObject: 600,
        CopyObject: 200,
        ListObjectsV2: 200,
        GetObject: 500,
        HeadObject: 500,
        DeleteObject: 9999,
      },
      dynamodb: { UpdateItem: 1e6, GetItem: 1e6, DescribeTable: 50 },
    });

    // Assess: us-east-1, STANDARD: $0.005 per 1,000 PUT-class, $0.0004 per 1,000 GET-class
    expect(costs.s3).toBeCloseTo(0.005 + 0.0004, 10);
    expect(costs.dynamodb).toBeCloseTo(0.625 + 0.125, 10);
    expect(costs.total).toBeCloseTo(costs.s3 + costs.dynamodb, 10);
  });

  it('prices Lambda requests and compute by GB-second, and state transitions', () => {
    // Act
    const costs = priceTally({
      ...EMPTY_TALLY,
      lambdaInvocations: 1e6,
      lambdaGbSeconds: 500,
      stateTransitions: 4000,
    });

    // Assess
    expect(costs.lambdaRequests).toBeCloseTo(0.2, 10);
    expect(costs.lambdaCompute).toBeCloseTo(500 * 0.0000133334, 10);
    expect(costs.stateTransitions).toBeCloseTo(0.1, 10);
  });

  it('adds a scaled tally field by field', () => {
    // Act
    const sum = addScaled(
      { lambdaInvocations: 5, lambdaGbSeconds: 1, stateTransitions: 17, s3: { GetObject: 3 }, dynamodb: {} },
      {
        lambdaInvocations: 4,
        lambdaGbSeconds: 2,
        stateTransitions: 6,
        s3: { GetObject: 1, PutObject: 2 },
        dynamodb: { GetItem: 1 },
      },
      20,
    );

    // Assess
    expect(sum).toEqual({
      lambdaInvocations: 85,
      lambdaGbSeconds: 41,
      stateTransitions: 137,
      s3: { GetObject: 23, PutObject: 40 },
      dynamodb: { GetItem: 20 },
      dynamodbUnits: {},
    });
  });

  it('prices a DynamoDB batch request by the items it reads or writes, as on demand bills it', () => {
    // Act: 40,000 BatchWriteItem requests of 25 items, 10,000 BatchGetItem requests of 100 keys, 1M UpdateItem.
    const costs = priceTally({
      ...EMPTY_TALLY,
      dynamodb: { BatchWriteItem: 40_000, BatchGetItem: 10_000, UpdateItem: 1e6 },
      dynamodbUnits: { BatchWriteItem: 1e6, BatchGetItem: 1e6 },
    });

    // Assess: 2M write units and 1M read units.
    expect(costs.dynamodb).toBeCloseTo(2 * 0.625 + 0.125, 10);
  });
});
