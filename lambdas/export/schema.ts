import { z } from 'zod';
import { ProgressSchema, TableTaskSchema } from '../shared/step/table-task.js';

/**
 * `progress`: the table's totals so far; its last batch's rate sizes the next batch within the time budget.
 * `maxBatches`: the run's batch budget (the plan's), whose last batch counts the backlog it leaves.
 */
export const ExportInputSchema = TableTaskSchema.extend({
  progress: ProgressSchema.optional(),
  maxBatches: z.number().int().positive().optional(),
});
export type ExportInput = z.infer<typeof ExportInputSchema>;

/** Pointers and counts only: the rows stay in S3. */
export const ExportOutputSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('empty') }),
  z.object({
    /** `resumed`: a batch left in flight by an earlier attempt is carried on instead of exporting a new one. */
    status: z.enum(['exported', 'resumed']),
    /** The batch's days, oldest and newest: one archive object each. */
    firstDay: z.string(),
    lastDay: z.string(),
    objects: z.number().int().positive(),
    rows: z.number().int().positive(),
    compressedBytes: z.number().int().positive(),
    uncompressedBytes: z.number().int().positive(),
  }),
]);
export type ExportOutput = z.infer<typeof ExportOutputSchema>;
