import { findDatabase, tableRef } from '../config/config.js';
import { tableGovernance } from '../config/governance.js';
import type { StepDeps } from '../step/step-deps.js';

/**
 * Why a table is under legal hold, or undefined: a hold in the config (`legalHold`) or an operator's hold item in
 * the lock table (`audit-archiver hold set`), which takes effect without a redeploy.
 */
export async function activeHold(
  deps: Pick<StepDeps, 'config' | 'holds'>,
  database: string,
  table: string,
): Promise<string | undefined> {
  const configured = findDatabase(deps.config, database).tables.find((t) => tableRef(t) === table);
  const fromConfig = configured ? tableGovernance(deps.config, configured).configHold : undefined;
  if (fromConfig) return `legal hold (config): ${fromConfig}`;
  const hold = await deps.holds.get(database, table);
  return hold
    ? `legal hold (set ${hold.setAt}${hold.setBy ? ` by ${hold.setBy}` : ''}): ${hold.reason}`
    : undefined;
}
