import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type ExecutionResult,
  type InterpreterEvent,
  type LocalWorkflow,
  stateMachineArn,
} from '../../local/workflow.js';

/** A history event as the Step Functions API returns it (the fields the CLI reads). */
type HistoryEvent = { type: string } & Record<string, unknown>;

/**
 * Step Functions' history events for one interpreter event: state entered and exited (with the state's output, as
 * with includeExecutionData), Map iterations and the execution's start and end. Enough for the CLI's following.
 */
function historyEventsOf(event: InterpreterEvent): HistoryEvent[] {
  if (event.type === 'StateEntered' || event.type === 'StateExited') {
    const { name, type, output } = event.state;
    return event.type === 'StateEntered'
      ? [{ type: `${type}StateEntered`, stateEnteredEventDetails: { name } }]
      : [{ type: `${type}StateExited`, stateExitedEventDetails: { name, output: JSON.stringify(output) } }];
  }
  return [{ type: event.type }];
}

/** The ARN of a child execution the archive state machine started (local/workflow.ts startChildExecution). */
const childExecutionArn = (name: string) =>
  `${stateMachineArn('archive-table').replace(':stateMachine:', ':execution:')}:${name}`;

/**
 * A local Step Functions endpoint for the CLI's AWS mode: StartExecution, DescribeExecution and
 * GetExecutionHistory (the JSON 1.0 protocol the SDK speaks, with paging and reverse order), backed by the real
 * archive and restore ASL run by the local interpreter, whose events make the history. DescribeExecution also knows
 * the per-table child executions an archive execution starts (their status only), as the lease holders they are. No
 * Step Functions emulator ships on npm; the real SFNClient reaches this through its endpoint. `eventsServed` counts
 * the history events it returned.
 */
export async function startStepFunctions(
  workflow: (observer: { onEvent(executionName: string, event: InterpreterEvent): void }) => LocalWorkflow,
): Promise<{
  endpoint: string;
  requests: string[];
  eventsServed(): number;
  historyLength(): number;
  stop(): Promise<void>;
}> {
  const requests: string[] = [];
  let served = 0;
  type Execution = { history: HistoryEvent[]; result?: ExecutionResult; input: unknown; started: number };
  const executions = new Map<string, Execution>();
  const children = new Map<string, string>();
  const answer = (target: string, body: Record<string, unknown>): unknown => {
    if (target === 'StartExecution') {
      const name = `cli-${executions.size + 1}`;
      const executionArn = `${String(body.stateMachineArn).replace(':stateMachine:', ':execution:')}:${name}`;
      const execution: Execution = {
        history: [],
        input: JSON.parse(String(body.input)),
        started: Date.now(),
      };
      executions.set(executionArn, execution);
      const observed = workflow({
        onEvent: (executionName, event) => {
          if (executionName !== name) {
            const ended = { ExecutionSucceeded: 'SUCCEEDED', ExecutionFailed: 'FAILED' }[
              event.type as string
            ];
            children.set(childExecutionArn(executionName), ended ?? 'RUNNING');
            return;
          }
          for (const item of historyEventsOf(event)) {
            execution.history.push({
              ...item,
              id: execution.history.length + 1,
              timestamp: Date.now() / 1000,
            });
          }
        },
      });
      const archive = body.stateMachineArn === stateMachineArn('archive');
      void (
        archive ? observed.runArchive(execution.input, name) : observed.runRestore(execution.input, name)
      ).then((result) => {
        execution.result = result;
      });
      return { executionArn, startDate: execution.started / 1000 };
    }
    const child = children.get(String(body.executionArn));
    if (target === 'DescribeExecution' && child) return { executionArn: body.executionArn, status: child };
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
        startDate: execution.started / 1000,
        ...(result ? { stopDate: Date.now() / 1000 } : {}),
      };
    }
    if (target === 'GetExecutionHistory') {
      const ordered = body.reverseOrder ? [...execution.history].reverse() : execution.history;
      const from = Number(body.nextToken ?? 0);
      const page = ordered.slice(from, from + Number(body.maxResults ?? 1000));
      served += page.length;
      const next = from + page.length;
      return { events: page, ...(next < ordered.length ? { nextToken: String(next) } : {}) };
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
    eventsServed: () => served,
    historyLength: () => [...executions.values()].reduce((n, e) => n + e.history.length, 0),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
