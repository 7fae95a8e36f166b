import type { Context } from 'aws-lambda';
import { z } from 'zod';

/**
 * The inside of a function process (see function-processes.ts): bundled with one function's handler, it receives
 * invocations over IPC one at a time, as a warm Lambda container does, and answers each with the result or the
 * error (by name: the ASL matches on it) and the process's peak RSS so far.
 */

export const InvocationSchema = z.object({
  id: z.number().int(),
  payload: z.unknown(),
  context: z.object({
    functionName: z.string(),
    functionVersion: z.string(),
    invokedFunctionArn: z.string(),
    memoryLimitInMB: z.string(),
    awsRequestId: z.string(),
    logGroupName: z.string(),
    logStreamName: z.string(),
    remainingTimeMs: z.number(),
  }),
});
export type Invocation = z.infer<typeof InvocationSchema>;

/** Resident set sizes in kB: after the handler's modules loaded, and the process's peak (getrusage ru_maxrss). */
const MemorySchema = z.object({ loadedRssKb: z.number(), maxRssKb: z.number() });

export const ReplySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ready'), memory: MemorySchema }),
  z.object({ kind: z.literal('result'), id: z.number(), result: z.unknown(), memory: MemorySchema }),
  z.object({
    kind: z.literal('error'),
    id: z.number(),
    error: z.object({ name: z.string(), message: z.string() }),
    memory: MemorySchema,
  }),
]);
export type Reply = z.infer<typeof ReplySchema>;

type Handler = (event: unknown, context: Context) => Promise<unknown>;

export function serveInvocations(handler: Handler): void {
  const loadedRssKb = process.memoryUsage().rss / 1024;
  const memory = () => ({ loadedRssKb, maxRssKb: process.resourceUsage().maxRSS });
  const send = (reply: Reply) => process.send?.(reply);
  process.on('message', async (message) => {
    const { id, payload, context } = InvocationSchema.parse(message);
    const deadline = Date.now() + context.remainingTimeMs;
    const lambdaContext: Context = {
      ...context,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => undefined,
      fail: () => undefined,
      succeed: () => undefined,
    };
    try {
      const result = await handler(payload, lambdaContext);
      send({ kind: 'result', id, result: result ?? null, memory: memory() });
    } catch (error) {
      const { name, message } = error as Error;
      send({ kind: 'error', id, error: { name, message }, memory: memory() });
    }
  });
  // The workflow going away ends the container.
  process.on('disconnect', () => process.exit(0));
  send({ kind: 'ready', memory: memory() });
}
