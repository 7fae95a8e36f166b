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

/**
 * A partitioned table's rows are its partitions' rows: a partition the config lists beside it and holds (the
 * partition's entry, or `hold set` on it, which the lock step reports as held) would have its rows archived and
 * deleted with the partitioned table's all the same. The partitioned table is refused, nothing exported, naming the
 * hold (export; plan reports it unusable); held too, it is skipped as held. The lock table is read only for a
 * configured partition (a config the partition's own runs refuse), so this costs a table without one no call outside
 * the transaction.
 */
export async function refuseHeldPartition(
  deps: Pick<StepDeps, 'config' | 'holds'>,
  client: pg.ClientBase,
  database: string,
  shape: Pick<TableShape, 'schema' | 'name' | 'partitioned'>,
): Promise<void> {
  if (!shape.partitioned) return;
  const db = findDatabase(deps.config, database);
  const others = db.tables.filter((t) => t.schema !== shape.schema || t.name !== shape.name);
  if (others.length === 0) return;
  const partitions = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(c.oid) AS a
                      JOIN pg_catalog.pg_class p ON p.oid = a.relid
                      JOIN pg_catalog.pg_namespace s ON s.oid = p.relnamespace
                     WHERE s.nspname = $3 AND p.relname = $4)`,
    [others.map((t) => t.schema), others.map((t) => t.name), shape.schema, shape.name],
  );
  for (const partition of partitions.rows) {
    const ref = tableRef(partition);
    const hold = await activeHold(
      deps,
      database,
      ref,
      resolveTableIfConfigured(deps.config, database, ref)?.governance.configHold,
    );
    if (hold)
      throw new TableNotUsableError(
        `table "${shape.schema}"."${shape.name}" in database ${database} holds the partition "${partition.schema}"."${partition.name}", which is under ${hold}: its rows would be archived and deleted with the table's; nothing was archived (put "${shape.schema}"."${shape.name}" under legal hold too)`,
      );
  }
}
