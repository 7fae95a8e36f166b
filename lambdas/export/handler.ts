import { stepHandler } from '../shared/runtime/handler.js';
import { exportBatch } from './core.js';
import { ExportInputSchema, ExportOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler('export', { input: ExportInputSchema, output: ExportOutputSchema }, exportBatch, getDeps);

export const handler = createHandler();
