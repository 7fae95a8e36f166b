import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATE_MACHINES_DIR } from '../../lib/archive-state-machines.js';
import { AslStateMachine, aslPlaceholders } from '../../lib/asl-state-machine.js';
import {
  actionsOf,
  logicalId,
  resourcesOf,
  roleStatements,
  type Statement,
  type Synthesized,
  synthesize,
} from './synth.js';

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize();
}, 60_000);
afterAll(() => synth.dispose());

const aslFile = (name: string) => readFileSync(join(STATE_MACHINES_DIR, name), 'utf8');

const stateMachine = (construct: { stateMachine: { node: { defaultChild?: unknown } } }) => {
  const id = logicalId(synth.stack, construct.stateMachine);
  const resource = synth.template.toJSON().Resources[id];
  return { id, properties: resource.Properties as Record<string, unknown>, resource };
};

/** How a substitution value reads once CloudFormation has filled it in: `<Logical.Arn>` or `<Logical>`. */
const rendered = (value: unknown): string => {
  const ref = value as { 'Fn::GetAtt'?: [string, string]; Ref?: string };
  if (ref['Fn::GetAtt']) return `<${ref['Fn::GetAtt'].join('.')}>`;
  if (ref.Ref) return `<${ref.Ref}>`;
  throw new Error(`unexpected substitution ${JSON.stringify(value)}`);
};

/** Fills the placeholders as CloudFormation does at deploy time. */
const substitute = (definition: string, substitutions: Record<string, unknown>): string =>
  definition.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name: string) => rendered(substitutions[name]));

/** Turns every filled-in value back into its placeholder. */
const undoSubstitutions = (definition: string, substitutions: Record<string, unknown>): string =>
  Object.entries(substitutions).reduce(
    (text, [name, value]) => text.replaceAll(rendered(value), `\${${name}}`),
    definition,
  );

describe('state machine definitions', () => {
  const cases = [
    {
      file: 'archive.asl.json',
      pick: () => synth.stack.stateMachines.archive,
      expected: () => ({
        PlanFunctionArn: {
          'Fn::GetAtt': [logicalId(synth.stack, synth.stack.functions.plan.function), 'Arn'],
        },
        SummaryFunctionArn: {
          'Fn::GetAtt': [logicalId(synth.stack, synth.stack.functions.summary.function), 'Arn'],
        },
        ArchiveTableStateMachineArn: {
          Ref: logicalId(synth.stack, synth.stack.stateMachines.archiveTable.stateMachine),
        },
      }),
    },
    {
      file: 'archive-table.asl.json',
      pick: () => synth.stack.stateMachines.archiveTable,
      expected: () => {
        const fns = synth.stack.functions;
        const arn = (fn: typeof fns.lock) => ({ 'Fn::GetAtt': [logicalId(synth.stack, fn.function), 'Arn'] });
        return {
          LockFunctionArn: arn(fns.lock),
          ExportFunctionArn: arn(fns.export),
          UploadFunctionArn: arn(fns.upload),
          VerifyFunctionArn: arn(fns.verify),
          DeleteFunctionArn: arn(fns.delete),
        };
      },
    },
    {
      file: 'restore.asl.json',
      pick: () => synth.stack.restore.stateMachine,
      expected: () => {
        const { restore } = synth.stack;
        const arn = (fn: typeof restore.plan) => ({
          'Fn::GetAtt': [logicalId(synth.stack, fn.function), 'Arn'],
        });
        return {
          RestorePlanFunctionArn: arn(restore.plan),
          RestoreFileFunctionArn: arn(restore.file),
          RestoreSummaryFunctionArn: arn(restore.summary),
        };
      },
    },
  ];

  it('deploys every ASL file in statemachines/, each exactly once', () => {
    // Act
    const files = readdirSync(STATE_MACHINES_DIR).filter((f) => f.endsWith('.asl.json'));
    // Assess
    expect(files.sort()).toEqual(cases.map((c) => c.file).sort());
    expect(Object.keys(synth.template.findResources('AWS::StepFunctions::StateMachine'))).toHaveLength(3);
  });

  for (const { file, pick, expected } of cases) {
    it(`deploys ${file} exactly, with placeholders filled by DefinitionSubstitutions`, () => {
      // Prepare
      const local = aslFile(file);
      // Act
      const { properties } = stateMachine(pick());
      const deployed = properties.DefinitionString as string;
      const substitutions = properties.DefinitionSubstitutions as Record<string, unknown>;
      // Assess: the deployed text is the file's JSON, placeholders included, and nothing is added or dropped.
      expect(typeof deployed).toBe('string');
      expect(JSON.parse(deployed)).toEqual(JSON.parse(local));
      expect(deployed).toBe(JSON.stringify(JSON.parse(local)));
      expect(Object.keys(substitutions).sort()).toEqual(aslPlaceholders(local));
      expect(substitutions).toEqual(expected());
      // Assess: the definition as deployed (placeholders filled), with the substitutions undone, is the file.
      const filled = substitute(deployed, substitutions);
      expect(filled).not.toContain('${');
      expect(JSON.parse(undoSubstitutions(filled, substitutions))).toEqual(JSON.parse(local));
    });
  }

  it('names the restore state machine after the stack, for operators to find in the console', () => {
    // Act
    const { properties } = stateMachine(synth.stack.restore.stateMachine);
    // Assess
    expect(properties.StateMachineName).toBe('AuditArchiver-restore');
  });

  it('deploys all as Standard state machines with ERROR logging and X-Ray tracing', () => {
    // Prepare
    const machines = [
      synth.stack.stateMachines.archive,
      synth.stack.stateMachines.archiveTable,
      synth.stack.restore.stateMachine,
    ];
    for (const machine of machines) {
      // Act
      const { properties } = stateMachine(machine);
      // Assess
      expect(properties.StateMachineType).toBe('STANDARD');
      expect(properties.TracingConfiguration).toEqual({ Enabled: true });
      expect(properties.LoggingConfiguration).toMatchObject({ Level: 'ERROR', IncludeExecutionData: false });
      expect(properties.DefinitionS3Location).toBeUndefined();
    }
  });
});

