import { Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planRestore, type RestorePlanDeps } from '../../lambdas/restore-plan/core.js';
import { sourcePrefix } from '../../lambdas/shared/archive/catalog.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { RestoreRequestSchema } from '../../lambdas/shared/restore/restore-task.js';
import { ArchiveBucket } from '../../lib/archive-bucket.js';
import type { ArchiverFunction } from '../../lib/archiver-function.js';
import { NETWORK_INTERFACE_ACTIONS } from '../../lib/archiver-function.js';
import type { LoggedRequest } from '../../local/services.js';
import { recordProof } from '../support/proof-ledger.js';
import { deniedRequests, stackRoles } from '../support/role-grants.js';
import {
  actionsOf,
  fixture,
  logicalId,
  projectApp,
  resourcesOf,
  roleStatements,
  type Statement,
  type Synthesized,
  synthesize,
} from './synth.js';

/** cdk-nag v3 is a validation plugin; `validateScope` runs the checks `cdk synth` runs, here on one stack. */
const nagViolations = (scope: IConstruct) =>
  new AwsSolutionsChecks(undefined, { verbose: true })
    .validateScope(scope)
    .violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);

const acknowledgments = (scope: IConstruct) =>
  scope.node
    .findAll()
    .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY))
    .flatMap((m) => Object.entries(m.data as Record<string, string>));

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize();
}, 60_000);
afterAll(() => synth.dispose());

type Step = 'plan' | 'lock' | 'export' | 'upload' | 'verify' | 'delete' | 'summary';
const STEPS: Step[] = ['plan', 'lock', 'export', 'upload', 'verify', 'delete', 'summary'];

const fn = (step: Step): ArchiverFunction => synth.stack.functions[step];
const statementsOf = (step: Step): Statement[] =>
  roleStatements(synth.template, logicalId(synth.stack, fn(step).role));

