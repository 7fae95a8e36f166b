import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { LockInputSchema } from '../../lambdas/lock/schema.js';
import { MAX_BATCHES_PER_RUN } from '../../lambdas/shared/config/schema.js';
import { errorClasses } from '../../lambdas/shared/errors/step-errors.js';
import {
  allStates,
  definitionPath,
  FUNCTION_NAMES,
  loadDefinition,
  localSubstitutions,
} from '../../local/workflow.js';

const validate = createRequire(import.meta.url)('asl-validator') as (definition: unknown) => {
  isValid: boolean;
  errorsText(): string;
};

const FILES = ['archive.asl.json', 'archive-table.asl.json', 'restore.asl.json'];
/** Error names defined by the platform rather than by our code. */
const platformError = (name: string) => /^(States|Lambda|StepFunctions)\./.test(name);

type State = {
  Type: string;
  Resource?: string;
  Parameters?: { FunctionName?: string };
  Retry?: { ErrorEquals: string[] }[];
  Catch?: { ErrorEquals: string[] }[];
  QueryLanguage?: string;
  Assign?: unknown;
  ItemProcessor?: { ProcessorConfig?: { Mode?: string } };
};

describe.each(FILES)('statemachines/%s', (file) => {
  const definition = loadDefinition(file, localSubstitutions);
  const states = allStates(definition) as unknown as [string, State][];

  it('is valid ASL', () => {
    // Act
    const result = validate(definition);

    // Assess
    expect(result.errorsText()).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('uses only definitionSubstitutions placeholders that the stack and the local runner both provide', () => {
    // Prepare
    const placeholders = [...readFileSync(definitionPath(file), 'utf8').matchAll(/\$\{(\w+)\}/g)].map(
      (m) => m[1],
    );

    // Assess
    expect(placeholders.length).toBeGreaterThan(0);
    for (const name of placeholders) expect(Object.keys(localSubstitutions)).toContain(name);
  });

  it('gives every Task a Retry for transient errors', () => {
    for (const [name, state] of states.filter(([, s]) => s.Type === 'Task')) {
      const retried = (state.Retry ?? []).flatMap((r) => r.ErrorEquals);
      expect(retried.length, `${name} has no Retry`).toBeGreaterThan(0);
      if (state.Resource === 'arn:aws:states:::lambda:invoke') {
        // The Lambda service's own transient errors, as the Step Functions guide lists them for lambda:invoke.
        expect(retried, name).toEqual(
          expect.arrayContaining([
            'DatabaseUnavailableError',
            'StorageUnavailableError',
            'Lambda.ServiceException',
            'Lambda.AWSLambdaException',
            'Lambda.SdkClientException',
            'Lambda.ClientExecutionTimeoutException',
            'Lambda.TooManyRequestsException',
          ]),
        );
      }
    }
  });

  it('retries and catches only error names the code defines (or the platform raises)', () => {
    const defined = Object.values(errorClasses).map((c) => c.name);
    for (const [name, state] of states) {
      for (const errorName of [...(state.Retry ?? []), ...(state.Catch ?? [])].flatMap(
        (r) => r.ErrorEquals,
      )) {
        expect(
          platformError(errorName) || defined.includes(errorName),
          `${name} matches unknown error ${errorName}`,
        ).toBe(true);
      }
    }
  });

  it('retries only errors the code marks retryable', () => {
    for (const [name, state] of states) {
      for (const errorName of (state.Retry ?? [])
        .flatMap((r) => r.ErrorEquals)
        .filter((e) => !platformError(e))) {
        const errorClass = Object.values(errorClasses).find((c) => c.name === errorName);
        expect(errorClass && new errorClass('probe').retryable, `${name} retries ${errorName}`).toBe(true);
      }
    }
  });

  it('invokes only functions that exist as lambdas/<name>/handler.ts', () => {
    for (const [, state] of states.filter(([, s]) => s.Resource === 'arn:aws:states:::lambda:invoke')) {
      const name = FUNCTION_NAMES.find((n) =>
        state.Parameters?.FunctionName?.endsWith(`audit-archiver-${n}`),
      );
      expect(name).toBeDefined();
      expect(existsSync(new URL(`../../lambdas/${name}/handler.ts`, import.meta.url))).toBe(true);
    }
  });

  it('stays within what the local interpreter runs: JSONPath, no Assign, no Distributed Map', () => {
    for (const [name, state] of states) {
      expect(state.QueryLanguage ?? 'JSONPath', name).toBe('JSONPath');
      expect(state.Assign, name).toBeUndefined();
      expect(state.ItemProcessor?.ProcessorConfig?.Mode ?? 'INLINE', name).toBe('INLINE');
    }
  });
});

describe('statemachines/archive-table.asl.json batch loop', () => {
  type LoopState = {
    Type: string;
    Next?: string;
    Default?: string;
    Choices?: { Next: string }[];
    Catch?: { Next: string }[];
  };
  const definition = loadDefinition('archive-table.asl.json', localSubstitutions) as {
    States: Record<string, LoopState>;
  };
  /** Standard workflow history events a state adds: a Lambda Task 5 (entered, scheduled, started, its end, exited). */
  const events = (state: LoopState) => (state.Type === 'Task' ? 5 : 2);
  /** The most events one pass from Export back to Export can add, over every edge (a caught withdrawal's included). */
  function heaviestLoop(name: string, seen: Set<string>): number {
    if (name === 'Export' && seen.size > 0) return 0;
    const state = definition.States[name];
    if (!state || seen.has(name)) return Number.NEGATIVE_INFINITY;
    const next = [state.Next, state.Default, ...(state.Choices ?? []), ...(state.Catch ?? [])]
      .map((edge) => (typeof edge === 'string' ? edge : edge?.Next))
      .filter((n): n is string => n !== undefined);
    const rest = Math.max(
      Number.NEGATIVE_INFINITY,
      ...next.map((n) => heaviestLoop(n, new Set([...seen, name]))),
    );
    return events(state) + rest;
  }

  it('runs the largest batch budget the config and the acquire allow within 25,000 history events, retries aside', () => {
    // Act
    const perBatch = heaviestLoop('Export', new Set());

    // Assess: 26 a batch, 28 a withdrawn one; 30 counts the throttle's Wait after a withdrawal too, which never waits.
    expect(perBatch).toBe(30);
    expect(MAX_BATCHES_PER_RUN * perBatch).toBeLessThan(25_000);
    expect(LockInputSchema.safeParse(acquireWith(MAX_BATCHES_PER_RUN)).success).toBe(true);
    expect(LockInputSchema.safeParse(acquireWith(MAX_BATCHES_PER_RUN + 1)).success).toBe(false);
  });
});

function acquireWith(maxBatches: number) {
  const cutoff = '2026-01-01T00:00:00.000Z';
  return {
    action: 'acquire',
    runId: 'r',
    database: 'app',
    table: 'public.t',
    owner: 'o',
    cutoff,
    maxBatches,
  };
}
