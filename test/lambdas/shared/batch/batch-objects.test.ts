import { describe, expect, it } from 'vitest';
import { archiveKey, stagingKey } from '../../../../lambdas/shared/archive/format.js';
import {
  batchesForDays,
  batchSpan,
  batchTotals,
  forEachObject,
  MAX_OBJECTS_PER_BATCH,
  objectRecordBytes,
  RecordRoom,
} from '../../../../lambdas/shared/batch/batch-objects.js';
import { TableNotUsableError } from '../../../../lambdas/shared/errors/step-errors.js';
import type { BatchObject } from '../../../../lambdas/shared/lock-table/table-state.js';

const object = (day: string, rowCount: number): BatchObject => ({
  day,
  stagingKey: `staging/${day}`,
  archiveKey: `archive/${day}`,
  bounds: { from: `${day}T00:00:00.000Z`, to: `${day}T23:00:00.000Z`, firstKey: ['1'], lastKey: ['2'] },
  figures: {
    rowCount,
    contentSha256: 'a'.repeat(64),
    compressedSha256: 'b'.repeat(64),
    uncompressedBytes: rowCount * 10,
    compressedBytes: rowCount * 3,
    rowDigest: 'c'.repeat(32),
  },
});

describe('the objects of a batch', () => {
  it('add up to the batch, from its oldest day to the end of its newest rows', () => {
    // Prepare
    const batch = { objects: [object('2026-01-01', 5), object('2026-01-02', 7)] };

    // Act / Assess
    expect(batchTotals(batch)).toEqual({ rowCount: 12, compressedBytes: 36, uncompressedBytes: 120 });
    expect(batchSpan(batch)).toEqual({
      firstDay: '2026-01-01',
      lastDay: '2026-01-02',
      to: '2026-01-02T23:00:00.000Z',
    });
  });
});

describe('batchesForDays: the batches export cuts, as plan counts them', () => {
  it.each([
    { case: 'no rows', days: [], size: 10, batches: 0 },
    { case: 'many small days fill one batch', days: [3, 3, 3], size: 10, batches: 1 },
    {
      case: 'a batch ends mid-day and the next takes the rest of that day',
      days: [6, 6, 6],
      size: 10,
      batches: 2,
    },
    { case: 'a day larger than the batch takes several', days: [25], size: 10, batches: 3 },
    { case: 'exactly full batches', days: [10, 10], size: 10, batches: 2 },
  ])('$case', ({ days, size, batches }) => {
    expect(batchesForDays(days, size)).toBe(batches);
  });

  it(`starts a new batch after ${MAX_OBJECTS_PER_BATCH} objects, however few rows they hold`, () => {
    // Prepare: one row a day for 250 days.
    const days = Array.from({ length: 250 }, () => 1);

    // Act / Assess
    expect(batchesForDays(days, 50_000)).toBe(3);
  });
});