/** Key patterns (relative to the bucket) that `action` is allowed on for `step`. */
const objectPatterns = (step: Step, action: string): string[] => {
  const bucket = logicalId(synth.stack, synth.stack.archiveBucket.bucket);
  return statementsOf(step)
    .filter((s) => actionsOf(s).includes(action))
    .flatMap(resourcesOf)
    .map((resource) => {
      const join = (resource as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
      const [arn, suffix] = join?.[1] ?? [];
      expect(arn).toEqual({ 'Fn::GetAtt': [bucket, 'Arn'] });
      return String(suffix).replace(/^\//, '');
    })
    .sort();
};
const AREAS = {
  staging: 'audit/_staging/*',
  quarantine: 'audit/_quarantine/*',
  archives: ['audit/billing/*', 'audit/crm/*'],
  /** The audit trail (the fixture's prefix is "audit/"; the trail lives in its own underscore area). */
  audit: 'audit/_audit/events/*',
};

describe('function roles', () => {
  it('never use a service or global wildcard action, and never AWS managed policies', () => {
    for (const step of STEPS) {
      // Act
      const actions = statementsOf(step).flatMap(actionsOf);
      const role = synth.template.toJSON().Resources[logicalId(synth.stack, fn(step).role)];
      // Assess
      expect(actions.filter((a) => a.includes('*'))).toEqual([]);
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    }
  });

  it('never grant object access on the whole bucket', () => {
    for (const step of STEPS) {
      for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload']) {
        // Act
        const patterns = objectPatterns(step, action);
        // Assess
        expect(patterns.filter((p) => p === '*' || p === 'audit/*')).toEqual([]);
      }
    }
  });

  it('let plan do nothing but write its logs and traces besides the reads of a dry run', () => {
    // Act: a dry run's reads (secrets, lock table) and the audit-event writes are checked by the tests below.
    const statements = statementsOf('plan').filter(
      (s) =>
        !actionsOf(s).some(
          (a) =>
            a.startsWith('secretsmanager:') ||
            a.startsWith('dynamodb:') ||
            a.startsWith('s3:') ||
            a.startsWith('kms:'),
        ),
    );
    // Assess: X-Ray's two write actions support no resource scope (the only "*" a step has).
    expect(statements).toEqual([
      {
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [logicalId(synth.stack, fn('plan').logGroup), 'Arn'] },
      },
      {
        Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
        Effect: 'Allow',
        Resource: '*',
      },
    ]);
  });

  it('use Resource "*" only for the X-Ray trace writes', () => {
    for (const step of STEPS) {
      // Act
      const unscoped = statementsOf(step).filter((s) => resourcesOf(s).includes('*'));
      // Assess
      expect([step, unscoped.flatMap(actionsOf).sort()]).toEqual([
        step,
        ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
      ]);
    }
  });

  it('let only plan (dry run), export and delete read the database secrets, and only those secrets', () => {
    // Prepare
    const secretArns = [
      'arn:aws:secretsmanager:eu-west-1:111122223333:secret:audit-archiver/billing-AbCdEf',
      'arn:aws:secretsmanager:eu-west-1:111122223333:secret:audit-archiver/crm',
    ];
    for (const step of STEPS) {
      // Act
      const secretStatements = statementsOf(step).filter((s) =>
        actionsOf(s).some((a) => a.startsWith('secretsmanager:')),
      );
      // Assess
      if (['plan', 'export', 'delete'].includes(step)) {
        expect(secretStatements.flatMap(actionsOf)).toEqual(['secretsmanager:GetSecretValue']);
        expect(secretStatements.flatMap(resourcesOf).sort()).toEqual(
          secretArns.flatMap((arn) => [arn, `${arn}-??????`]).sort(),
        );
      } else {
        expect([step, secretStatements]).toEqual([step, []]);
      }
    }
  });

  it('let upload publish archives and keep quarantine copies, but delete only staging objects and manifests (an orphan one, never data)', () => {
    // Act & Assess: a damaged staged object is copied to the quarantine; the next export discards the batch.
    expect(objectPatterns('upload', 's3:PutObject')).toEqual([AREAS.quarantine, ...AREAS.archives]);
    expect(objectPatterns('upload', 's3:DeleteObject')).toEqual([
      AREAS.staging,
      ...AREAS.archives.map((area) => `${area}.manifest.json`),
    ]);
    expect(objectPatterns('upload', 's3:GetObject')).toEqual([AREAS.staging, ...AREAS.archives].sort());
  });

  it('let export write only staging objects and quarantine copies', () => {
    // Act & Assess: a withdrawal reads a staging object's head (whose batch wrote it) before it deletes it, and keeps
    // in the quarantine a batch's archive copied under an earlier name of the lock table.
    expect(objectPatterns('export', 's3:PutObject')).toEqual([AREAS.audit, AREAS.quarantine, AREAS.staging]);
    expect(objectPatterns('export', 's3:GetObject')).toEqual(
      [AREAS.audit, AREAS.staging, ...AREAS.archives].sort(),
    );
    expect(objectPatterns('export', 's3:DeleteObject')).toEqual([AREAS.staging, ...AREAS.archives].sort());
  });

  it('let every step that reads an object also read the version it pinned, as S3 authorizes a read naming one', () => {
    // Act & Assess: restore-file reads each archive pinned to the version its inventory entry recorded.
    const steps = ['plan', 'lock', 'export', 'upload', 'verify', 'delete', 'summary'] as const;
    for (const step of steps) {
      expect(objectPatterns(step, 's3:GetObjectVersion')).toEqual(objectPatterns(step, 's3:GetObject'));
    }
  });

  it('let verify and delete never write archives, only quarantine copies (each withdraws an archive that changed)', () => {
    // Act & Assess
    expect(objectPatterns('verify', 's3:PutObject')).toEqual([AREAS.quarantine]);
    expect(objectPatterns('delete', 's3:PutObject')).toEqual([AREAS.quarantine]);
    for (const step of ['verify', 'delete'] as const) {
      expect(objectPatterns(step, 's3:GetObject')).toEqual([AREAS.staging, ...AREAS.archives].sort());
      expect(objectPatterns(step, 's3:DeleteObject')).toEqual([AREAS.staging, ...AREAS.archives].sort());
    }
  });

  it('let plan, lock and summary touch no object but audit events, which they never delete', () => {
    for (const step of ['plan', 'lock', 'summary'] as const) {
      // Act & Assess: an event is read back (write-once check) and written, nothing else.
      expect([step, objectPatterns(step, 's3:PutObject')]).toEqual([step, [AREAS.audit]]);
      expect([step, objectPatterns(step, 's3:GetObject')]).toEqual([step, [AREAS.audit]]);
      expect([step, objectPatterns(step, 's3:DeleteObject')]).toEqual([step, []]);
    }
  });

  it('let only summary publish, to the alarm topic alone, through its key only via SNS', () => {
    // Prepare
    const topic = { Ref: logicalId(synth.stack, synth.stack.monitoring.topic) };
    const topicKey = { 'Fn::GetAtt': [logicalId(synth.stack, synth.stack.monitoring.topicKey), 'Arn'] };
    for (const step of STEPS) {
      // Act
      const publish = statementsOf(step).filter((s) => actionsOf(s).some((a) => a.startsWith('sns:')));
      const keyUse = statementsOf(step).filter(
        (s) => JSON.stringify(s.Resource) === JSON.stringify(topicKey),
      );
      // Assess
      if (step !== 'summary') {
        expect([step, publish, keyUse]).toEqual([step, [], []]);
        continue;
      }
      expect(publish.flatMap(actionsOf)).toEqual(['sns:Publish']);
      expect(publish.flatMap(resourcesOf)).toEqual([topic]);
      expect(keyUse.flatMap(actionsOf)).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      expect(JSON.stringify(keyUse[0]?.Condition?.StringEquals?.['kms:ViaService'])).toContain('"sns."');
    }
  });

  it('limit ListBucket to the key areas a step reads', () => {
    for (const step of STEPS) {
      // Prepare
      const reads = objectPatterns(step, 's3:GetObject');
      // Act
      const listing = statementsOf(step).filter((s) => actionsOf(s).includes('s3:ListBucket'));
      // Assess
      const prefixes = listing.flatMap((s) => s.Condition?.StringLike?.['s3:prefix'] as string[]).sort();
      expect(prefixes).toEqual(reads);
      for (const s of listing) expect(Object.keys(s.Condition ?? {})).toEqual(['StringLike']);
    }
  });

  it('use the archive key only through S3', () => {
    for (const step of STEPS) {
      // Act
      const kms = statementsOf(step).filter(
        (s) =>
          actionsOf(s).some((a) => a.startsWith('kms:')) &&
          // The alarm topic's key (summary publishes) is checked with the topic above.
          !JSON.stringify(s.Resource).includes(logicalId(synth.stack, synth.stack.monitoring.topicKey)),
      );
      // Assess
      for (const s of kms) {
        expect(s.Resource).toEqual({
          'Fn::GetAtt': [logicalId(synth.stack, synth.stack.archiveBucket.encryptionKey), 'Arn'],
        });
        expect(JSON.stringify(s.Condition?.StringEquals?.['kms:ViaService'])).toMatch(
          /^\{"Fn::Join":\["",\["s3\.",/,
        );
        expect(actionsOf(s).every((a) => ['kms:Decrypt', 'kms:GenerateDataKey'].includes(a))).toBe(true);
      }
    }
  });

  it("name the service of kms:ViaService by the partition's URL suffix (amazonaws.com.cn in China), in every policy", () => {
    // Act: every condition on the service a key is used through, in roles and in key policies alike
    const conditions = [
      ...Object.values(synth.template.findResources('AWS::IAM::Policy')).flatMap(
        (policy) => policy.Properties.PolicyDocument.Statement as Statement[],
      ),
      ...Object.values(synth.template.findResources('AWS::KMS::Key')).flatMap(
        (key) => key.Properties.KeyPolicy.Statement as Statement[],
      ),
    ]
      .map((s) => s.Condition?.StringEquals?.['kms:ViaService'])
      .filter((value) => value !== undefined)
      .map((value) => JSON.stringify(value));

    // Assess
    expect(conditions.length).toBeGreaterThan(0);
    for (const condition of conditions) {
      expect(condition).not.toContain('amazonaws.com');
      expect(condition).toContain('{"Ref":"AWS::URLSuffix"}');
    }
  });

  it('grant each step only the lock-table operations it issues, each on the key areas it needs (LeadingKeys)', () => {
    // Prepare
    const perDb = (area: string) => [`${area}#billing#*`, `${area}#crm#*`];
    // A committed batch finds the table's restore watermarks by one query and removes those of its archives.
    const watermarkRemoval = ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:Query'];
    const expected: Record<Step, [string[], string[]][]> = {
      plan: [
        [['dynamodb:GetItem'], [...perDb('TABLE'), 'HOLDS', 'CONFIG']],
        [['dynamodb:UpdateItem'], ['CONFIG', 'RUN#*']],
      ],
      lock: [
        [
          ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
          [...perDb('TABLE'), 'RUN#*'],
        ],
        [['dynamodb:GetItem'], ['HOLDS']],
      ],
      export: [
        [['dynamodb:GetItem', 'dynamodb:UpdateItem'], perDb('TABLE')],
        [['dynamodb:GetItem'], ['HOLDS']],
        [['dynamodb:BatchGetItem', 'dynamodb:UpdateItem'], perDb('ARCHIVES')],
        [watermarkRemoval, perDb('RESTORED')],
      ],
      upload: [
        [['dynamodb:GetItem', 'dynamodb:UpdateItem'], perDb('TABLE')],
        [['dynamodb:BatchGetItem'], perDb('ARCHIVES')],
      ],
      verify: [
        [['dynamodb:GetItem', 'dynamodb:UpdateItem'], perDb('TABLE')],
        [['dynamodb:BatchGetItem'], perDb('ARCHIVES')],
      ],
      delete: [
        [['dynamodb:GetItem', 'dynamodb:UpdateItem'], perDb('TABLE')],
        [['dynamodb:BatchGetItem', 'dynamodb:UpdateItem'], perDb('ARCHIVES')],
        [watermarkRemoval, perDb('RESTORED')],
      ],
      summary: [[['dynamodb:Query'], ['RUN#*']]],
    };
    const table = { 'Fn::GetAtt': [logicalId(synth.stack, synth.stack.lockTable.table), 'Arn'] };

    // Act
    const grants = STEPS.map((step) => {
      const dynamo = statementsOf(step).filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
      const granted = dynamo.map((s) => [
        actionsOf(s).sort(),
        s.Condition?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys'],
      ]);
      return { step, dynamo, granted };
    });
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: "lock-table items outside the function's key areas",
      held: grants.every(
        ({ granted }) => granted.length > 0 && granted.every(([, keys]) => Array.isArray(keys)),
      ),
    });

    // Assess
    for (const { step, dynamo, granted } of grants) {
      expect([step, granted]).toEqual([step, expected[step]]);
      for (const s of dynamo) expect(resourcesOf(s)).toEqual([table]);
    }
  });
});

describe("the local check of each function's requests against its role (test/support/role-grants.ts)", () => {
  it('refuses what the role does not allow, and passes what it does', () => {
    // Prepare
    const names = { bucket: 'archive-bucket', lockTable: 'locks' };
    const roles = [stackRoles(synth.config, names)];
    const archive = 'audit/billing/public.audit_log/year=2026/month=01/day=02/20260102-abc.jsonl.gz';
    const s3 = (caller: string, operation: string, more: Partial<LoggedRequest> = {}): LoggedRequest => ({
      service: 's3',
      caller,
      operation,
      status: 200,
      key: archive,
      ...more,
    });
    const lockItem = (caller: string, operation: string, leadingKeys: string[]): LoggedRequest => ({
      service: 'dynamodb',
      caller,
      operation,
      status: 200,
      table: names.lockTable,
      leadingKeys,
    });
    const denied = (request: LoggedRequest) => deniedRequests([request], roles, names).length > 0;

    // Act & Assess
    expect(denied(s3('upload', 'PutObject'))).toBe(false);
    expect(denied(s3('upload', 'DeleteObject'))).toBe(true);
    expect(denied(s3('verify', 'PutObject'))).toBe(true);
    expect(denied(s3('restore-file', 'GetObject', { versionId: 'v1' }))).toBe(false);
    expect(
      denied(s3('upload', 'HeadObject', { key: 'audit/_staging/billing/x.jsonl.gz', status: 404 })),
    ).toBe(false);
    expect(denied(s3('plan', 'HeadObject', { status: 404 }))).toBe(true);
    expect(
      denied(s3('export', 'DeleteObjects', { key: undefined, keys: ['audit/_staging/a', archive] })),
    ).toBe(false);
    expect(
      denied(s3('export', 'DeleteObjects', { key: undefined, keys: ['audit/_audit/events/x.json'] })),
    ).toBe(true);
    expect(denied(lockItem('lock', 'UpdateItem', ['TABLE#billing#public.audit_log']))).toBe(false);
    expect(denied(lockItem('lock', 'UpdateItem', ['TABLE#other#public.audit_log']))).toBe(true);
    expect(denied(lockItem('plan', 'UpdateItem', ['TABLE#billing#public.audit_log']))).toBe(true);
    expect(denied(lockItem('summary', 'Scan', []))).toBe(true);
    expect(denied(s3('a-function-of-no-stack', 'GetObject'))).toBe(true);
    expect(denied(s3('', 'DeleteObject'))).toBe(false);
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding', () => {
    // Act
    const found = nagViolations(synth.stack);
    // Assess
    expect(found).toEqual([]);
  });

  it('leaves no error annotation on the stack', () => {
    // Act
    const errors = Annotations.fromStack(synth.stack).findError('*', Match.anyValue());
    // Assess
    expect(errors).toEqual([]);
  });

  it('gives every acknowledgment a written reason and names IAM5 findings one resource at a time', () => {
    // Act
    const acks = acknowledgments(synth.stack);
    // Assess
    expect(acks.length).toBeGreaterThan(0);
    for (const [id, reason] of acks) {
      expect([id, reason.length > 40]).toEqual([id, true]);
      if (id.includes('IAM5')) expect(id).toMatch(/^Annotation::AwsSolutions-IAM5\[Resource::.+\]$/);
    }
  });

  it('still reports a wildcard grant nobody acknowledged', () => {
    // Prepare: the same bucket construct, one reviewed grant and one unreviewed whole-bucket grant.
    const stack = new Stack(projectApp(), 'Probe');
    const bucket = new ArchiveBucket(stack, 'Archive');
    const reviewed = new iam.Role(stack, 'Reviewed', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    const unreviewed = new iam.Role(stack, 'Unreviewed', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    bucket.grantObjects(reviewed, ['area/*'], { read: true });
    bucket.bucket.grantRead(unreviewed);
    // Act
    const found = nagViolations(stack);
    // Assess
    expect(found.filter((v) => v.includes('Probe/Reviewed/'))).toEqual([]);
    expect(found.some((v) => v.startsWith('AwsSolutions-IAM5[') && v.includes('Probe/Unreviewed/'))).toBe(
      true,
    );
  });
});

describe('database network placement (aws.vpc)', () => {
  let placed: Synthesized;
  beforeAll(() => {
    placed = synthesize({ configFile: fixture('production.yaml') });
  }, 60_000);
  afterAll(() => placed.dispose());

  const databaseSteps = (synthesized: Synthesized) => {
    const { functions, restore } = synthesized.stack;
    return {
      plan: functions.plan,
      export: functions.export,
      delete: functions.delete,
      ...restoreSteps(restore),
    };
  };
  const restoreSteps = (restore: Synthesized['stack']['restore']) => ({
    'restore-plan': restore.plan,
    'restore-file': restore.file,
    'restore-summary': restore.summary,
  });
  const otherSteps = (synthesized: Synthesized) => {
    const { functions } = synthesized.stack;
    return {
      lock: functions.lock,
      upload: functions.upload,
      verify: functions.verify,
      summary: functions.summary,
    };
  };
  const resourceOf = (fn: ArchiverFunction) =>
    placed.template.toJSON().Resources[logicalId(placed.stack, fn.function)];
  const roleOf = (fn: ArchiverFunction) =>
    placed.template.toJSON().Resources[logicalId(placed.stack, fn.role)];

  it('puts every database function in the configured subnets and security groups, and nothing else', () => {
    for (const [step, fn] of Object.entries(databaseSteps(placed))) {
      // Act
      const vpcConfig = resourceOf(fn).Properties.VpcConfig;
      // Assess: the ids as written in the config; no security group is created or changed.
      expect([step, vpcConfig]).toEqual([
        step,
        {
          SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
          SecurityGroupIds: ['sg-0123456789abcdef0'],
        },
      ]);
    }
    for (const [step, fn] of Object.entries(otherSteps(placed))) {
      expect([step, resourceOf(fn).Properties.VpcConfig]).toEqual([step, undefined]);
    }
    expect(placed.template.findResources('AWS::EC2::SecurityGroup')).toEqual({});
    expect(placed.template.findResources('AWS::EC2::SecurityGroupIngress')).toEqual({});
    expect(placed.template.findResources('AWS::EC2::SecurityGroupEgress')).toEqual({});
  });

  it('gives the VPC functions the network-interface actions inline and no managed policy', () => {
    for (const [step, fn] of Object.entries({ ...databaseSteps(placed), ...otherSteps(placed) })) {
      // Act
      const managed = roleOf(fn).Properties.ManagedPolicyArns ?? [];
      const unscoped = roleStatements(placed.template, logicalId(placed.stack, fn.role))
        .filter((s) => resourcesOf(s).includes('*'))
        .flatMap(actionsOf)
        .sort();
      // Assess: before, AWSLambdaVPCAccessExecutionRole, whose one statement also lets the role create and write any
      // log group in the account.
      const inVpc = step in databaseSteps(placed);
      const tracing = ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'];
      expect([step, managed]).toEqual([step, []]);
      expect([step, unscoped]).toEqual([step, inVpc ? [...NETWORK_INTERFACE_ACTIONS, ...tracing] : tracing]);
    }
  });

  it('reserves the configured concurrency for the database functions only', () => {
    for (const [step, fn] of Object.entries(databaseSteps(placed))) {
      expect([step, resourceOf(fn).Properties.ReservedConcurrentExecutions]).toEqual([step, 6]);
    }
    for (const [step, fn] of Object.entries(otherSteps(placed))) {
      expect([step, resourceOf(fn).Properties.ReservedConcurrentExecutions]).toEqual([step, undefined]);
    }
  });

  it('grants Resource "*" only for actions that have no resource scope, across the whole stack', () => {
    // Prepare: why each may be unscoped (AWS's service authorization reference lists no resource type for them).
    const unscopable = new Map<RegExp, string>([
      [/^xray:(PutTraceSegments|PutTelemetryRecords)$/, 'active tracing of functions and state machines'],
      [/^xray:(GetSamplingRules|GetSamplingTargets)$/, 'state machine tracing'],
      [
        /^logs:((Create|Get|Update|Delete|List)LogDeliver(y|ies)|PutResourcePolicy|Describe(ResourcePolicies|LogGroups))$/,
        'state machine log delivery',
      ],
      [
        /^cloudwatch:(DescribeAlarms|GetMetricData|GetMetricWidgetImage)$/,
        'Chatbot rendering the alarms it posts',
      ],
      [
        /^ec2:(Create|Delete|Describe)NetworkInterfaces?$|^ec2:DescribeSubnets$|^ec2:(Assign|Unassign)PrivateIpAddresses$/,
        'Lambda attaching the database functions to the VPC',
      ],
    ]);
    // Act
    const statements = Object.values(placed.template.findResources('AWS::IAM::Policy')).flatMap(
      (policy) => policy.Properties.PolicyDocument.Statement as Statement[],
    );
    const unscoped = statements.filter((s) => resourcesOf(s).includes('*')).flatMap(actionsOf);
    // Assess
    expect(unscoped.length).toBeGreaterThan(0);
    expect(
      unscoped.filter((action) => ![...unscopable.keys()].some((pattern) => pattern.test(action))),
    ).toEqual([]);
  });

  it('gives every acknowledgment of the full stack a written reason', () => {
    // Act
    const acks = acknowledgments(placed.stack);
    // Assess
    for (const [id, reason] of acks) expect([id, reason.length > 40]).toEqual([id, true]);
  });

  it('passes cdk-nag, the network-interface actions acknowledged', () => {
    // Act
    const found = nagViolations(placed.stack);
    // Assess
    expect(found).toEqual([]);
    expect(Annotations.fromStack(placed.stack).findWarning('*', Match.anyValue())).toEqual([]);
  });
});

describe('restore function roles', () => {
  const restoreStatements = (which: 'plan' | 'file' | 'summary') =>
    roleStatements(synth.template, logicalId(synth.stack, synth.stack.restore[which].role));
  const actions = (which: 'plan' | 'file' | 'summary', service: string) =>
    restoreStatements(which)
      .flatMap(actionsOf)
      .filter((a) => a.startsWith(`${service}:`))
      .sort();

  it('let plan and file read the archiver prefix only, and only summary write (audit events), deleting nothing', () => {
    for (const which of ['plan', 'file'] as const) {
      // Act
      const reads = restoreStatements(which).filter((s) => actionsOf(s).includes('s3:GetObject'));
      // Assess
      expect(JSON.stringify(reads.flatMap(resourcesOf))).toContain('"/audit/*"');
      expect(reads.flatMap(resourcesOf)).toHaveLength(1);
      // Archives are read pinned to the version the inventory recorded, which S3 authorizes as GetObjectVersion.
      expect(reads.every((s) => actionsOf(s).includes('s3:GetObjectVersion'))).toBe(true);
    }
    for (const which of ['plan', 'file'] as const) {
      expect(actions(which, 's3').filter((a) => /Put|Delete|Abort/.test(a))).toEqual([]);
    }
    const summaryObjects = restoreStatements('summary').filter((s) =>
      actionsOf(s).some((a) => /Object|Abort/.test(a)),
    );
    expect(JSON.stringify(summaryObjects.flatMap(resourcesOf))).toContain('"/audit/_audit/events/*"');
    expect(summaryObjects.flatMap(resourcesOf)).toHaveLength(1);
    expect(actions('summary', 's3').filter((a) => a.includes('Delete'))).toEqual([]);
  });

  it('let plan list every legacy prefix a restore it accepts names, and refuse the others by name before reading', async () => {
    // Prepare: the Python tool's archives below the archiver's prefix, beside it, and at the bucket's root.
    const names = { bucket: 'archive-bucket', lockTable: 'locks' };
    const roles = [stackRoles(synth.config, names)];
    const firstRead = new Error('the plan reads');
    const reads = () => {
      throw firstRead;
    };
    const deps = {
      config: synth.config,
      store: { list: reads, head: reads, getText: reads },
      inventory: { listTable: reads },
      locks: { get: reads },
      database: reads,
      telemetry: { info: () => undefined, warn: () => undefined, metric: () => undefined },
    } as unknown as RestorePlanDeps;
    const legacy = { database: 'crm_prod', schema: 'public', table: 'contact_history' };
    for (const prefix of ['audit/', 'audit/python/', 'python/', '']) {
      const listed = sourcePrefix({ format: 'legacy', prefix, ...legacy });
      const listing: LoggedRequest = {
        service: 's3',
        caller: 'restore-plan',
        operation: 'ListObjectsV2',
        status: 200,
        prefix: listed,
      };
      const listable = deniedRequests([listing], roles, names).length === 0;

      // Act
      const request = RestoreRequestSchema.parse({
        database: 'crm',
        table: 'public.contact_history',
        legacy: { database: legacy.database, prefix },
      });
      const outcome = await planRestore('restore-1', request, deps).catch((error: unknown) => error);

      // Assess: a prefix the role may list is read; any other is refused naming it, as AWS would deny its listing.
      const refused = outcome instanceof ConfigError && outcome.message.includes(`"${prefix}"`);
      expect([prefix, listable, listable ? outcome === firstRead : refused]).toEqual([
        prefix,
        listable,
        true,
      ]);
    }
  });

  it('give each restore step only the lock-table operations it issues, on its key areas, and the database secrets', () => {
    // Prepare
    const leadingKeys = (which: 'plan' | 'file' | 'summary') =>
      restoreStatements(which)
        .filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')))
        .map((s) => [
          actionsOf(s).sort(),
          s.Condition?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys'],
        ]);

    // Act & Assess
    // The plan compares the listing with the table's committed archives (one Query of the inventory) and leaves out
    // the archives of the source table's batch in flight (one read of its lease item); it reads the target's legal
    // hold, which refuses strategy overwrite, and so does each group of restore-file. It records the keys of the
    // archives it found, which the summary reads back to check each got a result.
    expect(leadingKeys('plan')).toEqual([
      [
        ['dynamodb:BatchGetItem', 'dynamodb:Query'],
        ['ARCHIVES#billing#*', 'ARCHIVES#crm#*'],
      ],
      [['dynamodb:GetItem'], ['TABLE#billing#*', 'TABLE#crm#*', 'HOLDS']],
      [['dynamodb:BatchWriteItem'], ['RESTORE-PLAN#*']],
    ]);
    expect(leadingKeys('file')).toEqual([
      [
        ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'],
        ['RESTORED#billing#*', 'RESTORED#crm#*'],
      ],
      [['dynamodb:BatchGetItem'], ['ARCHIVES#billing#*', 'ARCHIVES#crm#*']],
      [['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'], ['RESTORE-WRITES#*']],
      [['dynamodb:GetItem'], ['HOLDS']],
    ]);
    expect(leadingKeys('summary')).toEqual([
      [['dynamodb:BatchWriteItem', 'dynamodb:Query'], ['RESTORE#*']],
      [['dynamodb:Query'], ['RESTORE-PLAN#*']],
    ]);
    for (const which of ['plan', 'file', 'summary'] as const) {
      expect(actions(which, 'secretsmanager')).toEqual(['secretsmanager:GetSecretValue']);
    }
  });

  it('decrypt archives only through S3, and never with an action wildcard', () => {
    for (const which of ['plan', 'file', 'summary'] as const) {
      const statements = restoreStatements(which);
      expect(statements.flatMap(actionsOf).filter((a) => a.includes('*'))).toEqual([]);
      for (const s of statements.filter((st) => actionsOf(st).some((a) => a.startsWith('kms:')))) {
        // The restore summary writes its audit event, encrypted with the bucket key.
        expect(actionsOf(s)).toEqual(
          which === 'summary' ? ['kms:Decrypt', 'kms:GenerateDataKey'] : ['kms:Decrypt'],
        );
        expect(s.Condition?.StringEquals?.['kms:ViaService']).toBeDefined();
      }
    }
  });
});
