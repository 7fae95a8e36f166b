import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetricName } from '../../lambdas/shared/telemetry/metric-names.js';
import { fixture, logicalId, roleStatements, type Synthesized, synthesize } from './synth.js';

/** CloudFormation JSON, as `Template.toJSON()` types it. */
type Json = ReturnType<Template['toJSON']>;
type Resource = { Type: string; Properties: Json };

/** Two stacks: the stack fixture (no `aws` block: defaults) and the monitored fixture (a full `aws` block). */
let plain: Synthesized;
let monitored: Synthesized;
beforeAll(() => {
  plain = synthesize();
  monitored = synthesize({ configFile: fixture('monitored.yaml') });
}, 120_000);
afterAll(() => {
  plain?.dispose();
  monitored?.dispose();
});

const resources = (synth: Synthesized, type: string): Record<string, Resource> =>
  synth.template.findResources(type) as Record<string, Resource>;
const resourceOf = (synth: Synthesized, construct: { node: { defaultChild?: unknown } }): Resource =>
  synth.template.toJSON().Resources[logicalId(synth.stack, construct)];
const topicRef = (synth: Synthesized) => ({ Ref: logicalId(synth.stack, synth.stack.monitoring.topic) });

/** Alarms by their construct id (the part of the alarm name after the prefix). */
const alarmsById = (synth: Synthesized): Record<string, Resource['Properties']> =>
  Object.fromEntries(
    Object.entries(synth.stack.monitoring.alarms).map(([id, alarm]) => [
      id,
      resourceOf(synth, alarm).Properties,
    ]),
  );

