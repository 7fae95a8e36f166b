import { expect } from 'vitest';
import { exportBatch } from '../../lambdas/export/core.js';
import type { InFlight } from '../../lambdas/shared/lock-table/table-state.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../lambdas/shared/step/table-task.js';
import { uploadBatch } from '../../lambdas/upload/core.js';
import { verifyBatch } from '../../lambdas/verify/core.js';
import { fixtureCutoff } from './fixtures.js';

const STAGES = ['exported', 'uploaded', 'verified'] as const;

/**
 * Takes `table` of database `app` under a fresh lease (30-day retention) and drives its first batch through the
 * steps up to `through`, calling each core directly: the task and the batch in flight the next step starts from.
 */
export async function batchThrough(
  deps: StepDeps,
  table: string,
  through: (typeof STAGES)[number],
  { owner = `exec-${table}`, leaseSeconds = 600 }: { owner?: string; leaseSeconds?: number } = {},
): Promise<{ task: TableTask; inFlight: InFlight }> {
  const acquired = await deps.locks.acquire('app', table, owner, leaseSeconds);
  if (!acquired.acquired) throw new Error(`${owner} could not acquire ${table}`);
  const task: TableTask = {
    runId: owner,
    database: 'app',
    table,
    cutoff: await fixtureCutoff(deps),
    lease: acquired.lease,
  };
  expect((await exportBatch(task, deps)).status).toBe('exported');
  const stage = STAGES.indexOf(through);
  if (stage >= 1) await uploadBatch(task, deps);
  if (stage >= 2) await verifyBatch(task, deps);
  const { inFlight } = await deps.locks.get('app', table);
  if (!inFlight) throw new Error(`no batch in flight for ${table}`);
  return { task, inFlight };
}
