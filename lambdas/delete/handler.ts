import { stepHandler } from '../shared/runtime/handler.js';
import { deleteBatch } from './core.js';
import { DeleteInputSchema, DeleteOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler('delete', { input: DeleteInputSchema, output: DeleteOutputSchema }, deleteBatch, getDeps);

export const handler = createHandler();
