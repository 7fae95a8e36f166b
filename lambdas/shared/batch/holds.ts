import type pg from 'pg';
import { findDatabase, resolveTableIfConfigured } from '../config/resolved-table.js';
import { tableRef } from '../config/schema.js';
import type { TableShape } from '../database/table-shape.js';
import { TableNotUsableError } from '../errors/step-errors.js';
import type { StepDeps } from '../step/step-deps.js';

/**
 * Why a table is under legal hold, or undefined: a hold in the config (`configHold`, from the table's resolved
 * governance) or an operator's hold item in the lock table (`audit-archiver hold set`), which takes effect without
 * a redeploy.
 */
export async function activeHold(
  deps: Pick<StepDeps, 'holds'>,
  database: string,
  table: string,
  configHold: string | undefined,
): Promise<string | undefined> {
  if (configHold) return `legal hold (config): ${configHold}`;
  const hold = await deps.holds.get(database, table);
  return hold
    ? `legal hold (set ${hold.setAt}${hold.setBy ? ` by ${hold.setBy}` : ''}): ${hold.reason}`
    : undefined;
}

/** A table the config lists that shares rows with another through partitioning, and the hold it is under. */
export interface HeldRelative {
  schema: string;
  name: string;
  hold: string;
}

/**
 * The first held table among those the config lists beside `table` in `database` that share its rows through
 * partitioning: its partitions (at any depth) and, with `ancestors`, the partitioned tables it is a partition of.
 * Holds are set only on configured tables, so the lock table is read only for a configured relative: a table without
 * one costs no call but the catalog query, and none when the config lists no other table of the database.
 */
export async function heldPartitionRelative(
  deps: Pick<StepDeps, 'config' | 'holds'>,
  client: pg.ClientBase,
  database: string,
  table: { schema: string; name: string },
  { ancestors }: { ancestors: boolean },
): Promise<HeldRelative | undefined> {
  const db = findDatabase(deps.config, database);
  const others = db.tables.filter((t) => t.schema !== table.schema || t.name !== table.name);
  if (others.length === 0) return undefined;
  const relatives = await client.query<{ schema: string; name: string }>(
    `WITH t AS (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $3 AND c.relname = $4)
     SELECT n.nspname AS schema, c.relname AS name
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        AND (EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(c.oid) AS a WHERE a.relid IN (SELECT oid FROM t))
             OR ($5 AND c.oid IN (SELECT a.relid FROM t, pg_catalog.pg_partition_ancestors(t.oid) AS a)))
      ORDER BY 1, 2`,
    [others.map((t) => t.schema), others.map((t) => t.name), table.schema, table.name, ancestors],
  );
  for (const relative of relatives.rows) {
    const ref = tableRef(relative);
    const hold = await activeHold(
      deps,
      database,
      ref,
      resolveTableIfConfigured(deps.config, database, ref)?.governance.configHold,
    );
    if (hold) return { ...relative, hold };
  }
  return undefined;
}

/**
 * A partitioned table's rows are its partitions' rows: a partition the config lists beside it and holds (the
 * partition's entry, or `hold set` on it, which the lock step reports as held) would have its rows archived and
 * deleted with the partitioned table's all the same. The partitioned table is refused, nothing exported, naming the
 * hold (export; plan reports it unusable); held too, it is skipped as held.
 */
export async function refuseHeldPartition(
  deps: Pick<StepDeps, 'config' | 'holds'>,
  client: pg.ClientBase,
  database: string,
  shape: Pick<TableShape, 'schema' | 'name' | 'partitioned'>,
): Promise<void> {
  if (!shape.partitioned) return;
  const partition = await heldPartitionRelative(deps, client, database, shape, { ancestors: false });
  if (partition)
    throw new TableNotUsableError(
      `table "${shape.schema}"."${shape.name}" in database ${database} holds the partition "${partition.schema}"."${partition.name}", which is under ${partition.hold}: its rows would be archived and deleted with the table's; nothing was archived (put "${shape.schema}"."${shape.name}" under legal hold too)`,
    );
}
