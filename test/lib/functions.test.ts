import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AssetStaging } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArchiverFunction } from '../../lib/archiver-function.js';
import { BundledConfig } from '../../lib/bundled-config.js';
import { DatabaseCaBundle } from '../../lib/database-ca-bundle.js';
import { fixture, logicalId, type Synthesized, synthesize } from './synth.js';

// The one synthesis of the suite that runs esbuild (the fixture with every option, a CA bundle included): what is
// deployed is what is checked here. The stack fixture, unbundled, shows the defaults.
let synth: Synthesized;
let plain: Synthesized;
beforeAll(() => {
  synth = synthesize({ bundling: true, configFile: fixture('production.yaml') });
  plain = synthesize();
}, 180_000);
afterAll(() => {
  synth?.dispose();
  plain?.dispose();
});

const stepsOf = (synthesized: Synthesized): Record<string, ArchiverFunction> => {
  const f = synthesized.stack.functions;
  const r = synthesized.stack.restore;
  return {
    plan: f.plan,
    lock: f.lock,
    export: f.export,
    upload: f.upload,
    verify: f.verify,
    delete: f.delete,
    summary: f.summary,
    'restore-plan': r.plan,
    'restore-file': r.file,
    'restore-summary': r.summary,
  };
};
const steps = () => stepsOf(synth);
const DATABASE_STEPS = ['plan', 'export', 'delete', 'restore-plan', 'restore-file', 'restore-summary'];
const resourceOf = (fn: ArchiverFunction, synthesized: Synthesized = synth) =>
  synthesized.template.toJSON().Resources[logicalId(synthesized.stack, fn.function)];
const bundleDir = (fn: ArchiverFunction): string => {
  const staging = fn.function.node.findAll().find((c): c is AssetStaging => c instanceof AssetStaging);
  if (!staging) throw new Error(`${fn.node.path} has no staged asset`);
  return staging.absoluteStagedPath;
};

describe('step functions', () => {
  it('run Node.js 22 on arm64 with the ESM handler and active tracing', () => {
    // Prepare
    const all = Object.values(steps());
    // Act
    const functions = all.map((fn) => resourceOf(fn));
    // Assess
    expect(Object.keys(synth.template.findResources('AWS::Lambda::Function'))).toHaveLength(10);
    for (const fn of functions) {
      expect(fn.Properties.Runtime).toBe('nodejs22.x');
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      expect(fn.Properties.Handler).toBe('index.handler');
      expect(fn.Properties.TracingConfig).toEqual({ Mode: 'Active' });
    }
  });

  it('size each step for its work: 900 s / 1024 MB for batch and file steps, less for the others', () => {
    // Prepare
    const expected = {
      plan: [60, 256],
      lock: [60, 256],
      summary: [60, 256],
      export: [900, 1024],
      upload: [900, 1024],
      verify: [900, 1024],
      delete: [900, 1024],
      'restore-plan': [300, 512],
      'restore-file': [900, 1024],
      'restore-summary': [300, 256],
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
    const table = logicalId(plain.stack, plain.stack.lockTable.table);
    const bucket = logicalId(plain.stack, plain.stack.archiveBucket.bucket);
    const topic = logicalId(plain.stack, plain.stack.monitoring.topic);
    for (const [step, fn] of Object.entries(stepsOf(plain))) {
      // Act
      const variables = resourceOf(fn, plain).Properties.Environment.Variables;
      // Assess: database steps trust the runtime's Amazon CA file (RDS CAs) when no bundle is configured.
      expect([step, variables]).toEqual([
        step,
        {
          ARCHIVER_CONFIG_PATH: '/var/task/archiver.config.json',
          LOCK_TABLE_NAME: { Ref: table },
          ARCHIVE_BUCKET: { Ref: bucket },
          NODE_OPTIONS: '--enable-source-maps',
          ...(DATABASE_STEPS.includes(step) ? { NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem' } : {}),
          // Run summaries go to the alarm topic.
          ...(step === 'summary' ? { NOTIFICATION_TOPIC_ARN: { Ref: topic } } : {}),
        },
      ]);
    }
  });

  it('log to their own log group, kept 90 days by default and aws.logRetentionDays when set', () => {
    for (const [synthesized, days] of [
      [plain, 90],
      [synth, 365],
    ] as const) {
      for (const fn of Object.values(stepsOf(synthesized))) {
        // Act
        const logging = resourceOf(fn, synthesized).Properties.LoggingConfig;
        const group = synthesized.template.toJSON().Resources[logicalId(synthesized.stack, fn.logGroup)];
        // Assess
        expect(logging).toEqual({ LogGroup: { Ref: logicalId(synthesized.stack, fn.logGroup) } });
        expect(group.Properties.RetentionInDays).toBe(days);
      }
    }
  });

  it('stay outside any VPC and unreserved when the config says nothing', () => {
    for (const fn of Object.values(stepsOf(plain))) {
      // Assess
      expect(resourceOf(fn, plain).Properties.VpcConfig).toBeUndefined();
      expect(resourceOf(fn, plain).Properties.ReservedConcurrentExecutions).toBeUndefined();
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

  it('ship the configured CA bundle to the database steps only, and point NODE_EXTRA_CA_CERTS at it', () => {
    // Prepare
    const pem = readFileSync(fixture('test-ca.pem'), 'utf8');
    for (const [step, fn] of Object.entries(steps())) {
      // Act
      const file = join(bundleDir(fn), DatabaseCaBundle.FILE_NAME);
      const variables = resourceOf(fn).Properties.Environment.Variables;
      // Assess
      if (DATABASE_STEPS.includes(step)) {
        expect([step, readFileSync(file, 'utf8')]).toEqual([step, pem]);
        expect(variables.NODE_EXTRA_CA_CERTS).toBe('/var/task/database-ca.pem');
      } else {
        expect([step, existsSync(file), variables.NODE_EXTRA_CA_CERTS]).toEqual([step, false, undefined]);
      }
    }
  });

  it('are ESM with the createRequire banner, a source map and class names kept', () => {
    // Prepare
    const dir = bundleDir(synth.stack.functions.delete);
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
