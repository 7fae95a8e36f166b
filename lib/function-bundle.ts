/**
 * How every function is bundled (esbuild): the stack builds the deployed bundles with these options, the bundle-size
 * report and local mode's function processes build the same ones, so what they measure is what Lambda runs.
 * No CDK import here: local mode and the bench load this module.
 */
export const FUNCTION_BUNDLE = {
  format: 'esm',
  target: 'node22',
  mainFields: ['module', 'main'],
  minify: true,
  // Class names are kept because the state machines match on error names.
  keepNames: true,
  // The AWS SDK is bundled at the versions package-lock.json pins; pg's optional native binding is never used.
  external: ['pg-native'],
  /** `pg` is CommonJS; an ESM bundle gives it a `require` of its own. */
  banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
} as const;