describe('state machine roles', () => {
  const invokeTargets = (statements: Statement[]) =>
    statements
      .filter((s) => actionsOf(s).includes('lambda:InvokeFunction'))
      .flatMap(resourcesOf)
      .map((r) => JSON.stringify(r))
      .sort();
  const functionArns = (...fns: { function: { node: { defaultChild?: unknown } } }[]) =>
    fns
      .flatMap((fn) => {
        const arn = { 'Fn::GetAtt': [logicalId(synth.stack, fn.function), 'Arn'] };
        return [arn, { 'Fn::Join': ['', [arn, ':*']] }];
      })
      .map((r) => JSON.stringify(r))
      .sort();
  const roleOf = (machine: { role: { node: { defaultChild?: unknown } } }) =>
    roleStatements(synth.template, logicalId(synth.stack, machine.role));

  it('lets the restore state machine invoke exactly its three functions, nothing else', () => {
    // Prepare
    const { restore } = synth.stack;
    // Act
    const statements = roleOf(restore.stateMachine);
    // Assess
    expect(invokeTargets(statements)).toEqual(functionArns(restore.plan, restore.file, restore.summary));
    expect(statements.flatMap(actionsOf).filter((a) => /^(states|events|s3|dynamodb):/.test(a))).toEqual([]);
  });

  it('lets the child invoke exactly lock, export, upload, verify and delete', () => {
    // Prepare
    const fns = synth.stack.functions;
    // Act
    const statements = roleOf(synth.stack.stateMachines.archiveTable);
    // Assess
    expect(invokeTargets(statements)).toEqual(
      functionArns(fns.lock, fns.export, fns.upload, fns.verify, fns.delete),
    );
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('states:'))).toEqual([]);
  });

  it('use Resource "*" only for log delivery and X-Ray, which allow no resource scope', () => {
    // Prepare
    const allowed =
      /^(logs:(Create|Get|Update|Delete|List)LogDeliver(y|ies)|logs:PutResourcePolicy|logs:Describe(ResourcePolicies|LogGroups)|xray:(PutTraceSegments|PutTelemetryRecords|GetSamplingRules|GetSamplingTargets))$/;
    for (const machine of [
      synth.stack.stateMachines.archive,
      synth.stack.stateMachines.archiveTable,
      synth.stack.restore.stateMachine,
    ]) {
      // Act
      const unscoped = roleOf(machine).filter((s) => resourcesOf(s).includes('*'));
      // Assess
      expect(unscoped.flatMap(actionsOf).filter((a) => !allowed.test(a))).toEqual([]);
    }
  });

  it('lets the parent invoke plan and summary and run the child synchronously, nothing else', () => {
    // Prepare
    const fns = synth.stack.functions;
    const child = logicalId(synth.stack, synth.stack.stateMachines.archiveTable.stateMachine);
    // Act
    const statements = roleOf(synth.stack.stateMachines.archive);
    const byAction = (action: string) => statements.filter((s) => actionsOf(s).includes(action));
    // Assess
    expect(invokeTargets(statements)).toEqual(functionArns(fns.plan, fns.summary));
    expect(byAction('states:StartExecution').flatMap(resourcesOf)).toEqual([{ Ref: child }]);
    const executions = JSON.stringify(byAction('states:DescribeExecution').flatMap(resourcesOf));
    expect(executions).toContain(':execution:');
    expect(executions).toContain(`{"Fn::GetAtt":["${child}","Name"]},":*"`);
    expect(byAction('states:StopExecution')).toEqual(byAction('states:DescribeExecution'));
    const rule = JSON.stringify(byAction('events:PutRule').flatMap(resourcesOf));
    expect(rule).toContain(':rule/StepFunctionsGetEventsForStepFunctionsExecutionRule');
    expect(byAction('events:PutTargets')).toEqual(byAction('events:PutRule'));
  });
});

