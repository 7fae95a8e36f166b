import { stepHandler } from '../shared/runtime/handler.js';
import { lockTable } from './core.js';
import { LockInputSchema, LockOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler('lock', { input: LockInputSchema, output: LockOutputSchema }, lockTable, getDeps);

export const handler = createHandler();
