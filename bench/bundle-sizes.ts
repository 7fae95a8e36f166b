/**
 * Bundles every Lambda handler the way `lib/archiver-function.ts` does (esbuild, ESM, node22, minified) and prints
 * each bundle's size, with the bytes the configuration and the shared code contribute, so a refactor can show what
 * it moved out of the runtime. `npm run bench:bundles [-- --json]`.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { FUNCTION_BUNDLE } from '../lib/function-bundle.js';

const root = join(import.meta.dirname, '..');
const lambdas = join(root, 'lambdas');
// Every folder of lambdas/ with a handler.ts is one function; shared code lives in lambdas/shared/.
const functions = readdirSync(lambdas).filter((name) => {
  if (name === 'shared') return false;
  try {
    return statSync(join(lambdas, name, 'handler.ts')).isFile();
  } catch {
    return false;
  }
});

interface BundleSize {
  step: string;
  bytes: number;
  sharedBytes: number;
  configBytes: number;
}

async function measure(step: string): Promise<BundleSize> {
  const result = await build({
    entryPoints: [join(lambdas, step, 'handler.ts')],
    bundle: true,
    write: false,
    platform: 'node',
    ...FUNCTION_BUNDLE,
    mainFields: [...FUNCTION_BUNDLE.mainFields],
    external: [...FUNCTION_BUNDLE.external],
    banner: { js: FUNCTION_BUNDLE.banner },
    metafile: true,
    outfile: join(root, 'cdk.out', 'bundle-sizes', step, 'index.mjs'),
    logLevel: 'silent',
  });
  const output = Object.values(result.metafile.outputs).find((out) => out.entryPoint !== undefined);
  if (!output) throw new Error(`esbuild produced no entry output for ${step}`);
  let sharedBytes = 0;
  let configBytes = 0;
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    const path = relative(root, join(root, input));
    if (!path.startsWith('lambdas/') || path.startsWith(`lambdas/${step}/`)) continue;
    sharedBytes += bytesInOutput;
    if (/config/.test(path)) configBytes += bytesInOutput;
  }
  return { step, bytes: output.bytes, sharedBytes, configBytes };
}

const sizes: BundleSize[] = [];
for (const step of functions) sizes.push(await measure(step));
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(sizes, null, 2));
} else {
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  console.log('| function | bundle | shared code in it | configuration code in it |');
  console.log('|---|---|---|---|');
  for (const size of sizes) {
    console.log(
      `| ${size.step} | ${kib(size.bytes)} | ${kib(size.sharedBytes)} | ${kib(size.configBytes)} |`,
    );
  }
}
