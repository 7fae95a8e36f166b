import { stepHandler } from '../shared/runtime/handler.js';
import { restoreFiles } from './core.js';
import { RestoreFileInputSchema, RestoreFileOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler(
    'restore-file',
    { input: RestoreFileInputSchema, output: RestoreFileOutputSchema },
    restoreFiles,
    getDeps,
  );

export const handler = createHandler();
