import pMap from 'p-map';
import { spanLastDay } from '../archive/format.js';
import type { BatchObject, InFlight } from '../lock-table/table-state.js';

/**
 * Most objects (days) one batch takes. The batch's record holds each object's keys, bounds, figures, timestamp range
 * and staged ETag on the lease item (about 800 bytes each, within DynamoDB's 400 KB item), and its delete runs one
 * statement per object in one transaction: 100 days keep both small while a low-volume table still clears a
 * quarter's backlog per batch.
 */
export const MAX_OBJECTS_PER_BATCH = 100;

/**
 * How many batches export cuts from these eligible rows per UTC day, oldest day first: each batch takes days in
 * turn until it holds `batchSize` rows (ending mid-day if need be) or `MAX_OBJECTS_PER_BATCH` objects.
 */
export function batchesForDays(rowsPerDay: readonly number[], batchSize: number): number {
  let batches = 0;
  let room = 0;
  let objects = 0;
  for (let rows of rowsPerDay) {
    while (rows > 0) {
      if (room === 0 || objects === MAX_OBJECTS_PER_BATCH) {
        batches += 1;
        room = batchSize;
        objects = 0;
      }
      const taken = Math.min(rows, room);
      rows -= taken;
      room -= taken;
      objects += 1;
    }
  }
  return batches;
}

/**
 * S3 requests of one step that run at once, one object each: a batch of many small day objects would otherwise pay
 * each request's latency in turn. Four keeps an upload's copies and a verify's reads within a small function's
 * sockets and memory (each read streams through gunzip).
 */
export const OBJECT_CONCURRENCY = 4;

/**
 * Requests without a body (a HEAD, an inventory item's write) that run at once: they hold no memory, so a batch's
 * objects pay the round trip about once rather than once per four objects.
 */
export const REQUEST_CONCURRENCY = 16;

/**
 * Runs `work` on every object of a batch, `concurrency` at a time; results in the objects' order. After a failure no
 * object's work starts, and the first failure is thrown only once the work under way has ended: a step that failed
 * leaves no request in flight, so its retry never runs beside its own stragglers.
 */
export async function forEachObject<T>(
  objects: readonly BatchObject[],
  work: (object: BatchObject, index: number) => Promise<T>,
  concurrency = OBJECT_CONCURRENCY,
): Promise<T[]> {
  let failure: { error: unknown } | undefined;
  const results = await pMap(
    objects,
    async (object, index) => {
      if (failure) return undefined;
      try {
        return await work(object, index);
      } catch (error) {
        failure ??= { error };
        return undefined;
      }
    },
    { concurrency },
  );
  if (failure) throw failure.error;
  return results as T[];
}

/** What a batch holds over all its objects. */
export function batchTotals(inFlight: Pick<InFlight, 'objects'>): {
  rowCount: number;
  compressedBytes: number;
  uncompressedBytes: number;
} {
  let rowCount = 0;
  let compressedBytes = 0;
  let uncompressedBytes = 0;
  for (const { figures } of inFlight.objects) {
    rowCount += figures.rowCount;
    compressedBytes += figures.compressedBytes;
    uncompressedBytes += figures.uncompressedBytes;
  }
  return { rowCount, compressedBytes, uncompressedBytes };
}

/** The days a batch covers, oldest and newest, and the exclusive upper bound of its newest rows. */
export function batchSpan(inFlight: Pick<InFlight, 'objects'>): {
  firstDay: string;
  lastDay: string;
  to: string;
} {
  const first = inFlight.objects[0];
  const last = inFlight.objects.at(-1);
  // The schema requires one object at least.
  if (!first || !last) throw new Error('a batch in flight has no objects');
  return { firstDay: first.day, lastDay: spanLastDay(last.day, last.span ?? 'day'), to: last.bounds.to };
}