describe('AslStateMachine', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'asl-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a definition whose placeholders and substitutions differ', () => {
    // Prepare
    const file = join(dir, 'mismatch.asl.json');
    writeFileSync(
      file,
      JSON.stringify({
        StartAt: 'A',
        States: {
          A: {
            Type: 'Task',
            Resource: 'arn:aws:states:::lambda:invoke',
            // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation substitution placeholder
            Parameters: { FunctionName: '${A}' },
            End: true,
          },
        },
      }),
    );
    const stack = new Stack(new App(), 'Test');
    // Act
    const build = () =>
      new AslStateMachine(stack, 'Machine', { definitionFile: file, substitutions: { B: 'arn' } });
    // Assess
    expect(build).toThrow(/no value for: A; not in the file: B/);
  });

  it('refuses a file that is not JSON, naming the file', () => {
    // Prepare
    const file = join(dir, 'broken.asl.json');
    writeFileSync(file, '{ "StartAt": ');
    const stack = new Stack(new App(), 'Test');
    // Act
    const build = () => new AslStateMachine(stack, 'Machine', { definitionFile: file, substitutions: {} });
    // Assess
    expect(build).toThrow(/broken\.asl\.json: cannot read the state machine definition/);
  });
});

describe('schedule', () => {
  const scheduleResource = () =>
    synth.template.toJSON().Resources[logicalId(synth.stack, synth.stack.schedule.schedule)];

  it('starts the parent state machine daily at 03:00 UTC with input {} (the config defaults)', () => {
    // Prepare
    const parent = logicalId(synth.stack, synth.stack.stateMachines.archive.stateMachine);
    // Act
    const schedule = scheduleResource();
    // Assess
    expect(schedule.Type).toBe('AWS::Scheduler::Schedule');
    expect(schedule.Properties.ScheduleExpression).toBe('cron(0 3 * * ? *)');
    expect(schedule.Properties.ScheduleExpressionTimezone).toBe('UTC');
    expect(schedule.Properties.State).toBe('ENABLED');
    expect(schedule.Properties.FlexibleTimeWindow).toEqual({ Mode: 'OFF' });
    expect(schedule.Properties.Target).toMatchObject({ Arn: { Ref: parent }, Input: '{}' });
    expect(synth.template.findResources('AWS::Events::Rule')).toEqual({});
  });

  it('retries delivery and dead-letters what it cannot deliver', () => {
    // Prepare
    const queue = logicalId(synth.stack, synth.stack.schedule.deadLetterQueue);
    // Act
    const target = scheduleResource().Properties.Target;
    // Assess
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [queue, 'Arn'] } });
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 7200 });
  });

  it('uses an encrypted dead-letter queue that refuses requests without TLS and has no resource grants', () => {
    // Prepare
    const queue = logicalId(synth.stack, synth.stack.schedule.deadLetterQueue);
    // Act & Assess
    synth.template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 1_209_600,
    });
    // Scheduler dead-letters with the schedule's role, so the queue policy needs no Allow.
    synth.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: queue }],
      PolicyDocument: {
        Statement: [
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ],
      },
    });
  });

  it('gives the schedule a role that may start only the parent state machine and dead-letter only to its queue', () => {
    // Prepare
    const parent = logicalId(synth.stack, synth.stack.stateMachines.archive.stateMachine);
    const queue = logicalId(synth.stack, synth.stack.schedule.deadLetterQueue);
    const role = scheduleResource().Properties.Target.RoleArn['Fn::GetAtt'][0] as string;
    // Act
    const statements = roleStatements(synth.template, role);
    const trust = synth.template.toJSON().Resources[role].Properties.AssumeRolePolicyDocument.Statement;
    // Assess
    expect(role).toBe(logicalId(synth.stack, synth.stack.schedule.role));
    expect(statements).toEqual([
      { Action: 'states:StartExecution', Effect: 'Allow', Resource: { Ref: parent } },
      { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: { 'Fn::GetAtt': [queue, 'Arn'] } },
    ]);
    expect(trust).toHaveLength(1);
    expect(trust[0].Principal).toEqual({ Service: 'scheduler.amazonaws.com' });
    expect(trust[0].Condition.StringEquals['aws:SourceAccount']).toEqual({ Ref: 'AWS::AccountId' });
    expect(JSON.stringify(trust[0].Condition.StringEquals['aws:SourceArn'])).toContain(
      ':schedule-group/default',
    );
  });
});

