import { createHash } from 'node:crypto';
import { type Column, manifestKeyFor, parseManifest, type SchemaDrift } from '../archive/format.js';
import { manifestSha256 } from '../archive/integrity.js';
import type { ResolvedTable } from '../config/resolved-table.js';
import {
  ArchiveInColdStorageError,
  ArchiveIntegrityError,
  SchemaChangedError,
} from '../errors/step-errors.js';
import type { StepDeps } from '../step/step-deps.js';
import type { TableTask } from '../step/table-task.js';
import { auditEventId, recordAuditEvent } from '../telemetry/audit-trail.js';

/**
 * A column type as comparable across archive versions. Sessions now pin `search_path = pg_catalog, pg_temp`, so
 * format_type() names a user type with its schema (`public.mood`); archives written before named one in `public`
 * without it (`mood`), as the default search_path made it visible. Both spell the same type.
 */
export const comparableType = (type: string): string => type.replace(/^public\./, '');

/** How `current` differs from `previous` in names, types, order and nullability; undefined when it does not. */
export function compareColumns(previous: Column[], current: Column[]): SchemaDrift | undefined {
  const before = new Map(previous.map((c) => [c.name, c]));
  const after = new Map(current.map((c) => [c.name, c]));
  const kept = current.filter((c) => before.has(c.name));
  const drift: SchemaDrift = {
    added: current.filter((c) => !before.has(c.name)).map(({ name, type }) => ({ name, type })),
    removed: previous.filter((c) => !after.has(c.name)).map(({ name, type }) => ({ name, type })),
    retyped: kept
      .filter((c) => comparableType(before.get(c.name)?.type ?? '') !== comparableType(c.type))
      .map((c) => ({ name: c.name, from: before.get(c.name)?.type ?? '', to: c.type })),
    nullability: kept
      .filter((c) => before.get(c.name)?.nullable !== c.nullable)
      .map((c) => ({ name: c.name, nullable: c.nullable })),
    reordered:
      kept.map((c) => c.name).join('\u0000') !==
      previous
        .filter((c) => after.has(c.name))
        .map((c) => c.name)
        .join('\u0000'),
  };
  const changed =
    drift.added.length + drift.removed.length + drift.retyped.length + drift.nullability.length > 0 ||
    drift.reordered;
  return changed ? drift : undefined;
}

/**
 * The columns of the manifest of `archiveKey`, the table's last committed archive, as its commit recorded it. A
 * bucket writer may rewrite that object (into something that is not JSON, or a manifest of other columns, which would
 * make up a drift or hide one), or delete it: only the manifest whose SHA-256 the inventory entry binds is read. One
 * that cannot be read so, is missing, or is in cold storage, leaves drift that only informs (`continue`) unchecked for this batch, with a
 * warning, rather than stop the table; `fail` says which object and why.
 */
async function lastManifestColumns(
  deps: Pick<StepDeps, 'store' | 'inventory' | 'telemetry'>,
  task: TableTask,
  table: ResolvedTable,
  archiveKey: string,
): Promise<Column[] | undefined> {
  const key = manifestKeyFor(archiveKey);
  let text: string | undefined;
  let problem: string | undefined;
  try {
    text = await deps.store.getText(key);
  } catch (error) {
    // A wide table's columns are not kept on the lease item, and the manifest that holds them may have moved to cold
    // storage since (a table archived no more for a while): `fail` says which object to restore.
    if (error instanceof ArchiveInColdStorageError) {
      if (table.onSchemaDrift === 'fail') throw error;
      deps.telemetry.warn('schema drift not checked: the last archive’s manifest is in cold storage', {
        database: task.database,
        table: task.table,
        manifest: key,
      });
      return undefined;
    }
    if (!(error instanceof ArchiveIntegrityError)) throw error;
    problem = error.message;
  }
  // Gone (in AWS, a delete marker any bucket writer may add): the drift it would show goes unseen as well.
  if (text === undefined && problem === undefined)
    problem = `${key} is missing (deleted in the bucket, or expired?)`;
  if (text !== undefined) {
    const entry = (await deps.inventory.entries(task.database, task.table, [archiveKey])).get(archiveKey);
    const manifest = parseManifest(text);
    if (entry?.manifestSha256 !== undefined && entry.manifestSha256 !== manifestSha256(text))
      problem = `${key} is not the manifest its archive's commit recorded (rewritten in the bucket?)`;
    else if (!manifest) problem = `${key} is not a valid format-1 manifest`;
    else return manifest.columns;
  }
  if (table.onSchemaDrift === 'fail')
    throw new ArchiveIntegrityError(
      `schema drift of ${task.table} cannot be checked against its last archive: ${problem}; put its manifest back, or archive once with onSchemaDrift continue`,
    );
  deps.telemetry.warn('schema drift not checked: the last archive’s manifest cannot be read as committed', {
    database: task.database,
    table: task.table,
    manifest: key,
    problem,
  });
  return undefined;
}

