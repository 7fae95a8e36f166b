import { describe, expect, it } from 'vitest';
import {
  ASSUMED_ROWS_PER_SECOND,
  batchRowLimit,
  LOAD_PAUSE_MAX_SECONDS,
  pauseAfterBatch,
  replicaLagProblems,
} from '../../../../lambdas/shared/batch/throttle.js';
import { DefaultsSchema } from '../../../../lambdas/shared/config/schema.js';

const defaults = (overrides: Record<string, unknown> = {}) => DefaultsSchema.parse(overrides);
const progress = (rowsPerSecond: number) => ({ batches: 1, rows: 10, bytes: 10, rowsPerSecond });

describe('batchRowLimit (time budget per invocation)', () => {
  it('keeps batchSize when the last batch’s rate says it fits in the budget', () => {
    // Act
    const limit = batchRowLimit(50_000, defaults(), 900_000, progress(20_000));

    // Assess: 20,000 rows/s × 450 s is far more than a batch.
    expect(limit).toBe(50_000);
  });

  it('cuts the batch to what the measured rate does within the share of the remaining time', () => {
    // Act
    const limit = batchRowLimit(5_000_000, defaults({ timeBudgetShare: 0.25 }), 900_000, progress(1_000));

    // Assess
    expect(limit).toBe(225_000);
  });

  it('assumes a slow rate for the first batch and never returns less than one row', () => {
    // Act
    const first = batchRowLimit(5_000_000, defaults(), 100_000, undefined);
    const starved = batchRowLimit(5_000_000, defaults(), 0, progress(1_000));

    // Assess
    expect(first).toBe(ASSUMED_ROWS_PER_SECOND * 50);
    expect(starved).toBe(1);
  });
});

describe('pauseAfterBatch (throttle)', () => {
  it('is zero by default, and at least pauseBetweenBatchesSeconds when set', () => {
    // Act / Assess
    expect(pauseAfterBatch(50_000, 2, defaults())).toBe(0);
    expect(pauseAfterBatch(50_000, 2, defaults({ pauseBetweenBatchesSeconds: 7 }))).toBe(7);
  });

  it('waits long enough that the batch plus the pause average maxRowsPerSecond, in whole seconds', () => {
    // Act: 50,000 rows in 2 s at most 10,000 rows/s: 5 s in all, so 3 s of pause.
    const pause = pauseAfterBatch(50_000, 2, defaults({ maxRowsPerSecond: 10_000 }));
    const slowAlready = pauseAfterBatch(50_000, 9, defaults({ maxRowsPerSecond: 10_000 }));

    // Assess
    expect(pause).toBe(3);
    expect(slowAlready).toBe(0);
  });
});

describe('pauseAfterBatch (yieldToLoad)', () => {
  const yielding = (overrides: Record<string, unknown> = {}) =>
    defaults({ yieldToLoad: { busySessions: 1, share: 0.1 }, ...overrides });

  it('is on by default: busy sessions during the batch make it wait 9 times the batch (a tenth of the time)', () => {
    // Act
    const busy = pauseAfterBatch(50_000, 2, defaults(), 3.1);
    const idle = pauseAfterBatch(50_000, 2, defaults(), 0.4);
    const unmeasured = pauseAfterBatch(50_000, 2, defaults());

    // Assess
    expect(busy).toBe(18);
    expect(idle).toBe(0);
    expect(unmeasured).toBe(0);
  });

  it('counts from busySessions on, rounds up to whole seconds and yields to the longest of the throttles', () => {
    // Act
    const atThreshold = pauseAfterBatch(50_000, 0.25, yielding(), 1);
    const belowThreshold = pauseAfterBatch(50_000, 0.25, yielding(), 0.99);
    const rateLonger = pauseAfterBatch(50_000, 2, yielding({ maxRowsPerSecond: 1_000 }), 5);
    const fixedLonger = pauseAfterBatch(50_000, 2, yielding({ pauseBetweenBatchesSeconds: 60 }), 5);
    const halfShare = pauseAfterBatch(50_000, 2, defaults({ yieldToLoad: { share: 0.5 } }), 5);

    // Assess
    expect(atThreshold).toBe(3);
    expect(belowThreshold).toBe(0);
    expect(rateLonger).toBe(48);
    expect(fixedLonger).toBe(60);
    expect(halfShare).toBe(2);
  });

  it('waits at most LOAD_PAUSE_MAX_SECONDS, however long the batch took', () => {
    // Act / Assess: a batch timed at a day (one a crashed run left) would otherwise pause for nine.
    expect(pauseAfterBatch(50_000, 86_400, defaults(), 5)).toBe(LOAD_PAUSE_MAX_SECONDS);
  });

  it('never waits for load when turned off', () => {
    // Act / Assess
    expect(pauseAfterBatch(50_000, 2, defaults({ yieldToLoad: false }), 100)).toBe(0);
  });
});

describe('replicaLagProblems', () => {
  const limit = { replicas: ['a', 'b'], maxLagSeconds: 10 };

  it('accepts connected replicas within the limit, NULL lag (caught up, idle) included', () => {
    // Act
    const problems = replicaLagProblems(
      [
        { name: 'a', lag_seconds: 9.5 },
        { name: 'b', lag_seconds: null },
      ],
      limit,
    );

    // Assess
    expect(problems).toEqual([]);
  });

  it('names each replica that lags too far or is not connected', () => {
    // Act
    const problems = replicaLagProblems([{ name: 'a', lag_seconds: 42 }], limit);

    // Assess
    expect(problems).toEqual(['replica "a" lags 42.0 s (limit 10 s)', 'replica "b" is not connected']);
  });
});
