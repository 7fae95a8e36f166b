import { describe, expect, it } from 'vitest';
import {
  costReport,
  estimatePlan,
  objectSpanNote,
  plansFor,
  type StoragePlan,
  type TableMeasurement,
  type Workload,
  workloadFromTables,
} from '../../cli/cost-model.js';
import { S3_PRICES } from '../../cli/cost-prices.js';
import { parseDeploymentConfig } from '../../lambdas/shared/config/deployment-schema.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';

const GIB = 1024 ** 3;
/** 100 GiB in 1,000 archives of 100 MiB: big enough that no minimum object size or overhead matters much. */
const backlog: Workload = {
  backlog: { rows: 1_000_000_000, bytes: 100 * GIB, objects: 1000 },
  monthly: { rows: 0, bytes: 0, objects: 0 },
  basis: 'test',
};
const plan = (p: Partial<StoragePlan>): StoragePlan => ({
  label: 'p',
  writeClass: 'STANDARD',
  transitions: [],
  ...p,
});
const prices = S3_PRICES.regions['us-east-1'];
/** The manifests: 1,000 of 2,500 bytes, stored in the written class. */
const manifests = (rate: number, billed = 2_500) => ((1000 * billed) / GIB) * rate;

describe('cost: prices', () => {
  it('refuses a region the price table does not have, naming the ones it has', () => {
    // Act / Assess
    expect(() => estimatePlan(backlog, plan({}), 1, 'ap-south-2')).toThrow(ConfigError);
    expect(() => estimatePlan(backlog, plan({}), 1, 'ap-south-2')).toThrow(
      /--region: no prices for "ap-south-2"; .* has us-east-1, eu-west-1/,
    );
  });

  it('prices eu-west-1, the region of the operating guide and the example config', () => {
    // Act
    const ireland = estimatePlan(backlog, plan({}), 1, 'eu-west-1');
    const virginia = estimatePlan(backlog, plan({}), 1, 'us-east-1');

    // Assess: S3 lists the same figures for both at these classes.
    expect(ireland).toEqual(virginia);
  });
});

describe('cost: the model', () => {
  it('charges a month of STANDARD at the table price, and writes at the PUT and GET prices', () => {
    // Act
    const estimate = estimatePlan(backlog, plan({}), 1, 'us-east-1');

    // Assess
    expect(estimate.firstMonthStorage).toBeCloseTo(100 * 0.023 + manifests(0.023), 6);
    const writes =
      (1000 * 5 * prices.STANDARD.putPer1000) / 1000 + (1000 * 3 * prices.STANDARD.getPer1000) / 1000;
    expect(estimate.requests).toBeCloseTo(writes, 6);
    expect(estimate.earlyDeletion).toBe(0);
  });

  it('charges transition requests, and the rest of a minimum storage duration when leaving a class early', () => {
    // Prepare: GLACIER_IR (90 days minimum) left after 30 days for GLACIER
    const lifecycle = plan({
      transitions: [
        { storageClass: 'GLACIER_IR', afterDays: 30 },
        { storageClass: 'GLACIER', afterDays: 60 },
      ],
    });

    // Act
    const estimate = estimatePlan(backlog, lifecycle, 3, 'us-east-1');

    // Assess
    expect(estimate.earlyDeletion).toBeCloseTo(100 * 0.004 * (60 / 30), 6);
    const glacier = 100 * 0.0036 + (1000 * 32 * 1024 * 0.0036 + 1000 * 8 * 1024 * 0.023) / GIB;
    expect(estimate.lastMonthStorage).toBeCloseTo(glacier + manifests(0.023), 6);
    expect(estimate.restoreAll).toBeCloseTo(100 * 0.01 + (1000 * (0.0004 + 0.05)) / 1000, 6);
  });

  it('charges DEEP_ARCHIVE expired before 180 days for the days left, and nothing once expired', () => {
    // Act
    const estimate = estimatePlan(
      backlog,
      plan({ transitions: [{ storageClass: 'DEEP_ARCHIVE', afterDays: 30 }], expireAfterDays: 120 }),
      6,
      'us-east-1',
    );

    // Assess
    // The 32 KiB index S3 keeps per archived object is billed at the class's rate too.
    expect(estimate.earlyDeletion).toBeCloseTo((100 + (1000 * 32 * 1024) / GIB) * 0.00099 * (90 / 30), 6);
    expect(estimate.lastMonthStorage).toBe(0);
    expect(estimate.restoreAll).toBe(0);
  });

  it('moves Intelligent-Tiering archives to cheaper tiers as nobody reads them, with the monitoring fee', () => {
    // Act
    const estimate = estimatePlan(backlog, plan({ writeClass: 'INTELLIGENT_TIERING' }), 4, 'us-east-1');

    // Assess
    expect(estimate.firstMonthStorage).toBeCloseTo(100 * 0.023 + manifests(0.023), 6);
    expect(estimate.lastMonthStorage).toBeCloseTo(100 * 0.004 + manifests(0.023), 6);
    expect(estimate.requests).toBeGreaterThan((1000 / 1000) * 0.0025 * 4);
  });

  it('bills small objects in infrequent-access classes at 128 KiB, and verify’s read-back as a retrieval', () => {
    // Act
    const estimate = estimatePlan(backlog, plan({ writeClass: 'STANDARD_IA' }), 1, 'us-east-1');

    // Assess
    expect(estimate.firstMonthStorage).toBeCloseTo(100 * 0.0125 + manifests(0.0125, 128 * 1024), 6);
    expect(estimate.requests).toBeGreaterThan(100 * 0.01);
  });

  it('compares every storage class and the config’s own lifecycle', () => {
    // Prepare
    const config = parseDeploymentConfig({
      s3: { storageClass: 'STANDARD_IA' },
      databases: [
        { name: 'app', credentials: { urlEnv: 'DB' }, tables: [{ name: 't', timestampColumn: 'c' }] },
      ],
      aws: { storage: { transitions: [{ storageClass: 'GLACIER', afterDays: 90 }], expireAfterDays: 400 } },
    });

    // Act
    const plans = plansFor(config);

    // Assess
    expect(plans.map((p) => p.label.split(' ')[0])).toEqual([
      'STANDARD',
      'STANDARD_IA',
      'ONEZONE_IA',
      'INTELLIGENT_TIERING',
      'GLACIER_IR',
      'GLACIER',
      'DEEP_ARCHIVE',
      'config:',
    ]);
    expect(plans.at(-1)).toMatchObject({
      label: 'config: STANDARD_IA → GLACIER@90d, expire@400d',
      writeClass: 'STANDARD_IA',
      expireAfterDays: 400,
    });
  });
});

