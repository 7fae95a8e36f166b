import { z } from 'zod';
import {
  BatchBoundsSchema,
  BatchFiguresSchema,
  BatchManifestSchema,
  type Column,
  ColumnSchema,
  ManifestSchema,
  OBJECT_SPANS,
} from '../archive/format.js';
import { ObjectPinSchema } from '../archive/store.js';
import { attributeBytes } from './item-size.js';

/** The lease a table's execution holds: owner (execution id) plus a fencing token that grows on every acquisition. */
export const LeaseSchema = z.object({ owner: z.string().min(1), token: z.number().int().positive() });
export type Lease = z.infer<typeof LeaseSchema>;

/**
 * One archive object of a batch: the rows of one UTC day or month (an object never spans two), staged by export
 * under `stagingKey` and published by upload under its content-addressed `archiveKey`.
 */
export const BatchObjectSchema = z.object({
  /** The object's day, or the first of its month. */
  day: z.string(),
  /** Absent in records written before month objects existed: a day object. */
  span: z.enum(OBJECT_SPANS).optional(),
  stagingKey: z.string(),
  /** The staged object's ETag as S3 gave it to export: upload copies only that object (absent in older records). */
  stagedEtag: z.string().optional(),
  archiveKey: z.string(),
  /** Set by upload when this batch wrote the archive object (rather than finding identical rows archived before). */
  createdArchive: z.boolean().optional(),
  bounds: BatchBoundsSchema,
  figures: BatchFiguresSchema,
  /** The stored object verify read and checked: delete and every later read accept only that object. */
  pin: ObjectPinSchema.optional(),
  /**
   * SHA-256 of the manifest verify read and checked (its UTF-8 bytes), set with the pin and recorded in the inventory
   * at commit: restore and validate then accept that manifest only, whatever a bucket writer rewrites consistently.
   */
  manifestSha256: z.string().optional(),
  /**
   * The `lcMonetary` of that manifest (null: it has none), set with it: the inventory entry records it. An archive
   * identical rows made before keeps its own manifest, which one written before 2026-12-04 left without. Absent in
   * records verified before it was kept: the batch's own manifest's.
   */
  manifestLcMonetary: ManifestSchema.shape.lcMonetary.unwrap().nullable().optional(),
  /** The least and greatest timestamp of its rows, for its manifest (absent in records whose manifests were staged). */
  timestampRange: ManifestSchema.shape.timestampRange.optional(),
});
export type BatchObject = z.infer<typeof BatchObjectSchema>;

/** `withdrawing`: claimed for withdrawal; its objects are being removed (a crash there is finished next run). */
export const StageSchema = z.enum(['exported', 'uploaded', 'verified', 'deleting', 'withdrawing']);

const IN_FLIGHT_OBJECT_FIELDS = [
  'day',
  'span',
  'stagingKey',
  'archiveKey',
  'createdArchive',
  'bounds',
  'figures',
  'pin',
];

/**
 * A record written before batches spanned days held its one object's fields at the top level: read as a batch of
 * that one object, so an upgrade finds and settles a batch an earlier version left in flight.
 */
function oneObjectRecord(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || 'objects' in value || !('archiveKey' in value))
    return value;
  const record = value as Record<string, unknown>;
  const batch: Record<string, unknown> = {};
  const object: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(record)) {
    (IN_FLIGHT_OBJECT_FIELDS.includes(name) ? object : batch)[name] = field;
  }
  return { ...batch, objects: [object] };
}

/**
 * The one batch of a table that may be between export and a committed delete. It lives on the lease item so
 * that every change to it is conditioned on the lease, and a new holder can finish or undo it after a crash. A batch
 * spans consecutive UTC days, one object per day, and its delete removes the rows of all of them in one transaction.
 */
