import { z } from 'zod';
import { RestoreFileResultSchema } from '../shared/lock-table/restore-records.js';
import { RestoreTaskSchema, RestoreTotalsSchema } from '../shared/restore/restore-task.js';

/** What the Map's Catch makes of an archive whose step failed for good: the error's name and cause. */
export const FailedArchiveSchema = z.object({
  key: z.string(),
  status: z.literal('failed'),
  error: z.string(),
  cause: z.string().optional(),
});

export const RestoreSummaryInputSchema = z.discriminatedUnion('action', [
  z
    .object({
      action: z.literal('tally'),
      restoreId: z.string().min(1),
      results: z.array(z.union([RestoreFileResultSchema, FailedArchiveSchema])),
      totals: RestoreTotalsSchema,
    })
    .strict(),
  z.object({ action: z.literal('finish'), task: RestoreTaskSchema, totals: RestoreTotalsSchema }).strict(),
]);
export type RestoreSummaryInput = z.infer<typeof RestoreSummaryInputSchema>;

export const RestoreSummarySchema = z.object({
  restoreId: z.string(),
  database: z.string(),
  target: z.string(),
  status: z.enum(['succeeded', 'failed']),
  dryRun: z.boolean(),
  totals: RestoreTotalsSchema,
  sequences: z.array(z.object({ column: z.string(), sequence: z.string(), value: z.string() })),
  /** The first failures, so the console shows why; every result is in the lock table under the restore id. */
  failures: z.array(z.object({ key: z.string(), error: z.string() })),
});
export type RestoreSummary = z.infer<typeof RestoreSummarySchema>;

export const RestoreSummaryOutputSchema = z.union([
  z.object({ totals: RestoreTotalsSchema }).strict(),
  RestoreSummarySchema,
]);
export type RestoreSummaryOutput = z.infer<typeof RestoreSummaryOutputSchema>;
