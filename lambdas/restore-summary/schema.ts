import { z } from 'zod';
import { RestoreFileResultSchema } from '../shared/lock-table/restore-records.js';
import {
  ArchivePointerSchema,
  RestoreTaskSchema,
  RestoreTotalsSchema,
} from '../shared/restore/restore-task.js';

/** What the Map's Catch makes of a group whose step failed for good: its archives, the error's name and cause. */
export const FailedGroupSchema = z.object({
  archives: z.array(ArchivePointerSchema),
  status: z.literal('failed'),
  error: z.string(),
  cause: z.string().optional(),
});

/** A group's per-archive results, or its failure. */
const GroupResultSchema = z.union([
  z.object({ results: z.array(RestoreFileResultSchema) }).strict(),
  FailedGroupSchema,
]);

/** One Map iteration's outcome: the group's, or, when the group failed for good, each of its archives' alone. */
export const GroupOutcomeSchema = z.union([
  GroupResultSchema,
  z.object({ outcomes: z.array(GroupResultSchema) }).strict(),
]);
export type GroupOutcome = z.infer<typeof GroupOutcomeSchema>;

export const RestoreSummaryInputSchema = z.discriminatedUnion('action', [
  z
    .object({
      action: z.literal('tally'),
      restoreId: z.string().min(1),
      /** The execution's start, which its results carry (absent from executions of an earlier definition). */
      startedAt: z.iso.datetime({ offset: true }).optional(),
      results: z.array(GroupOutcomeSchema),
      totals: RestoreTotalsSchema,
    })
    .strict(),
  z
    .object({
      action: z.literal('finish'),
      task: RestoreTaskSchema,
      totals: RestoreTotalsSchema,
      /** The archives the plan found to restore; absent from executions of an earlier definition. */
      planned: z.number().int().nonnegative().optional(),
    })
    .strict(),
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
  /**
   * What the restore left undone though it succeeded: committed archives not in the bucket, left out by
   * `allowMissingArchives` (counted); sequences that could not be moved past the restored values (the rows are
   * restored all the same), and why.
   */
  warnings: z.array(z.string()),
  /** The first failures, so the console shows why; every result is in the lock table under the restore id. */
  failures: z.array(z.object({ key: z.string(), error: z.string() })),
});
export type RestoreSummary = z.infer<typeof RestoreSummarySchema>;

export const RestoreSummaryOutputSchema = z.union([
  z.object({ totals: RestoreTotalsSchema }).strict(),
  RestoreSummarySchema,
]);
export type RestoreSummaryOutput = z.infer<typeof RestoreSummaryOutputSchema>;