export const InFlightSchema = z.preprocess(
  oneObjectRecord,
  z.object({
    stage: StageSchema,
    /** Unique per export; stored on each archive object so a withdrawal only ever removes this batch's objects. */
    batchId: z.string(),
    runId: z.string(),
    cutoff: z.string(),
    /** Oldest day first; each object's rows end where the next one's begin. */
    objects: z.array(BatchObjectSchema).min(1),
    /**
     * Sum of the exported row versions' identities over every object (table-sql.ts rowVersionSql): what the delete
     * compares instead of re-rendering every row. Absent on a batch exported by an earlier version, whose delete
     * keeps the line digest.
     */
    versionDigest: z
      .string()
      .regex(/^[0-9a-f]{16}$/)
      .optional(),
    /** Transaction id of the delete, written before COMMIT: pg_xact_status() tells later whether it committed. */
    deleteXid: z.string().optional(),
    /** The server (system identifier and timeline) that xid belongs to: another server's xids mean nothing. */
    deleteServer: z.string().optional(),
    /**
     * When the delete was about to commit (ISO), written with the xid: the inventory records the batch as committed
     * then, whichever invocation records it and however late, so a restore orders a day's archives as their deletes
     * committed. Absent in records written before: the time of the record.
     */
    deleteAt: z.string().optional(),
    /** The table's columns at export; they become the table's `lastColumns` when this batch's delete commits. */
    columns: z.array(ColumnSchema).optional(),
    /**
     * Their numbers in the table (attnum) at export: delete refuses a column dropped and added again under its name
     * and type since, whose values are not those archived (no row was rewritten). Absent in records written before.
     */
    columnNumbers: z.array(z.number().int()).optional(),
    /**
     * What decided how the rows read and their keys compared at export (table-shape.ts READING_DIGEST_SQL): collations,
     * generation expressions, enum labels, composite attributes. Delete refuses to commit under another. Absent in
     * records written before.
     */
    readingDigest: z
      .string()
      .regex(/^[0-9a-f]{32}$/)
      .optional(),
    /** When export started this batch (epoch ms): the batch's rows/s, which sizes the next batch and the throttle. */
    exportedAt: z.number().optional(),
    /**
     * What every object's manifest shares, from which upload writes them. Absent in records written before: their
     * manifests were staged in S3 beside the objects, and upload reads them there.
     */
    manifest: BatchManifestSchema.optional(),
    /** The application's load while export read the batch (throttle.ts ApplicationLoad): it sets the throttle's pause. */
    busySessions: z.number().min(0).optional(),
  }),
);
export type InFlight = z.infer<typeof InFlightSchema>;

/**
 * The most of the last committed archive's columns the lease item keeps (`lastColumns`). A wider table's are not kept:
 * schema drift then reads them from that archive's manifest (one GET per export). Beside the batch's own columns, two
 * copies of 1,600 long-named columns would leave the item no room for a batch's objects, and the table would be stuck.
 */
export const LAST_COLUMNS_MAX_BYTES = 16 * 1024;

/** Whether the lease item keeps these columns as `lastColumns` (LAST_COLUMNS_MAX_BYTES). */
export const keptAsLastColumns = (columns: readonly Column[]): boolean =>
  attributeBytes(columns) <= LAST_COLUMNS_MAX_BYTES;

/** A table's lease item (`TABLE#db#table`/`STATE`) as read: the lease, the batch in flight and the totals. */
export interface TableState {
  owner?: string;
  token?: number;
  expiresAt?: number;
  inFlight?: InFlight;
  totalRows: number;
  totalBytes: number;
  totalBatches: number;
  /**
   * Columns of the last committed archive: what schema drift is measured against (no S3 read needed). Absent when
   * they were wider than LAST_COLUMNS_MAX_BYTES.
   */
  lastColumns?: Column[];
  lastArchiveKey?: string;
  /**
   * When the first export by a version that records every commit in the inventory began (epoch ms; before it staged
   * anything, LeaseStore.startInventory): a native archive written since that the inventory does not list was never
   * committed (restore leaves it out, verify holds its manifest to the batch's).
   */
  inventorySince?: number;
  /** The owner that last released the lease: its acquire, duplicated and arriving late, is refused. */
  releasedBy?: string;
  /**
   * The batch last cleared from the lease item, and whether as committed: how a retried clear recognises itself. A
   * committed one also says under which lease and what it archived (absent on items written before): how a retried or
   * duplicated delete of the batch answers once its twin recorded it.
   */
  lastCleared?: {
    batchId: string;
    committed: boolean;
    token?: number;
    rows?: number;
    bytes?: number;
    objects?: number;
  };
}

export type AcquireResult =
  | { acquired: true; lease: Lease; expiresAt: number }
  | {
      acquired: false;
      holder: string;
      expiresAt: number;
      /** The caller released this lease already: a late duplicate of its acquire, to be ignored. */
      releasedByCaller?: true;
    };
