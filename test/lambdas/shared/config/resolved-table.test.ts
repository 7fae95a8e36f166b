import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../lambdas/shared/config/config.js';
import {
  resolveConfiguredTable,
  resolveTable,
  resolveTableIfConfigured,
} from '../../../../lambdas/shared/config/resolved-table.js';
import type { ArchiverConfigInput } from '../../../../lambdas/shared/config/schema.js';
import { ConfigError } from '../../../../lambdas/shared/errors/step-errors.js';

type TableInput = ArchiverConfigInput['databases'][number]['tables'][number];

const configWith = (tables: TableInput[], extra: Partial<ArchiverConfigInput> = {}) =>
  parseConfig({
    s3: { bucket: 'archive-bucket', kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/abc' },
    defaults: { retentionDays: 90, batchSize: 10_000, onSchemaDrift: 'fail' },
    databases: [
      {
        name: 'app',
        credentials: { url: 'postgres://u:p@h/db' },
        replicaLag: { replicas: ['standby'], maxLagSeconds: 60 },
        tables,
      },
    ],
    ...extra,
  });

describe('resolveTable', () => {
  it('applies the defaults to a table that sets nothing, with no policy', () => {
    // Prepare
    const config = configWith([{ name: 'audit', timestampColumn: 'at' }]);

    // Act
    const table = resolveTable(config, 'app', 'public.audit');

    // Assess
    expect(table).toEqual({
      database: 'app',
      schema: 'public',
      name: 'audit',
      ref: 'public.audit',
      timestampColumn: 'at',
      timestampTimeZone: 'UTC',
      keyColumns: undefined,
      retentionDays: 90,
      batchSize: 10_000,
      objectSpan: 'day',
      onSchemaDrift: 'fail',
      replicaLag: { replicas: ['standby'], maxLagSeconds: 60 },
      governance: {
        classification: undefined,
        retentionDays: 90,
        minRetentionDays: undefined,
        maxRetentionDays: undefined,
        requiresKms: false,
        configHold: undefined,
      },
      settings: config.databases[0]?.tables[0],
    });
  });

  it("prefers the table's own settings over the defaults", () => {
    // Prepare
    const config = configWith([
      {
        schema: 'billing',
        name: 'events',
        timestampColumn: 'created',
        timestampTimeZone: 'Europe/Paris',
        keyColumns: ['tenant', 'id'],
        retentionDays: 400,
        batchSize: 500,
        onSchemaDrift: 'continue',
      },
    ]);

    // Act
    const table = resolveTable(config, 'app', 'billing.events');

    // Assess
    expect(table).toMatchObject({
      ref: 'billing.events',
      timestampTimeZone: 'Europe/Paris',
      keyColumns: ['tenant', 'id'],
      retentionDays: 400,
      batchSize: 500,
      onSchemaDrift: 'continue',
      governance: { retentionDays: 400 },
    });
  });

  it('tightens the global policy by the classification and carries its KMS requirement', () => {
    // Prepare
    const config = configWith([{ name: 'cards', timestampColumn: 'at', classification: 'payments' }], {
      defaults: { retentionDays: 365 },
      policy: {
        minRetentionDays: 30,
        maxRetentionDays: 3650,
        classifications: { payments: { minRetentionDays: 180, maxRetentionDays: 730, requireKms: true } },
      },
    });

    // Act
    const table = resolveTable(config, 'app', 'public.cards');

    // Assess
    expect(table.retentionDays).toBe(365);
    expect(table.governance).toEqual({
      classification: 'payments',
      retentionDays: 365,
      minRetentionDays: 180,
      maxRetentionDays: 730,
      requiresKms: true,
      configHold: undefined,
    });
  });

  it('requires KMS for a critical table without any classification', () => {
    // Prepare
    const config = configWith([{ name: 'audit', timestampColumn: 'at', critical: true }]);

    // Act
    const table = resolveTable(config, 'app', 'public.audit');

    // Assess
    expect(table.governance.requiresKms).toBe(true);
    expect(table.governance.classification).toBeUndefined();
  });

  it('reads a legal hold from the config as its reason, or a generic one for `true`', () => {
    // Prepare
    const config = configWith([
      { name: 'reasoned', timestampColumn: 'at', legalHold: 'case 2025-17' },
      { name: 'flagged', timestampColumn: 'at', legalHold: true },
      { name: 'free', timestampColumn: 'at' },
    ]);

    // Act
    const holds = ['reasoned', 'flagged', 'free'].map(
      (name) => resolveTable(config, 'app', `public.${name}`).governance.configHold,
    );

    // Assess
    expect(holds).toEqual(['case 2025-17', 'legal hold in config', undefined]);
  });

  it('resolves a table the same way whether found by reference or from its entry', () => {
    // Prepare
    const config = configWith([{ name: 'audit', timestampColumn: 'at', retentionDays: 120 }]);
    const [db] = config.databases;
    const [entry] = db?.tables ?? [];
    if (!db || !entry) throw new Error('fixture');

    // Act
    const fromEntry = resolveConfiguredTable(config, db, entry);

    // Assess
    expect(fromEntry).toEqual(resolveTable(config, 'app', 'public.audit'));
  });

  it('refuses a table or database the config does not list; the lenient lookup only forgives the table', () => {
    // Prepare
    const config = configWith([{ name: 'audit', timestampColumn: 'at' }]);

    // Act / Assess
    expect(() => resolveTable(config, 'app', 'public.gone')).toThrow(
      new ConfigError('table "public.gone" is not configured for database "app"'),
    );
    expect(() => resolveTable(config, 'app', 'audit')).toThrow(
      new ConfigError('table "audit" is not configured for database "app" (did you mean public.audit?)'),
    );
    expect(resolveTableIfConfigured(config, 'app', 'public.gone')).toBeUndefined();
    expect(() => resolveTableIfConfigured(config, 'other', 'public.audit')).toThrow(
      new ConfigError('database "other" is not in the config'),
    );
  });
});
