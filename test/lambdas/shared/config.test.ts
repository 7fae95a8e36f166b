import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig, resolveTable } from '../../../lambdas/shared/config.js';
import { ConfigError } from '../../../lambdas/shared/errors.js';

const minimal = () => ({
  s3: { bucket: 'archive-bucket' },
  databases: [
    {
      name: 'app',
      credentials: { url: 'postgres://u:p@h/db' },
      tables: [{ name: 'audit', timestampColumn: 'at' }],
    },
  ],
});

const errorOf = (raw: unknown): string => {
  try {
    parseConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('config was accepted');
};

describe('config schema', () => {
  it('accepts the shipped example and applies defaults', () => {
    // Act
    const config = loadConfigFile(new URL('../../../config/archiver.example.yaml', import.meta.url).pathname);

    // Assess
    expect(config.databases[0]?.tables).toHaveLength(2);
    expect(resolveTable(config, 'billing', 'billing.Invoice Events')).toMatchObject({
      keyColumns: ['tenant_id', 'event_id'],
      batchSize: 20000,
      retentionDays: 365,
      timestampTimeZone: 'Europe/Paris',
    });
  });

  it('fills defaults for a minimal config', () => {
    // Act
    const config = parseConfig(minimal());

    // Assess
    expect(config.s3).toEqual({ bucket: 'archive-bucket', prefix: '', storageClass: 'STANDARD' });
    expect(config.defaults.batchSize).toBe(50_000);
    expect(config.databases[0]?.tls).toBe('verify-full');
    expect(config.databases[0]?.tables[0]?.schema).toBe('public');
    expect(config.aws).toEqual({
      schedule: { expression: 'cron(0 3 * * ? *)', timeZone: 'UTC', enabled: true },
      stateMachineLogLevel: 'ERROR',
      notifications: { emails: [] },
      alarms: { noSuccessfulRunHours: 26 },
    });
  });

  it.each([
    [
      'a batch size of 0',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0]?.tables[0] ?? {}, { batchSize: 0 }),
      'databases.0.tables.0.batchSize: ',
    ],
    [
      'an unknown field',
      (c: ReturnType<typeof minimal>) => Object.assign(c.s3, { bukket: 'x' }),
      's3: Unrecognized key: "bukket"',
    ],
    [
      'a prefix starting with "/"',
      (c: ReturnType<typeof minimal>) => Object.assign(c.s3, { prefix: '/a/' }),
      's3.prefix: must be empty or end with "/"',
    ],
    [
      'a prefix with ".."',
      (c: ReturnType<typeof minimal>) => Object.assign(c.s3, { prefix: 'a/../' }),
      's3.prefix: must not contain',
    ],
    [
      'an archival storage class',
      (c: ReturnType<typeof minimal>) => Object.assign(c.s3, { storageClass: 'DEEP_ARCHIVE' }),
      's3.storageClass: ',
    ],
    [
      'a database name with "/"',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0] ?? {}, { name: 'a/b' }),
      'databases.0.name: must be',
    ],
    [
      'a 64-byte identifier',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0]?.tables[0] ?? {}, { name: 'é'.repeat(32) }),
      'databases.0.tables.0.name: must be at most 63 bytes',
    ],
    [
      'no credentials',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0] ?? {}, { credentials: {} }),
      'databases.0.credentials',
    ],
    [
      'an empty table list',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0] ?? {}, { tables: [] }),
      'databases.0.tables: must list at least one table',
    ],
    [
      'a duplicate table',
      (c: ReturnType<typeof minimal>) => c.databases[0]?.tables.push({ name: 'audit', timestampColumn: 'x' }),
      'databases.0.tables.1: duplicate table public.audit',
    ],
  ])('rejects %s and names the field', (_case, mutate, expected) => {
    // Prepare
    const raw = minimal();
    mutate(raw);

    // Act
    const message = errorOf(raw);

    // Assess
    expect(message).toContain(expected);
  });

  it('reports unreadable and malformed files with their path', () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'config-test-'));
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 's3: [unclosed');

    // Act / Assess
    expect(() => loadConfigFile(join(dir, 'missing.yaml'))).toThrow(
      /cannot read config file .*missing\.yaml/,
    );
    expect(() => loadConfigFile(broken)).toThrow(/broken\.yaml is not valid YAML/);
  });
});

describe('config schema, aws block', () => {
  const withAws = (aws: unknown) => ({ ...minimal(), aws });

  it('accepts a full block and keeps defaults for what it leaves out', () => {
    // Prepare
    const raw = withAws({
      schedule: { expression: 'cron(30 2 ? * MON-FRI *)', timeZone: 'Europe/Berlin' },
      notifications: { emails: ['ops@example.com', 'dba@example.org'] },
    });

    // Act
    const { aws } = parseConfig(raw);

    // Assess
    expect(aws.schedule).toEqual({
      expression: 'cron(30 2 ? * MON-FRI *)',
      timeZone: 'Europe/Berlin',
      enabled: true,
    });
    expect(aws.notifications.emails).toEqual(['ops@example.com', 'dba@example.org']);
    expect(aws.stateMachineLogLevel).toBe('ERROR');
    expect(aws.alarms.noSuccessfulRunHours).toBe(26);
  });

  it('accepts the expression shapes EventBridge Scheduler takes', () => {
    // Prepare
    const expressions = ['rate(1 hour)', 'rate(12 hours)', 'rate(7 days)', 'cron(0/15 * ? * MON-FRI 2026)'];
    for (const expression of expressions) {
      // Act
      const { aws } = parseConfig(withAws({ schedule: { expression } }));
      // Assess
      expect(aws.schedule.expression).toBe(expression);
    }
  });

  it.each([
    [
      'a cron with 5 fields',
      { schedule: { expression: 'cron(0 3 * * *)' } },
      'aws.schedule.expression: cron(...) must have 6 fields',
    ],
    [
      'a cron without "?"',
      { schedule: { expression: 'cron(0 3 * * * *)' } },
      'aws.schedule.expression: cron(...) needs "?"',
    ],
    [
      'a rate with a plural unit for 1',
      { schedule: { expression: 'rate(1 hours)' } },
      'aws.schedule.expression: rate(...) takes',
    ],
    ['a crontab line', { schedule: { expression: '0 3 * * *' } }, 'aws.schedule.expression: must be "cron('],
    [
      'an unknown time zone',
      { schedule: { timeZone: 'Mars/Olympus_Mons' } },
      'aws.schedule.timeZone: must be an IANA',
    ],
    [
      'an offset for a time zone',
      { schedule: { timeZone: '+01:00' } },
      'aws.schedule.timeZone: must be an IANA',
    ],
    [
      'a bad email',
      { notifications: { emails: ['ops@example.com', 'ops at example'] } },
      'aws.notifications.emails.1: must be an email address',
    ],
    ['an unknown log level', { stateMachineLogLevel: 'DEBUG' }, 'aws.stateMachineLogLevel: '],
    ['more than 168 hours', { alarms: { noSuccessfulRunHours: 169 } }, 'aws.alarms.noSuccessfulRunHours: '],
    ['an unknown field', { schedule: { cron: 'x' } }, 'aws.schedule: Unrecognized key: "cron"'],
  ])('rejects %s and names the field', (_case, aws, expected) => {
    // Act
    const message = errorOf(withAws(aws));

    // Assess
    expect(message).toContain(expected);
  });
});
