import { z } from 'zod';

/**
 * How one iteration of the run's Map over its tables ended: its child execution succeeded, or the Task failed, with
 * the table's place in the plan: the child failed (`TableFailed`), or its StartExecution met an execution of that name
 * (`TableNameTaken`, `nameTaken`).
 */
const TableRunSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('SUCCEEDED') }),
  z.object({
    status: z.literal('FAILED'),
    n: z.number().int().nonnegative(),
    nameTaken: z.literal(true).optional(),
  }),
]);

export const SummaryInputSchema = z.object({
  runId: z.string().min(1),
  tableCount: z.number().int().nonnegative(),
  /**
   * The plan's `childKey` and the Map's results, lane by lane: the summary counts a table whose iteration failed as
   * failed, whatever outcome is recorded for it. Absent from executions of an earlier definition: the outcomes alone.
   */
  childKey: z.string().optional(),
  laneResults: z.array(z.array(TableRunSchema)).optional(),
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
