import { z } from 'zod';
import { LeaseSchema } from '../lock-table/table-state.js';

/** What every per-table step receives: which table, the run, its cut-off and the lease it acts under. */
export const TableTaskSchema = z.object({
  runId: z.string().min(1),
  database: z.string().min(1),
  table: z.string().min(1),
  /** ISO-8601 instant; rows with the timestamp column before it are eligible. */
  cutoff: z.iso.datetime({ offset: true }),
  /**
   * When the per-table execution started (`$$.Execution.StartTime`, which the ASL passes to the steps that check the
   * cut-off): no cut-off later than a run started then takes is accepted. Whoever starts an execution writes its
   * input, and with the step's clock alone could hand in the next day's cut-off in the minutes before midnight.
   */
  startedAt: z.iso.datetime({ offset: true }).optional(),
  lease: LeaseSchema,
});
export type TableTask = z.infer<typeof TableTaskSchema>;

/** Running totals of one table's execution, carried in the state so the budget check is a plain Choice. */
export const ProgressSchema = z.object({
  batches: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  /** Rows/s of the last batch from export to committed delete (0: none yet); export sizes the next batch by it. */
  rowsPerSecond: z.number().nonnegative().optional(),
  /** Seconds the throttle waits before the next batch (0: none). */
  pauseSeconds: z.number().int().nonnegative().optional(),
});
export type Progress = z.infer<typeof ProgressSchema>;
