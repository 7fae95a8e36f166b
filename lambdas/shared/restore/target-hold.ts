import { activeHold } from '../batch/holds.js';
import { resolveTableIfConfigured } from '../config/resolved-table.js';
import { tableRef } from '../config/schema.js';
import { TableNotUsableError } from '../errors/step-errors.js';
import type { StepDeps } from '../step/step-deps.js';
import { tableLabel } from './restore-sql.js';
import type { RestoreTask } from './restore-task.js';

/**
 * A legal hold keeps a table's rows as they are, and strategy overwrite writes archived values over them: refused.
 * Strategies skip and fail only add the rows the table lacks. The plan checks before anything is listed or written,
 * and each group again, with the target locked: a hold set while a restore runs stops it from the next group on.
 * `written` says what the refusal left unwritten.
 */
export async function refuseOverwriteUnderHold(
  deps: Pick<StepDeps, 'config' | 'holds'>,
  task: Pick<RestoreTask, 'database' | 'target' | 'strategy'>,
  written: string,
): Promise<void> {
  if (task.strategy !== 'overwrite') return;
  const ref = tableRef(task.target);
  const configured = resolveTableIfConfigured(deps.config, task.database, ref);
  const hold = await activeHold(deps, task.database, ref, configured?.governance.configHold);
  if (hold)
    throw new TableNotUsableError(
      `restore target ${tableLabel(task.target)} in database ${task.database} is under ${hold}: strategy overwrite would change its rows; restore with strategy skip, or into another table (targetTable); ${written}`,
    );
}
