import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../lambdas/shared/config/config.js';
import {
  assertCutoffAllowed,
  assertTableGoverned,
  retentionCutoff,
} from '../../../../lambdas/shared/config/governance.js';
import { tableGovernance } from '../../../../lambdas/shared/config/resolved-table.js';
import type { ArchiverConfigInput } from '../../../../lambdas/shared/config/schema.js';
import { ConfigError } from '../../../../lambdas/shared/errors/step-errors.js';
import { configErrorOf } from '../../../support/config-errors.js';

type TableInput = ArchiverConfigInput['databases'][number]['tables'][number];

const configWith = (
  table: Partial<TableInput>,
  extra: Partial<ArchiverConfigInput> = {},
): ArchiverConfigInput => ({
  s3: { bucket: 'archive-bucket' },
  defaults: { retentionDays: 90 },
  policy: {
    minRetentionDays: 30,
    maxRetentionDays: 400,
    classifications: {
      pii: { maxRetentionDays: 180 },
      payments: { minRetentionDays: 365, requireKms: true },
    },
  },
  databases: [
    {
      name: 'app',
      credentials: { url: 'postgres://u:p@h/db' },
      tables: [
        { name: 'other', timestampColumn: 'at' },
        { name: 'audit', timestampColumn: 'at', ...table },
      ],
    },
  ],
  ...extra,
});

const errorOf = configErrorOf;

describe('retention policy in the config', () => {
  it('accepts retentions inside the bounds of the policy and of the classification', () => {
    // Act
    const config = parseConfig(configWith({ classification: 'pii', retentionDays: 180 }));

    // Assess: the classification tightens the global maximum (400) to 180.
    const table = config.databases[0]?.tables[1];
    expect(table && tableGovernance(config, table)).toEqual({
      classification: 'pii',
      retentionDays: 180,
      minRetentionDays: 30,
      maxRetentionDays: 180,
      requiresKms: false,
      configHold: undefined,
    });
  });

  it('refuses a retention below the global minimum, naming the field, the retention and the bound', () => {
    // Act
    const message = errorOf(configWith({ retentionDays: 7 }));

    // Assess
    expect(message).toContain(
      'databases.0.tables.1.retentionDays: app/public.audit: retentionDays 7 is below the policy minimum of 30 days',
    );
  });

  it('refuses a default retention above the maximum of the table’s classification', () => {
    // Act
    const message = errorOf(configWith({ classification: 'pii' }, { defaults: { retentionDays: 200 } }));

    // Assess: only the classified table is over 180; the other one is within the global 400.
    expect(message).toContain(
      'databases.0.tables.1.retentionDays: app/public.audit: retentionDays (from defaults) 200 is above the policy maximum of 180 days (classification pii)',
    );
    expect(message).not.toContain('tables.0');
  });

  it('refuses month objects where their month’s wait would keep rows past the policy maximum, and accepts them within it', () => {
    // Act
    const over = errorOf(configWith({ classification: 'pii', retentionDays: 160, objectSpan: 'month' }));
    const within = parseConfig(
      configWith({ classification: 'pii', retentionDays: 149, objectSpan: 'month' }),
    );

    // Assess
    expect(over).toContain(
      'databases.0.tables.1.objectSpan: app/public.audit: objectSpan month keeps a row up to 31 days past its retentionDays 160 (its month is archived once all of it is past the cut-off), above the policy maximum of 180 days (classification pii): lower retentionDays to 149 or keep day objects',
    );
    expect(within.databases[0]?.tables[1]?.objectSpan).toBe('month');
  });

  it('refuses an unknown classification, naming it and the known ones', () => {
    // Act
    const message = errorOf(configWith({ classification: 'secret' }));

    // Assess
    expect(message).toContain(
      'databases.0.tables.1.classification: unknown classification "secret" (policy.classifications: pii, payments)',
    );
  });

  it('refuses a policy whose maximum is below its minimum', () => {
    // Act
    const message = errorOf(
      configWith(
        {},
        { policy: { classifications: { pii: { minRetentionDays: 100, maxRetentionDays: 50 } } } },
      ),
    );

    // Assess
    expect(message).toContain(
      'policy.classifications.pii.maxRetentionDays: must not be below minRetentionDays (100)',
    );
  });
});

