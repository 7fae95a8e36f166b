import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { validateArchives } from '../../cli/archive-validation.js';
import type { ArchiverConfigInput } from '../../lambdas/shared/config/schema.js';
import { closeProcessDatabases } from '../../lambdas/shared/runtime/deps.js';
import { type LocalEnvironment, openLocalEnvironment, runLocalArchive } from '../../local/run.js';
import {
  allStates,
  type InterpreterEvent,
  loadDefinition,
  localSubstitutions,
  type StepEvent,
} from '../../local/workflow.js';
import { expectRequestsWithinRoles } from '../support/fixtures.js';

/**
 * The fleet one scheduled run covers: 1000 tables across 100 databases, on the real archive ASL, handlers,
 * PostgreSQL, s3rver and dynalite. Each table is small (the per-table cost is what scales), so the run proves the
 * Step Functions limits (256 KiB payloads, 25,000 history events per execution) and the per-database connection
 * caps at fleet size, not throughput.
 */
const DATABASES = 100;
const TABLES_PER_DATABASE = 10;
const MAX_CONNECTIONS = 2;
const RETENTION_DAYS = 30;
const PAYLOAD_LIMIT = 256 * 1024;
const HISTORY_LIMIT = 25_000;
/** Old rows per table, in one UTC day (one batch: the per-table cost is what the fleet multiplies), and the young row. */
const OLD_ROWS = [
  { id: 1, day: 40, hour: 6 },
  { id: 2, day: 40, hour: 18 },
];
const YOUNG_ID = 4;

/** Tasks whose resource is a `.sync` child execution: their history also has a TaskSubmitted event. */
const syncTasks = new Set(
  ['archive.asl.json', 'archive-table.asl.json'].flatMap((file) =>
    allStates(loadDefinition(file, localSubstitutions) as Parameters<typeof allStates>[0])
      .filter(([, state]) => state.Resource?.includes(':states:startExecution.sync'))
      .map(([name]) => name),
  ),
);

/**
 * The Step Functions history events (Standard workflow) one interpreter event stands for; an upper bound where the
 * interpreter's log cannot tell them apart.
 * - ExecutionStarted, ExecutionSucceeded, ExecutionFailed, ExecutionAborted, ExecutionTimeout: the same event.
 * - StateEntered of a Task: TaskStateEntered, TaskScheduled, TaskStarted (+ TaskSubmitted for a .sync child
 *   execution); of a Map: MapStateEntered, MapStateStarted; of any other state: its XStateEntered.
 * - StateExited of a Task: TaskSucceeded, TaskStateExited (after a Catch AWS logs no TaskSucceeded: one too many);
 *   of a Map: MapStateSucceeded, MapStateExited; of any other state: its XStateExited.
 * - StateFailed: TaskFailed or MapStateFailed (a Fail state's failure is the ExecutionFailed: one too many).
 * - StateRetried: the next attempt's TaskScheduled, TaskStarted (+ TaskSubmitted); the attempt's failure was the
 *   StateFailed before it. StateCaught: none (AWS logs the catch as the TaskStateExited).
 * - MapIterationStarted, MapIterationSucceeded, MapIterationFailed (inline Map): the same event, in the parent.
 */
function historyEvents(event: InterpreterEvent): number {
  switch (event.type) {
    case 'StateEntered': {
      const { type, name } = event.state;
      if (type === 'Task') return syncTasks.has(name) ? 4 : 3;
      return type === 'Map' ? 2 : 1;
    }
    case 'StateExited':
      return event.state.type === 'Task' || event.state.type === 'Map' ? 2 : 1;
    case 'StateRetried':
      return syncTasks.has(event.state.name) ? 3 : 2;
    case 'StateCaught':
      return 0;
    default:
      return 1;
  }
}

/** The state payloads an interpreter event carries: execution input and output, each state's input and output. */
function payloads(event: InterpreterEvent): unknown[] {
  switch (event.type) {
    case 'ExecutionStarted':
      return [event.input];
    case 'ExecutionSucceeded':
      return [event.output];
    case 'StateEntered':
      return [event.state.input];
    case 'StateExited':
      return [event.state.input, event.state.output];
    default:
      return [];
  }
}

const bytesOf = (value: unknown) => Buffer.byteLength(JSON.stringify(value ?? null));

