import type pg from 'pg';
import { readExpectation } from '../archive/catalog.js';
import type { Manifest } from '../archive/format.js';
import type { InventoryEntry } from '../archive/inventory.js';
import type { ArchiveStore } from '../archive/store.js';
import { quoteIdent } from '../database/table-sql.js';
import { ArchiveIntegrityError, TableNotUsableError } from '../errors/step-errors.js';
import { qualified, resolveTypeName, tableLabel } from './restore-sql.js';
import type { RestoreTask, TargetTemplate } from './restore-task.js';

/** What a relation that is no table is, as the error names it (pg_class.relkind). */
const RELATION_KINDS: Record<string, string> = {
  v: 'a view',
  m: 'a materialized view',
  f: 'a foreign table',
  S: 'a sequence',
  c: 'a composite type',
  i: 'an index',
  I: 'a partitioned index',
  t: 'a TOAST table',
};

/**
 * Creates a separate restore target: like the source (columns, constraints, indexes, identity, generated columns)
 * when the source exists, else as the task's template (every column the selected archives hold, with its type, NOT
 * NULL where every archive has it so, and the key as primary key). The source's defaults are kept, but for those
 * that take a sequence's next value: a serial default would tie the copy to the source's sequence (an identity column
 * gets a sequence of its own, INCLUDING IDENTITY). Archives older than a column added with NOT NULL DEFAULT restore
 * into the copy as into the source, with the default. Runs in the caller's transaction. Returns false, having
 * created nothing, when the name was taken meanwhile (another restore created the same target): the caller describes
 * it and checks it as any existing target.
 */
export async function createTarget(client: pg.ClientBase, task: RestoreTask): Promise<boolean> {
  // The CREATE under a savepoint of its own: losing the race to another restore's CREATE leaves the transaction usable.
  await client.query('SAVEPOINT create_target');
  try {
    await create(client, task);
  } catch (error) {
    if (!createdMeanwhile(error)) throw error;
    await client.query('ROLLBACK TO SAVEPOINT create_target');
    return false;
  }
  await client.query('RELEASE SAVEPOINT create_target');
  return true;
}

/**
 * Whether the CREATE failed because the name was taken after the caller found no table of it: by another restore's
 * CREATE, committed before ours looked (42P07 duplicate_table; 42710 duplicate_object when it committed between our
 * relation's check and its row type's), or while ours waited on its uncommitted catalog rows, where only the catalog's
 * unique name indexes speak (23505 on pg_type's or pg_class's, which a CREATE TABLE raises for nothing else). A type
 * of that name that is no table (an enum, a domain) raises 42710 too: the caller finds no table and says so.
 */
function createdMeanwhile(error: unknown): boolean {
  const { code } = error as { code?: unknown };
  return code === '42P07' || code === '42710' || code === '23505';
}

