import { z } from 'zod';
import { MAX_BATCHES_PER_RUN } from '../shared/config/schema.js';
import { LeaseSchema } from '../shared/lock-table/table-state.js';
import { ProgressSchema } from '../shared/step/table-task.js';

const CaughtErrorSchema = z.object({ Error: z.string(), Cause: z.string().optional() });

const TableSchema = z.object({
  runId: z.string().min(1),
  database: z.string().min(1),
  table: z.string().min(1),
});

export const LockInputSchema = z.discriminatedUnion('action', [
  /**
   * The acquire checks the rest of the execution's input too, which it does not use: later states read it, and a field
   * missing or ill-typed there (an execution started by hand) would fail the execution while it holds the lease, in a
   * Choice state that has no Catch, leaving the table locked until the lease expires.
   */
  TableSchema.extend({
    action: z.literal('acquire'),
    owner: z.string().min(1),
    cutoff: z.iso.datetime({ offset: true }),
    /**
     * The run's batch budget, as the plan sets it; never more than the config allows (an execution started by hand),
     * which one execution's history holds.
     */
    maxBatches: z.number().int().positive().max(MAX_BATCHES_PER_RUN),
  }),
  TableSchema.extend({
    action: z.literal('release'),
    lease: LeaseSchema,
    progress: ProgressSchema,
    budgetReached: z.boolean().default(false),
    /** When the table's execution started, for the outcome's duration. */
    startedAt: z.iso.datetime({ offset: true }).optional(),
    /** The Catch output ({Error, Cause}) when the table's run failed. */
    error: CaughtErrorSchema.optional(),
    /** The last batch of the run withdrawn because its rows changed (RowsChangedError, caught); null: none. */
    rowsChanged: CaughtErrorSchema.nullable().optional(),
    /**
     * How many of the run's batches were withdrawn so far (nothing deleted): `progress.batches` counts them against the
     * budget, the outcome reports the committed ones. Absent from executions of an earlier definition: none.
     */
    withdrawnBatches: z.number().int().nonnegative().default(0),
  }),
]);
export type LockInput = z.infer<typeof LockInputSchema>;

export const LockOutputSchema = z.union([
  z.object({ acquired: z.literal(true), lease: LeaseSchema, expiresAt: z.number() }),
  z.object({ acquired: z.literal(false), holder: z.string(), expiresAt: z.number() }),
  z.object({ released: z.boolean(), status: z.enum(['succeeded', 'held', 'failed']) }),
]);
export type LockOutput = z.infer<typeof LockOutputSchema>;