describe('encryption enforcement in the config', () => {
  it('refuses a critical table without s3.kmsKeyId', () => {
    // Act
    const message = errorOf(configWith({ critical: true }));

    // Assess
    expect(message).toContain(
      'databases.0.tables.1.critical: app/public.audit requires SSE-KMS archives (critical: true): set s3.kmsKeyId',
    );
  });

  it('refuses a table whose classification requires KMS without s3.kmsKeyId', () => {
    // Act
    const message = errorOf(configWith({ classification: 'payments', retentionDays: 400 }));

    // Assess
    expect(message).toContain(
      'databases.0.tables.1.classification: app/public.audit requires SSE-KMS archives',
    );
  });

  it('accepts critical tables once archives are written with a KMS key', () => {
    // Act
    const config = parseConfig(
      configWith(
        { classification: 'payments', retentionDays: 400 },
        { s3: { bucket: 'archive-bucket', kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/abc' } },
      ),
    );

    // Assess
    const table = config.databases[0]?.tables[1];
    expect(table && tableGovernance(config, table).requiresKms).toBe(true);
  });
});

describe('assertTableGoverned', () => {
  it('throws ConfigError for a config that reached a function without validation (e.g. an older bundle)', () => {
    // Prepare: a valid config changed after validation.
    const config = parseConfig(configWith({}));
    config.defaults.retentionDays = 500;
    const table = config.databases[0]?.tables[1];
    if (!table) throw new Error('fixture');

    // Act / Assess
    expect(() => assertTableGoverned(config, 'app', table)).toThrow(ConfigError);
    expect(() => assertTableGoverned(config, 'app', table)).toThrow(
      'policy refuses app/public.audit: app/public.audit: retentionDays (from defaults) 500 is above the policy maximum of 400 days',
    );
  });

  it('reads a legal hold from the config as true or as its reason', () => {
    // Act
    const config = parseConfig(configWith({ legalHold: 'case 2025-17' }));

    // Assess
    const [other, audit] = config.databases[0]?.tables ?? [];
    expect(audit && tableGovernance(config, audit).configHold).toBe('case 2025-17');
    expect(other && tableGovernance(config, { ...other, legalHold: true }).configHold).toBe(
      'legal hold in config',
    );
    expect(other && tableGovernance(config, other).configHold).toBeUndefined();
  });
});

describe('retentionCutoff', () => {
  it.each([
    '2026-03-29T00:00:00.000Z',
    '2026-03-29T00:30:00.000Z',
    '2026-03-29T17:30:00.000Z',
    '2026-03-29T23:59:59.999Z',
  ])('is the same UTC midnight whatever the hour the run starts at (%s)', (start) => {
    // Act
    const cutoff = retentionCutoff(new Date(start), 30);

    // Assess: 30 days before the start's UTC day, across the spring DST change of European zones.
    expect(cutoff).toBe('2026-02-27T00:00:00.000Z');
  });

  it('keeps every row at least the retention, at most a day longer', () => {
    // Prepare
    const start = Date.parse('2026-12-02T19:45:12.345Z');

    // Act
    const cutoff = Date.parse(retentionCutoff(start, 365));

    // Assess
    const exact = start - 365 * 86_400_000;
    expect(cutoff).toBeLessThanOrEqual(exact);
    expect(exact - cutoff).toBeLessThan(86_400_000);
  });
});

describe('assertCutoffAllowed', () => {
  const config = parseConfig(configWith({ retentionDays: 90 }));
  const table = config.databases[0]?.tables[1];
  if (!table) throw new Error('no table');
  const check = (cutoff: string, now: string) =>
    assertCutoffAllowed(config, 'app', table, cutoff, new Date(now));

  it("accepts the plan's cut-off, an earlier run's, and a run planned just after midnight by a clock just before it", () => {
    // Act / Assess
    expect(() =>
      check(retentionCutoff(Date.parse('2026-05-10T08:00:00Z'), 90), '2026-05-10T09:00:00Z'),
    ).not.toThrow();
    expect(() =>
      check(retentionCutoff(Date.parse('2026-05-09T23:00:00Z'), 90), '2026-05-10T09:00:00Z'),
    ).not.toThrow();
    expect(() =>
      check(retentionCutoff(Date.parse('2026-05-10T00:00:30Z'), 90), '2026-05-09T23:58:00Z'),
    ).not.toThrow();
  });

  it('refuses a cut-off a day later than the retention allows', () => {
    // Act / Assess
    expect(() =>
      check(retentionCutoff(Date.parse('2026-05-11T08:00:00Z'), 90), '2026-05-10T09:00:00Z'),
    ).toThrow(/later than its retention allows/);
    expect(() =>
      check(retentionCutoff(Date.parse('2026-05-10T08:00:00Z'), 60), '2026-05-10T09:00:00Z'),
    ).toThrow(ConfigError);
  });

  it('names the clock when it is what refuses the cut-off, as a clock running behind would', () => {
    // Prepare: the plan ran at 08:00 on 05-11; this step's clock reads a day earlier.
    const planned = retentionCutoff(Date.parse('2026-05-11T08:00:00Z'), 90);
    const behind = new Date('2026-05-10T08:00:00Z');

    // Act / Assess
    expect(() => assertCutoffAllowed(config, 'app', table, planned, behind, '2026-05-11T08:00:00Z')).toThrow(
      /\(latest 2026-02-09T00:00:00.000Z, by this step's clock, which reads 2026-05-10T08:00:00.000Z: is it more than 5 minutes behind the clock that planned the run\?\)/,
    );
  });

  it("refuses the next day's cut-off within the clock skew when the execution started before midnight", () => {
    // Prepare: a clock at 23:58 allows the cut-off of a run starting at 00:03, the next day's.
    const nextDays = retentionCutoff(Date.parse('2026-05-11T00:00:00Z'), 90);
    const now = new Date('2026-05-10T23:58:00Z');

    // Act / Assess
    expect(() => assertCutoffAllowed(config, 'app', table, nextDays, now)).not.toThrow();
    expect(() => assertCutoffAllowed(config, 'app', table, nextDays, now, '2026-05-10T23:56:00Z')).toThrow(
      /later than its retention allows \(latest 2026-02-09T00:00:00.000Z, for an execution started 2026-05-10T23:56:00Z\)/,
    );
    expect(() =>
      assertCutoffAllowed(config, 'app', table, nextDays, now, '2026-05-11T00:00:30Z'),
    ).not.toThrow();
  });
});
