import { describe, expect, it } from 'vitest';
import { configFingerprint } from '../../../../lambdas/shared/batch/config-fingerprint.js';
import { parseConfig } from '../../../../lambdas/shared/config/config.js';
import { parseDeploymentConfig } from '../../../../lambdas/shared/config/deployment-schema.js';
import { configErrorOf } from '../../../support/config-errors.js';

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

const errorOf = (raw: unknown) => configErrorOf(raw, parseDeploymentConfig);

describe('config schema, aws defaults', () => {
  it('fills the aws defaults for a minimal config', () => {
    // Act
    const config = parseDeploymentConfig(minimal());

    // Assess
    expect(config.aws).toEqual({
      schedule: { expression: 'cron(0 3 * * ? *)', timeZone: 'UTC', enabled: true },
      stateMachineLogLevel: 'ERROR',
      notifications: { emails: [] },
      alarms: { noSuccessfulRunHours: 26 },
    });
  });

  it('gives the functions, which load the bundled JSON without the aws schema, the config and fingerprint it validated', () => {
    // Prepare: what lib/bundled-config.ts ships, from a config with a partial aws section.
    const deployed = parseDeploymentConfig({ ...minimal(), aws: { schedule: { timeZone: 'Europe/Paris' } } });
    const bundled: unknown = JSON.parse(JSON.stringify(deployed));

    // Act
    const loaded = parseConfig(bundled);

    // Assess
    expect(loaded).toEqual(deployed);
    expect(configFingerprint(loaded)).toEqual(configFingerprint(deployed));
  });

  it('validates every runtime section too, with the same messages', () => {
    // Act
    const message = errorOf({ ...minimal(), s3: { bucket: 'archive-bucket', prefix: '/a/' } });

    // Assess
    expect(message).toContain('s3.prefix: must be empty or end with "/"');
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
    const { aws } = parseDeploymentConfig(raw);

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
      const { aws } = parseDeploymentConfig(withAws({ schedule: { expression } }));
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

describe('config schema, aws deployment options', () => {
  const withAws = (aws: unknown) => ({ ...minimal(), aws });

  it('leaves every deployment option unset by default (the stack applies its own defaults)', () => {
    // Act
    const { aws } = parseDeploymentConfig(minimal());

    // Assess
    for (const field of ['logRetentionDays', 'vpc', 'databaseCaBundlePath', 'storage', 'athena'] as const) {
      expect(aws[field]).toBeUndefined();
    }
    expect(aws.databaseFunctionConcurrency).toBeUndefined();
    expect(aws.notifications.slack).toBeUndefined();
    expect(aws.notifications.teams).toBeUndefined();
  });

  it('accepts a full set of options and fills the defaults inside them', () => {
    // Prepare
    const raw = withAws({
      logRetentionDays: 365,
      vpc: {
        vpcId: 'vpc-0123456789abcdef0',
        subnetIds: ['subnet-0123abcd', 'subnet-0123456789abcdef1'],
        securityGroupIds: ['sg-0123456789abcdef0'],
      },
      databaseCaBundlePath: 'certs/global-bundle.pem',
      databaseFunctionConcurrency: 10,
      storage: {
        transitions: [
          { storageClass: 'STANDARD_IA', afterDays: 30 },
          { storageClass: 'GLACIER', afterDays: 60 },
          { storageClass: 'DEEP_ARCHIVE', afterDays: 180 },
        ],
        expireAfterDays: 3650,
        objectLock: { mode: 'GOVERNANCE', retentionDays: 365 },
      },
      notifications: {
        slack: { workspaceId: 'T0123ABCD', channelId: 'C0123ABCDE' },
        teams: {
          teamId: '5f9c0f6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f',
          tenantId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
          channelId: '19%3Aabc123%40thread.tacv2',
        },
      },
      athena: { tables: [{ database: 'app', table: 'public.audit', columns: ['id', 'Occurred At'] }] },
    });

    // Act
    const { aws } = parseDeploymentConfig(raw);

    // Assess
    expect(aws.storage?.transitions.map((t) => t.storageClass)).toEqual([
      'STANDARD_IA',
      'GLACIER',
      'DEEP_ARCHIVE',
    ]);
    expect(aws.notifications.emails).toEqual([]);
    expect(aws.athena).toMatchObject({ firstYear: 2000, lastYear: 2100, resultsExpireAfterDays: 30 });
    expect(parseDeploymentConfig(withAws({ storage: {} })).aws.storage).toEqual({ transitions: [] });
  });

  it.each([
    [
      'a retention CloudWatch does not offer',
      { logRetentionDays: 100 },
      'aws.logRetentionDays: must be one of 1, 3',
    ],
    [
      'a subnet that is not an id',
      { vpc: { vpcId: 'vpc-0123abcd', subnetIds: ['private-a'], securityGroupIds: ['sg-0123abcd'] } },
      'aws.vpc.subnetIds.0: must be an id such as "subnet-',
    ],
    [
      'a VPC without security groups',
      { vpc: { vpcId: 'vpc-0123abcd', subnetIds: ['subnet-0123abcd'], securityGroupIds: [] } },
      'aws.vpc.securityGroupIds: must list at least one security group',
    ],
    [
      'a transition sooner than 30 days',
      { storage: { transitions: [{ storageClass: 'GLACIER', afterDays: 7 }] } },
      'aws.storage.transitions.0.afterDays: ',
    ],
    [
      'transitions out of S3 order',
      {
        storage: {
          transitions: [
            { storageClass: 'GLACIER', afterDays: 60 },
            { storageClass: 'GLACIER_IR', afterDays: 120 },
          ],
        },
      },
      'aws.storage.transitions.1.storageClass: GLACIER_IR cannot follow GLACIER',
    ],
    [
      'transitions fewer than 30 days apart',
      {
        storage: {
          transitions: [
            { storageClass: 'STANDARD_IA', afterDays: 30 },
            { storageClass: 'GLACIER', afterDays: 45 },
          ],
        },
      },
      'aws.storage.transitions.1.afterDays: must be at least 30 days after the previous transition (30)',
    ],
    [
      'an unknown storage class',
      { storage: { transitions: [{ storageClass: 'ONEZONE', afterDays: 30 }] } },
      'aws.storage.transitions.0.storageClass: ',
    ],
    [
      'expiry before the last transition',
      { storage: { transitions: [{ storageClass: 'GLACIER', afterDays: 90 }], expireAfterDays: 90 } },
      'aws.storage.expireAfterDays: must be after the last transition (90 days)',
    ],
    [
      'expiry before the Object Lock retention ends',
      { storage: { expireAfterDays: 30, objectLock: { mode: 'COMPLIANCE', retentionDays: 365 } } },
      'aws.storage.expireAfterDays: must not be shorter than objectLock.retentionDays (365)',
    ],
    [
      'an unknown Object Lock mode',
      { storage: { objectLock: { mode: 'LEGAL_HOLD', retentionDays: 1 } } },
      'aws.storage.objectLock.mode: ',
    ],
    [
      'a Slack channel name instead of its id',
      { notifications: { slack: { workspaceId: 'T0123ABCD', channelId: '#ops' } } },
      'aws.notifications.slack.channelId: must be a Slack channel id',
    ],
    [
      'a Teams channel id that is not URL-encoded',
      {
        notifications: {
          teams: {
            teamId: '5f9c0f6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f',
            tenantId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
            channelId: '19:abc123@thread.tacv2',
          },
        },
      },
      'aws.notifications.teams.channelId: must be the URL-encoded channel id',
    ],
    [
      'a projection range that ends before it starts',
      { athena: { firstYear: 2030, lastYear: 2020 } },
      'aws.athena.lastYear: must not be before firstYear',
    ],
    [
      'Athena columns left empty',
      { athena: { tables: [{ database: 'app', table: 'public.audit', columns: [] }] } },
      'aws.athena.tables.0.columns: ',
    ],
    [
      'a query principal that is an account id, not a role or user ARN',
      { athena: { queryPrincipals: ['111122223333'] } },
      'aws.athena.queryPrincipals.0: must be the ARN of an IAM role or user',
    ],
    ['reserved concurrency of 0', { databaseFunctionConcurrency: 0 }, 'aws.databaseFunctionConcurrency: '],
  ])('rejects %s and names the field', (_case, aws, expected) => {
    // Act
    const message = errorOf(withAws(aws));

    // Assess
    expect(message).toContain(expected);
  });
});
