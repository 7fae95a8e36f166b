/**
 * `npm run bench`: archives the shared synthetic audit table with the real local workflow (same ASL, same handlers,
 * local S3 and DynamoDB) and measures, in the same run and on the same data, what PostgreSQL and gzip alone do:
 * COPY of the eligible rows as JSON through gzip, one DELETE of them, and COPY FROM of them for restore. Prints per
 * stage rows/s, MB/s, wall time,
 * peak RSS and bytes per row, each with its ratio to the baseline, and writes the figures as JSON. With OLTP clients,
 * it also measures what the archiver costs an application: the TPS and latency of an OLTP-like workload run from a
 * second process, without the archiver and then during a second archive run (the stage figures come from the first,
 * which runs alone).
 */
import { execFileSync, fork } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { stringify } from 'yaml';
import { z } from 'zod';
import { archiveObjects } from '../cli/cost-model.js';
import { RUN_PRICES } from '../cli/cost-prices.js';
import {
  addScaled,
  EMPTY_TALLY,
  priceTally,
  type RequestCosts,
  type RequestTally,
} from '../cli/cost-requests.js';
import { OBJECT_SPANS, type ObjectSpan, spanCutoff } from '../lambdas/shared/archive/format.js';
import { formatIssues } from '../lambdas/shared/config/config.js';
import { retentionCutoff } from '../lambdas/shared/config/governance.js';
import { type ArchiverConfigInput, DefaultsSchema } from '../lambdas/shared/config/schema.js';
import { FUNCTION_MEMORY_MB } from '../lib/function-memory.js';
import { createAuditLogsTable } from '../local/audit-table.js';
import { FunctionProcesses } from '../local/function-processes.js';
import { type PostgresVersion, startLocalPostgres } from '../local/postgres.js';
import {
  type LocalEnvironment,
  openLocalEnvironment,
  runLocalArchive,
  runLocalRestore,
  type WorkflowOptions,
} from '../local/run.js';
import type { RequestCount } from '../local/services.js';
import { FUNCTION_NAMES, type FunctionName, type StepEvent } from '../local/workflow.js';
import { splitCpus } from './cpu-split.js';
import { type CpuFigures, cpuTimeOf, OTHER_PROCESSES } from './cpu-time.js';
import { ACCOUNTS_SQL, type Command, type WindowFigures, WindowFiguresSchema } from './oltp-load.js';

/** Rows older than this are archived: 90% of the shared table (its rows span 400 days). */
export const RETENTION_DAYS = 40;

export interface BenchOptions {
  rows: number;
  batchSize: number;
  compressionLevel: number;
  postgres: PostgresVersion;
  /** Clients of the OLTP workload (0: no workload, no second archive run). */
  oltpClients: number;
  /** Length of the workload's window without the archiver. */
  oltpSeconds: number;
  /**
   * Moves every eligible row onto one old UTC day, so a batch size of 1,000,000 makes one batch of the whole backlog
   * (objects never span two days): the peak-memory proof. The bench then gives each step 90% of its time budget.
   */
  oneDay?: boolean;
  /**
   * The table's `objectSpan`: `month` shows what the per-object cost weighs (the same rows in 13 objects instead of
   * about 360). A month is archived once all of it is past the cut-off, so the baselines then take the rows before
   * the cut-off's month.
   * @default 'day'
   */
  objectSpan?: ObjectSpan;
}

export interface OltpFigures {
  clients: number;
  /** Before the archive run (after a warm-up window of the same length, whose figures are dropped). */
  withoutArchiver: WindowFigures;
  /** During the second archive run, which took the window's seconds. */
  withArchiver: WindowFigures;
  /** After the archive run, so a drift of the machine over the run shows and is averaged out. */
  afterArchiver: WindowFigures;
  /** TPS with the archiver running over the mean TPS without, before and after (target: at least 0.95). */
  tpsRatio: number;
}

export interface StageFigures {
  stage: string;
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  megabytesPerSecond: number;
  peakRssMb: number;
  bytesPerRow?: number;
  /** This stage's rows/s over the baseline's it compares with. */
  ratio?: number;
  comparedWith?: string;
}

/** One function as it ran in Lambda's place: a process of its own, kept warm across the archive and restore runs. */
export interface FunctionFigures {
  functionName: FunctionName;
  invocations: number;
  seconds: number;
  /** RSS with the bundle's modules loaded, before the first invocation. */
  loadedRssMb: number;
  peakRssMb: number;
  s3Requests: number;
  dynamodbRequests: number;
}

