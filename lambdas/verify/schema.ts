import { z } from 'zod';
import { TableTaskSchema } from '../shared/step/table-task.js';

export const VerifyInputSchema = TableTaskSchema;
export type VerifyInput = z.infer<typeof VerifyInputSchema>;

export const VerifyOutputSchema = z.object({
  objects: z.number().int().positive(),
  rows: z.number().int().positive(),
  verified: z.literal(true),
});
export type VerifyOutput = z.infer<typeof VerifyOutputSchema>;
