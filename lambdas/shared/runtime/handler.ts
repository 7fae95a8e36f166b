import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { z } from 'zod';
import { formatIssues } from '../config/config.js';
import { ArchiverError, InvalidInputError } from '../errors/step-errors.js';
import type { StepDeps } from '../step/step-deps.js';
import { logger } from '../telemetry/powertools.js';
import { depsFromEnv } from './deps.js';

export type DepsProvider = () => StepDeps;

/**
 * Bytes of an error's message a step lets out, as JSON writes it (escapes and UTF-8 counted). Lambda hands Step
 * Functions the message twice (`errorMessage`, and the stack's first line), and a Catch puts that Cause in the state:
 * a restore page holds one per archive that failed, up to 64 with room for about 4 KB each (restore-plan/groups.ts),
 * and a message that lists a wide table's columns would take the page past Step Functions' 256 KiB, failing the
 * whole restore with States.DataLimitExceeded instead of naming why. A longer message is logged whole, then clipped.
 */
export const MAX_ERROR_MESSAGE_BYTES = 1000;

/** The longest start of `text`, cut between code points, whose JSON takes at most `bytes` bytes (quotes aside). */
function clipJson(text: string, bytes: number): string {
  let kept = '';
  let used = 0;
  for (const character of text) {
    used += Buffer.byteLength(JSON.stringify(character)) - 2;
    if (used > bytes) break;
    kept += character;
  }
  return kept;
}

function clipMessage(step: string, error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  if (Buffer.byteLength(JSON.stringify(error.message)) - 2 <= MAX_ERROR_MESSAGE_BYTES) return error;
  logger.warn(`${step} failed with a message too long to hand on whole`, {
    error: error.name,
    wholeMessage: error.message,
  });
  const fitted = clipJson(error.message, MAX_ERROR_MESSAGE_BYTES - 3);
  // A message of one problem a line (an input's issues) keeps whole lines: each still names what it is about.
  const lineEnd = fitted.lastIndexOf('\n');
  const message = `${lineEnd > 0 ? fitted.slice(0, lineEnd) : fitted}…`;
  const frames = (error.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line));
  // Own properties: some errors (DOMException) define message as a getter on their prototype.
  Object.defineProperty(error, 'message', { value: message, writable: true, configurable: true });
  Object.defineProperty(error, 'stack', {
    value: [`${error.name}: ${message}`, ...frames].join('\n'),
    writable: true,
    configurable: true,
  });
  return error;
}

/**
 * The error a step lets out: its name (what the ASL matches), message and stack, and nothing else of an error the
 * archiver did not make. Lambda's runtime logs a thrown error with every enumerable property ("Invoke Error"), and a
 * driver's error carries PostgreSQL's detail, which may quote a row ("Key (email)=(…) already exists"); the error
 * itself stays as the cause, which is not enumerable.
 */
function plainError(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof ArchiverError || Object.keys(error).length === 0)
    return error;
  const plain = new Error(error.message, { cause: error });
  Object.defineProperty(plain, 'name', { value: error.name, writable: true, configurable: true });
  plain.stack = error.stack;
  return plain;
}

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
    try {
      const input = schemas.input.safeParse(event);
      if (!input.success)
        throw new InvalidInputError(`${step} input is invalid:\n${formatIssues(input.error)}`);
      const deps = getDeps();
      const output = await core(input.data, {
        ...deps,
        remainingTimeMs: deps.remainingTimeMs ?? (() => context.getRemainingTimeInMillis()),
      });
      return schemas.output.parse(output);
    } catch (error) {
      throw clipMessage(step, plainError(error));
    }
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}