/** What one workflow run did, as AWS would bill it. */
export interface RunTally extends RequestTally {
  run: string;
  rows: number;
  /** Batches: each is an export, upload, verify and delete invocation and their state transitions. */
  batches: number;
  /** Archive objects (one UTC day each, or part of one): each is its own S3 and inventory requests. */
  objects: number;
}

/** A tally scaled to a number of rows, priced. */
export interface CostLine {
  label: string;
  /** How the tally was obtained from the measured runs. */
  how: string;
  tally: RequestTally;
  costs: RequestCosts;
}

export interface BenchResult {
  startedAt: string;
  options: BenchOptions;
  eligibleRows: number;
  jsonBytes: number;
  baseline: StageFigures[];
  archiver: StageFigures[];
  batches: number;
  objects: number;
  functions: FunctionFigures[];
  /** The first archive run, a second one that finds nothing left (the fixed part of a run), the restore run. */
  runs: RunTally[];
  costs: CostLine[];
  /** Each function's memory size in the stack, which its compute is priced at. */
  lambdaMemoryMb: Record<FunctionName, number>;
  oltp?: OltpFigures;
  /** CPU time by process group during the whole archive (the first run, alone). */
  archiveCpu: CpuFigures;
  /** CPU time by process group during the restore. */
  restoreCpu: CpuFigures;
  notes: string[];
}

const isFunctionName = (caller: string): caller is FunctionName =>
  (FUNCTION_NAMES as readonly string[]).includes(caller);

/** Requests the functions sent between two snapshots of the local servers' counts, by service and operation. */
function requestsBetween(
  before: RequestCount[],
  after: RequestCount[],
): Pick<RequestTally, 's3' | 'dynamodb' | 'dynamodbUnits'> {
  const tally = { s3: {}, dynamodb: {}, dynamodbUnits: {} } as Record<
    's3' | 'dynamodb' | 'dynamodbUnits',
    Record<string, number>
  >;
  const key = (c: RequestCount) => `${c.service}\u0000${c.caller}\u0000${c.operation}`;
  const earlier = new Map(before.map((c) => [key(c), c]));
  const add = (counts: Record<string, number>, operation: string, n: number) => {
    if (n > 0) counts[operation] = (counts[operation] ?? 0) + n;
  };
  for (const c of after) {
    if (!isFunctionName(c.caller)) continue;
    const then = earlier.get(key(c));
    add(tally[c.service], c.operation, c.count - (then?.count ?? 0));
    if (c.units !== undefined) add(tally.dynamodbUnits, c.operation, c.units - (then?.units ?? 0));
  }
  return tally;
}

/**
 * Runs a workflow with every function in its own process and counts what AWS would bill: invocations and their
 * seconds, state transitions (states entered and retries), and the requests the functions sent to S3 and DynamoDB.
 */
async function tallied<T>(
  local: LocalEnvironment,
  functions: FunctionProcesses,
  run: (options: WorkflowOptions) => Promise<T>,
): Promise<{ value: T; steps: StepEvent[]; tally: RequestTally }> {
  const before = await local.services.requestCounts();
  const steps: StepEvent[] = [];
  let stateTransitions = 0;
  const value = await run({
    functions,
    onStep: (event) => steps.push(event),
    onEvent: (_execution, event) => {
      if (event.type === 'StateEntered' || event.type === 'StateRetried') stateTransitions += 1;
    },
  });
  return {
    value,
    steps,
    tally: {
      lambdaInvocations: steps.length,
      lambdaGbSeconds: lambdaGbSeconds(steps),
      stateTransitions,
      ...requestsBetween(before, await local.services.requestCounts()),
    },
  };
}

/** What Lambda bills as compute: each invocation's seconds at its function's memory size in the stack. */
export const lambdaGbSeconds = (steps: Pick<StepEvent, 'functionName' | 'durationMs'>[]) =>
  steps.reduce((total, s) => total + (s.durationMs / 1000) * (FUNCTION_MEMORY_MB[s.functionName] / 1024), 0);

const requestTotal = (counts: Record<string, number>) =>
  Object.values(counts).reduce((total, n) => total + n, 0);

/**
 * Per 1M rows for the bench's table; and for a table of 1M rows a day, whose daily run is the fixed part of a run
 * (the run that found nothing left) plus the rest of the measured run scaled to what 1M rows of one day make at this
 * batch size: invocations and state transitions by batch, S3 and DynamoDB requests by object, compute by row.
 */
