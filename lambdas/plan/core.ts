import { createHash } from 'node:crypto';
import { recordConfigChange } from '../shared/batch/config-fingerprint.js';
import { buildPlanReport, type PlannedTable } from '../shared/batch/plan-report.js';
import { formatIssues } from '../shared/config/config.js';
import { assertTableGoverned, retentionCutoff } from '../shared/config/governance.js';
import { didYouMean, resolveConfiguredTable, tablesNamedLike } from '../shared/config/resolved-table.js';
import { tableRef } from '../shared/config/schema.js';
import { ConfigError } from '../shared/errors/step-errors.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import { auditEventId, recordAuditEvent } from '../shared/telemetry/audit-trail.js';
import { type Lane, type PlanInput, type PlanOutput, RunRequestSchema } from './schema.js';

/**
 * Keeps the plan well inside the 256 KiB Step Functions payload limit, with room for the rest of the state: the Map's
 * results, which the summary reads, add under 30 bytes a table (some 80 KiB for the most tables a plan this size holds).
 */
export const MAX_PLAN_BYTES = 160 * 1024;

/** A dry run reads the lease and hold items and the database (the plan report); a run records the config fingerprint. */
export type PlanDeps = Pick<
  StepDeps,
  'config' | 'store' | 'locks' | 'holds' | 'runRecords' | 'database' | 'telemetry' | 'now'
>;

/**
 * Plan: applies the execution input's filters to the validated config, computes each table's cut-off from the
 * execution's start time rounded down to a UTC midnight (so every retry of a step sees the same cut-off), and deals
 * each database's tables into at most `maxConnections` lanes. Lanes run in parallel, tables within a lane one after
 * another, which caps the connections the run opens per database whatever the global concurrency. A table the retention or encryption policy
 * forbids stops the plan (ConfigError). With `dryRun` the lanes stay empty and the plan carries the plan report.
 */
export async function planRun(input: PlanInput, deps: PlanDeps): Promise<PlanOutput> {
  const parsed = RunRequestSchema.safeParse(input.request ?? {});
  if (!parsed.success) throw new ConfigError(`execution input is invalid:\n${formatIssues(parsed.error)}`);
  const request = parsed.data;
  const { config } = deps;
  const start = Date.parse(input.startTime);

  const databases = config.databases.filter((db) => !request.database || db.name === request.database);
  if (request.database && databases.length === 0) {
    throw new ConfigError(
      `database "${request.database}" is not in the config (known: ${config.databases.map((d) => d.name).join(', ')})`,
    );
  }
  const wanted = new Set(request.tables ?? []);
  // Two databases may list a table of one name: each is planned, and a name is unknown only if none lists it.
  const found = new Set<string>();
  const planned: PlannedTable[] = [];
  const lanes: Lane[] = [];
  let tableCount = 0;
  for (const db of databases) {
    const tables = db.tables
      .filter((t) => wanted.size === 0 || wanted.has(tableRef(t)))
      .map((t) => resolveConfiguredTable(config, db, t));
    for (const table of tables) {
      found.add(table.ref);
      assertTableGoverned(config, db.name, table.settings);
    }
    const laneCount = Math.min(db.maxConnections, tables.length);
    const dbLanes: Lane[] = Array.from({ length: laneCount }, () => ({ database: db.name, tables: [] }));
    tables.forEach((table, i) => {
      const cutoff = retentionCutoff(start, table.retentionDays);
      dbLanes[i % laneCount]?.tables.push({ table: table.ref, cutoff, n: tableCount + i });
      planned.push({ table, cutoff });
    });
    lanes.push(...dbLanes);
    tableCount += tables.length;
  }
  const unknownRefs = [...wanted].filter((ref) => !found.has(ref));
  if (unknownRefs.length > 0) {
    // A name without its schema (`-t events`) is the usual slip: name the configured tables it matches.
    const unknown = unknownRefs.map((ref) => `${ref}${didYouMean(tablesNamedLike(databases, ref))}`);
    throw new ConfigError(`tables not in the config: ${unknown.join(', ')}`);
  }
  const plan: PlanOutput = {
    runId: input.runId,
    maxConcurrency: config.run.maxConcurrency,
    maxBatches: config.defaults.maxBatchesPerRun,
    tableCount,
    // The run's start too: an execution started again under the name 90 days on must not meet the earlier one's
    // children, whose names Step Functions keeps for 90 days after they end, hours after the parent started.
    childKey: createHash('sha256').update(`${input.runId}\n${input.startTime}`).digest('hex').slice(0, 32),
    lanes: request.dryRun ? [] : lanes,
    dryRun: request.dryRun,
    report: request.dryRun ? await buildPlanReport(deps, input.runId, planned) : undefined,
  };
  const bytes = Buffer.byteLength(JSON.stringify(plan));
  if (bytes > MAX_PLAN_BYTES) {
    throw new ConfigError(
      `the plan for ${tableCount} tables is ${bytes} bytes, over ${MAX_PLAN_BYTES}; split the run by database`,
    );
  }
  // A dry run changes nothing: no audit event, no config fingerprint (the plan test checks S3 and DynamoDB).
  if (request.dryRun) {
    deps.telemetry.info('dry run planned', { runId: input.runId, tables: tableCount });
    return plan;
  }
  // Before any child starts: only these record a table's outcome in this run (lock core, assertRunsChild).
  const children = lanes.flatMap(({ database, tables }) =>
    tables.map(({ table, n }) => ({ database, table, name: `${plan.childKey}-${n}` })),
  );
  await deps.runRecords.recordChildren(input.runId, children);
  await recordConfigChange(deps, input.runId);
  // The same details on every attempt (the config-changed event names what changed), so a retry is read as one event.
  await recordAuditEvent(deps, {
    id: auditEventId('run-started', input.runId),
    kind: 'run-started',
    time: new Date(input.startTime).toISOString(),
    runId: input.runId,
    actor: 'step:plan',
    details: {
      tables: tableCount,
      lanes: lanes.length,
      ...(request.database ? { database: request.database } : {}),
    },
  });
  deps.telemetry.info('run planned', {
    runId: input.runId,
    tables: tableCount,
    lanes: lanes.length,
    dryRun: request.dryRun,
  });
  return plan;
}