describe('task timeouts', () => {
  it('give every Lambda task more time than the function its placeholder deploys as, so Step Functions never retries a running call', () => {
    // Prepare: each deployed state machine's Lambda tasks, and the function its substitution points at.
    const resources = synth.template.toJSON().Resources;
    type State = {
      Type: string;
      Resource?: string;
      TimeoutSeconds?: number;
      Parameters?: { FunctionName?: string };
      ItemProcessor?: { States: Record<string, State> };
    };
    const tasks = (states: Record<string, State>): State[] =>
      Object.values(states).flatMap((s) => [s, ...(s.ItemProcessor ? tasks(s.ItemProcessor.States) : [])]);
    const machines = Object.values(synth.template.findResources('AWS::StepFunctions::StateMachine'));

    // Act
    const checked = machines.flatMap((machine) => {
      const substitutions = machine.Properties.DefinitionSubstitutions as Record<
        string,
        { 'Fn::GetAtt'?: string[] }
      >;
      return tasks(JSON.parse(machine.Properties.DefinitionString).States)
        .filter((s) => s.Resource === 'arn:aws:states:::lambda:invoke')
        .map((task) => {
          const placeholder = /^\$\{(\w+)\}$/.exec(task.Parameters?.FunctionName ?? '')?.[1] ?? '';
          const functionId = substitutions[placeholder]?.['Fn::GetAtt']?.[0] ?? '';
          return { placeholder, task: task.TimeoutSeconds, fn: resources[functionId]?.Properties.Timeout };
        });
    });

    // Assess
    expect(checked.length).toBeGreaterThan(10);
    for (const { placeholder, task, fn } of checked) {
      expect(fn, placeholder).toBeTypeOf('number');
      expect(task, placeholder).toBeGreaterThan(fn);
    }
  });
});
