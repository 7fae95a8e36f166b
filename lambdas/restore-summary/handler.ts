import { stepHandler } from '../shared/runtime/handler.js';
import { restoreSummaryStep } from './core.js';
import { RestoreSummaryInputSchema, RestoreSummaryOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler(
    'restore-summary',
    { input: RestoreSummaryInputSchema, output: RestoreSummaryOutputSchema },
    restoreSummaryStep,
    getDeps,
  );

export const handler = createHandler();
