import { z } from 'zod';
import { ProgressSchema, TableTaskSchema } from '../shared/step/table-task.js';

export const DeleteInputSchema = TableTaskSchema.extend({ progress: ProgressSchema });
export type DeleteInput = z.infer<typeof DeleteInputSchema>;

export const DeleteOutputSchema = z.object({
  objects: z.number().int().positive(),
  rowsDeleted: z.number().int().nonnegative(),
  /** The table's running totals for this execution, including this batch, with the rate and pause the ASL reads. */
  progress: ProgressSchema.required(),
});
export type DeleteOutput = z.infer<typeof DeleteOutputSchema>;
