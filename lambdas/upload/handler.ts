import { stepHandler } from '../shared/runtime/handler.js';
import { uploadBatch } from './core.js';
import { UploadInputSchema, UploadOutputSchema } from './schema.js';

export const createHandler = (getDeps?: Parameters<typeof stepHandler>[3]) =>
  stepHandler('upload', { input: UploadInputSchema, output: UploadOutputSchema }, uploadBatch, getDeps);

export const handler = createHandler();
