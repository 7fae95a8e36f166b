import { z } from 'zod';
import { RestoreFileResultSchema } from '../shared/lock-table/restore-records.js';
import { ArchivePointerSchema, RestoreTaskSchema } from '../shared/restore/restore-task.js';

export const RestoreFileInputSchema = z
  .object({ task: RestoreTaskSchema, archive: ArchivePointerSchema })
  .strict();
export type RestoreFileInput = z.infer<typeof RestoreFileInputSchema>;

export const RestoreFileOutputSchema = RestoreFileResultSchema;
export type RestoreFileOutput = z.infer<typeof RestoreFileOutputSchema>;
