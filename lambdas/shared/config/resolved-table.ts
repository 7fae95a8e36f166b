import type { ObjectSpan } from '../archive/format.js';
import { ConfigError } from '../errors/step-errors.js';
import { type ArchiverConfig, type DatabaseConfig, type TableConfig, tableRef } from './schema.js';

/** Where a table is and how its rows are told apart and dated: what reading and describing it needs. */
export interface TableIdentity {
  database: string;
  schema: string;
  name: string;
  ref: string;
  timestampColumn: string;
  timestampTimeZone: string;
  keyColumns?: string[];
}

/**
 * Governance of one table: its effective retention against the policy's bounds (global, tightened by its
 * classification), whether its archives need SSE-KMS, and a legal hold set in the config.
 */
export interface TableGovernance {
  classification?: string;
  retentionDays: number;
  minRetentionDays?: number;
  maxRetentionDays?: number;
  /** `critical: true`, or a classification with `requireKms: true`. */
  requiresKms: boolean;
  /** The reason of a legal hold set in the config (`legalHold: true` reads "legal hold in config"). */
  configHold?: string;
}

/** A table with every default and the policy applied: what a step works with, resolved once per invocation. */
export interface ResolvedTable extends TableIdentity {
  retentionDays: number;
  batchSize: number;
  objectSpan: ObjectSpan;
  onSchemaDrift: 'fail' | 'continue';
  /** The database's replica lag limit, which export waits on. */
  replicaLag?: DatabaseConfig['replicaLag'];
  governance: TableGovernance;
  /** The table's entry as configured: the policy checks (governance.ts) name the fields it sets. */
  settings: TableConfig;
}

export function findDatabase(config: ArchiverConfig, database: string): DatabaseConfig {
  const db = config.databases.find((d) => d.name === database);
  if (!db) throw new ConfigError(`database "${database}" is not in the config`);
  return db;
}

const tighter = (a: number | undefined, b: number | undefined, pick: (x: number, y: number) => number) =>
  a === undefined ? b : b === undefined ? a : pick(a, b);

/** The governance part of a table's resolution; config validation applies it to every table. */
export function tableGovernance(config: ArchiverConfig, table: TableConfig): TableGovernance {
  const policy = config.policy;
  const classified = table.classification ? policy?.classifications[table.classification] : undefined;
  return {
    classification: table.classification,
    retentionDays: table.retentionDays ?? config.defaults.retentionDays,
    minRetentionDays: tighter(policy?.minRetentionDays, classified?.minRetentionDays, Math.max),
    maxRetentionDays: tighter(policy?.maxRetentionDays, classified?.maxRetentionDays, Math.min),
    requiresKms: table.critical === true || classified?.requireKms === true,
    configHold:
      table.legalHold === true
        ? 'legal hold in config'
        : typeof table.legalHold === 'string'
          ? table.legalHold
          : undefined,
  };
}

/** Resolves a configured table of `db`: the one place defaults and policy are applied to a table. */
export function resolveConfiguredTable(
  config: ArchiverConfig,
  db: DatabaseConfig,
  table: TableConfig,
): ResolvedTable {
  const governance = tableGovernance(config, table);
  return {
    database: db.name,
    schema: table.schema,
    name: table.name,
    ref: tableRef(table),
    timestampColumn: table.timestampColumn,
    timestampTimeZone: table.timestampTimeZone,
    keyColumns: table.keyColumns,
    retentionDays: governance.retentionDays,
    batchSize: table.batchSize ?? config.defaults.batchSize,
    objectSpan: table.objectSpan ?? 'day',
    onSchemaDrift: table.onSchemaDrift ?? config.defaults.onSchemaDrift,
    replicaLag: db.replicaLag,
    governance,
    settings: table,
  };
}

/**
 * The table `ref` ("schema.name") of `database`, resolved; undefined when the database does not list it (a config
 * deployed while a run was going). Throws ConfigError for a database the config does not name.
 */
export function resolveTableIfConfigured(
  config: ArchiverConfig,
  database: string,
  ref: string,
): ResolvedTable | undefined {
  const db = findDatabase(config, database);
  const table = db.tables.find((t) => tableRef(t) === ref);
  return table && resolveConfiguredTable(config, db, table);
}

/** The table `ref` ("schema.name") of `database`, resolved; throws ConfigError when the config does not list it. */
export function resolveTable(config: ArchiverConfig, database: string, ref: string): ResolvedTable {
  const table = resolveTableIfConfigured(config, database, ref);
  if (!table)
    throw new ConfigError(
      `table "${ref}" is not configured for database "${database}"${didYouMean(tablesNamedLike([findDatabase(config, database)], ref))}`,
    );
  return table;
}

const MAX_SUGGESTIONS = 5;

/**
 * The configured tables an unknown `ref` most likely meant, as "schema.name": the table named without its schema
 * (`events` for `public.events`), under another schema, or in another case. Only names from the config are given back.
 */
export function tablesNamedLike(databases: readonly DatabaseConfig[], ref: string): string[] {
  const wanted = ref.toLowerCase();
  const like = databases
    .flatMap((db) => db.tables)
    .filter((t) => {
      const name = t.name.toLowerCase();
      return wanted === name || wanted.endsWith(`.${name}`) || wanted === tableRef(t).toLowerCase();
    })
    .map(tableRef);
  return [...new Set(like)].sort().slice(0, MAX_SUGGESTIONS);
}

/** " (did you mean a or b?)" after an unknown name, or nothing. */
export const didYouMean = (refs: readonly string[]): string =>
  refs.length > 0 ? ` (did you mean ${refs.join(' or ')}?)` : '';
