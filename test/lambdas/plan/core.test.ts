import { describe, expect, it } from 'vitest';
import { MAX_PLAN_BYTES, planRun } from '../../../lambdas/plan/core.js';
import { parseConfig } from '../../../lambdas/shared/config.js';
import type { StepDeps } from '../../../lambdas/shared/deps.js';

const silent = { info: () => undefined, warn: () => undefined, metric: () => undefined };

function depsFor(tablesPerDb: number[], maxConnections = 2): StepDeps {
  const config = parseConfig({
    s3: { bucket: 'bucket' },
    defaults: { retentionDays: 10 },
    databases: tablesPerDb.map((count, d) => ({
      name: `db${d}`,
      credentials: { url: 'postgres://u:p@h/db' },
      maxConnections,
      tables: Array.from({ length: count }, (_, t) => ({
        schema: 'audit',
        name: `table_number_${t}`,
        timestampColumn: 'created_at',
        ...(t === 0 ? { retentionDays: 1 } : {}),
      })),
    })),
  });
  return { config, telemetry: silent } as unknown as StepDeps;
}

const START = '2025-03-10T12:00:00.000Z';

describe('plan', () => {
  it('deals each database into at most maxConnections lanes and computes cut-offs from the start time', async () => {
    // Act
    const plan = await planRun({ request: {}, runId: 'run-1', startTime: START }, depsFor([5, 1], 2));

    // Assess
    expect(plan.tableCount).toBe(6);
    expect(plan.lanes.map((l) => [l.database, l.tables.length])).toEqual([
      ['db0', 3],
      ['db0', 2],
      ['db1', 1],
    ]);
    expect(plan.lanes[0]?.tables[0]).toEqual({
      table: 'audit.table_number_0',
      cutoff: '2025-03-09T12:00:00.000Z',
    });
    expect(plan.lanes[1]?.tables[0]).toEqual({
      table: 'audit.table_number_1',
      cutoff: '2025-02-28T12:00:00.000Z',
    });
  });

  it('applies database and table filters from the execution input', async () => {
    // Act
    const plan = await planRun(
      { request: { database: 'db0', tables: ['audit.table_number_3'] }, runId: 'r', startTime: START },
      depsFor([5, 1]),
    );

    // Assess
    expect(plan.lanes).toEqual([
      { database: 'db0', tables: [{ table: 'audit.table_number_3', cutoff: expect.any(String) }] },
    ]);
  });

  it.each([
    [{ database: 'nope' }, /database "nope" is not in the config/],
    [{ tables: ['audit.nope'] }, /tables not in the config: audit.nope/],
    [{ tabels: [] }, /execution input is invalid:\n\(root\): Unrecognized key: "tabels"/],
  ])('refuses the input %j with a clear error', async (request, message) => {
    await expect(planRun({ request, runId: 'r', startTime: START }, depsFor([2]))).rejects.toThrow(message);
  });

  it('plans 1000 tables within the payload budget', async () => {
    // Act
    const plan = await planRun(
      { request: {}, runId: 'r', startTime: START },
      depsFor([250, 250, 250, 250], 4),
    );

    // Assess
    expect(plan.tableCount).toBe(1000);
    expect(plan.lanes).toHaveLength(16);
    expect(Buffer.byteLength(JSON.stringify(plan))).toBeLessThan(MAX_PLAN_BYTES);
  });
});
