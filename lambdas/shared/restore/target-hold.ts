import type pg from 'pg';
import { activeHold, heldPartitionRelative } from '../batch/holds.js';
import { resolveTableIfConfigured } from '../config/resolved-table.js';
import { tableRef } from '../config/schema.js';
import { TableNotUsableError } from '../errors/step-errors.js';
import type { StepDeps } from '../step/step-deps.js';
import { tableLabel } from './restore-sql.js';
import type { RestoreTask } from './restore-task.js';

/**
 * A legal hold keeps a table's rows as they are, and strategy overwrite writes archived values over them: refused,
 * whether the hold is the target's own or a configured table's that shares its rows through partitioning (a held
 * partition of a partitioned target, or a held partitioned table the target is a partition of). Strategies skip and
 * fail only add the rows the table lacks. The plan checks before anything is listed or written, and each group again
 * before it writes and before its COMMIT: a hold set while a restore runs stops it from the group under way on.
 * `written` says what the refusal left unwritten.
 */
export async function refuseOverwriteUnderHold(
  deps: Pick<StepDeps, 'config' | 'holds'>,
  client: pg.ClientBase,
  task: Pick<RestoreTask, 'database' | 'target' | 'strategy'>,
  written: string,
): Promise<void> {
  if (task.strategy !== 'overwrite') return;
  const ref = tableRef(task.target);
  const configured = resolveTableIfConfigured(deps.config, task.database, ref);
  const own = await activeHold(deps, task.database, ref, configured?.governance.configHold);
  const relative = own
    ? undefined
    : await heldPartitionRelative(deps, client, task.database, task.target, { ancestors: true });
  const hold =
    own ?? (relative && `${relative.hold} (the hold of ${tableLabel(relative)}, which shares its rows)`);
  if (hold)
    throw new TableNotUsableError(
      `restore target ${tableLabel(task.target)} in database ${task.database} is under ${hold}: strategy overwrite would change its rows; restore with strategy skip, or into another table (targetTable); ${written}`,
    );
}
