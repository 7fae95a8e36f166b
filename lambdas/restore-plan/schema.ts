import { z } from 'zod';
import {
  ArchivePointerSchema,
  RestoreRequestSchema,
  RestoreTaskSchema,
} from '../shared/restore/restore-task.js';

/** Archives handed to one Map over a page: few enough that a page of failure results stays far below 256 KiB. */
export const RESTORE_PAGE_SIZE = 25;
/**
 * Archives one execution restores at most: about 7 history events each plus 16 per page make ~11,500 events, which
 * leaves room for thousands of retries below the 25,000-event limit.
 */
export const MAX_ARCHIVES_PER_RESTORE = 1500;

export const RestorePlanInputSchema = z.discriminatedUnion('action', [
  z
    .object({ action: z.literal('plan'), restoreId: z.string().min(1), request: RestoreRequestSchema })
    .strict(),
  z
    .object({
      action: z.literal('list'),
      task: RestoreTaskSchema,
      /** The last key of the previous page; "" for the first page. */
      cursor: z.string(),
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

export const RestorePageSchema = z
  .object({ archives: z.array(ArchivePointerSchema), cursor: z.string(), more: z.boolean() })
  .strict();
export type RestorePage = z.infer<typeof RestorePageSchema>;

export const RestorePlanOutputSchema = z.union([RestorePlanSchema, RestorePageSchema]);
export type RestorePlanOutput = z.infer<typeof RestorePlanOutputSchema>;
