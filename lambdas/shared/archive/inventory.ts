import { z } from 'zod';
import { BatchFiguresSchema, ManifestSchema, OBJECT_SPANS } from './format.js';
import { ObjectPinSchema } from './store.js';

/**
 * One committed archive, recorded outside the bucket by the step that commits its batch: what validate and restore
 * compare the archive (and its manifest) with, so a bucket writer cannot rewrite both consistently, nor delete one
 * unnoticed. Never expires.
 */
export const InventoryEntrySchema = z.object({
  archiveKey: z.string(),
  /** The archive's day, or the first of its month. */
  day: z.string(),
  /** Absent in entries written before month objects existed: a day object. */
  span: z.enum(OBJECT_SPANS).optional(),
  batchId: z.string(),
  runId: z.string(),
  figures: BatchFiguresSchema,
  pin: ObjectPinSchema.optional(),
  committedAt: z.string(),
  /**
   * The manifest's `lcMonetary`, recorded outside the bucket: restore refuses a manifest that says otherwise (a bucket
   * writer who removed it would have C's money text read under another locale). Absent when the manifest has none.
   */
  lcMonetary: ManifestSchema.shape.lcMonetary,
  /**
   * SHA-256 of the manifest verify checked (see BatchObject): restore and validate refuse any other manifest, so none
   * of its fields (columns, key, time zone, span) can be rewritten. Absent in entries written before it existed.
   */
  manifestSha256: z.string().optional(),
});
export type InventoryEntry = z.infer<typeof InventoryEntrySchema>;

/**
 * Whether S3 dates an archive (`lastModified`, whole seconds) at or after `inventorySince`, when the table's first
 * export by a version that records commits in the inventory began (the lease item's, set before it staged anything):
 * such an archive is one the inventory should list, so one it does not is a bucket writer's or a stale upload's, not a
 * committed archive from before the inventory.
 */
export function datedSinceInventory(
  lastModified: Date | undefined,
  inventorySince: number | undefined,
): boolean {
  if (lastModified === undefined || inventorySince === undefined) return false;
  return lastModified.getTime() >= Math.floor(inventorySince / 1000) * 1000;
}
