import type { Context } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHandler as deleteHandler } from '../../lambdas/delete/handler.js';
import { createHandler as exportHandler } from '../../lambdas/export/handler.js';
import { createHandler as lockHandler } from '../../lambdas/lock/handler.js';
import { createHandler as planHandler } from '../../lambdas/plan/handler.js';
import { createHandler as restoreFileHandler } from '../../lambdas/restore-file/handler.js';
import { createHandler as restorePlanHandler } from '../../lambdas/restore-plan/handler.js';
import { createHandler as restoreSummaryHandler } from '../../lambdas/restore-summary/handler.js';
import { parseConfig } from '../../lambdas/shared/config/config.js';
import { ConfigError, InvalidInputError } from '../../lambdas/shared/errors/step-errors.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { createHandler as summaryHandler } from '../../lambdas/summary/handler.js';
import { createHandler as uploadHandler } from '../../lambdas/upload/handler.js';
import { createHandler as verifyHandler } from '../../lambdas/verify/handler.js';
import { PROOF_SOAK, recordProof } from '../support/proof-ledger.js';

const RUNS = 300 * PROOF_SOAK;

const validConfig = () => ({
  s3: { bucket: 'archive-bucket', prefix: 'a/' },
  defaults: { retentionDays: 30 },
  databases: [
    {
      name: 'app',
      credentials: { url: 'postgres://u:p@h/db' },
      tables: [{ schema: 'public', name: 'audit', timestampColumn: 'at', keyColumns: ['id'] }],
    },
  ],
});

/** Every error line names a field ("path: reason"), so an operator can find what to fix. */
function expectFieldNamed(message: string, heading: string): void {
  const [first, ...lines] = message.split('\n');
  expect(first).toContain(heading);
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) expect(line).toMatch(/^(\(root\)|[\w.]+): \S/);
}

/** Replaces the value at a random path of a JSON value with an arbitrary one. */
function mutate(value: unknown, path: number[], replacement: unknown): unknown {
  if (path.length === 0 || value === null || typeof value !== 'object') return replacement;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return replacement;
  const index = (path[0] ?? 0) % entries.length;
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value)
    ? [...value]
    : { ...(value as object) };
  const [key, child] = entries[index] ?? ['', undefined];
  (copy as Record<string, unknown>)[key] = mutate(child, path.slice(1), replacement);
  return copy;
}

describe('hostile input never crashes, it is refused with a clear error', () => {
  it('the config schema: anything at all', () => {
    fc.assert(
      fc.property(fc.anything(), (raw) => {
        try {
          parseConfig(raw);
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          expectFieldNamed((error as Error).message, 'config is invalid:');
        }
      }),
      { numRuns: RUNS },
    );
    recordProof({ kind: 'fuzz', property: 'config: anything', cases: RUNS });
  });

  it('the config schema: a valid config with one value replaced anywhere', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), fc.jsonValue(), (path, replacement) => {
        try {
          parseConfig(mutate(validConfig(), path, replacement));
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          expectFieldNamed((error as Error).message, 'config is invalid:');
        }
      }),
      { numRuns: RUNS },
    );
    recordProof({ kind: 'fuzz', property: 'config: one value replaced', cases: RUNS });
  });

  const context = {
    functionName: 'fuzz',
    awsRequestId: 'fuzz',
    getRemainingTimeInMillis: () => 60_000,
  } as Context;
  class DepsUsed extends Error {}
  const noDeps = (): StepDeps => {
    throw new DepsUsed('the input was valid');
  };
  const handlers = {
    plan: planHandler(noDeps),
    lock: lockHandler(noDeps),
    export: exportHandler(noDeps),
    upload: uploadHandler(noDeps),
    verify: verifyHandler(noDeps),
    delete: deleteHandler(noDeps),
    summary: summaryHandler(noDeps),
    'restore-plan': restorePlanHandler(noDeps),
    'restore-file': restoreFileHandler(noDeps),
    'restore-summary': restoreSummaryHandler(noDeps),
  };

  it.each(Object.entries(handlers))('the %s function: any payload', async (name, handler) => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.anything(),
          fc.record({ runId: fc.string(), database: fc.string(), table: fc.string() }),
          // Restore requests as an operator might paste them: valid shape, arbitrary values.
          fc.record({
            action: fc.constantFrom('plan', 'list', 'tally', 'finish'),
            restoreId: fc.string(),
            request: fc.record({
              database: fc.string(),
              table: fc.oneof(fc.string(), fc.record({ schema: fc.string(), name: fc.string() })),
              mode: fc.string(),
              fromDay: fc.string(),
              strategy: fc.constantFrom('skip', 'overwrite', 'fail', 'merge'),
            }),
          }),
          // Restore steps' inputs: an archive pointer and a task or tally of arbitrary values.
          fc.record({
            task: fc.anything(),
            archive: fc.record({ key: fc.string(), format: fc.constantFrom('native', 'legacy', 'other') }),
          }),
          fc.record({
            action: fc.constantFrom('tally', 'finish'),
            restoreId: fc.string(),
            results: fc.array(fc.anything(), { maxLength: 3 }),
            totals: fc.dictionary(fc.string(), fc.integer()),
          }),
        ),
        async (payload) => {
          try {
            await handler(payload, context);
          } catch (error) {
            if (error instanceof DepsUsed) return;
            expect(error).toBeInstanceOf(InvalidInputError);
            expectFieldNamed((error as Error).message, `${name} input is invalid:`);
          }
        },
      ),
      { numRuns: RUNS },
    );
    recordProof({ kind: 'fuzz', property: `${name} function input`, cases: RUNS });
  });
});
