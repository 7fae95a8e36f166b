import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AssetStaging } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArchiverFunction } from '../../lib/archiver-function.js';
import { BundledConfig } from '../../lib/bundled-config.js';
import { logicalId, type Synthesized, synthesize } from './synth.js';

// The one synthesis of the suite that runs esbuild: what is deployed is what is checked here.
let synth: Synthesized;
beforeAll(() => {
  synth = synthesize({ bundling: true });
}, 120_000);
afterAll(() => synth.dispose());

const steps = () => {
  const f = synth.stack.functions;
  return {
    plan: f.plan,
    lock: f.lock,
    export: f.export,
    upload: f.upload,
    verify: f.verify,
    delete: f.delete,
    summary: f.summary,
  };
};
const resourceOf = (fn: ArchiverFunction) =>
  synth.template.toJSON().Resources[logicalId(synth.stack, fn.function)];
const bundleDir = (fn: ArchiverFunction): string => {
  const staging = fn.function.node.findAll().find((c): c is AssetStaging => c instanceof AssetStaging);
  if (!staging) throw new Error(`${fn.node.path} has no staged asset`);
  return staging.absoluteStagedPath;
};

describe('step functions', () => {
  it('run Node.js 22 on arm64 with the ESM handler', () => {
    // Prepare
    const all = Object.values(steps());
    // Act
    const functions = all.map(resourceOf);
    // Assess
    expect(Object.keys(synth.template.findResources('AWS::Lambda::Function'))).toHaveLength(7);
    for (const fn of functions) {
      expect(fn.Properties.Runtime).toBe('nodejs22.x');
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      expect(fn.Properties.Handler).toBe('index.handler');
    }
  });

  it('size long steps at 900 s / 1024 MB and short ones at 60 s / 256 MB', () => {
    // Prepare
    const expected = {
      plan: [60, 256],
      lock: [60, 256],
      summary: [60, 256],
      export: [900, 1024],
      upload: [900, 1024],
      verify: [900, 1024],
      delete: [900, 1024],
    };
    for (const [name, fn] of Object.entries(steps())) {
      // Act
      const { Timeout, MemorySize } = resourceOf(fn).Properties;
      // Assess
      expect([name, Timeout, MemorySize]).toEqual([name, ...expected[name as keyof typeof expected]]);
    }
  });

  it('get the config path, table, bucket and Powertools settings in their environment', () => {
    // Prepare
    const table = logicalId(synth.stack, synth.stack.lockTable.table);
    const bucket = logicalId(synth.stack, synth.stack.archiveBucket.bucket);
    for (const fn of Object.values(steps())) {
      // Act
      const variables = resourceOf(fn).Properties.Environment.Variables;
      // Assess
      expect(variables).toEqual({
        ARCHIVER_CONFIG_PATH: '/var/task/archiver.config.json',
        LOCK_TABLE_NAME: { Ref: table },
        ARCHIVE_BUCKET: { Ref: bucket },
        POWERTOOLS_SERVICE_NAME: 'audit-archiver',
        POWERTOOLS_METRICS_NAMESPACE: 'AuditArchiver',
        NODE_OPTIONS: '--enable-source-maps',
      });
    }
  });

  it('log to their own log group with a retention', () => {
    for (const fn of Object.values(steps())) {
      // Act
      const logging = resourceOf(fn).Properties.LoggingConfig;
      const group = synth.template.toJSON().Resources[logicalId(synth.stack, fn.logGroup)];
      // Assess
      expect(logging).toEqual({ LogGroup: { Ref: logicalId(synth.stack, fn.logGroup) } });
      expect(group.Properties.RetentionInDays).toBe(90);
    }
  });

  it('stay outside any VPC when the stack is given none', () => {
    for (const fn of Object.values(steps())) {
      // Assess
      expect(resourceOf(fn).Properties.VpcConfig).toBeUndefined();
    }
  });
});

describe('function bundles', () => {
  it('carry the validated config as archiver.config.json', () => {
    for (const fn of Object.values(steps())) {
      // Prepare
      const file = join(bundleDir(fn), BundledConfig.FILE_NAME);
      // Act
      const shipped = JSON.parse(readFileSync(file, 'utf8'));
      // Assess
      expect(shipped).toEqual(JSON.parse(JSON.stringify(synth.config)));
    }
  });

  it('are ESM with the createRequire banner, a source map and class names kept', () => {
    // Prepare
    const dir = bundleDir(synth.stack.functions.verify);
    // Act
    const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
    // Assess
    expect(
      code.startsWith(
        "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
      ),
    ).toBe(true);
    expect(existsSync(join(dir, 'index.mjs.map'))).toBe(true);
    // The state machines retry and catch by error name, so minification must not rename error classes.
    expect(code).toMatch(/\(\s*this\s*,\s*"RowsChangedError"\s*\)/);
  });

  it('load as ES modules in Node.js and export handler', () => {
    // Prepare: a plain Node.js process, as Lambda loads them (not through the test runner's module loader).
    const bundles = Object.values(steps()).map((fn) => pathToFileURL(join(bundleDir(fn), 'index.mjs')).href);
    const script = `for (const url of ${JSON.stringify(bundles)}) console.log(typeof (await import(url)).handler);`;
    // Act
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    // Assess
    expect(output.trim().split('\n')).toEqual(bundles.map(() => 'function'));
  }, 30_000);
});
