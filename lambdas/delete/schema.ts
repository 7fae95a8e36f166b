import { z } from 'zod';
import { ProgressSchema, TableTaskSchema } from '../shared/step/table-task.js';

export const DeleteInputSchema = TableTaskSchema.extend({ progress: ProgressSchema });
export type DeleteInput = z.infer<typeof DeleteInputSchema>;

export const DeleteOutputSchema = z.object({
  objects: z.number().int().positive(),
  rowsDeleted: z.number().int().nonnegative(),
  /** The table's running totals for this execution, including this batch. */
  progress: ProgressSchema,
});
export type DeleteOutput = z.infer<typeof DeleteOutputSchema>;