describe('alarm topic', () => {
  it('is encrypted with a customer-managed key that rotates', () => {
    // Prepare
    const key = logicalId(plain.stack, plain.stack.monitoring.topicKey);
    // Act
    const topic = resourceOf(plain, plain.stack.monitoring.topic);
    // Assess
    expect(topic.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [key, 'Arn'] });
    expect(resourceOf(plain, plain.stack.monitoring.topicKey).Properties.EnableKeyRotation).toBe(true);
  });

  it('refuses every topic action without TLS, and admits only this stack’s alarms by name, on the topic and on its key', () => {
    // Prepare
    const prefix = plain.stack.monitoring.alarmNamePrefix;
    const alarmArn = (name: string) => ({
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':cloudwatch:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          `:alarm:${name}`,
        ],
      ],
    });
    const ourAlarms = Object.values(alarmsById(plain)).map((alarm) => alarmArn(alarm.AlarmName));
    // Act
    const [topicPolicy] = Object.values(resources(plain, 'AWS::SNS::TopicPolicy'));
    const statements = topicPolicy?.Properties.PolicyDocument.Statement as Json[];
    const keyStatements = resourceOf(plain, plain.stack.monitoring.topicKey).Properties.KeyPolicy
      .Statement as Json[];
    // Assess: TLS-only for everyone and every topic action (before, `enforceSSL` denied Publish alone).
    expect(topicPolicy?.Properties.Topics).toEqual([topicRef(plain)]);
    expect(
      statements.filter((s) => JSON.stringify(s.Condition ?? {}).includes('aws:SecureTransport')),
    ).toEqual([
      {
        Sid: 'DenyRequestsWithoutTls',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: [
          'sns:AddPermission',
          'sns:DeleteTopic',
          'sns:GetTopicAttributes',
          'sns:ListSubscriptionsByTopic',
          'sns:Publish',
          'sns:RemovePermission',
          'sns:SetTopicAttributes',
          'sns:Subscribe',
        ],
        Resource: topicRef(plain),
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      },
    ]);
    // Assess: the only Allow is CloudWatch publishing on behalf of this stack's alarms, each named (before, any alarm
    // named "<prefix>-*", which anyone allowed PutMetricAlarm could create with a description of their own).
    const allows = statements.filter((s) => s.Effect === 'Allow');
    expect(allows).toHaveLength(1);
    expect(allows[0]).toMatchObject({
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: 'sns:Publish',
      Resource: topicRef(plain),
    });
    const cloudWatchKeyUse = keyStatements.filter((s) => s.Principal?.Service === 'cloudwatch.amazonaws.com');
    expect(cloudWatchKeyUse).toHaveLength(1);
    expect(cloudWatchKeyUse[0]?.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
    expect(ourAlarms.length).toBeGreaterThan(10);
    for (const statement of [allows[0], cloudWatchKeyUse[0]]) {
      expect(statement?.Condition).toEqual({
        StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
        ArnEquals: { 'aws:SourceArn': ourAlarms },
      });
      expect(JSON.stringify(statement?.Condition)).not.toContain('*');
    }
    for (const [id, alarm] of Object.entries(alarmsById(plain)))
      expect(alarm.AlarmName).toBe(`${prefix}-${id}`);
  });

  it('refuses publishing by any principal of the account but the summary function and AWS services', () => {
    // Prepare
    const summaryRole = {
      'Fn::GetAtt': [logicalId(plain.stack, plain.stack.functions.summary.role), 'Arn'],
    };
    // Act
    const [topicPolicy] = Object.values(resources(plain, 'AWS::SNS::TopicPolicy'));
    const statements = topicPolicy?.Properties.PolicyDocument.Statement as Json[];
    // Assess: an IAM allow in the same account is enough to publish to a topic whose policy does not deny it, so a
    // forged "run succeeded" or alarm message would reach the operators' mail and chat channels.
    expect(statements.find((s) => s.Sid === 'DenyPublishByOthers')).toEqual({
      Sid: 'DenyPublishByOthers',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'sns:Publish',
      Resource: topicRef(plain),
      Condition: {
        Bool: { 'aws:PrincipalIsAWSService': 'false' },
        ArnNotEquals: { 'aws:PrincipalArn': [summaryRole] },
      },
    });
  });

  it('subscribes each configured email address once, and nothing without addresses', () => {
    // Act
    const subscriptions = Object.values(resources(monitored, 'AWS::SNS::Subscription'));
    // Assess
    expect(subscriptions.map((s) => s.Properties)).toEqual([
      { Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: topicRef(monitored) },
      { Protocol: 'email', Endpoint: 'dba-oncall@example.org', TopicArn: topicRef(monitored) },
    ]);
    expect(resources(plain, 'AWS::SNS::Subscription')).toEqual({});
  });

  it('is a stack output', () => {
    // Act & Assess
    plain.template.hasOutput('AlarmTopicArn', { Value: topicRef(plain) });
  });
});