describe('forEachObject', () => {
  it('throws the first failure only after the work under way has ended, and starts no more', async () => {
    // Prepare: object 0 fails while object 1 is still at work; objects 2 and 3 wait for a free slot.
    const objects = ['2025-01-01', '2025-01-02', '2025-01-03', '2025-01-04'].map((day) => object(day, 1));
    const events: string[] = [];
    let finishSlow: () => void = () => undefined;
    const slow = new Promise<void>((resolve) => {
      finishSlow = resolve;
    });

    // Act
    const outcome = forEachObject(
      objects,
      async (_object, index) => {
        events.push(`start ${index}`);
        if (index === 0) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          throw new Error('object 0 failed');
        }
        await slow;
        events.push(`end ${index}`);
      },
      2,
    ).catch((error: Error) => {
      events.push(`rejected: ${error.message}`);
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const beforeSlowEnded = [...events];
    finishSlow();
    await outcome;

    // Assess
    expect(beforeSlowEnded).toEqual(['start 0', 'start 1']);
    expect(events).toEqual(['start 0', 'start 1', 'end 1', 'rejected: object 0 failed']);
  });

  it("returns every result in the objects' order", async () => {
    const objects = ['2025-01-01', '2025-01-02', '2025-01-03'].map((day) => object(day, 1));

    const days = await forEachObject(objects, async (o, index) => {
      await new Promise((resolve) => setTimeout(resolve, (3 - index) * 5));
      return o.day;
    });

    expect(days).toEqual(['2025-01-01', '2025-01-02', '2025-01-03']);
  });
});

describe('the room a batch’s objects have on the lease item', () => {
  const location = { prefix: 'archive/', database: 'app', schema: 'public', table: 'events' };
  const bounds = (keyLength: number) => ({
    day: '2026-01-01',
    bounds: {
      from: '2026-01-01T00:00:00.000Z',
      to: '2026-01-02T00:00:00.000Z',
      firstKey: ['a'.repeat(keyLength)],
      lastKey: ['z'.repeat(keyLength)],
    },
  });
  const columns = [{ name: 'id', type: 'text', nullable: false, generated: false }];

  it('counts an object at its largest, above what verify leaves on it', () => {
    // Prepare
    const verified: Required<BatchObject> = {
      ...object('2026-01-01', 1_000_000),
      span: 'day',
      bounds: bounds(100).bounds,
      stagedEtag: `"${'e'.repeat(32)}-12"`,
      createdArchive: true,
      pin: { etag: `"${'e'.repeat(32)}"`, versionId: 'v'.repeat(32) },
      timestampRange: { min: '2026-01-01 00:00:00+00', max: '2026-01-01 23:59:59.999999+00' },
      stagingKey: stagingKey(location, '2026-01-01', 'batch'),
      archiveKey: archiveKey(location, '2026-01-01', 'a'.repeat(64)),
    };

    // Act
    const estimate = objectRecordBytes(location, 'day', '2026-01-01', verified.bounds);

    // Assess
    expect(estimate).toBeGreaterThanOrEqual(Buffer.byteLength(JSON.stringify(verified)));
  });

  it('takes 100 objects of ordinary keys, and fewer of long ones', () => {
    // Prepare
    const ordinary = new RecordRoom(columns, undefined);
    const long = new RecordRoom(columns, undefined);

    // Act
    const ordinaryTaken = Array.from({ length: MAX_OBJECTS_PER_BATCH }, () =>
      ordinary.take(location, 'day', bounds(36)),
    );
    let longTaken = 0;
    while (long.take(location, 'day', bounds(2_600))) longTaken += 1;

    // Assess
    expect(ordinaryTaken.every(Boolean)).toBe(true);
    expect(longTaken).toBeGreaterThan(1);
    expect(longTaken).toBeLessThan(MAX_OBJECTS_PER_BATCH);
  });

  it('refuses a table whose first object alone cannot fit, naming why', () => {
    // Prepare
    const room = new RecordRoom(columns, undefined);

    // Act
    const taking = () => room.take(location, 'day', bounds(250_000));

    // Assess
    expect(taking).toThrow(TableNotUsableError);
    expect(taking).toThrow(/key values or columns are too long/);
  });

  /** PostgreSQL's most columns, each named with `nameLength` characters. */
  const widest = (nameLength: number) =>
    Array.from({ length: 1600 }, (_, i) => ({
      name: String(i).padStart(nameLength, 'c'),
      type: 'timestamp(6) with time zone',
      nullable: true,
      generated: false,
    }));

  it('leaves less room beside a wide table’s columns, and none beside the widest names', () => {
    // Prepare
    const wide = new RecordRoom(widest(20), undefined);
    const widestNames = new RecordRoom(widest(63), undefined);

    // Act
    let taken = 0;
    while (wide.take(location, 'day', bounds(36))) taken += 1;
    const takingBesideWidest = () => widestNames.take(location, 'day', bounds(36));

    // Assess
    expect(taken).toBeGreaterThan(1);
    expect(taken).toBeLessThan(MAX_OBJECTS_PER_BATCH);
    expect(takingBesideWidest).toThrow(TableNotUsableError);
  });
});
