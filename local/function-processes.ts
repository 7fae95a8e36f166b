import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context } from 'aws-lambda';
import { build } from 'esbuild';
import { FUNCTION_BUNDLE } from '../lib/function-bundle.js';
import { FUNCTION_MEMORY_MB, lambdaHeapFlags } from '../lib/function-memory.js';
import { type Invocation, type Reply, ReplySchema } from './function-process.js';
import { FUNCTION_NAMES, type FunctionName, type FunctionRunner } from './workflow.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface FunctionProcessFigures {
  functionName: FunctionName;
  invocations: number;
  /** RSS once the bundle's modules are loaded, before the first invocation. */
  loadedRssMb: number;
  /** Peak RSS of the process over all its invocations (getrusage's ru_maxrss, no sampling). */
  peakRssMb: number;
}

interface Container {
  child: ChildProcess;
  /** The function's figures, which all its processes add to. */
  figures: FunctionProcessFigures;
  /** Serving an invocation: a Lambda execution environment takes one at a time. */
  busy: boolean;
  /** Its process exited: never handed out again. */
  gone: boolean;
  pending: Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>;
}

/**
 * Runs each function as Lambda does: its handler bundled alone with the stack's esbuild options, in a Node process
 * of its own started at the first invocation and kept warm for the next ones. Like a Lambda execution environment,
 * a process serves one invocation at a time: a concurrent one (a Map's iterations) gets another process, started
 * cold, and idle warm ones are reused first. Each process's SDK clients name the function as their user-agent app id, so the local
 * servers can count requests per function. The bench uses it to measure each function's memory; tests keep the
 * functions in-process, where they can inject faults.
 */
export class FunctionProcesses implements FunctionRunner {
  /** Each function's processes (execution environments), busy or idle. */
  private readonly containers = new Map<FunctionName, Promise<Container>[]>();
  private readonly figures = new Map<FunctionName, FunctionProcessFigures>();
  private readonly bundles = mkdtempSync(join(tmpdir(), 'audit-archiver-functions-'));
  private readonly built = new Set<FunctionName>();
  private nextId = 0;

