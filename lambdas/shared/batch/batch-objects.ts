import pMap from 'p-map';
import {
  archiveKey,
  type BatchBounds,
  type Column,
  type ObjectSpan,
  type SchemaDrift,
  spanLastDay,
  stagingKey,
  type TableLocation,
} from '../archive/format.js';
import { TableNotUsableError } from '../errors/step-errors.js';
import { attributeBytes, ITEM_LIMIT_BYTES } from '../lock-table/item-size.js';
import { type BatchObject, type InFlight, keptAsLastColumns } from '../lock-table/table-state.js';

/**
 * Most objects (days) one batch takes. The batch's record holds each object's keys, bounds, figures, timestamp range
 * and staged ETag on the lease item (about 1 KB each with short keys; `RecordRoom` ends a batch of long keys sooner),
 * and its delete ORs every object's predicate in one statement: 100 days keep both small while a low-volume table
 * still clears a quarter's backlog per batch.
 */
export const MAX_OBJECTS_PER_BATCH = 100;

/** The lease item's attributes beside the batch's objects and the columns: lease, totals, manifest, the last keys. */
const LEASE_ITEM_OTHER_BYTES = 16 * 1024;

/**
 * The room the batch's objects have on the lease item. An object's keys are as long as the table's key values (up to
 * about 2.7 KB each, more where the index compresses them) and its location's names: 100 objects of long text keys
 * would not fit, and the record could never be written. Export ends a batch at the last object that fits.
 */
export class RecordRoom {
  private left: number;
  private taken = 0;

  /**
   * Beside the objects, the item holds the batch's columns (and their numbers), its schema drift and the last committed
   * archive's columns (`lastColumns`, which the batch's commit replaces) when they are narrow enough to be kept
   * (LAST_COLUMNS_MAX_BYTES): after columns were dropped, those are the wider ones. `earlierColumns` are the candidates
   * for those: the item's, and those of a batch left in flight, whose settling may commit it first.
   */
  constructor(
    columns: readonly Column[],
    earlierColumns: readonly (readonly Column[] | undefined)[],
    drift: SchemaDrift | undefined,
    columnNumbers: readonly number[] = [],
    /** What the batch's manifest records of the column types (type definitions, enum labels): one per type used. */
    typesRecorded: unknown = undefined,
  ) {
    this.left =
      ITEM_LIMIT_BYTES -
      LEASE_ITEM_OTHER_BYTES -
      attributeBytes(columns) -
      attributeBytes(columnNumbers) -
      attributeBytes(typesRecorded) -
      Math.max(0, ...earlierColumns.filter((c) => c && keptAsLastColumns(c)).map(attributeBytes)) -
      attributeBytes(drift);
  }

  /**
   * Takes an object's share of the record when it fits. A first object that cannot fit alone is `TableNotUsableError`:
   * the table's keys or columns are too long for any batch.
   */
  take(location: TableLocation, span: ObjectSpan, object: { day: string; bounds: BatchBounds }): boolean {
    // As an element of the record's list of objects: one byte more.
    const bytes = 1 + attributeBytes(largestObject(location, span, object.day, object.bounds));
    if (bytes <= this.left) {
      this.left -= bytes;
      this.taken += 1;
      return true;
    }
    if (this.taken === 0)
      throw new TableNotUsableError(
        `one archive object's record (${bytes} bytes with its first and last key, beside the table's columns) does not fit in the lease item (DynamoDB's ${ITEM_LIMIT_BYTES} bytes): the table's key values or columns (their names and types) are too long`,
      );
    return false;
  }
}

/** The most an S3 ETag and a timestamp's text take, and a version id as S3 bounds it: what upload and verify add. */
const LONGEST_ETAG = `"${'0'.repeat(32)}-10000"`;
const LONGEST_VERSION_ID = '0'.repeat(1024);
const LONGEST_TIMESTAMP = '-294276-12-31 23:59:59.999999+00 BC';
const SHA256_TEXT = '0'.repeat(64);

/** An object of a batch at its largest before it is staged: every field it may ever hold, at its longest value. */
export function largestObject(
  location: TableLocation,
  span: ObjectSpan,
  day: string,
  bounds: BatchBounds,
): Required<BatchObject> {
  return {
    day,
    span,
    stagingKey: stagingKey(location, day, SHA256_TEXT),
    stagedEtag: LONGEST_ETAG,
    archiveKey: archiveKey(location, day, SHA256_TEXT, span),
    createdArchive: false,
    bounds,
    figures: {
      rowCount: Number.MAX_SAFE_INTEGER,
      contentSha256: SHA256_TEXT,
      compressedSha256: SHA256_TEXT,
      uncompressedBytes: Number.MAX_SAFE_INTEGER,
      compressedBytes: Number.MAX_SAFE_INTEGER,
      rowDigest: SHA256_TEXT.slice(0, 32),
    },
    pin: { etag: LONGEST_ETAG, versionId: LONGEST_VERSION_ID },
    manifestSha256: SHA256_TEXT,
    manifestLcMonetary: 'C',
    timestampRange: { min: LONGEST_TIMESTAMP, max: LONGEST_TIMESTAMP },
  };
}

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
const OBJECT_CONCURRENCY = 4;

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