describe('cost: measured tables', () => {
  const measured = (t: Partial<TableMeasurement>): TableMeasurement => ({
    database: 'app',
    table: 'public.events',
    rows: 0,
    eligibleRows: 0,
    monthlyRows: 0,
    retentionDays: 90,
    eligibleDays: 0,
    archiveBytesPerRow: 72,
    bytesPerRowSource: 'assumed',
    batchSize: 50_000,
    objectSpan: 'day',
    archived: { bytes: 0, objects: 0 },
    ...t,
  });

  it('adds the archives a table already has to its eligible rows, one archive per day at least', () => {
    // Prepare: 120,000 eligible rows over 10 days (3 batches, but a batch never spans two days), 5 archives already
    const tables = [
      measured({
        eligibleRows: 120_000,
        eligibleDays: 10,
        monthlyRows: 60_000,
        archived: { bytes: 1000, objects: 5 },
      }),
      measured({
        table: 'public.logins',
        eligibleRows: 10,
        eligibleDays: 30,
        bytesPerRowSource: 'row width',
      }),
    ];

    // Act
    const workload = workloadFromTables(tables);

    // Assess
    expect(workload.backlog).toEqual({ rows: 120_010, bytes: 1000 + 120_010 * 72, objects: 5 + 10 + 10 });
    expect(workload.monthly).toEqual({ rows: 60_000, bytes: 60_000 * 72, objects: 30 });
    expect(workload.basis).toBe('PostgreSQL statistics; bytes per row from assumed, row width');
  });

  it('counts a month table’s objects per month, bills them at their size, and suggests month objects where day ones are small', () => {
    // Prepare: 200 rows a day at 72 bytes a row, 14 KiB day objects; 120 eligible days
    const daily = measured({ eligibleRows: 24_000, eligibleDays: 120, monthlyRows: 6_000 });
    const monthly = measured({ ...daily, objectSpan: 'month' });
    const plan = plansFor().find((p) => p.writeClass === 'STANDARD_IA' && p.transitions.length === 0);

    // Act
    const days = workloadFromTables([daily]);
    const months = workloadFromTables([monthly]);

    // Assess: 4 objects instead of 120, 1 a month instead of 30, and the IA bill falls with them
    expect(days.backlog.objects).toBe(120);
    expect(months.backlog.objects).toBe(4);
    expect([days.monthly.objects, months.monthly.objects]).toEqual([30, 1]);
    expect(plan).toBeDefined();
    const cost = (w: typeof days) => estimatePlan(w, plan as StoragePlan, 12, 'us-east-1').cumulative;
    expect(cost(months)).toBeLessThan(cost(days) / 3);
    expect(objectSpanNote(daily)).toBe(
      '30 objects a month of about 14 KiB: objectSpan: month would write 1 of about 422 KiB instead (billed as 128 KiB at least each)',
    );
    expect(objectSpanNote(monthly)).toBe('1 object a month of about 422 KiB (objectSpan: month)');
    expect(objectSpanNote(measured({ monthlyRows: 60_000 }))).toBe('30 objects a month of about 141 KiB');
  });

  it('prices one workload under every plan, naming the price table it used', () => {
    // Act
    const report = costReport(backlog, plansFor(), 12, 'us-east-1');

    // Assess
    expect(report.prices).toEqual({
      source: S3_PRICES.source,
      takenOn: S3_PRICES.takenOn,
      currency: S3_PRICES.currency,
    });
    expect(report.plans).toHaveLength(7);
    expect(report.plans[0]).toEqual(estimatePlan(backlog, plansFor()[0] as StoragePlan, 12, 'us-east-1'));
    expect(report.tables).toBeUndefined();
  });
});
