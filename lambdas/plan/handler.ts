import { stepHandler } from '../shared/runtime/handler.js';
import { planRun } from './core.js';
import { PlanInputSchema, PlanOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler('plan', { input: PlanInputSchema, output: PlanOutputSchema }, planRun, getDeps);

export const handler = createHandler();
