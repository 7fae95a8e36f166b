import { ConfigError } from '../errors/step-errors.js';
import { type TableGovernance, tableGovernance } from './resolved-table.js';
import type { ArchiverConfig, TableConfig } from './schema.js';

interface GovernanceIssue {
  path: (string | number)[];
  message: string;
}

const DAY_MS = 86_400_000;

/**
 * The cut-off of a run that starts at `start`: the UTC midnight at or before `start` minus the retention. Rounding
 * down to a day keeps every row at least `retentionDays` (up to a day longer), archives each UTC day whole in one run
 * instead of a partial object per run, and makes which rows a run takes independent of the hour it starts at.
 */
export function retentionCutoff(start: Date | number, retentionDays: number): string {
  const at = typeof start === 'number' ? start : start.getTime();
  return new Date(Math.floor(at / DAY_MS) * DAY_MS - retentionDays * DAY_MS).toISOString();
}

/**
 * How far a function's clock may run behind the execution's start time that Plan computed the cut-off from: near
 * midnight the two can read different days. Only a later cut-off is dangerous; a run started on an earlier day
 * carries an earlier one and is always accepted.
 */
const CUTOFF_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * The latest cut-off a step may act on at `now`: that of a run starting now (within the clock skew), and no later
 * than that of a run started when the execution did (`startedAt`, when the step knows it), under the table's
 * effective retention (its configured retention, never below the policy's minimum for it). Without `startedAt` the
 * skew would let whoever starts an execution in the last minutes before a UTC midnight hand in the next day's
 * cut-off, and have rows deleted minutes before their retention ended.
 */
function latestAllowedCutoff(governance: TableGovernance, now: Date, startedAt?: string): string {
  const days = Math.max(governance.retentionDays, governance.minRetentionDays ?? 0);
  const started = startedAt === undefined ? Number.POSITIVE_INFINITY : Date.parse(startedAt);
  return retentionCutoff(Math.min(now.getTime() + CUTOFF_CLOCK_SKEW_MS, started), days);
}

/**
 * Refuses a cut-off later than the retention allows: the execution input carries it, and whoever can start an
 * execution can write any. Every step that selects or deletes rows checks it against the config and the policy.
 */
export function assertCutoffAllowed(
  config: ArchiverConfig,
  database: string,
  table: TableConfig,
  cutoff: string,
  now: Date,
  startedAt?: string,
): void {
  const governance = tableGovernance(config, table);
  refuseProblems(tableProblems(config, database, table, governance), database, table);
  const latest = latestAllowedCutoff(governance, now, startedAt);
  if (!(Date.parse(cutoff) <= Date.parse(latest))) {
    // Which bound refused it: the execution's start, or this step's clock (which may run behind the planner's).
    const byStart = startedAt !== undefined && Date.parse(startedAt) < now.getTime() + CUTOFF_CLOCK_SKEW_MS;
    const bound = byStart
      ? `for an execution started ${startedAt}`
      : `by this step's clock, which reads ${now.toISOString()}: is it more than ${CUTOFF_CLOCK_SKEW_MS / 60_000} minutes behind the clock that planned the run?`;
    throw new ConfigError(
      `cut-off ${cutoff} of ${tableName(database, table)} is later than its retention allows (latest ${latest}, ${bound}); nothing was archived or deleted`,
    );
  }
}

const tableName = (database: string, table: TableConfig) => `${database}/${table.schema}.${table.name}`;

/** The longest a month object's first row waits for the rest of its month to pass the cut-off. */
const MONTH_OBJECT_WAIT_DAYS = 31;

/** What is wrong with one table under the policy, each with the config field it concerns (relative to the table). */
function tableProblems(
  config: ArchiverConfig,
  database: string,
  table: TableConfig,
  g: TableGovernance,
): GovernanceIssue[] {
  const name = tableName(database, table);
  const known = Object.keys(config.policy?.classifications ?? {});
  if (table.classification && !known.includes(table.classification)) {
    return [
      {
        path: ['classification'],
        message: `unknown classification "${table.classification}" (policy.classifications: ${known.join(', ') || 'none'})`,
      },
    ];
  }
  const by = g.classification ? ` (classification ${g.classification})` : '';
  const retentionField =
    table.retentionDays === undefined ? 'retentionDays (from defaults)' : 'retentionDays';
  const problems: GovernanceIssue[] = [];
  if (g.minRetentionDays !== undefined && g.retentionDays < g.minRetentionDays) {
    problems.push({
      path: ['retentionDays'],
      message: `${name}: ${retentionField} ${g.retentionDays} is below the policy minimum of ${g.minRetentionDays} days${by}`,
    });
  }
  if (g.maxRetentionDays !== undefined && g.retentionDays > g.maxRetentionDays) {
    problems.push({
      path: ['retentionDays'],
      message: `${name}: ${retentionField} ${g.retentionDays} is above the policy maximum of ${g.maxRetentionDays} days${by}`,
    });
  } else if (
    g.maxRetentionDays !== undefined &&
    table.objectSpan === 'month' &&
    g.retentionDays + MONTH_OBJECT_WAIT_DAYS > g.maxRetentionDays
  ) {
    problems.push({
      path: ['objectSpan'],
      message: `${name}: objectSpan month keeps a row up to ${MONTH_OBJECT_WAIT_DAYS} days past its ${retentionField} ${g.retentionDays} (its month is archived once all of it is past the cut-off), above the policy maximum of ${g.maxRetentionDays} days${by}: ${g.maxRetentionDays > MONTH_OBJECT_WAIT_DAYS ? `lower retentionDays to ${g.maxRetentionDays - MONTH_OBJECT_WAIT_DAYS} or keep day objects` : 'keep day objects'}`,
    });
  }
  if (g.requiresKms && !config.s3.kmsKeyId) {
    problems.push({
      path: [table.critical ? 'critical' : 'classification'],
      message: `${name} requires SSE-KMS archives (${table.critical ? 'critical: true' : `classification ${g.classification} has requireKms`}): set s3.kmsKeyId`,
    });
  }
  return problems;
}

/** Every policy problem of a config, with full paths: config validation reports them as field errors. */
export function governanceIssues(config: ArchiverConfig): GovernanceIssue[] {
  const issues: GovernanceIssue[] = [];
  const policy = config.policy;
  const bounds = [
    { path: ['policy'], min: policy?.minRetentionDays, max: policy?.maxRetentionDays },
    ...Object.entries(policy?.classifications ?? {}).map(([name, c]) => ({
      path: ['policy', 'classifications', name],
      min: c.minRetentionDays,
      max: c.maxRetentionDays,
    })),
  ];
  for (const { path, min, max } of bounds) {
    if (min !== undefined && max !== undefined && min > max) {
      issues.push({
        path: [...path, 'maxRetentionDays'],
        message: `must not be below minRetentionDays (${min})`,
      });
    }
  }
  config.databases.forEach((db, i) => {
    db.tables.forEach((table, j) => {
      for (const problem of tableProblems(config, db.name, table, tableGovernance(config, table))) {
        issues.push({ path: ['databases', i, 'tables', j, ...problem.path], message: problem.message });
      }
    });
  });
  return issues;
}

/**
 * Refuses a table the policy forbids archiving (at run time too: a config can reach a function without the CLI's
 * validation, e.g. an older bundle). Throws ConfigError naming the table, its retention and the bound.
 */
export function assertTableGoverned(config: ArchiverConfig, database: string, table: TableConfig): void {
  refuseProblems(tableProblems(config, database, table, tableGovernance(config, table)), database, table);
}

function refuseProblems(problems: GovernanceIssue[], database: string, table: TableConfig): void {
  if (problems.length > 0) {
    throw new ConfigError(
      `policy refuses ${tableName(database, table)}: ${problems.map((p) => p.message).join('; ')}`,
    );
  }
}
