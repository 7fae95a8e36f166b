import { stepHandler } from '../shared/runtime/handler.js';
import { restorePlanStep } from './core.js';
import { RestorePlanInputSchema, RestorePlanOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler(
    'restore-plan',
    { input: RestorePlanInputSchema, output: RestorePlanOutputSchema },
    restorePlanStep,
    getDeps,
  );

export const handler = createHandler();
