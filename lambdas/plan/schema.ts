import { z } from 'zod';
import { PlanReportSchema } from '../shared/batch/plan-report.js';

/** The archive execution's input, as an operator types it in the console; every field is optional. */
export const RunRequestSchema = z
  .object({
    /** Only this database. */
    database: z.string().min(1).optional(),
    /** Only these tables ("schema.name"). */
    tables: z.array(z.string().min(1)).min(1).optional(),
    /** Plan only: the execution returns the plan report (counts, batches, bytes, statuses) and archives nothing. */
    dryRun: z.boolean().default(false),
  })
  .strict();
export type RunRequest = z.infer<typeof RunRequestSchema>;

export const PlanInputSchema = z.object({
  request: z.unknown(),
  runId: z.string().min(1),
  startTime: z.iso.datetime({ offset: true }),
});
export type PlanInput = z.infer<typeof PlanInputSchema>;

export const LaneTableSchema = z.object({
  table: z.string(),
  cutoff: z.iso.datetime({ offset: true }),
  /** The table's place in the run: with the plan's `childKey`, the name of the table's child execution. */
  n: z.number().int().nonnegative(),
});

/** Tables of one database processed one after another; a database gets at most maxConnections lanes. */
export const LaneSchema = z.object({ database: z.string(), tables: z.array(LaneTableSchema).min(1) });

export const PlanOutputSchema = z.object({
  runId: z.string(),
  maxConcurrency: z.number().int().positive(),
  maxBatches: z.number().int().positive(),
  tableCount: z.number().int().nonnegative(),
  /**
   * The run's part of its child executions' names (`<childKey>-<n>`): a StartExecution retried after it was carried
   * out finds the child it started instead of starting a second one for the table. A digest of the run's id, which may
   * be as long as a name may be, and of its start, which tells apart a run started again under the name 90 days on.
   */
  childKey: z.string().regex(/^[0-9a-f]{32}$/),
  lanes: z.array(LaneSchema),
  /** The ASL's DryRun? choice reads it: true ends the execution with `report` instead of running the lanes. */
  dryRun: z.boolean(),
  report: PlanReportSchema.optional(),
});
export type PlanOutput = z.infer<typeof PlanOutputSchema>;
export type Lane = z.infer<typeof LaneSchema>;