const columnsHash = (columns: Column[]) =>
  createHash('sha256').update(JSON.stringify(columns)).digest('hex').slice(0, 16);

/**
 * The table's columns now against those of its last committed archive: kept on the lock item (export reads that
 * item anyway, while finding the last manifest in S3 would mean listing the table's archives). Tables archived
 * before the lock item kept columns fall back to the manifest of `lastArchiveKey`, one read. A drift is written to
 * the audit trail (a retry writes the same event id), then fails the table or is returned for the manifest.
 */
export async function checkSchemaDrift(
  deps: Pick<StepDeps, 'config' | 'locks' | 'store' | 'inventory' | 'now' | 'telemetry'>,
  task: TableTask,
  table: ResolvedTable,
  current: Column[],
): Promise<SchemaDrift | undefined> {
  const state = await deps.locks.get(task.database, task.table);
  const previous =
    state.lastColumns ??
    (state.lastArchiveKey ? await lastManifestColumns(deps, task, table, state.lastArchiveKey) : undefined);
  if (!previous) return undefined;
  const found = compareColumns(previous, current);
  if (!found) return undefined;
  const drift = { ...found, previousArchiveKey: state.lastArchiveKey };
  const action = table.onSchemaDrift;
  await recordAuditEvent(deps, {
    id: auditEventId(
      'schema-drift',
      task.runId,
      task.database,
      task.table,
      columnsHash(previous),
      columnsHash(current),
    ),
    kind: 'schema-drift',
    time: deps.now().toISOString(),
    runId: task.runId,
    database: task.database,
    table: task.table,
    actor: 'step:export',
    details: {
      action,
      added: drift.added.map((c) => `${c.name} ${c.type}`),
      removed: drift.removed.map((c) => `${c.name} ${c.type}`),
      retyped: drift.retyped.map((c) => `${c.name} ${c.from} -> ${c.to}`),
      nullability: drift.nullability.map((c) => `${c.name} ${c.nullable ? 'NULL' : 'NOT NULL'}`),
      reordered: drift.reordered,
    },
  });
  deps.telemetry.warn('schema drift since the last archive', {
    database: task.database,
    table: task.table,
    action,
    added: drift.added.length,
    removed: drift.removed.length,
    retyped: drift.retyped.length,
    nullability: drift.nullability.length,
    reordered: drift.reordered,
  });
  if (action === 'fail') {
    const changes = [
      ...drift.added.map((c) => `added ${c.name}`),
      ...drift.removed.map((c) => `removed ${c.name}`),
      ...drift.retyped.map((c) => `${c.name} retyped ${c.from} -> ${c.to}`),
      ...drift.nullability.map((c) => `${c.name} now ${c.nullable ? 'nullable' : 'NOT NULL'}`),
      ...(drift.reordered ? ['columns reordered'] : []),
    ];
    throw new SchemaChangedError(
      `${task.database}/${task.table}: columns changed since the last archive (${changes.join(', ')}); onSchemaDrift is "fail": set it to "continue" for this table to archive under the new columns`,
    );
  }
  return drift;
}
