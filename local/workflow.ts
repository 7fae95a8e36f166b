import './polyfills.js';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Context } from 'aws-lambda';
import { StateMachine } from 'aws-local-stepfunctions';
import { createHandler as deleteHandler } from '../lambdas/delete/handler.js';
import { createHandler as exportHandler } from '../lambdas/export/handler.js';
import { createHandler as lockHandler } from '../lambdas/lock/handler.js';
import { createHandler as planHandler } from '../lambdas/plan/handler.js';
import { createHandler as restoreFileHandler } from '../lambdas/restore-file/handler.js';
import { createHandler as restorePlanHandler } from '../lambdas/restore-plan/handler.js';
import { createHandler as restoreSummaryHandler } from '../lambdas/restore-summary/handler.js';
import type { StepDeps } from '../lambdas/shared/step/step-deps.js';
import { createHandler as summaryHandler } from '../lambdas/summary/handler.js';
import { createHandler as uploadHandler } from '../lambdas/upload/handler.js';
import { createHandler as verifyHandler } from '../lambdas/verify/handler.js';
import { FUNCTION_MEMORY_MB } from '../lib/function-memory.js';

const REGION = 'us-east-1';
const ACCOUNT = '000000000000';

export const FUNCTION_NAMES = [
  'plan',
  'lock',
  'export',
  'upload',
  'verify',
  'delete',
  'summary',
  'restore-plan',
  'restore-file',
  'restore-summary',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

export const functionArn = (name: FunctionName) =>
  `arn:aws:lambda:${REGION}:${ACCOUNT}:function:audit-archiver-${name}`;
export const stateMachineArn = (name: string) =>
  `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:audit-archiver-${name}`;

/** The values the CDK stack passes as definitionSubstitutions, here pointing at the in-process functions. */
export const localSubstitutions: Record<string, string> = {
  PlanFunctionArn: functionArn('plan'),
  LockFunctionArn: functionArn('lock'),
  ExportFunctionArn: functionArn('export'),
  UploadFunctionArn: functionArn('upload'),
  VerifyFunctionArn: functionArn('verify'),
  DeleteFunctionArn: functionArn('delete'),
  SummaryFunctionArn: functionArn('summary'),
  RestorePlanFunctionArn: functionArn('restore-plan'),
  RestoreFileFunctionArn: functionArn('restore-file'),
  RestoreSummaryFunctionArn: functionArn('restore-summary'),
  ArchiveTableStateMachineArn: stateMachineArn('archive-table'),
};

export const definitionPath = (file: string) => new URL(`../statemachines/${file}`, import.meta.url);

/** Reads an ASL file and fills its ${Name} placeholders, as Step Functions does with definitionSubstitutions. */
export function loadDefinition(file: string, substitutions: Record<string, string>): Record<string, unknown> {
  const text = readFileSync(definitionPath(file), 'utf8').replace(
    /\$\{(\w+)\}/g,
    (placeholder, name: string) => {
      const value = substitutions[name];
      if (value === undefined) throw new Error(`${file}: no substitution for ${placeholder}`);
      return value;
    },
  );
  return JSON.parse(text) as Record<string, unknown>;
}

/** The definitions this process has validated, by their text: the same ASL is not validated once per execution. */
const validatedDefinitions = new Set<string>();

/**
 * The interpreter for `definition`, validated (asl-validator) the first time this process sees its text: validation
 * compiles the ASL schema, about 90 ms of CPU per definition, and every local run builds its three state machines.
 */
export function stateMachineOf(definition: Record<string, unknown>): StateMachine {
  const text = JSON.stringify(definition);
  const validated = validatedDefinitions.has(text);
  const machine = new StateMachine(definition as never, { validationOptions: { noValidate: validated } });
  validatedDefinitions.add(text);
  return machine;
}

type StateDefinition = {
  Type?: string;
  Resource?: string;
  Retry?: { IntervalSeconds?: number }[];
  ItemProcessor?: { States: Record<string, StateDefinition> };
};

/** Every state of a definition, nested Map processors included, with its name. */
export function allStates(definition: {
  States?: Record<string, StateDefinition>;
}): [string, StateDefinition][] {
  return Object.entries(definition.States ?? {}).flatMap(([name, state]) => [
    [name, state] as [string, StateDefinition],
    ...(state.ItemProcessor ? allStates(state.ItemProcessor) : []),
  ]);
}

type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

export interface StepEvent {
  functionName: FunctionName;
  payload: unknown;
  result?: unknown;
  error?: Error;
  /** Wall time of the invocation. */
  durationMs: number;
}

/** Runs the functions outside this process (function-processes.ts: each in a process of its own, as in Lambda). */
export interface FunctionRunner {
  invoke(name: FunctionName, payload: unknown, context: Context): Promise<unknown>;
}

export interface LocalWorkflowOptions {
  /** Where the functions run; without one, in this process, with `getDeps`. */
  functions?: FunctionRunner;
  /** Dependencies of the in-process functions; tests inject fault points here. */
  getDeps?: (functionName: FunctionName) => StepDeps;
  /** Multiplies the ASL's Retry intervals (1 = as deployed); tests use 0 to retry at once. */
  retryIntervalScale?: number;
  /**
   * Dates each archive run's start, from which Plan takes the cut-off. Tests hold it on the day their rows were
   * seeded from, so a midnight passing before the run does not move the cut-off.
   * @default the system clock
   */
  clock?: () => Date;
  /** Called as every function invocation starts; onStep follows when it ends, succeeded or failed. */
  onInvoke?: (functionName: FunctionName, payload: unknown) => void;
  /** Called after every function invocation, for progress display. */
  onStep?: (event: StepEvent) => void;
  /**
   * Awaited after every invocation that succeeded, before its result reaches the state machine. Tests act between
   * two steps here; a throw fails the Task as a crash between the steps would (the function's work is done).
   */
  afterStep?: (event: StepEvent) => Promise<void> | void;
  /**
   * Receives every interpreter event of every execution (the parent's, its inline Map iterations', and each
   * child's), with the execution's name; tests count history events and measure state payloads here.
   */
  onEvent?: (executionName: string, event: InterpreterEvent) => void;
}

/** An event of the interpreter's log (aws-local-stepfunctions does not export its type). */
export type InterpreterEvent =
  ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

export interface ExecutionResult {
  executionName: string;
  status: 'SUCCEEDED' | 'FAILED';
  output?: unknown;
  error?: { name: string; message: string };
}

const localExecutionName = (kind = 'local') =>
  `${kind}-${new Date().toISOString().replace(/[:.]/g, '')}-${randomUUID().slice(0, 8)}`;

function lambdaContext(name: FunctionName): Context {
  const deadline = Date.now() + 900_000;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: `audit-archiver-${name}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: functionArn(name),
    memoryLimitInMB: String(FUNCTION_MEMORY_MB[name]),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/audit-archiver-${name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/**
 * Runs the deployed state machine definitions in-process with aws-local-stepfunctions. The Lambda tasks call the
 * real handlers (the same modules the stack bundles); the child-execution task runs the child definition. Only
 * the substituted ARNs and the transport differ from AWS: the workflow logic is the ASL itself.
 */
export class LocalWorkflow {
  private readonly handlers: Record<FunctionName, LambdaHandler>;
  private readonly parent: StateMachine;
  private readonly child: StateMachine;
  private readonly restore: StateMachine;
  private readonly retryOverrides: Record<string, number>;
  private readonly taskOverrides: Record<string, (input: unknown) => Promise<unknown>>;
  /** Child executions by name, as Step Functions keeps them: what a StartExecution of the same name finds. */
  private readonly children = new Map<string, { input: string; ended: boolean; result: Promise<unknown> }>();
  /** Each archive execution's start by `clock`, as Plan first read it (dated). */
  private readonly starts = new Map<string, string>();

  constructor(private readonly options: LocalWorkflowOptions = {}) {
    const given = options.getDeps;
    const getDeps = (name: FunctionName) => (given ? () => given(name) : undefined);
    this.handlers = {
      plan: planHandler(getDeps('plan')),
      lock: lockHandler(getDeps('lock')),
      export: exportHandler(getDeps('export')),
      upload: uploadHandler(getDeps('upload')),
      verify: verifyHandler(getDeps('verify')),
      delete: deleteHandler(getDeps('delete')),
      summary: summaryHandler(getDeps('summary')),
      'restore-plan': restorePlanHandler(getDeps('restore-plan')),
      'restore-file': restoreFileHandler(getDeps('restore-file')),
      'restore-summary': restoreSummaryHandler(getDeps('restore-summary')),
    } as Record<FunctionName, LambdaHandler>;
    const parentDefinition = loadDefinition('archive.asl.json', localSubstitutions);
    const childDefinition = loadDefinition('archive-table.asl.json', localSubstitutions);
    const restoreDefinition = loadDefinition('restore.asl.json', localSubstitutions);
    this.parent = stateMachineOf(parentDefinition);
    this.child = stateMachineOf(childDefinition);
    this.restore = stateMachineOf(restoreDefinition);
    const scale = options.retryIntervalScale ?? 1;
    const states = [
      ...allStates(parentDefinition),
      ...allStates(childDefinition),
      ...allStates(restoreDefinition),
    ];
    this.retryOverrides = Object.fromEntries(
      states
        .filter(([, state]) => state.Retry)
        .map(([name, state]) => [name, (state.Retry?.[0]?.IntervalSeconds ?? 1) * 1000 * scale]),
    );
    // Task overrides are keyed by state name: every Task of both definitions is routed by its Resource.
    this.taskOverrides = Object.fromEntries(
      states
        .filter(([, state]) => state.Type === 'Task')
        .map(([name, state]) => [
          name,
          state.Resource === 'arn:aws:states:::lambda:invoke'
            ? (input: unknown) => this.invokeFunction(input as { FunctionName: string; Payload: unknown })
            : (input: unknown) =>
                this.startChildExecution(input as { StateMachineArn: string; Input: unknown; Name?: string }),
        ]),
    );
  }

  /** The lambda:invoke integration: the function's result arrives as Payload, its error by its name. */
  private async invokeFunction(input: { FunctionName: string; Payload: unknown }): Promise<unknown> {
    const name = FUNCTION_NAMES.find((n) => functionArn(n) === input.FunctionName);
    if (!name) throw new Error(`no local function for ${input.FunctionName}`);
    // A deep copy, as a real invocation serializes the payload.
    const payload = this.dated(name, JSON.parse(JSON.stringify(input.Payload)) as unknown);
    const started = performance.now();
    this.options.onInvoke?.(name, payload);
    try {
      const context = lambdaContext(name);
      const result = this.options.functions
        ? await this.options.functions.invoke(name, payload, context)
        : await this.handlers[name](payload, context);
      const event = { functionName: name, payload, result, durationMs: performance.now() - started };
      await this.options.afterStep?.(event);
      this.options.onStep?.(event);
      return {
        StatusCode: 200,
        ExecutedVersion: '$LATEST',
        Payload: JSON.parse(JSON.stringify(result ?? null)),
      };
    } catch (error) {
      this.options.onStep?.({
        functionName: name,
        payload,
        error: error as Error,
        durationMs: performance.now() - started,
      });
      throw error;
    }
  }

  /**
   * The startExecution.sync:2 integration: runs the child definition to its end, fails as States.TaskFailed. A `Name`
   * is kept as Step Functions keeps it: started again while that execution runs, with the same input, it is the same
   * execution (its result awaited again); once it has ended, it is ExecutionAlreadyExists.
   */
  private startChildExecution(input: {
    StateMachineArn: string;
    Input: unknown;
    Name?: string;
  }): Promise<unknown> {
    const named = input.Name === undefined ? undefined : this.children.get(input.Name);
    if (named && !named.ended && named.input === JSON.stringify(input.Input)) return named.result;
    if (named) {
      const exists = new Error(`execution ${input.Name} already exists`);
      exists.name = 'StepFunctions.ExecutionAlreadyExistsException';
      return Promise.reject(exists);
    }
    const name = input.Name ?? randomUUID();
    const executionArn = `${input.StateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
    const child = {
      input: JSON.stringify(input.Input),
      ended: false,
      result: Promise.resolve<unknown>(undefined),
    };
    child.result = (async () => {
      try {
        const output = await this.run(this.child, input.Input, executionArn, name, input.StateMachineArn);
        return { ExecutionArn: executionArn, Status: 'SUCCEEDED', Output: output };
      } catch (error) {
        const failure = new Error(`child execution ${name} failed: ${(error as Error).message}`);
        failure.name = 'States.TaskFailed';
        throw failure;
      } finally {
        child.ended = true;
      }
    })();
    this.children.set(name, child);
    return child.result;
  }

  private async run(
    machine: StateMachine,
    input: unknown,
    executionArn: string,
    name: string,
    machineArn: string,
  ) {
    const execution = machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: this.taskOverrides as never,
        retryIntervalOverrides: this.retryOverrides,
      },
      // The interpreter sets the execution's StartTime and Input itself (by the system clock, from `input`).
      context: {
        Execution: { Id: executionArn, Name: name },
        StateMachine: { Id: machineArn, Name: machineArn.split(':').pop() },
      },
    });
    const onEvent = this.options.onEvent;
    // The log ends with the execution's last event; it is drained before the result is handed on.
    const drained = onEvent
      ? (async () => {
          for await (const event of execution.eventLogs) onEvent(name, event);
        })()
      : undefined;
    try {
      return await execution.result;
    } finally {
      await drained;
    }
  }

  /** Starts the archive state machine, like an EventBridge schedule or a console "Start execution". */
  runArchive(input: unknown = {}, executionName = localExecutionName()): Promise<ExecutionResult> {
    return this.execute(this.parent, 'archive', input, executionName);
  }

  /**
   * Plan's copy of the execution's start, by `clock`: the interpreter dates every execution by the system clock and
   * takes no other. Only Plan reads the day from it; the steps' own checks of the cut-off accept an earlier one. Read
   * once per execution (by its name and the interpreter's start), as Step Functions gives every invocation of one
   * execution the same start: a retried Plan names the same children.
   */
  private dated(name: FunctionName, payload: unknown): unknown {
    const { clock } = this.options;
    if (!clock || name !== 'plan') return payload;
    const { runId, startTime } = payload as { runId?: string; startTime?: string };
    const execution = `${runId}\n${startTime}`;
    const start = this.starts.get(execution) ?? clock().toISOString();
    this.starts.set(execution, start);
    return { ...(payload as object), startTime: start };
  }

  /**
   * Starts the per-table state machine directly, as anyone allowed to start executions can (the deployed machine
   * accepts any input): the functions, not the parent's Plan step, must hold the line.
   */
  runArchiveTable(input: unknown, executionName = localExecutionName('table')): Promise<ExecutionResult> {
    return this.execute(this.child, 'archive-table', input, executionName);
  }

  /**
   * StartExecution of the per-table state machine under `name`, as the parent's ArchiveTable Task calls it, or anyone
   * allowed to start executions: the name is then taken for the run's own StartExecution too. Resolves with the
   * result startExecution.sync:2 gives, fails as States.TaskFailed.
   */
  startArchiveTable(input: unknown, name: string): Promise<unknown> {
    return this.startChildExecution({
      StateMachineArn: stateMachineArn('archive-table'),
      Input: input,
      Name: name,
    });
  }

  /** Starts the restore state machine with a restore request, as an operator does from the console. */
  runRestore(input: unknown, executionName = localExecutionName('restore')): Promise<ExecutionResult> {
    return this.execute(this.restore, 'restore', input, executionName);
  }

  private async execute(
    machine: StateMachine,
    machineName: string,
    input: unknown,
    executionName: string,
  ): Promise<ExecutionResult> {
    const machineArn = stateMachineArn(machineName);
    const executionArn = `${machineArn.replace(':stateMachine:', ':execution:')}:${executionName}`;
    try {
      const output = await this.run(machine, input, executionArn, executionName, machineArn);
      return { executionName, status: 'SUCCEEDED', output };
    } catch (error) {
      // The interpreter wraps the failure in an ExecutionError; Step Functions reports the inner error and cause.
      const err = error as Error;
      const failure = err.cause instanceof Error ? err.cause : err;
      return { executionName, status: 'FAILED', error: { name: failure.name, message: failure.message } };
    }
  }
}
