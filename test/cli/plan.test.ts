import { describe, expect, it } from 'vitest';
import { planExitCode } from '../../cli/plan.js';
import { type PlanReport, PlanReportSchema, type TablePlan } from '../../lambdas/shared/batch/plan-report.js';

const table = (action: TablePlan['action']): TablePlan => ({
  database: 'app',
  table: `public.${action}`,
  action,
  cutoff: '2026-01-01T00:00:00.000Z',
  eligibleRows: 0,
  batches: 0,
  runsNeeded: 0,
  estimatedBytes: 0,
  bytesBasis: 'none',
  bytesNote: '',
  objectSpan: 'day',
  objectSpanNote: '',
  countMethod: 'none',
  oldestRow: null,
  lock: 'free',
  legalHold: null,
  retention: '30 days',
  encryption: 'SSE-S3',
});

const report = (...actions: TablePlan['action'][]): PlanReport =>
  PlanReportSchema.parse({ runId: 'dry', plannedAt: '2026-01-01T00:00:00.000Z', tables: actions.map(table) });

describe('plan exit code', () => {
  it('is 0 when every table would be archived, has nothing eligible, or is held or locked', () => {
    // Act and assess
    expect(planExitCode(report('archive', 'nothing', 'held', 'locked'))).toBe(0);
  });

  it('is 1 as soon as one table would be refused, so CI can stop a deployment on it', () => {
    // Act and assess
    expect(planExitCode(report('archive', 'unusable'))).toBe(1);
  });
});
