import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionResult, LocalWorkflow } from '../../local/workflow.js';

/**
 * A local Step Functions endpoint for the CLI's AWS mode: StartExecution, DescribeExecution and
 * GetExecutionHistory (the JSON 1.0 protocol the SDK speaks), backed by the real restore ASL run by the local
 * interpreter. No Step Functions emulator ships on npm; the real SFNClient reaches this through its endpoint.
 */
export async function startStepFunctions(
  workflow: (observer: { onArchiveDone(): void; onFinish(summary: unknown): void }) => LocalWorkflow,
): Promise<{
  endpoint: string;
  requests: string[];
  stop(): Promise<void>;
}> {
  const requests: string[] = [];
  type Execution = { done: number; finish?: unknown; result?: ExecutionResult; input: unknown };
  const executions = new Map<string, Execution>();
  const answer = (target: string, body: Record<string, unknown>): unknown => {
    if (target === 'StartExecution') {
      const name = `cli-${executions.size + 1}`;
      const executionArn = `${String(body.stateMachineArn).replace(':stateMachine:', ':execution:')}:${name}`;
      const execution: Execution = { done: 0, input: JSON.parse(String(body.input)) };
      executions.set(executionArn, execution);
      void workflow({
        onArchiveDone: () => {
          execution.done += 1;
        },
        onFinish: (summary) => {
          execution.finish = summary;
        },
      })
        .runRestore(execution.input, name)
        .then((result) => {
          execution.result = result;
        });
      return { executionArn, startDate: Date.now() / 1000 };
    }
    const execution = executions.get(String(body.executionArn));
    if (!execution) throw new Error('ExecutionDoesNotExist');
    if (target === 'DescribeExecution') {
      const { result } = execution;
      return {
        executionArn: body.executionArn,
        status: result?.status ?? 'RUNNING',
        output: result?.output === undefined ? undefined : JSON.stringify(result.output),
        error: result?.error?.name,
        cause: result?.error?.message,
        startDate: Date.now() / 1000,
      };
    }
    if (target === 'GetExecutionHistory') {
      const events: Record<string, unknown>[] = Array.from({ length: execution.done }, () => ({
        type: 'MapIterationSucceeded',
      }));
      // As Step Functions records it: the Finish state's output, also when a Fail state follows it.
      if (execution.finish !== undefined) {
        events.push({
          type: 'TaskStateExited',
          stateExitedEventDetails: { name: 'Finish', output: JSON.stringify(execution.finish) },
        });
      }
      const ordered = body.reverseOrder ? events.reverse() : events;
      return { events: ordered.map((event, i) => ({ id: i + 1, timestamp: Date.now() / 1000, ...event })) };
    }
    throw new Error(`UnknownOperation ${target}`);
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '').replace('AWSStepFunctions.', '');
      requests.push(target);
      res.setHeader('content-type', 'application/x-amz-json-1.0');
      try {
        res.end(JSON.stringify(answer(target, JSON.parse(body || '{}') as Record<string, unknown>)));
      } catch (error) {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: (error as Error).message, message: (error as Error).message }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
