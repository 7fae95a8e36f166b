import { z } from 'zod';
import { BatchFiguresSchema } from './format.js';
import { ObjectPinSchema } from './store.js';

/**
 * One committed archive, recorded outside the bucket by the step that commits its batch: what validate and restore
 * compare the archive (and its manifest) with, so a bucket writer cannot rewrite both consistently, nor delete one
 * unnoticed. Never expires.
 */
export const InventoryEntrySchema = z.object({
  archiveKey: z.string(),
  day: z.string(),
  batchId: z.string(),
  runId: z.string(),
  figures: BatchFiguresSchema,
  pin: ObjectPinSchema.optional(),
  committedAt: z.string(),
});
export type InventoryEntry = z.infer<typeof InventoryEntrySchema>;