  /**
   * `env`: what the functions' environment would be in AWS (local mode's endpoints and config path); `execArgv`:
   * Node flags added to each process's (a bench's `--cpu-prof`).
   */
  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly execArgv: readonly string[] = [],
  ) {}

  async invoke(name: FunctionName, payload: unknown, context: Context): Promise<unknown> {
    const container = await this.idleContainer(name);
    const id = this.nextId++;
    const invocation: Invocation = {
      id,
      payload,
      context: {
        functionName: context.functionName,
        functionVersion: context.functionVersion,
        invokedFunctionArn: context.invokedFunctionArn,
        memoryLimitInMB: context.memoryLimitInMB,
        awsRequestId: context.awsRequestId,
        logGroupName: context.logGroupName,
        logStreamName: context.logStreamName,
        remainingTimeMs: context.getRemainingTimeInMillis(),
      },
    };
    let reply: Reply;
    try {
      reply = await new Promise<Reply>((resolve, reject) => {
        container.pending.set(id, { resolve, reject });
        // A process that died since its last invocation (not yet heard of) fails this one here, and is never handed
        // out again: without the callback, the closed pipe was an 'error' event of the child, which nothing listens
        // to, and ended this process.
        container.child.send(invocation, (error) => {
          if (!error) return;
          container.gone = true;
          container.pending.delete(id);
          reject(error);
        });
      });
    } finally {
      container.busy = false;
    }
    container.figures.invocations += 1;
    if (reply.kind === 'error') {
      const error = new Error(reply.error.message);
      error.name = reply.error.name;
      throw error;
    }
    return reply.kind === 'result' ? reply.result : undefined;
  }

  /** Per function that ran, in the workflows' order. */
  results(): FunctionProcessFigures[] {
    return FUNCTION_NAMES.flatMap((name) => {
      const figures = this.figures.get(name);
      return figures ? [{ ...figures }] : [];
    });
  }

  async close(): Promise<void> {
    const containers = await Promise.allSettled([...this.containers.values()].flat());
    this.containers.clear();
    await Promise.all(
      containers.map(async (settled) => {
        if (settled.status !== 'fulfilled') return;
        const { child } = settled.value;
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.disconnect();
        await exited;
      }),
    );
    rmSync(this.bundles, { recursive: true, force: true });
  }

  /** A process of the function that serves no invocation now, claimed for the caller; a new one if all are busy. */
  private async idleContainer(name: FunctionName): Promise<Container> {
    const pool = this.containers.get(name) ?? [];
    this.containers.set(name, pool);
    for (const candidate of pool) {
      const container = await candidate.catch(() => undefined);
      if (container && !container.busy && !container.gone) {
        container.busy = true;
        return container;
      }
    }
    const container = await this.addContainer(name);
    container.busy = true;
    return container;
  }

  private addContainer(name: FunctionName): Promise<Container> {
    const pool = this.containers.get(name) ?? [];
    this.containers.set(name, pool);
    const container = this.launch(name);
    const forget = () => pool.splice(pool.indexOf(container), 1);
    container.catch(forget);
    pool.push(container);
    return container;
  }

  /**
   * Bundles and starts the functions' processes ahead of their first invocation, so that invocation's time is the
   * function's (bundling here stands for the deployment, not for a cold start).
   */
  async start(names: readonly FunctionName[]): Promise<void> {
    await this.bundle(names);
    await Promise.all(names.map((name) => this.addContainer(name)));
  }

  /** One esbuild run for all the bundles it is given: each function's handler with the stack's options. */
  private async bundle(names: readonly FunctionName[]): Promise<void> {
    const missing = names.filter((name) => !this.built.has(name));
    if (missing.length === 0) return;
    const entryPoints: Record<string, string> = {};
    for (const name of missing) {
      entryPoints[name] = join(this.bundles, `${name}-process.ts`);
      writeFileSync(
        entryPoints[name],
        [
          `import { handler } from ${JSON.stringify(join(ROOT, 'lambdas', name, 'handler.ts'))};`,
          `import { serveInvocations } from ${JSON.stringify(join(ROOT, 'local', 'function-process.ts'))};`,
          'serveInvocations(handler);',
        ].join('\n'),
      );
    }
    await build({
      entryPoints,
      bundle: true,
      platform: 'node',
      ...FUNCTION_BUNDLE,
      // The syntax of the Node running here (the deployed bundle targets Lambda's).
      target: `node${process.versions.node.split('.')[0]}`,
      mainFields: [...FUNCTION_BUNDLE.mainFields],
      external: [...FUNCTION_BUNDLE.external],
      banner: { js: FUNCTION_BUNDLE.banner },
      sourcemap: true,
      sourcesContent: false,
      outdir: this.bundles,
      outExtension: { '.js': '.mjs' },
      logLevel: 'silent',
    });
    for (const name of missing) this.built.add(name);
  }

  private async launch(name: FunctionName): Promise<Container> {
    await this.bundle([name]);
    // The stack's NODE_OPTIONS, and none of this process's (a TypeScript loader would be counted in the memory); the
    // heap Lambda's bootstrap gives the function's memory size.
    const { NODE_OPTIONS: _ignored, ...env } = this.env;
    const child = fork(join(this.bundles, `${name}.mjs`), [], {
      env: { ...env, AWS_SDK_UA_APP_ID: name },
      execArgv: ['--enable-source-maps', ...lambdaHeapFlags(FUNCTION_MEMORY_MB[name]), ...this.execArgv],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const figures: FunctionProcessFigures = this.figures.get(name) ?? {
      functionName: name,
      invocations: 0,
      loadedRssMb: 0,
      peakRssMb: 0,
    };
    this.figures.set(name, figures);
    const container: Container = { child, figures, busy: false, gone: false, pending: new Map() };
    let started: (() => void) | undefined;
    let failed: ((error: Error) => void) | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    child.on('message', (message) => {
      const reply = ReplySchema.parse(message);
      figures.loadedRssMb = (reply.memory.loadedRssKb * 1024) / 1e6;
      figures.peakRssMb = Math.max(figures.peakRssMb, (reply.memory.maxRssKb * 1024) / 1e6);
      if (reply.kind === 'ready') return started?.();
      container.pending.get(reply.id)?.resolve(reply);
      container.pending.delete(reply.id);
    });
    child.once('exit', (code, signal) => {
      const error = new Error(`the ${name} function's process exited (${signal ?? code})`);
      failed?.(error);
      for (const { reject } of container.pending.values()) reject(error);
      container.pending.clear();
      // The next invocation starts a new process, as Lambda replaces a crashed container.
      container.gone = true;
    });
    await ready;
    return container;
  }
}