function costLines(
  archive: RunTally,
  nothingLeft: RunTally,
  restore: RunTally,
  batchSize: number,
): CostLine[] {
  const perMillion = (t: RunTally) => addScaled(EMPTY_TALLY, t, 1e6 / t.rows);
  const variable = addScaled(archive, nothingLeft, -1);
  const dailyObjects = archiveObjects(1e6, batchSize, 1);
  const dailyBatches = Math.ceil(1e6 / batchSize);
  const byBatch = addScaled(nothingLeft, variable, dailyBatches / archive.batches);
  const byObject = addScaled(nothingLeft, variable, dailyObjects / archive.objects);
  const daily = {
    ...byBatch,
    s3: byObject.s3,
    dynamodb: byObject.dynamodb,
    dynamodbUnits: byObject.dynamodbUnits,
    lambdaGbSeconds: nothingLeft.lambdaGbSeconds + (variable.lambdaGbSeconds * 1e6) / archive.rows,
  };
  const line = (label: string, how: string, tally: RequestTally): CostLine => ({
    label,
    how,
    tally,
    costs: priceTally(tally),
  });
  return [
    line(
      'archive, the bench table, per 1M rows',
      `the archive run × 1M / ${archive.rows.toLocaleString('en-US')} rows (${archive.batches} batches, ${archive.objects} objects)`,
      perMillion(archive),
    ),
    line(
      'archive, a table of 1M rows a day, per daily run',
      `run with nothing left + ${dailyBatches} batch(es) of ${dailyObjects / dailyBatches} object(s) at the measured run's cost per batch and per object`,
      daily,
    ),
    line(
      'restore, per 1M rows',
      `the restore run × 1M / ${restore.rows.toLocaleString('en-US')} rows`,
      perMillion(restore),
    ),
  ];
}

/** Samples this process's RSS while `work` runs; the peak is the figure the bench reports. */
async function measured<T>(
  work: () => Promise<T>,
): Promise<{ value: T; seconds: number; peakRssMb: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const started = performance.now();
  try {
    const value = await work();
    return {
      value,
      seconds: (performance.now() - started) / 1000,
      peakRssMb: Math.max(peak, process.memoryUsage().rss) / 1e6,
    };
  } finally {
    clearInterval(timer);
  }
}

const figures = (
  stage: string,
  rows: number,
  bytes: number,
  run: { seconds: number; peakRssMb: number },
): StageFigures => ({
  stage,
  rows,
  seconds: run.seconds,
  rowsPerSecond: rows / run.seconds,
  megabytesPerSecond: bytes / 1e6 / run.seconds,
  peakRssMb: run.peakRssMb,
});

/**
 * The OLTP workload in a child process (bench/oltp-load.ts): `window` runs it while `work` runs and returns its
 * figures.
 */
