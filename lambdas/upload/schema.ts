import { z } from 'zod';
import { TableTaskSchema } from '../shared/step/table-task.js';

export const UploadInputSchema = TableTaskSchema;
export type UploadInput = z.infer<typeof UploadInputSchema>;

export const UploadOutputSchema = z.object({
  archiveKey: z.string(),
  manifestKey: z.string(),
  /** False when the object was already there: a retried upload or identical rows archived before. */
  created: z.boolean(),
});
export type UploadOutput = z.infer<typeof UploadOutputSchema>;
