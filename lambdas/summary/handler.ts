import { stepHandler } from '../shared/runtime/handler.js';
import { summarizeRun } from './core.js';
import { SummaryInputSchema, SummaryOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler('summary', { input: SummaryInputSchema, output: SummaryOutputSchema }, summarizeRun, getDeps);

export const handler = createHandler();
