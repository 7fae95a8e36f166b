import { z } from 'zod';
import {
  ArchivePointerSchema,
  RestoreRequestSchema,
  RestoreTaskSchema,
} from '../shared/restore/restore-task.js';

export const RestorePlanInputSchema = z.discriminatedUnion('action', [
  z
    .object({
      action: z.literal('plan'),
      restoreId: z.string().min(1),
      /** `$$.Execution.StartTime`; absent from executions of an earlier definition. */
      startedAt: z.iso.datetime({ offset: true }).optional(),
      request: RestoreRequestSchema,
    })
    .strict(),
  z
    .object({
      action: z.literal('list'),
      task: RestoreTaskSchema,
      /** Where the previous page ended (restore-plan/pages.ts); "" for the first page. */
      cursor: z.string(),
      /** Groups run at once (the plan's concurrency): a page has a multiple of it. */
      concurrency: z.number().int().positive(),
    })
    .strict(),
]);
export type RestorePlanInput = z.infer<typeof RestorePlanInputSchema>;

export const RestorePlanSchema = z
  .object({
    task: RestoreTaskSchema,
    /** Archives selected (before the watermark, which each archive's step checks). */
    archives: z.number().int().nonnegative(),
    targetCreated: z.boolean(),
    /** Archives restored at once: the database's maxConnections. */
    concurrency: z.number().int().positive(),
  })
  .strict();
export type RestorePlan = z.infer<typeof RestorePlanSchema>;

export const ArchiveGroupSchema = z.object({ archives: z.array(ArchivePointerSchema).min(1) }).strict();

export const RestorePageSchema = z
  .object({ groups: z.array(ArchiveGroupSchema), cursor: z.string(), more: z.boolean() })
  .strict();
export type RestorePage = z.infer<typeof RestorePageSchema>;

export const RestorePlanOutputSchema = z.union([RestorePlanSchema, RestorePageSchema]);
export type RestorePlanOutput = z.infer<typeof RestorePlanOutputSchema>;
