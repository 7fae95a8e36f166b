import { stepHandler } from '../shared/runtime/handler.js';
import { verifyBatch } from './core.js';
import { VerifyInputSchema, VerifyOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler('verify', { input: VerifyInputSchema, output: VerifyOutputSchema }, verifyBatch, getDeps);

export const handler = createHandler();
