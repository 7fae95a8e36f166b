import { describe, expect, it } from 'vitest';
import {
  batchesForDays,
  batchSpan,
  batchTotals,
  forEachObject,
  MAX_OBJECTS_PER_BATCH,
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
  /** PostgreSQL's most columns (or `count`), each named with `nameLength` characters. */
  const widest = (nameLength: number, count = 1600) =>
    Array.from({ length: count }, (_, i) => ({
      name: String(i).padStart(nameLength, 'c'),
      type: 'timestamp(6) with time zone',
      nullable: true,
      generated: false,
    }));
  const taken = (room: RecordRoom, keyLength: number) => {
    let objects = 0;
    while (objects < 1000 && room.take(location, 'day', bounds(keyLength))) objects += 1;
    return objects;
  };

  it('takes 100 objects of ordinary keys, and fewer of long ones', () => {
    // Act
    const ordinary = taken(new RecordRoom(columns, [columns], undefined), 36);
    const long = taken(new RecordRoom(columns, [columns], undefined), 2_600);

    // Assess
    expect(ordinary).toBeGreaterThanOrEqual(MAX_OBJECTS_PER_BATCH);
    expect(long).toBeGreaterThan(1);
    expect(long).toBeLessThan(MAX_OBJECTS_PER_BATCH);
  });

  it('refuses a table whose first object alone cannot fit, naming why', () => {
    // Prepare
    const room = new RecordRoom(columns, [], undefined);

    // Act
    const taking = () => room.take(location, 'day', bounds(250_000));

    // Assess
    expect(taking).toThrow(TableNotUsableError);
    expect(taking).toThrow(/key values or columns \(their names and types\) are too long/);
  });

  it('leaves less room beside a wide table’s columns, yet room for objects beside the widest names', () => {
    // Prepare
    const wide = widest(20);
    const widestNames = widest(63);

    // Act
    const besideWide = taken(new RecordRoom(wide, [wide], undefined), 2_600);
    const besideWidest = taken(new RecordRoom(widestNames, [widestNames], undefined), 2_600);
    const besideNarrow = taken(new RecordRoom(columns, [columns], undefined), 2_600);

    // Assess: the item keeps no second copy of columns this wide (LAST_COLUMNS_MAX_BYTES), which left none.
    expect(besideWidest).toBeGreaterThan(1);
    expect(besideWidest).toBeLessThan(besideWide);
    expect(besideWide).toBeLessThan(besideNarrow);
  });

  it('leaves less room beside the types the manifest records, and none beside too many', () => {
    // Prepare: a type definition of each column's own domain, as the batch's manifest records them.
    const types = (count: number) =>
      Object.fromEntries(
        Array.from({ length: count }, (_, i) => [`public.${'d'.repeat(40)}${i}`, '0'.repeat(32)]),
      );

    // Act
    const plain = taken(new RecordRoom(columns, [columns], undefined, [], undefined), 2_600);
    const typed = taken(
      new RecordRoom(columns, [columns], undefined, [], { typeDefinitions: types(200) }),
      2_600,
    );
    const tooMany = () =>
      new RecordRoom(columns, [columns], undefined, [], { typeDefinitions: types(5_000) }).take(
        location,
        'day',
        bounds(36),
      );

    // Assess
    expect(typed).toBeLessThan(plain);
    expect(tooMany).toThrow(/columns \(their names and types\) are too long/);
  });

  it('keeps room for the wider columns of the last archive, from before columns were dropped', () => {
    // Prepare
    // Narrow enough to be kept on the item as the last archive's columns (LAST_COLUMNS_MAX_BYTES).
    const beforeDrop = widest(40, 100);

    // Act
    const afterDrop = taken(new RecordRoom(columns, [beforeDrop, undefined], undefined), 2_600);
    const unchanged = taken(new RecordRoom(columns, [columns], undefined), 2_600);

    // Assess
    expect(afterDrop).toBeLessThan(unchanged);
  });
});