/** Most steps of one database in flight at once, from each step's end time and wall time. */
function peakOverlap(intervals: { start: number; end: number }[]): number {
  const edges = intervals
    .flatMap(({ start, end }) => [
      { at: start, delta: 1 },
      { at: end, delta: -1 },
    ])
    // At the same instant an end comes before a start: touching steps do not overlap.
    .sort((a, b) => a.at - b.at || a.delta - b.delta);
  let open = 0;
  let peak = 0;
  for (const { delta } of edges) {
    open += delta;
    peak = Math.max(peak, open);
  }
  return peak;
}

async function inBatches<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

const tableName = (t: number) => `audit_${t}`;

// Fleet scale is about Step Functions limits and lanes, not the PostgreSQL major: vitest.config.ts runs it once, on 18.
describe('a scheduled run over a fleet of 1000 tables in 100 databases', () => {
  const adminUrl = inject('postgresUrl');
  const runTag = randomUUID().replaceAll('-', '').slice(0, 8);
  const databases = Array.from({ length: DATABASES }, (_, i) => ({
    name: `db${String(i).padStart(3, '0')}`,
    pgName: `fleet_${runTag}_${i}`,
  }));
  const urlOf = (pgName: string) => adminUrl.replace(/\/[^/]*$/, `/${pgName}`);
  const dir = mkdtempSync(join(tmpdir(), 'audit-archiver-fleet-'));
  let local: LocalEnvironment | undefined;

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    // The first database is seeded; the others are copies of it (CREATE DATABASE ... TEMPLATE), which is quicker.
    const [first, ...others] = databases;
    if (!first) throw new Error('no databases');
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(first.pgName)}`);
    const seeder = new pg.Client({ connectionString: urlOf(first.pgName) });
    await seeder.connect();
    const old = OLD_ROWS.map(
      ({ id, day, hour }) =>
        `(${id}, date_trunc('day', now(), 'UTC') - interval '${day} days' + interval '${hour} hours')`,
    );
    for (let t = 0; t < TABLES_PER_DATABASE; t++) {
      const table = `public.${pg.escapeIdentifier(tableName(t))}`;
      await seeder.query(
        `CREATE TABLE ${table} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, note text)`,
      );
      await seeder.query(
        `INSERT INTO ${table} (id, created_at, note)
         SELECT id, created_at, 'row ' || id FROM (VALUES ${old.join(', ')}, (${YOUNG_ID}, now() - interval '1 day')) AS v (id, created_at)`,
      );
    }
    await seeder.end();
    for (const { pgName } of others) {
      await admin.query(
        `CREATE DATABASE ${pg.escapeIdentifier(pgName)} TEMPLATE ${pg.escapeIdentifier(first.pgName)}`,
      );
    }
    await admin.end();
    const config: ArchiverConfigInput = {
      s3: { bucket: 'fleet-archive', prefix: 'archive/' },
      // Off as in the suite's other configs (fixtures.ts): the files beside this one would be load here.
      defaults: { retentionDays: RETENTION_DAYS, batchSize: 500, yieldToLoad: false },
      // Lanes at once: 20 keeps the shared test cluster's connections (max 100) free for the other test files.
      run: { maxConcurrency: 20 },
      databases: databases.map(({ name, pgName }) => ({
        name,
        credentials: { url: urlOf(pgName) },
        tls: 'disable' as const,
        maxConnections: MAX_CONNECTIONS,
        tables: Array.from({ length: TABLES_PER_DATABASE }, (_, t) => ({
          name: tableName(t),
          timestampColumn: 'created_at',
        })),
      })),
    };
    const configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, stringify(config));
    local = await openLocalEnvironment(configPath, join(dir, 'state'));
  }, 300_000);

  afterAll(async () => {
    try {
      if (local) await expectRequestsWithinRoles(local);
    } finally {
      await local?.close();
    }
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    for (const { pgName } of databases) {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(pgName)} WITH (FORCE)`);
    }
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }, 600_000);

  // Its limit (15 minutes) catches a hang; it is no speed target: the run took 366 to 515 s on 2 cores.
  it('archives every table within the payload, history and per-database connection limits', async () => {
    // Prepare
    if (!local) throw new Error('fleet not set up');
    const history = new Map<string, number>();
    let largest = { bytes: 0, where: '' };
    const onEvent = (execution: string, event: InterpreterEvent) => {
      history.set(execution, (history.get(execution) ?? 0) + historyEvents(event));
      for (const payload of payloads(event)) {
        const bytes = bytesOf(payload);
        if (bytes > largest.bytes) {
          largest = { bytes, where: `${event.type} ${'state' in event ? event.state.name : execution}` };
        }
      }
    };
    const steps = new Map<string, { start: number; end: number }[]>();
    const onStep = (step: StepEvent) => {
      // The Task's parameters and the function's result are payloads too.
      for (const payload of [step.payload, step.result]) {
        const bytes = bytesOf(payload);
        if (bytes > largest.bytes) largest = { bytes, where: `${step.functionName} invocation` };
      }
      const database = (step.payload as { database?: string }).database;
      if (database === undefined) return;
      const end = performance.now();
      steps.set(database, [...(steps.get(database) ?? []), { start: end - step.durationMs, end }]);
    };
    // Connections the archiver holds open, per database, sampled from the server while the run goes on.
    const monitor = new pg.Client({ connectionString: adminUrl });
    await monitor.connect();
    let peakConnections = 0;
    let peakTotal = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await monitor.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE application_name = 'audit-archiver' AND datname LIKE $1 GROUP BY datname`,
          [`fleet_${runTag}_%`],
        );
        peakConnections = Math.max(peakConnections, ...rows.map((r) => r.n));
        peakTotal = Math.max(
          peakTotal,
          rows.reduce((sum, r) => sum + r.n, 0),
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    // Act
    const started = performance.now();
    const { execution, outcomes } = await runLocalArchive(local, {}, { onEvent, onStep });
    const seconds = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;
    await monitor.end();
    // The functions' pools keep idle connections for a while; the checks below open their own.
    await closeProcessDatabases();

    // Assess
    expect(execution.status, JSON.stringify(execution.error)).toBe('SUCCEEDED');
    const parent = history.get(execution.executionName) ?? 0;
    const children = [...history].filter(([name]) => name !== execution.executionName).map(([, n]) => n);
    console.info(
      `fleet: ${seconds.toFixed(1)} s; history events: parent ${parent}, largest child ${Math.max(...children)}; largest payload ${largest.bytes} B (${largest.where}); peak connections per database ${peakConnections}, in all ${peakTotal}`,
    );
    // One child execution per table, and the parent's history holds at least its ArchiveTable Task per table.
    expect(children).toHaveLength(DATABASES * TABLES_PER_DATABASE);
    expect(parent).toBeGreaterThan(DATABASES * TABLES_PER_DATABASE * 6);
    expect(Math.max(parent, ...children)).toBeLessThanOrEqual(HISTORY_LIMIT);
    expect(largest.bytes).toBeLessThanOrEqual(PAYLOAD_LIMIT);

    expect(steps.size).toBe(DATABASES);
    for (const [database, intervals] of steps) {
      expect(peakOverlap(intervals), database).toBeLessThanOrEqual(MAX_CONNECTIONS);
    }
    expect(peakOverlap([...steps.values()].flat())).toBeGreaterThan(MAX_CONNECTIONS);
    expect(peakConnections).toBeGreaterThan(0);
    expect(peakConnections).toBeLessThanOrEqual(MAX_CONNECTIONS);

    expect(outcomes).toHaveLength(DATABASES * TABLES_PER_DATABASE);
    for (const outcome of outcomes) {
      expect(outcome, `${outcome.database} ${outcome.table}`).toMatchObject({
        status: 'succeeded',
        rowsArchived: OLD_ROWS.length,
        batches: 1,
      });
    }
    const { store } = local.deps();
    await inBatches(databases, 4, async ({ name, pgName }) => {
      const client = new pg.Client({ connectionString: urlOf(pgName) });
      await client.connect();
      const left = await client.query<{ table: string; ids: string[] }>(
        Array.from(
          { length: TABLES_PER_DATABASE },
          (_, t) =>
            `SELECT ${pg.escapeLiteral(tableName(t))} AS table, array_agg(id ORDER BY id)::text[] AS ids
               FROM public.${pg.escapeIdentifier(tableName(t))}`,
        ).join(' UNION ALL '),
      );
      await client.end();
      for (const { table, ids } of left.rows) expect(ids, `${name} ${table}`).toEqual([String(YOUNG_ID)]);
      const tables = Array.from({ length: TABLES_PER_DATABASE }, (_, t) => t);
      await inBatches(tables, TABLES_PER_DATABASE, async (t) => {
        const report = await validateArchives(
          store,
          {
            format: 'native',
            location: { prefix: 'archive/', database: name, schema: 'public', table: tableName(t) },
          },
          { database: name, schema: 'public', table: tableName(t) },
        );
        expect(report, `${name} ${tableName(t)}`).toMatchObject({
          archives: 1,
          rows: OLD_ROWS.length,
          problems: [],
        });
      });
    });
  }, 900_000);
});
