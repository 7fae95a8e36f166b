import { z } from 'zod';
import { RestoreFileResultSchema } from '../shared/lock-table/restore-records.js';
import { ArchivePointerSchema, RestoreTaskSchema } from '../shared/restore/restore-task.js';

/** A group of archives (restore-plan/groups.ts), restored one after another, each in its own transaction. */
export const RestoreFileInputSchema = z
  .object({ task: RestoreTaskSchema, archives: z.array(ArchivePointerSchema).min(1) })
  .strict();
export type RestoreFileInput = z.infer<typeof RestoreFileInputSchema>;

/** One result per archive of the group, in its order. */
export const RestoreFileOutputSchema = z.object({ results: z.array(RestoreFileResultSchema) }).strict();
export type RestoreFileOutput = z.infer<typeof RestoreFileOutputSchema>;
