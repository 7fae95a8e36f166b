import { z } from 'zod';
import { TableTaskSchema } from '../shared/step/table-task.js';

export const UploadInputSchema = TableTaskSchema;
export type UploadInput = z.infer<typeof UploadInputSchema>;

export const UploadOutputSchema = z.object({
  objects: z.number().int().positive(),
  /** Objects this batch created (in this attempt or an earlier one); the others are identical rows archived before. */
  created: z.number().int().nonnegative(),
});
export type UploadOutput = z.infer<typeof UploadOutputSchema>;
