import { z } from 'zod';

export const SummaryInputSchema = z.object({
  runId: z.string().min(1),
  tableCount: z.number().int().nonnegative(),
  /**
   * The run's start (`$$.Execution.StartTime`): only outcomes recorded since count, not those of an earlier run under
   * the same name. Absent from executions of an earlier definition: every outcome under the name.
   */
  startedAt: z.iso.datetime({ offset: true }).optional(),
});
export type SummaryInput = z.infer<typeof SummaryInputSchema>;

const TableSummarySchema = z.object({
  database: z.string(),
  table: z.string(),
  status: z.enum(['succeeded', 'skipped', 'held', 'failed']),
  rowsArchived: z.number(),
  bytesArchived: z.number(),
  batches: z.number(),
  budgetReached: z.boolean(),
  durationSeconds: z.number().optional(),
  reason: z.string().optional(),
  error: z.string().optional(),
});

/** Totals always; per-table lines capped so a 1000-table run stays within the payload limit. */
export const SummaryOutputSchema = z.object({
  runId: z.string(),
  tables: z.number().int(),
  succeeded: z.number().int(),
  skipped: z.number().int(),
  /** Tables a legal hold kept from (further) archiving. */
  held: z.number().int(),
  failed: z.number().int(),
  rowsArchived: z.number(),
  bytesArchived: z.number(),
  batches: z.number(),
  perTable: z.array(TableSummarySchema),
  perTableTruncated: z.boolean(),
});
export type SummaryOutput = z.infer<typeof SummaryOutputSchema>;