describe('alarms', () => {
  const stateMachineAlarm =
    (metric: string, machine: 'archive' | 'archiveTable') => (synth: Synthesized) => ({
      Namespace: 'AWS/States',
      MetricName: metric,
      Dimensions: [
        {
          Name: 'StateMachineArn',
          Value: { Ref: logicalId(synth.stack, synth.stack.stateMachines[machine].stateMachine) },
        },
      ],
    });
  const functionAlarm =
    (metric: string, step: keyof Synthesized['stack']['functions']['byStep']) => (synth: Synthesized) => ({
      Namespace: 'AWS/Lambda',
      MetricName: metric,
      Dimensions: [
        {
          Name: 'FunctionName',
          Value: { Ref: logicalId(synth.stack, synth.stack.functions[step].function) },
        },
      ],
    });
  const restoreAlarm = (metric: string) => (synth: Synthesized) => ({
    Namespace: 'AWS/States',
    MetricName: metric,
    Dimensions: [
      {
        Name: 'StateMachineArn',
        Value: { Ref: logicalId(synth.stack, synth.stack.restore.stateMachine.stateMachine) },
      },
    ],
  });
  const restoreFunctionAlarm =
    (metric: string, which: 'plan' | 'file' | 'summary') => (synth: Synthesized) => ({
      Namespace: 'AWS/Lambda',
      MetricName: metric,
      Dimensions: [
        { Name: 'FunctionName', Value: { Ref: logicalId(synth.stack, synth.stack.restore[which].function) } },
      ],
    });
  const steps = ['plan', 'lock', 'export', 'upload', 'verify', 'delete', 'summary'] as const;
  const title = (step: string) => step.charAt(0).toUpperCase() + step.slice(1);
  type Case = [string, (synth: Synthesized) => Record<string, unknown>];
  const anyFailure: Case[] = [
    ['ArchiveExecutionsFailed', stateMachineAlarm('ExecutionsFailed', 'archive')],
    ['ArchiveExecutionsAborted', stateMachineAlarm('ExecutionsAborted', 'archive')],
    ['ArchiveTableExecutionsFailed', stateMachineAlarm('ExecutionsFailed', 'archiveTable')],
    ['RestoreExecutionsFailed', restoreAlarm('ExecutionsFailed')],
  ];
  const sustained: Case[] = [
    ...steps.map((step): Case => [`${title(step)}FunctionThrottles`, functionAlarm('Throttles', step)]),
    ...(['plan', 'file', 'summary'] as const).map(
      (which): Case => [`Restore${title(which)}FunctionThrottles`, restoreFunctionAlarm('Throttles', which)],
    ),
  ];

  it.each(anyFailure)(
    '%s fires on any occurrence (Sum > 0 over 5 minutes) and notifies the topic',
    (id, metric) => {
      // Prepare
      const expected = metric(plain);
      // Act
      const alarm = alarmsById(plain)[id];
      // Assess
      expect(alarm).toMatchObject({
        ...expected,
        Statistic: 'Sum',
        Period: 300,
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        EvaluationPeriods: 1,
        TreatMissingData: 'notBreaching',
        AlarmActions: [topicRef(plain)],
      });
    },
  );

  it.each(sustained)(
    '%s fires only when throttling lasts three 5-minute periods on end (Step Functions retries a throttled call)',
    (id, metric) => {
      // Act
      const alarm = alarmsById(plain)[id];
      // Assess
      expect(alarm).toMatchObject({
        ...metric(plain),
        Statistic: 'Sum',
        Period: 300,
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        EvaluationPeriods: 3,
        DatapointsToAlarm: 3,
        TreatMissingData: 'notBreaching',
        AlarmActions: [topicRef(plain)],
      });
    },
  );

  it('none on timed-out executions, since no state machine sets an execution timeout (add the alarm with one)', () => {
    // Prepare
    const definitions = ['archive', 'archive-table', 'restore'].map((name) =>
      JSON.parse(readFileSync(new URL(`../../statemachines/${name}.asl.json`, import.meta.url), 'utf8')),
    );
    // Act
    const watched = Object.values(alarmsById(plain)).filter(
      (alarm) => alarm.MetricName === 'ExecutionsTimedOut',
    );
    // Assess
    expect(definitions.map((definition) => definition.TimeoutSeconds)).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(watched).toEqual([]);
  });

  it('no alarm watches a function’s Errors: steps retry transient errors, and a lasting one fails its execution', () => {
    // Act
    const watched = Object.values(alarmsById(plain)).filter(
      (alarm) => alarm.Namespace === 'AWS/Lambda' && alarm.MetricName === 'Errors',
    );
    // Assess
    expect(watched).toEqual([]);
  });

  it.each([
    ['VerificationFailures', 'on any failed verification (5 minutes)', { Period: 300, EvaluationPeriods: 1 }],
    [
      'RowsChanged',
      'when batches were withdrawn for changed rows on three UTC days running, not on one',
      { Period: 86_400, EvaluationPeriods: 3, DatapointsToAlarm: 3 },
    ],
  ])('%s fires %s (custom metric of this deployment) and notifies the topic', (id, _when, window) => {
    // Act
    const alarm = alarmsById(plain)[id];
    // Assess: another stack in the account (another lock table) does not fire it.
    expect(alarm).toMatchObject({
      Namespace: 'AuditArchiver',
      MetricName: id,
      Dimensions: [
        { Name: 'deployment', Value: { Ref: logicalId(plain.stack, plain.stack.lockTable.table) } },
        { Name: 'service', Value: 'audit-archiver' },
      ],
      Statistic: 'Sum',
      ...window,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [topicRef(plain)],
    });
  });

  it('are exactly these, and every one notifies the topic', () => {
    // Prepare
    const expected = [
      ...[...anyFailure, ...sustained].map(([id]) => id),
      'VerificationFailures',
      'RowsChanged',
      'NoSuccessfulRun',
    ].sort();
    // Act
    const alarms = Object.values(resources(plain, 'AWS::CloudWatch::Alarm'));
    // Assess
    expect(Object.keys(alarmsById(plain)).sort()).toEqual(expected);
    expect(alarms).toHaveLength(expected.length);
    for (const alarm of alarms) expect(alarm.Properties.AlarmActions).toEqual([topicRef(plain)]);
  });

  it('each links its entry of the runbook, which says what it means, how to confirm it, what to do and when to re-run', () => {
    // Prepare: the runbook's entries, as GitHub anchors its headings
    const runbook = readFileSync(new URL('../../docs/runbook.md', import.meta.url), 'utf8');
    const entries = new Map(
      runbook
        .split(/^## /m)
        .slice(1)
        .map((entry) => [entry.split('\n')[0]?.trim().toLowerCase() ?? '', entry]),
    );
    // Act
    const described = Object.entries(alarmsById(plain)).map(([id, alarm]) => [
      id,
      String(alarm?.AlarmDescription),
    ]);
    const configured = Object.values(alarmsById(monitored)).map((alarm) => String(alarm?.AlarmDescription));
    // Assess
    for (const [id, description] of described) {
      const anchor = /Runbook: docs\/runbook\.md#([a-z]+)$/.exec(description ?? '')?.[1] ?? '';
      expect(anchor, id).toBe(id?.endsWith('FunctionThrottles') ? 'functionthrottles' : id?.toLowerCase());
      const entry = entries.get(anchor) ?? '';
      expect(entry, id).toMatch(/\*\*Means\.\*\*/);
      if (anchor !== 'archivetableexecutionsfailed') expect(entry, id).toMatch(/\*\*Re-run\*\*/);
    }
    expect(
      configured.every((d) =>
        /Runbook: https:\/\/wiki\.example\.com\/audit-archiver\/runbook#[a-z]+$/.test(d),
      ),
    ).toBe(true);
    expect(entries.get('batchoutcomeunknownerror')).toMatch(/\*\*Decide\.\*\*/);
  });

  it.each([
    ['the default 26 hours', () => plain, 26],
    ['the configured 74 hours', () => monitored, 74],
  ])(
    'NoSuccessfulRun alarms after %s without a run that succeeded, missing data breaching',
    (_case, pick, hours) => {
      // Prepare
      const synth = pick();
      // Act
      const alarm = alarmsById(synth).NoSuccessfulRun;
      // Assess: hourly Sum of this deployment's RunsSucceeded (the summary's, which a dry run never reaches;
      // test/local/workflow) < 1 in all N of the last N hours (a window of N hours).
      expect(alarm).toMatchObject({
        Namespace: 'AuditArchiver',
        MetricName: 'RunsSucceeded',
        Dimensions: expect.arrayContaining([
          { Name: 'service', Value: 'audit-archiver' },
          { Name: 'deployment', Value: { Ref: logicalId(synth.stack, synth.stack.lockTable.table) } },
        ]),
        Statistic: 'Sum',
        Period: 3600,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        EvaluationPeriods: hours,
        DatapointsToAlarm: hours,
        TreatMissingData: 'breaching',
        ActionsEnabled: true,
        AlarmActions: [topicRef(synth)],
      });
      expect((alarm?.Period as number) * (alarm?.EvaluationPeriods as number)).toBe(hours * 3600);
      // CloudWatch's limit for hourly periods: Period x EvaluationPeriods <= 7 days.
      expect((alarm?.Period as number) * (alarm?.EvaluationPeriods as number)).toBeLessThanOrEqual(
        7 * 86_400,
      );
    },
  );

  describe('when the schedule is disabled', () => {
    let dir: string;
    let unscheduled: Synthesized;
    beforeAll(() => {
      // Prepare: the monitored fixture with `enabled: false` under aws.schedule.
      dir = mkdtempSync(join(tmpdir(), 'unscheduled-'));
      const file = join(dir, 'unscheduled.yaml');
      const text = readFileSync(fixture('monitored.yaml'), 'utf8');
      writeFileSync(
        file,
        text.replace('    timeZone: Europe/Berlin\n', '    timeZone: Europe/Berlin\n    enabled: false\n'),
      );
      unscheduled = synthesize({ configFile: file });
    }, 60_000);
    afterAll(() => {
      unscheduled?.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    it('disables the schedule and the no-successful-run alarm’s actions, and keeps every other alarm', () => {
      // Act
      const schedule = resourceOf(unscheduled, unscheduled.stack.schedule.schedule);
      const alarms = alarmsById(unscheduled);
      // Assess
      expect(schedule.Properties.State).toBe('DISABLED');
      expect(alarms.NoSuccessfulRun?.ActionsEnabled).toBe(false);
      expect(alarms.ArchiveExecutionsFailed?.ActionsEnabled).toBeUndefined();
    });
  });
});

/** The dashboard body as the console reads it, with `Ref`s rendered as the logical id. */
const dashboardBody = (synth: Synthesized) => {
  const [dashboard] = Object.values(resources(synth, 'AWS::CloudWatch::Dashboard'));
  const body = dashboard?.Properties.DashboardBody as string | { 'Fn::Join': [string, unknown[]] };
  const text =
    typeof body === 'string'
      ? body
      : body['Fn::Join'][1]
          .map((part) => (typeof part === 'string' ? part : (part as { Ref: string }).Ref))
          .join('');
  return JSON.parse(text) as {
    widgets: { type: string; properties: { title?: string; metrics?: unknown[][] } }[];
  };
};

describe('dashboard', () => {
  const customMetrics: MetricName[] = [
    'RowsArchived',
    'BytesArchived',
    'BatchesArchived',
    'RowsDeleted',
    'VerificationFailures',
    'TablesSkippedLocked',
    'ReplicaLagPauses',
    'VacuumFailures',
  ];
  const metricLines = () => dashboardBody(plain).widgets.flatMap((w) => w.properties.metrics ?? []);
  /** The deployment dimension's value as the dashboard reads (the lock table's Ref, here its logical id). */
  const deployment = () => logicalId(plain.stack, plain.stack.lockTable.table);
  /** The SEARCH of one series per table of this deployment. */
  const perTable = (name: MetricName, statistic: string, period: number) =>
    `SEARCH('{AuditArchiver,service,deployment,database,table} service="audit-archiver" deployment="${deployment()}" MetricName="${name}"', '${statistic}', ${period})`;
  /** The SEARCH expressions of the widget titled `title`. */
  const search = (title: string) =>
    dashboardBody(plain)
      .widgets.find((w) => w.properties.title === title)
      ?.properties.metrics?.map((line) => (line[0] as { expression?: string }).expression);

  it('graphs the totals of the custom metrics (namespace AuditArchiver, this deployment), and says how they are found', () => {
    // Act
    const lines = metricLines();
    const text = dashboardBody(plain).widgets.find((w) => w.type === 'text');
    // Assess
    expect((text?.properties as { markdown?: string } | undefined)?.markdown).toContain(
      `totals carry the \`service\` and \`deployment\` dimensions (deployment: ${deployment()}, the lock table's name)`,
    );
    for (const name of customMetrics) {
      expect(lines).toContainEqual([
        'AuditArchiver',
        name,
        'deployment',
        deployment(),
        'service',
        'audit-archiver',
        expect.objectContaining({ stat: 'Sum' }),
      ]);
    }
  });

  it('graphs them per table through a SEARCH on the service, deployment, database and table dimensions', () => {
    // Act
    const expressions = metricLines()
      .map((line) => (line[0] as { expression?: string }).expression)
      .filter((e) => e !== undefined);
    // Assess
    for (const name of ['RowsArchived', 'BytesArchived', 'RowsDeleted', 'VerificationFailures'] as const) {
      expect(expressions).toContain(perTable(name, 'Sum', 300));
    }
  });

  it('answers “are we keeping up?”: the backlog in rows, successful runs and runs that left rows, per table and per day', () => {
    // Act / Assess
    expect(search('Successful runs per table (per day)')).toEqual([
      perTable('TableRunsSucceeded', 'Sum', 86400),
    ]);
    expect(search('Backlog: eligible rows left after each run, per table')).toEqual([
      perTable('BacklogRows', 'Minimum', 86400),
    ]);
    expect(search('Runs that left rows for the next run, per table (per day)')).toEqual([
      perTable('TablesBudgetReached', 'Sum', 86400),
    ]);
  });

  it('answers “is the archiver yielding to the application?”: the load export saw and the waits set, per table', () => {
    // Act / Assess
    expect(search('Application load seen by export (busy sessions, per batch), per table')).toEqual([
      perTable('BusySessions', 'Maximum', 300),
    ]);
    expect(search('Throttle waits after batches (seconds), per table')).toEqual([
      perTable('ThrottlePauseSeconds', 'Sum', 300),
    ]);
  });

  it('is a stack output with the other outputs, each described', () => {
    // Act
    const outputs = plain.template.toJSON().Outputs as Record<
      string,
      { Description?: string; Value: unknown }
    >;
    // Assess
    expect(JSON.stringify(outputs.DashboardUrl?.Value)).toContain('#dashboards/dashboard/');
    for (const [name, output] of Object.entries(outputs)) expect(output.Description, name).toMatch(/\w{4}/);
  });

  it('graphs the step durations, the outcomes of both state machines and the runs that succeeded', () => {
    // Prepare
    const parent = logicalId(plain.stack, plain.stack.stateMachines.archive.stateMachine);
    const child = logicalId(plain.stack, plain.stack.stateMachines.archiveTable.stateMachine);
    // Act
    const lines = metricLines();
    // Assess
    for (const name of ['ExportDuration', 'UploadDuration', 'VerifyDuration', 'DeleteDuration']) {
      // The widget's default statistic (Average) is left out of the line.
      const stats = lines
        .filter((line) => line[0] === 'AuditArchiver' && line[1] === name && line[3] === deployment())
        .map((line) => (line[6] as { stat?: string }).stat ?? 'Average');
      expect([name, stats.sort()]).toEqual([name, ['Average', 'Maximum', 'p99']]);
    }
    for (const machine of [parent, child]) {
      for (const outcome of ['ExecutionsSucceeded', 'ExecutionsFailed', 'ExecutionsAborted']) {
        expect(lines).toContainEqual(['AWS/States', outcome, 'StateMachineArn', machine, expect.anything()]);
      }
    }
    // The deployment's runs that succeeded (dry runs aside), what NoSuccessfulRun watches (the lock table's Ref reads
    // here as its logical id).
    expect(lines).toContainEqual([
      'AuditArchiver',
      'RunsSucceeded',
      'deployment',
      deployment(),
      'service',
      'audit-archiver',
      expect.objectContaining({ stat: 'Sum' }),
    ]);
  });

  it('shows the state of every alarm', () => {
    // Act
    const status = dashboardBody(plain).widgets.find((w) => w.type === 'alarm');
    const alarms = (status?.properties as { alarms?: unknown[] } | undefined)?.alarms;
    // Assess
    expect(alarms).toHaveLength(Object.keys(alarmsById(plain)).length);
  });
});

describe('settings from the aws block', () => {
  it('schedules with the configured expression and time zone', () => {
    // Act
    const schedule = resourceOf(monitored, monitored.stack.schedule.schedule);
    // Assess
    expect(schedule.Properties).toMatchObject({
      ScheduleExpression: 'cron(30 2 ? * MON-FRI *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
      State: 'ENABLED',
    });
  });

  it('logs both state machines at the configured level', () => {
    for (const machine of [
      monitored.stack.stateMachines.archive,
      monitored.stack.stateMachines.archiveTable,
    ]) {
      // Act
      const resource = resourceOf(monitored, machine.stateMachine);
      // Assess
      expect(resource.Properties.LoggingConfiguration).toMatchObject({
        Level: 'ALL',
        IncludeExecutionData: false,
      });
    }
  });

  it('passes cdk-nag AwsSolutions with subscriptions and ALL logging', () => {
    // Act
    const found = new AwsSolutionsChecks(undefined, { verbose: true })
      .validateScope(monitored.stack)
      .violations.map(
        (v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
      );
    // Assess
    expect(found).toEqual([]);
  });
});

describe('chat channels (AWS Chatbot)', () => {
  let chat: Synthesized;
  beforeAll(() => {
    chat = synthesize({ configFile: fixture('production.yaml') });
  }, 60_000);
  afterAll(() => chat?.dispose());

  const role = () => {
    const created = chat.stack.chatNotifications.role;
    if (!created) throw new Error('no channel role');
    return created;
  };
  const channelRole = () => logicalId(chat.stack, role());
  const guardrail = {
    'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/CloudWatchReadOnlyAccess']],
  };

  it('posts the alarm topic to the configured Slack channel, read-only', () => {
    // Act
    const [slack] = Object.values(resources(chat, 'AWS::Chatbot::SlackChannelConfiguration'));
    // Assess
    expect(slack?.Properties).toMatchObject({
      SlackWorkspaceId: 'T0123ABCD',
      SlackChannelId: 'C0123ABCDE',
      SnsTopicArns: [topicRef(chat)],
      IamRoleArn: { 'Fn::GetAtt': [channelRole(), 'Arn'] },
      GuardrailPolicies: [guardrail],
      UserRoleRequired: false,
    });
  });

  it('posts the alarm topic to the configured Teams channel, read-only', () => {
    // Act
    const [teams] = Object.values(resources(chat, 'AWS::Chatbot::MicrosoftTeamsChannelConfiguration'));
    // Assess
    expect(teams?.Properties).toMatchObject({
      TeamId: '5f9c0f6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f',
      TeamsTenantId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
      TeamsChannelId: '19%3Aabcdef0123456789%40thread.tacv2',
      SnsTopicArns: [topicRef(chat)],
      IamRoleArn: { 'Fn::GetAtt': [channelRole(), 'Arn'] },
      GuardrailPolicies: [guardrail],
      UserRoleRequired: false,
    });
  });

  it('lets Chatbot only read alarms and render their charts', () => {
    // Act
    const resource = resourceOf(chat, role());
    const statements = roleStatements(chat.template, channelRole());
    // Assess
    expect(resource.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      expect.objectContaining({
        Principal: { Service: 'chatbot.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      }),
    ]);
    expect(resource.Properties.ManagedPolicyArns).toBeUndefined();
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Action: ['cloudwatch:DescribeAlarms', 'cloudwatch:GetMetricData', 'cloudwatch:GetMetricWidgetImage'],
        Resource: '*',
      },
    ]);
  });

  it('creates no channel and no role without a chat channel in the config', () => {
    // Assess
    expect(plain.stack.chatNotifications.role).toBeUndefined();
    expect(resources(plain, 'AWS::Chatbot::SlackChannelConfiguration')).toEqual({});
    expect(resources(plain, 'AWS::Chatbot::MicrosoftTeamsChannelConfiguration')).toEqual({});
  });
});