async function startOltpLoad(url: string, clients: number) {
  const child = fork(fileURLToPath(new URL('./oltp-load.ts', import.meta.url)), [url, String(clients)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const nextMessage = () =>
    new Promise<unknown>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the OLTP workload exited (${code})`));
      child.once('exit', onExit);
      child.once('message', (message) => {
        child.off('exit', onExit);
        resolve(message);
      });
    });
  const send = (command: Command) => child.send(command);
  await nextMessage();
  return {
    pid: child.pid ?? 0,
    async window<T>(work: () => Promise<T>): Promise<{ value: T; figures: WindowFigures }> {
      // The window opens in the workload before `work` starts, so it covers all of it (IPC takes its time).
      const opened = nextMessage();
      send({ command: 'start' });
      await opened;
      try {
        const value = await work();
        const reply = nextMessage();
        send({ command: 'stop' });
        return { value, figures: WindowFiguresSchema.parse(await reply) };
      } catch (error) {
        child.kill();
        throw error;
      }
    },
    async exit(): Promise<void> {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      send({ command: 'exit' });
      await exited;
    },
  };
}

export async function runBenchmark(
  options: BenchOptions,
  log: (line: string) => void = console.log,
): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const work = mkdtempSync(join(tmpdir(), 'audit-archiver-bench-'));
  const server = await startLocalPostgres(options.postgres);
  const notes: string[] = [];
  try {
    const client = new pg.Client({ connectionString: server.url() });
    await client.connect();
    log(
      `Creating audit_logs with ${options.rows.toLocaleString('en-US')} rows (PostgreSQL ${options.postgres}) ...`,
    );
    // The run's own cut-off (plan's), so the baselines and the archiver handle the same rows.
    const cutoff = spanCutoff(retentionCutoff(Date.now(), RETENTION_DAYS), options.objectSpan ?? 'day');
    const createTable = async () => {
      await createAuditLogsTable(client, options.rows);
      if (!options.oneDay) return;
      await client.query(
        `UPDATE audit_logs SET created_at = date_trunc('day', $1::timestamptz - interval '41 days')
                                           + (id % 86400) * interval '1 second'
          WHERE created_at < $1`,
        [cutoff],
      );
      await client.query('VACUUM FULL ANALYZE audit_logs');
    };
    await createTable();
    const eligible = Number(
      (await client.query('SELECT count(*) AS n FROM audit_logs WHERE created_at < $1', [cutoff])).rows[0].n,
    );

    log('Baseline: COPY (SELECT row_to_json(t) ...) TO STDOUT | gzip ...');
    let jsonBytes = 0;
    let gzipBytes = 0;
    const copyRun = await measured(async () => {
      const copy = client.query(
        copyTo(
          `COPY (SELECT row_to_json(t) FROM audit_logs t WHERE created_at < ${pg.escapeLiteral(cutoff)}) TO STDOUT`,
        ),
      );
      copy.on('data', (chunk: Buffer) => {
        jsonBytes += chunk.length;
      });
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          gzipBytes += chunk.length;
          done();
        },
      });
      await pipeline(copy, createGzip({ level: options.compressionLevel }), sink);
    });
    const baselineExport = {
      ...figures('COPY | gzip', eligible, jsonBytes, copyRun),
      bytesPerRow: gzipBytes / eligible,
    };

    const configPath = join(work, 'config.yaml');
    const config: ArchiverConfigInput = {
      s3: { bucket: 'audit-archiver-bench' },
      defaults: {
        retentionDays: RETENTION_DAYS,
        batchSize: options.batchSize,
        compressionLevel: options.compressionLevel,
        maxBatchesPerRun: 800,
        ...(options.oneDay ? { timeBudgetShare: 0.9 } : {}),
      },
      databases: [
        {
          name: 'bench',
          credentials: { url: server.url() },
          tls: 'disable',
          // The restore stage writes into a new table beside the archived one.
          restoreTargets: ['public.restored'],
          tables: [
            {
              name: 'audit_logs',
              timestampColumn: 'created_at',
              ...(options.objectSpan ? { objectSpan: options.objectSpan } : {}),
            },
          ],
        },
      ],
    };
    writeFileSync(configPath, stringify(config));
    const local = await openLocalEnvironment(configPath, join(work, 'state'));
    // Each function in a process of its own with only its bundle, kept warm, as Lambda runs it.
    const functions = new FunctionProcesses(local.env);
    await functions.start(FUNCTION_NAMES);
    log(`Archiver: the local workflow, batch size ${options.batchSize.toLocaleString('en-US')} ...`);
    const { value: archiveRun, cpu: archiveCpu } = await cpuTimeOf(
      () => measured(() => tallied(local, functions, (workflow) => runLocalArchive(local, {}, workflow))),
      availableParallelism(),
    );
    const { steps } = archiveRun.value;
    log('Archiver: a second run, which finds nothing left (the fixed part of a run) ...');
    const nothingLeft = await tallied(local, functions, (workflow) => runLocalArchive(local, {}, workflow));
    log('Restore: the local restore workflow, into a new table created like the source ...');
    const { value: restoreRun, cpu: restoreCpu } = await cpuTimeOf(
      () =>
        measured(() =>
          tallied(local, functions, (workflow) =>
            runLocalRestore(
              local,
              { database: 'bench', table: 'public.audit_logs', targetTable: 'public.restored' },
              workflow,
            ),
          ),
        ),
      availableParallelism(),
    );
    const serverCounts = await local.services.requestCounts();
    const processFigures = functions.results();
    await functions.close();
    await local.close();
    if (restoreRun.value.value.execution.status !== 'SUCCEEDED') {
      throw new Error(`restore run failed: ${JSON.stringify(restoreRun.value.value.execution.error)}`);
    }
    const restored = restoreRun.value.value.results.reduce((sum, r) => sum + r.inserted, 0);
    // Restore reads every archive of the table once: its results count the objects the archive run wrote.
    const archivedObjects = restoreRun.value.value.results.length;
    log('Baseline: COPY FROM of the same rows into a table created the same way ...');
    const dump = join(work, 'restored.copy');
    await pipeline(client.query(copyTo('COPY public.restored TO STDOUT')), createWriteStream(dump));
    await client.query(
      'CREATE TABLE public.copied (LIKE public.audit_logs INCLUDING ALL EXCLUDING DEFAULTS)',
    );
    const copyFromRun = await measured(() =>
      pipeline(createReadStream(dump), client.query(copyFrom('COPY public.copied FROM STDIN'))),
    );
    const outcome = archiveRun.value.value.outcomes[0];
    if (archiveRun.value.value.execution.status !== 'SUCCEEDED' || !outcome) {
      throw new Error(`archive run failed: ${JSON.stringify(archiveRun.value.value.execution.error)}`);
    }
    const idleOutcome = nothingLeft.value.outcomes[0];
    if (nothingLeft.value.execution.status !== 'SUCCEEDED' || idleOutcome?.rowsArchived !== 0) {
      throw new Error(`the run with nothing left archived rows or failed: ${JSON.stringify(idleOutcome)}`);
    }
    if (outcome.budgetReached)
      notes.push('the batch budget (800) was reached: not every eligible row was archived');
    const archived = outcome.rowsArchived;
    const exports = steps.filter(
      (s) => s.functionName === 'export' && (s.result as { status?: string })?.status === 'exported',
    );
    const uncompressed = exports.reduce(
      (sum, s) => sum + ((s.result as { uncompressedBytes?: number }).uncompressedBytes ?? 0),
      0,
    );
    const allSteps = [...steps, ...nothingLeft.steps, ...restoreRun.value.steps];
    const functionFigures = processFigures.map(({ functionName, invocations, loadedRssMb, peakRssMb }) => {
      const requests = (service: RequestCount['service']) =>
        serverCounts
          .filter((c) => c.service === service && c.caller === functionName)
          .reduce((total, c) => total + c.count, 0);
      return {
        functionName,
        invocations,
        seconds:
          allSteps.filter((s) => s.functionName === functionName).reduce((t, s) => t + s.durationMs, 0) /
          1000,
        loadedRssMb,
        peakRssMb,
        s3Requests: requests('s3'),
        dynamodbRequests: requests('dynamodb'),
      };
    });
    // A stage's memory is its function's process, as in Lambda.
    const stage = (name: FunctionName) => {
      const calls = steps.filter((s) => s.functionName === name);
      return {
        seconds: calls.reduce((sum, s) => sum + s.durationMs, 0) / 1000,
        peakRssMb: functionFigures.find((f) => f.functionName === name)?.peakRssMb ?? 0,
      };
    };
    const archiver: StageFigures[] = [
      {
        ...figures('export', archived, uncompressed, stage('export')),
        bytesPerRow: outcome.bytesArchived / archived,
      },
      figures('upload', archived, outcome.bytesArchived, stage('upload')),
      figures('verify', archived, uncompressed, stage('verify')),
      figures('delete', archived, uncompressed, stage('delete')),
      {
        ...figures('whole archive', archived, uncompressed, archiveRun),
        bytesPerRow: outcome.bytesArchived / archived,
      },
      figures('restore', restored, uncompressed, restoreRun),
    ];
    const baselineRestore = figures('COPY FROM', restored, uncompressed, copyFromRun);

    log('Baseline: one DELETE of the same rows (on the table created afresh) ...');
    await client.query('DROP TABLE audit_logs');
    await createTable();
    const deleteRun = await measured(() =>
      client.query('DELETE FROM audit_logs WHERE created_at < $1', [cutoff]),
    );
    let oltp: OltpFigures | undefined;
    if (options.oltpClients > 0) {
      log(
        `OLTP: ${clientsLabel(options.oltpClients)} in a second process, ${options.oltpSeconds} s alone, then during a second archive run (the table created afresh) ...`,
      );
      await client.query('DROP TABLE audit_logs');
      await createTable();
      for (const statement of ACCOUNTS_SQL) await client.query(statement);
      const load = await startOltpLoad(server.url(), options.oltpClients);
      const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const postmaster = Number(
        execFileSync('ps', ['-o', 'ppid=', '-p', String(backend)], { encoding: 'utf8' }),
      );
      const split = splitCpus([postmaster, load.pid]);
      notes.push(
        split
          ? `OLTP windows: ${split.description} (in AWS only the database is shared)`
          : 'OLTP windows: no CPU split (taskset missing or one core): the ratio includes CPU contention with the local stand-ins',
      );
      try {
        const alone = () => load.window(() => sleep(options.oltpSeconds * 1000));
        await alone(); // warm-up: cold caches and connections would understate the TPS without the archiver
        const before = await alone();
        // Its own S3 and DynamoDB state: the first run's archives and progress must not shorten this one.
        const underLoad = await openLocalEnvironment(configPath, join(work, 'state-under-load'));
        const during = await load
          .window(() => runLocalArchive(underLoad, {}))
          .finally(() => underLoad.close());
        if (during.value.execution.status !== 'SUCCEEDED') {
          throw new Error(`archive run under load failed: ${JSON.stringify(during.value.execution.error)}`);
        }
        const after = await alone();
        oltp = {
          clients: options.oltpClients,
          withoutArchiver: before.figures,
          withArchiver: during.figures,
          afterArchiver: after.figures,
          tpsRatio: during.figures.tps / ((before.figures.tps + after.figures.tps) / 2),
        };
      } finally {
        split?.restore();
        await load.exit();
      }
      notes.push(
        'stage figures are from the archive run alone; the OLTP figures from a second archive run of the table created afresh, under the workload',
      );
    }
    await client.end();
    const baselineDelete = figures('DELETE', eligible, jsonBytes, deleteRun);
    const baselineBoth = figures('COPY | gzip + DELETE', eligible, jsonBytes, {
      seconds: copyRun.seconds + deleteRun.seconds,
      peakRssMb: Math.max(copyRun.peakRssMb, deleteRun.peakRssMb),
    });
    const compare = (row: StageFigures, base: StageFigures) => {
      row.ratio = row.rowsPerSecond / base.rowsPerSecond;
      row.comparedWith = base.stage;
    };
    const [exportRow, , , deleteRow, wholeRow, restoreRow] = archiver;
    if (exportRow) compare(exportRow, baselineExport);
    if (restoreRow) compare(restoreRow, baselineRestore);
    if (deleteRow) compare(deleteRow, baselineDelete);
    if (wholeRow) compare(wholeRow, baselineBoth);
    notes.push(
      'peak RSS: export, upload, verify and delete are their function’s process (its bundle alone, as in Lambda); whole archive and restore are the bench process (the Step Functions interpreter, local DynamoDB); PostgreSQL and the local S3 server run in processes of their own',
      'stage times are the sums of the functions’ wall times; the whole archive also includes the Step Functions interpreter and the lease and bookkeeping steps',
      `prices: ${RUN_PRICES.sources.join(', ')} (us-east-1, taken ${RUN_PRICES.takenOn}) and the cost command's S3 table, STANDARD class; each DynamoDB item read or written as one request unit; Lambda compute is local wall time at each function's memory size in the stack (lib/function-memory.ts)`,
    );
    if (options.oltpClients > 0) {
      notes.push('the archive run under the OLTP workload runs the functions in the bench process');
    }
    const runs: RunTally[] = [
      {
        run: 'archive',
        rows: archived,
        batches: outcome.batches,
        objects: archivedObjects,
        ...archiveRun.value.tally,
      },
      { run: 'archive, nothing left', rows: 0, batches: 0, objects: 0, ...nothingLeft.tally },
      {
        run: 'restore',
        rows: restored,
        batches: archivedObjects,
        objects: archivedObjects,
        ...restoreRun.value.tally,
      },
    ];
    const [archiveTally, idleTally, restoreTally] = runs as [RunTally, RunTally, RunTally];
    return {
      startedAt,
      options,
      eligibleRows: eligible,
      jsonBytes,
      baseline: [baselineExport, baselineDelete, baselineBoth, baselineRestore],
      archiver,
      batches: outcome.batches,
      objects: archivedObjects,
      functions: functionFigures,
      runs,
      costs: costLines(archiveTally, idleTally, restoreTally, options.batchSize),
      lambdaMemoryMb: FUNCTION_MEMORY_MB,
      oltp,
      archiveCpu,
      restoreCpu,
      notes,
    };
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

export function formatResult(result: BenchResult): string {
  const header = ['stage', 'rows', 'seconds', 'rows/s', 'MB/s', 'peak RSS MB', 'bytes/row', 'ratio'];
  const line = (r: StageFigures) => [
    r.stage,
    r.rows.toLocaleString('en-US'),
    r.seconds.toFixed(2),
    Math.round(r.rowsPerSecond).toLocaleString('en-US'),
    r.megabytesPerSecond.toFixed(1),
    r.peakRssMb.toFixed(0),
    r.bytesPerRow === undefined ? '' : r.bytesPerRow.toFixed(1),
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}× ${r.comparedWith}`,
  ];
  const rows = [header, ...result.baseline.map(line), ...result.archiver.map(line)];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const render = (r: string[]) =>
    r
      .map((cell, i) => (i === 0 || i === 7 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ');
  const oltp = result.oltp ? formatOltp(result.oltp) : [];
  return [
    `${result.eligibleRows.toLocaleString('en-US')} eligible rows of ${result.options.rows.toLocaleString('en-US')}, ${(result.jsonBytes / 1e6).toFixed(1)} MB as JSON, ${result.batches} batches, ${result.objects} archive objects`,
    render(header),
    ...result.baseline.map((r) => render(line(r))),
    ...result.archiver.map((r) => render(line(r))),
    '',
    ...formatFunctions(result.functions),
    '',
    ...formatRuns(result.runs),
    '',
    ...formatCosts(result.costs),
    '',
    ...formatCpu(
      'the whole archive',
      result.archiveCpu,
      result.baseline.find((r) => r.stage === 'COPY | gzip + DELETE'),
    ),
    '',
    ...formatCpu(
      'the restore',
      result.restoreCpu,
      result.baseline.find((r) => r.stage === 'COPY FROM'),
    ),
    ...oltp,
    ...result.notes.map((n) => `note: ${n}`),
  ].join('\n');
}

/**
 * The CPU each group used during a workflow's run, and the floor it sets: the archiver's own processes (everything
 * but the rest of the machine) cannot finish in less wall time than their CPU seconds spread over every core, however
 * their stages overlapped; against the baseline, that floor is the best ratio this machine allows.
 */
function formatCpu(during: string, cpu: CpuFigures, baseline: StageFigures | undefined): string[] {
  const available = cpu.wallSeconds * cpu.cores;
  const used = cpu.groups.reduce((sum, g) => sum + g.seconds, 0);
  const own = cpu.groups.filter((g) => g.group !== OTHER_PROCESSES).reduce((sum, g) => sum + g.seconds, 0);
  const floor = own / cpu.cores;
  const best =
    baseline && floor > 0 ? `, ${(baseline.seconds / floor).toFixed(2)}× ${baseline.stage} at best` : '';
  return [
    `CPU during ${during}: ${cpu.wallSeconds.toFixed(1)} s on ${cpu.cores} cores (${available.toFixed(1)} CPU s), ${used.toFixed(1)} CPU s used`,
    `the archiver's own processes used ${own.toFixed(1)} CPU s: on ${cpu.cores} cores no overlap of its stages finishes in less than ${floor.toFixed(1)} s${best}`,
    ...renderTable(
      [
        ['process', 'CPU s', 'share of the cores'],
        ...cpu.groups.map((g) => [
          g.group,
          g.seconds.toFixed(1),
          `${((100 * g.seconds) / available).toFixed(0)} %`,
        ]),
      ],
      (column) => column === 0,
    ),
  ];
}

/** Columns left-aligned where `left` says, the others right-aligned, each as wide as its widest cell. */
function renderTable(rows: string[][], left: (column: number) => boolean): string[] {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r.map((cell, i) => (left(i) ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '),
  );
}

function formatFunctions(functions: FunctionFigures[]): string[] {
  return renderTable(
    [
      [
        'function (own process)',
        'invocations',
        'seconds',
        'RSS loaded MB',
        'peak RSS MB',
        'S3 req',
        'DynamoDB req',
      ],
      ...functions.map((f) => [
        f.functionName,
        String(f.invocations),
        f.seconds.toFixed(2),
        f.loadedRssMb.toFixed(0),
        f.peakRssMb.toFixed(0),
        String(f.s3Requests),
        String(f.dynamodbRequests),
      ]),
    ],
    (i) => i === 0,
  );
}

const byOperation = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([op, n]) => `${op} ${Number.isInteger(n) ? n : n.toFixed(1)}`)
    .join(', ');

function formatRuns(runs: RunTally[]): string[] {
  return runs.map(
    (r) =>
      `${r.run} (${r.rows.toLocaleString('en-US')} rows, ${r.batches} batches, ${r.objects} objects): ${r.lambdaInvocations} invocations, ${r.stateTransitions} state transitions; S3 ${requestTotal(r.s3)} (${byOperation(r.s3)}); DynamoDB ${requestTotal(r.dynamodb)} (${byOperation(r.dynamodb)})`,
  );
}

function formatCosts(lines: CostLine[]): string[] {
  const usd = (n: number) => `$${n < 0.01 ? n.toFixed(6) : n.toFixed(4)}`;
  const count = (n: number) => Math.round(n).toLocaleString('en-US');
  return [
    ...renderTable(
      [
        [
          'AWS cost',
          'invocations',
          'Lambda GB-s',
          'transitions',
          'S3 req',
          'DynamoDB req',
          'Lambda',
          'Step Functions',
          'S3',
          'DynamoDB',
          'total',
        ],
        ...lines.map(({ label, tally, costs }) => [
          label,
          count(tally.lambdaInvocations),
          tally.lambdaGbSeconds.toFixed(1),
          count(tally.stateTransitions),
          count(requestTotal(tally.s3)),
          count(requestTotal(tally.dynamodb)),
          usd(costs.lambdaRequests + costs.lambdaCompute),
          usd(costs.stateTransitions),
          usd(costs.s3),
          usd(costs.dynamodb),
          usd(costs.total),
        ]),
      ],
      (i) => i === 0,
    ),
    ...lines.map((l) => `  ${l.label}: ${l.how}`),
  ];
}

const clientsLabel = (n: number) => `${n} client${n === 1 ? '' : 's'}`;

function formatOltp(oltp: OltpFigures): string[] {
  const header = ['OLTP workload', 'transactions', 'seconds', 'TPS', 'p95 ms', 'p99 ms', 'errors'];
  const line = (name: string, w: WindowFigures) => [
    name,
    w.transactions.toLocaleString('en-US'),
    w.seconds.toFixed(2),
    Math.round(w.tps).toLocaleString('en-US'),
    w.p95Ms.toFixed(1),
    w.p99Ms.toFixed(1),
    String(w.errors),
  ];
  const rows = [
    header,
    line(`${clientsLabel(oltp.clients)}, archiver not running`, oltp.withoutArchiver),
    line(`${clientsLabel(oltp.clients)}, during the archive run`, oltp.withArchiver),
    line(`${clientsLabel(oltp.clients)}, after it`, oltp.afterArchiver),
  ];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return [
    '',
    ...rows.map((r) =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '),
    ),
    `OLTP TPS with archiver / without (mean of before and after): ${oltp.tpsRatio.toFixed(2)} (target ≥ 0.95)`,
  ];
}

/**
 * The numeric flags, named as typed (batch size and gzip level within the config's bounds): `--oltp-clients 0` turns
 * the workload and the second archive run off.
 */
const BenchFlagsSchema = z.object({
  rows: z.coerce.number().int().min(1).max(100_000_000),
  'batch-size': z.coerce.number().int().min(1).max(5_000_000),
  'compression-level': z.coerce.number().int().min(1).max(9),
  postgres: z.enum(['14', '18']).transform((major) => Number(major) as PostgresVersion),
  'oltp-clients': z.coerce.number().int().min(0).max(64),
  'oltp-seconds': z.coerce.number().positive().max(3600),
  'object-span': z.enum(OBJECT_SPANS),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      'batch-size': { type: 'string', default: '50000' },
      'compression-level': { type: 'string', default: String(DefaultsSchema.parse({}).compressionLevel) },
      postgres: { type: 'string', default: '18' },
      'oltp-clients': { type: 'string', default: '4' },
      'oltp-seconds': { type: 'string', default: '10' },
      out: { type: 'string', default: 'bench/results' },
      'one-day': { type: 'boolean', default: false },
      'object-span': { type: 'string', default: 'day' },
    },
  });
  const flags = BenchFlagsSchema.safeParse(values);
  if (!flags.success) throw new Error(`invalid option:\n${formatIssues(flags.error)}`);
  const result = await runBenchmark({
    rows: flags.data.rows,
    batchSize: flags.data['batch-size'],
    compressionLevel: flags.data['compression-level'],
    postgres: flags.data.postgres,
    oltpClients: flags.data['oltp-clients'],
    oltpSeconds: flags.data['oltp-seconds'],
    oneDay: values['one-day'],
    objectSpan: flags.data['object-span'],
  });
  console.log(formatResult(result));
  mkdirSync(values.out, { recursive: true });
  const file = join(values.out, `bench-${result.startedAt.replaceAll(':', '')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`figures written to ${file}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: Error) => {
    console.error(`${error.name}: ${error.message}`);
    process.exitCode = 1;
  });
}
