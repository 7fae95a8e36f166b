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