/** The source's relkind (pg_class), undefined when it is gone. */
export async function sourceKind(client: pg.ClientBase, task: RestoreTask): Promise<string | undefined> {
  const source = await client.query<{ relkind: string }>(
    `SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [task.source.schema, task.source.name],
  );
  return source.rows[0]?.relkind;
}

/** Manifests read at once while a template is built: the plan function reads every selected one. */
const MANIFEST_READS = 32;

/**
 * The table the archives `keys` fit in, taken in the order they were exported: every column any of them holds, in the
 * order first met, with the type the newest gave it; NOT NULL only where every archive holds the column NOT NULL; the
 * key of the newest. Only committed archives shape it when there are any (or `requireInventory` asks for them), each
 * by the manifest its commit recorded: an archive a bucket writer planted, or a manifest rewritten with a later
 * `exportedAt`, would otherwise give the new table its types and key, and every committed archive would then be
 * refused or converted. An archive whose sidecar cannot be read is left out here (restore refuses it by name later).
 * Undefined when none has a manifest (the Python tool's archives).
 */
export async function targetTemplate(
  store: ArchiveStore,
  keys: readonly string[],
  committed: ReadonlyMap<string, Pick<InventoryEntry, 'manifestSha256'>>,
  requireInventory: boolean,
): Promise<TargetTemplate | undefined> {
  const shaping =
    requireInventory || keys.some((key) => committed.has(key))
      ? keys.filter((key) => committed.has(key))
      : keys;
  const manifests: Pick<Manifest, 'columns' | 'keyColumns' | 'exportedAt'>[] = [];
  for (let start = 0; start < shaping.length; start += MANIFEST_READS) {
    const read = await Promise.all(
      shaping.slice(start, start + MANIFEST_READS).map(async (key) => {
        try {
          const expectation = await readExpectation(store, { key, format: 'native' });
          const recorded = committed.get(key)?.manifestSha256;
          return recorded === undefined || recorded === expectation.manifestSha256
            ? expectation.manifest
            : undefined;
        } catch (error) {
          if (error instanceof ArchiveIntegrityError) return undefined;
          throw error;
        }
      }),
    );
    for (const manifest of read)
      if (manifest)
        manifests.push({
          columns: manifest.columns,
          keyColumns: manifest.keyColumns,
          exportedAt: manifest.exportedAt,
        });
  }
  // Keys end in a content hash: the last of a day is any run's. ISO instants sort as they happened.
  manifests.sort((a, b) => (a.exportedAt < b.exportedAt ? -1 : a.exportedAt > b.exportedAt ? 1 : 0));
  const last = manifests.at(-1);
  if (!last) return undefined;
  const columns = new Map<string, TargetTemplate['columns'][number]>();
  for (const manifest of manifests) {
    for (const column of manifest.columns) {
      const seen = columns.get(column.name);
      columns.set(column.name, {
        name: column.name,
        type: column.type,
        nullable: column.nullable || (seen ? seen.nullable : manifest !== manifests[0]),
      });
    }
    // A column this archive lacks takes no value from it: NULL.
    for (const [name, column] of columns)
      if (!manifest.columns.some((c) => c.name === name)) columns.set(name, { ...column, nullable: true });
  }
  return { columns: [...columns.values()], keyColumns: last.keyColumns };
}

async function create(client: pg.ClientBase, task: RestoreTask): Promise<void> {
  const relkind = await sourceKind(client, task);
  if (relkind !== undefined) {
    if (relkind !== 'r' && relkind !== 'p') {
      throw new TableNotUsableError(
        `cannot create ${tableLabel(task.target)} like the archived table: the source ${tableLabel(task.source)} is ${RELATION_KINDS[relkind] ?? 'no table'} now, not a table (renamed, and a view put in its place?); create the target first, with the archived columns and a key, and restore into it`,
      );
    }
    await client.query(
      `CREATE TABLE ${qualified(task.target)} (LIKE ${qualified(task.source)} INCLUDING ALL EXCLUDING DEFAULTS)`,
    );
    await copyDefaults(client, task);
    return;
  }
  if (!task.template) {
    throw new TableNotUsableError(
      `cannot create ${tableLabel(task.target)}: the source ${tableLabel(task.source)} is gone and no archive describes its columns; create the target first`,
    );
  }
  const columns: string[] = [];
  for (const column of task.template.columns) {
    const resolved = await resolveTypeName(client, column.type);
    if (!resolved) throw new TableNotUsableError(`archived column type ${column.type} is unknown here`);
    columns.push(`${quoteIdent(column.name)} ${resolved}${column.nullable ? '' : ' NOT NULL'}`);
  }
  columns.push(`PRIMARY KEY (${task.template.keyColumns.map(quoteIdent).join(', ')})`);
  await client.query(`CREATE TABLE ${qualified(task.target)} (${columns.join(', ')})`);
}

async function copyDefaults(client: pg.ClientBase, task: RestoreTask): Promise<void> {
  const defaults = await client.query<{ column: string; expression: string }>(
    `SELECT a.attname AS column, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS expression
       FROM pg_catalog.pg_attrdef d
       JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
      WHERE d.adrelid = pg_catalog.format('%I.%I', $1::text, $2::text)::pg_catalog.regclass AND NOT a.attisdropped AND a.attgenerated = ''
        AND pg_catalog.strpos(pg_catalog.pg_get_expr(d.adbin, d.adrelid), 'nextval(') = 0
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend p JOIN pg_catalog.pg_class s ON s.oid = p.refobjid
                         WHERE p.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND p.objid = d.oid
                           AND p.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND s.relkind = 'S')
      ORDER BY a.attnum`,
    [task.source.schema, task.source.name],
  );
  if (defaults.rows.length === 0) return;
  await client.query(
    `ALTER TABLE ${qualified(task.target)} ${defaults.rows
      .map(({ column, expression }) => `ALTER COLUMN ${quoteIdent(column)} SET DEFAULT ${expression}`)
      .join(', ')}`,
  );
}
