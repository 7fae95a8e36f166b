import type { Context } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { InvalidInputError, TableNotUsableError } from '../../../../lambdas/shared/errors/step-errors.js';
import { MAX_ERROR_MESSAGE_BYTES, stepHandler } from '../../../../lambdas/shared/runtime/handler.js';
import type { StepDeps } from '../../../../lambdas/shared/step/step-deps.js';
import { logger } from '../../../../lambdas/shared/telemetry/powertools.js';
import { recordProof } from '../../../support/proof-ledger.js';

const context = {
  functionName: 'audit-archiver-test',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:audit-archiver-test',
  memoryLimitInMB: '256',
  awsRequestId: 'request',
  getRemainingTimeInMillis: () => 60_000,
} as Context;

/** Bytes of `text` as JSON writes it, quotes aside. */
const jsonBytes = (text: string) => Buffer.byteLength(JSON.stringify(text)) - 2;

/** What Lambda's Node.js runtime hands Step Functions as the Cause of a thrown error. */
const causeOf = (error: Error) =>
  JSON.stringify({
    errorType: error.name,
    errorMessage: error.message,
    trace: (error.stack ?? '').split('\n'),
  });

const handlerThrowing = (error: Error) =>
  stepHandler(
    'test',
    { input: z.object({ items: z.array(z.number()) }), output: z.object({}) },
    async () => {
      throw error;
    },
    () => ({}) as StepDeps,
  );

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('the handler did not throw');
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a step handler’s errors', () => {
  it('clip a message that lists a wide table’s columns, keeping the name ASL matches and the stack’s frames', async () => {
    // Prepare: a restore into a table of 2,000 columns lacking them all
    const columns = Array.from({ length: 2000 }, (_, i) => `"column_${i}"`).join(', ');
    const thrown = new TableNotUsableError(
      `restore target "public"."wide" is not shaped like the archive: it lacks ${columns}`,
    );

    const whole = thrown.message;
    const logged = vi.spyOn(logger, 'warn').mockImplementation(() => undefined);

    // Act
    const error = await rejection(handlerThrowing(thrown)({ items: [] }, context));

    // Assess: clipped, and logged whole
    expect(logged).toHaveBeenCalledWith(expect.any(String), {
      error: 'TableNotUsableError',
      wholeMessage: whole,
    });
    expect(error).toBeInstanceOf(TableNotUsableError);
    expect(error.name).toBe('TableNotUsableError');
    expect(error.message.endsWith('…')).toBe(true);
    expect(whole.startsWith(error.message.slice(0, -1))).toBe(true);
    expect(jsonBytes(error.message)).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_BYTES);
    const [first, ...frames] = (error.stack ?? '').split('\n');
    expect(first).toBe(`TableNotUsableError: ${error.message}`);
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.every((frame) => /^\s+at /.test(frame))).toBe(true);
    // The Cause holds the clipped message twice, JSON-escaped, beside the frames (70 KB with the whole message).
    const framesBytes = Buffer.byteLength(JSON.stringify(frames));
    expect(Buffer.byteLength(causeOf(error)) - framesBytes).toBeLessThan(2 * MAX_ERROR_MESSAGE_BYTES + 200);
  });

  it('clip the issues of an input that fails validation in thousands of places, keeping whole lines', async () => {
    vi.spyOn(logger, 'warn').mockImplementation(() => undefined);

    // Act
    const error = await rejection(
      handlerThrowing(new Error('never reached'))(
        { items: Array.from({ length: 2000 }, () => 'x') },
        context,
      ),
    );

    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    const [heading, ...issues] = error.message.split('\n');
    expect(heading).toBe('test input is invalid:');
    expect(issues.length).toBeGreaterThan(10);
    // Whole lines are kept: each still names the field it is about.
    for (const issue of issues) expect(issue).toMatch(/^items\.\d+: \S/);
    expect(jsonBytes(error.message)).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_BYTES);
    expect(error.message.endsWith('…')).toBe(true);
  });

  it('clip by the bytes JSON takes, between code points, whatever the characters of the names', async () => {
    // Prepare: names of CJK characters, emoji (two UTF-16 units each) and control characters (six bytes escaped)
    const columns = Array.from({ length: 300 }, (_, i) => `"列_${i}_😀\u0001"`).join(', ');
    vi.spyOn(logger, 'warn').mockImplementation(() => undefined);

    // Act
    const error = await rejection(
      handlerThrowing(new TableNotUsableError(`it lacks ${columns}`))({ items: [] }, context),
    );

    // Assess: within the bytes, and no half of a surrogate pair (which UTF-8 would turn into U+FFFD)
    expect(jsonBytes(error.message)).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_BYTES);
    expect(jsonBytes(error.message)).toBeGreaterThan(MAX_ERROR_MESSAGE_BYTES - 20);
    expect(Buffer.from(error.message, 'utf8').toString('utf8')).toBe(error.message);
  });

  it('clip the message of an error that defines it as a getter (DOMException)', async () => {
    // Prepare
    vi.spyOn(logger, 'warn').mockImplementation(() => undefined);

    // Act
    const error = await rejection(
      handlerThrowing(new DOMException('x'.repeat(5000), 'AbortError'))({ items: [] }, context),
    );

    // Assess
    expect(error.name).toBe('AbortError');
    expect(jsonBytes(error.message)).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_BYTES);
  });

  it('leave a message of ordinary length as it was thrown', async () => {
    // Prepare
    const thrown = new TableNotUsableError('restore target "public"."t" does not exist');
    const stack = thrown.stack;

    // Act
    const error = await rejection(handlerThrowing(thrown)({ items: [] }, context));

    // Assess
    expect(error).toBe(thrown);
    expect(error.message).toBe('restore target "public"."t" does not exist');
    expect(error.stack).toBe(stack);
  });

  it('let out only the name, message and stack of a driver’s error, whose detail may quote a row', async () => {
    // Prepare: what pg throws for a unique violation (its fields are enumerable)
    const thrown = Object.assign(new Error('duplicate key value violates unique constraint "people_pkey"'), {
      name: 'error',
      code: '23505',
      detail: 'Key (email)=(alice@private.example) already exists.',
      constraint: 'people_pkey',
    });

    // Act
    const error = await rejection(handlerThrowing(thrown)({ items: [] }, context));

    // Assess: what Lambda's runtime logs of it (its enumerable properties) holds no value; the name ASL matches,
    // the message and the stack stay (before, the error was let out as thrown, its detail with it).
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: "a step fails with a driver's error whose detail quotes a row",
      held: !JSON.stringify(error).includes('alice@private.example'),
    });
    expect(JSON.stringify(error)).not.toContain('alice@private.example');
    expect(Object.keys(error)).toEqual([]);
    expect([error.name, error.message, error.stack]).toEqual([thrown.name, thrown.message, thrown.stack]);
    expect(error.cause).toBe(thrown);
  });
});
