import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { z } from 'zod';
import { formatIssues } from '../config/config.js';
import { InvalidInputError } from '../errors/step-errors.js';
import type { StepDeps } from '../step/step-deps.js';
import { logger } from '../telemetry/powertools.js';
import { depsFromEnv } from './deps.js';

export type DepsProvider = () => StepDeps;

/**
 * A thin Lambda handler: validate the payload with the step's zod schema, hand it and the injected dependencies to
 * the pure core, validate what the core returns. `getDeps` is a factory so local mode and tests can inject theirs.
 */
export function stepHandler<I, O>(
  step: string,
  schemas: { input: z.ZodType<I>; output: z.ZodType<O> },
  core: (input: I, deps: StepDeps) => Promise<O>,
  getDeps: DepsProvider = () => depsFromEnv(),
) {
  return middy(async (event: unknown, context: Context): Promise<O> => {
    const input = schemas.input.safeParse(event);
    if (!input.success)
      throw new InvalidInputError(`${step} input is invalid:\n${formatIssues(input.error)}`);
    const deps = getDeps();
    const output = await core(input.data, {
      ...deps,
      remainingTimeMs: deps.remainingTimeMs ?? (() => context.getRemainingTimeInMillis()),
    });
    return schemas.output.parse(output);
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}
