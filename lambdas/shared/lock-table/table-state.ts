import { z } from 'zod';
import { BatchBoundsSchema, BatchFiguresSchema, type Column, ColumnSchema } from '../archive/format.js';
import { ObjectPinSchema } from '../archive/store.js';

/** The lease a table's execution holds: owner (execution id) plus a fencing token that grows on every acquisition. */
export const LeaseSchema = z.object({ owner: z.string().min(1), token: z.number().int().positive() });
export type Lease = z.infer<typeof LeaseSchema>;

/**
 * The one batch of a table that may be between export and a committed delete. It lives on the lease item so
 * that every change to it is conditioned on the lease, and a new holder can finish or undo it after a crash.
 */
export const InFlightSchema = z.object({
  /** `withdrawing`: claimed for withdrawal; its objects are being removed (a crash there is finished next run). */
  stage: z.enum(['exported', 'uploaded', 'verified', 'deleting', 'withdrawing']),
  /** Unique per export; stored on the archive object so a withdrawal only ever removes this batch's object. */
  batchId: z.string(),
  runId: z.string(),
  day: z.string(),
  cutoff: z.string(),
  stagingKey: z.string(),
  archiveKey: z.string(),
  /** Set by upload when this batch wrote the archive object (rather than finding identical rows archived before). */
  createdArchive: z.boolean().optional(),
  bounds: BatchBoundsSchema,
  figures: BatchFiguresSchema,
  /**
   * Sum of the exported row versions' identities (table-sql.ts rowVersionSql): what the delete compares instead of
   * re-rendering every row. Absent on a batch exported by an earlier version, whose delete keeps the line digest.
   */
  versionDigest: z
    .string()
    .regex(/^[0-9a-f]{16}$/)
    .optional(),
  /** The stored object verify read and checked: delete and every later read accept only that object. */
  pin: ObjectPinSchema.optional(),
  /** Transaction id of the delete, written before COMMIT: pg_xact_status() tells later whether it committed. */
  deleteXid: z.string().optional(),
  /** The server (system identifier and timeline) that xid belongs to: another server's xids mean nothing. */
  deleteServer: z.string().optional(),
  /** The table's columns at export; they become the table's `lastColumns` when this batch's delete commits. */
  columns: z.array(ColumnSchema).optional(),
  /** When export started this batch (epoch ms): the batch's rows/s, which sizes the next batch and the throttle. */
  exportedAt: z.number().optional(),
});
export type InFlight = z.infer<typeof InFlightSchema>;

/** A table's lease item (`TABLE#db#table`/`STATE`) as read: the lease, the batch in flight and the totals. */
export interface TableState {
  owner?: string;
  token?: number;
  expiresAt?: number;
  inFlight?: InFlight;
  totalRows: number;
  totalBytes: number;
  totalBatches: number;
  /** Columns of the last committed archive: what schema drift is measured against (no S3 read needed). */
  lastColumns?: Column[];
  lastArchiveKey?: string;
  /** The batch last cleared from the lease item, and whether as committed: how a retried clear recognises itself. */
  lastCleared?: { batchId: string; committed: boolean };
}

export type AcquireResult =
  | { acquired: true; lease: Lease; expiresAt: number }
  | { acquired: false; holder: string; expiresAt: number };
