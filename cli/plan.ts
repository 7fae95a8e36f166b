import { type PlanReport, PlanReportSchema, type TablePlan } from '../lambdas/shared/batch/plan-report.js';
import { resolveConfiguredTable } from '../lambdas/shared/config/resolved-table.js';
import { type ArchiverConfig, tableRef } from '../lambdas/shared/config/schema.js';
import { ConfigError, DatabaseUnavailableError } from '../lambdas/shared/errors/step-errors.js';
import type { LocalEnvironment } from '../local/run.js';
import { type SafeText, safeLines } from './output.js';
import { formatNumber } from './report.js';

export interface PlanSelection {
  database?: string;
  tables?: string[];
}

/**
 * The plan report of a dry run, through the very archive state machine a run uses (input `dryRun: true`): the Plan
 * step computes it and the DryRun? choice ends the execution with it, before any lane takes a lease.
 */
export async function planLocally(local: LocalEnvironment, selection: PlanSelection): Promise<PlanReport> {
  await assertDatabasesReachable(local, selection);
  const execution = await local.workflow().runArchive({ ...selection, dryRun: true });
  if (execution.status !== 'SUCCEEDED') {
    throw Object.assign(new Error(execution.error?.message ?? 'the dry run failed'), {
      name: execution.error?.name ?? 'Error',
    });
  }
  return PlanReportSchema.parse(execution.output);
}

/**
 * Fails at once, naming the database, when a selected database cannot be reached (through the steps' own connection
 * path). A plan step (the dry run's, a restore's) would retry it as the state machine says, from half a minute to a
 * few minutes of waiting: right for a scheduled run, not for someone at a terminal or a CI gate.
 */
export async function assertDatabasesReachable(
  local: LocalEnvironment,
  selection: Pick<PlanSelection, 'database'>,
): Promise<void> {
  const deps = local.deps();
  for (const { name } of local.config.databases.filter(
    (db) => !selection.database || db.name === selection.database,
  )) {
    try {
      const database = await deps.database(name);
      await database.withConnection((client) => client.query('SELECT 1'));
    } catch (error) {
      if (!(error instanceof DatabaseUnavailableError)) throw error;
      throw new DatabaseUnavailableError(
        `database ${name} cannot be reached (${error.message}); \`local doctor -c <config>\` checks its connection and TLS`,
      );
    }
  }
}

/**
 * Local S3 (s3rver) has no SSE-KMS, so a local run could never publish a critical table's archive (upload would
 * refuse it): refuse such a run before it starts, naming the tables.
 */
export function refuseCriticalTablesLocally(config: ArchiverConfig, selection: PlanSelection): void {
  const critical = config.databases
    .filter((db) => !selection.database || db.name === selection.database)
    .flatMap((db) =>
      db.tables
        .filter((t) => !selection.tables || selection.tables.includes(tableRef(t)))
        .filter((t) => resolveConfiguredTable(config, db, t).governance.requiresKms)
        .map((t) => `${db.name}/${tableRef(t)}`),
    );
  if (critical.length > 0) {
    throw new ConfigError(
      `critical tables need AWS KMS (SSE-KMS archives), which local mode's S3 does not provide: ${critical.join(', ')}. Archive them with the deployed workflow, or leave them out with --table`,
    );
  }
}

/**
 * 1 when the dry run found a table a run would refuse (so `plan` can gate CI before a deployment), else 0. Held and
 * locked tables are states a run expects and reports; they do not fail the plan.
 */
export function planExitCode(report: PlanReport): 0 | 1 {
  return report.tables.some((t) => t.action === 'unusable') ? 1 : 0;
}

const formatBytes = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

const ACTIONS: Record<TablePlan['action'], string> = {
  archive: 'would archive',
  nothing: 'nothing eligible',
  held: 'HELD (skipped)',
  locked: 'LOCKED (skipped)',
  unusable: 'REFUSED',
  uncounted: 'NOT COUNTED',
};

const COUNT_METHODS: Record<TablePlan['countMethod'], string> = {
  index: 'counted through the index on the timestamp column',
  'sequential-scan': 'no index on the timestamp column: counted by a sequential scan (slow on a big table)',
  none: 'not counted',
};

export function formatPlanReport(report: PlanReport): SafeText {
  const lines = [`Plan (dry run ${report.runId}, ${report.plannedAt}); nothing was changed.`];
  for (const t of report.tables) {
    lines.push(`  ${t.database}/${t.table}: ${ACTIONS[t.action]}`);
    if (t.error) lines.push(`    ${t.error}`);
    else {
      lines.push(
        `    eligible rows ${formatNumber(t.eligibleRows)} (${COUNT_METHODS[t.countMethod]}); oldest ${t.oldestRow ?? '-'}; cut-off ${t.cutoff}`,
      );
      lines.push(
        `    batches ${formatNumber(t.batches)}${t.runsNeeded > 1 ? ` (${t.runsNeeded} runs at the batch budget)` : ''}; about ${formatBytes(t.estimatedBytes)}${t.bytesNote ? ` (${t.bytesNote})` : ''}`,
      );
      if (t.objectSpanNote) lines.push(`    objects: ${t.objectSpanNote}`);
    }
    lines.push(`    lock: ${t.lock}`);
    lines.push(`    legal hold: ${t.legalHold ?? 'none'}`);
    lines.push(`    retention: ${t.retention}`);
    lines.push(`    encryption: ${t.encryption}`);
  }
  return safeLines(lines);
}
