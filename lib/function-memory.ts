/** The steps of an archive run. */
export type PipelineStep = 'plan' | 'lock' | 'export' | 'upload' | 'verify' | 'delete' | 'summary';
/** The steps of a console restore. */
export type RestoreStep = 'restore-plan' | 'restore-file' | 'restore-summary';
export type ArchiverStep = PipelineStep | RestoreStep;

/**
 * Each step function's memory size in MB: the stack deploys the functions with it, and local mode's function
 * processes run with the heap Lambda gives that size, so the memory the bench measures is what Lambda would see. No
 * CDK import here: local mode and the bench load this module.
 *
 * Memory is not what sizes the batch and file steps: they stream and stay well under 200 MB whatever the batch size,
 * but export, verify and restore-file are CPU-bound and Lambda's CPU grows with memory, so they get 1024 MB (upload
 * and delete too, though they mostly wait on S3 and the database). restore-plan lists and reads sidecars.
 */
export const FUNCTION_MEMORY_MB = {
  plan: 256,
  lock: 256,
  summary: 256,
  export: 1024,
  upload: 1024,
  verify: 1024,
  delete: 1024,
  'restore-plan': 512,
  'restore-file': 1024,
  'restore-summary': 256,
} as const satisfies Record<ArchiverStep, number>;

/**
 * The V8 heap flags Lambda's Node.js bootstrap passes for a memory size: a tenth of it as new space (two
 * semi-spaces), the rest as old space. They decide how far the heap grows before it is collected: with this machine's
 * defaults (a 16 MB semi-space) export promoted more of its short-lived buffers and peaked 33 to 53 MB higher.
 */
export function lambdaHeapFlags(memoryMb: number): string[] {
  const newSpaceMb = Math.floor(memoryMb / 10);
  return [
    `--max-semi-space-size=${Math.floor(newSpaceMb / 2)}`,
    `--max-old-space-size=${memoryMb - newSpaceMb}`,
  ];
}
