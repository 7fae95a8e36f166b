import { Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveBucket } from '../../lib/archive-bucket.js';
import type { ArchiverFunction } from '../../lib/archiver-function.js';
import {
  actionsOf,
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

  it('let plan do nothing but write its logs', () => {
    // Act
    const statements = statementsOf('plan');
    // Assess
    expect(statements).toEqual([
      {
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [logicalId(synth.stack, fn('plan').logGroup), 'Arn'] },
      },
    ]);
  });

  it('let only export, verify and delete read the database secrets, and only those secrets', () => {
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
      if (['export', 'verify', 'delete'].includes(step)) {
        expect(secretStatements.flatMap(actionsOf)).toEqual(['secretsmanager:GetSecretValue']);
        expect(secretStatements.flatMap(resourcesOf).sort()).toEqual(
          secretArns.flatMap((arn) => [arn, `${arn}-??????`]).sort(),
        );
      } else {
        expect([step, secretStatements]).toEqual([step, []]);
      }
    }
  });

  it('let upload publish archives but delete only staging objects', () => {
    // Act & Assess
    expect(objectPatterns('upload', 's3:PutObject')).toEqual(AREAS.archives);
    expect(objectPatterns('upload', 's3:DeleteObject')).toEqual([AREAS.staging]);
    expect(objectPatterns('upload', 's3:GetObject')).toEqual([AREAS.staging, ...AREAS.archives].sort());
  });

  it('let export write only staging objects', () => {
    // Act & Assess
    expect(objectPatterns('export', 's3:PutObject')).toEqual([AREAS.staging]);
    expect(objectPatterns('export', 's3:GetObject')).toEqual(AREAS.archives);
    expect(objectPatterns('export', 's3:DeleteObject')).toEqual([AREAS.staging, ...AREAS.archives].sort());
  });

  it('let verify and delete never write archives; only verify writes quarantine copies', () => {
    // Act & Assess
    expect(objectPatterns('verify', 's3:PutObject')).toEqual([AREAS.quarantine]);
    expect(objectPatterns('delete', 's3:PutObject')).toEqual([]);
    for (const step of ['verify', 'delete'] as const) {
      expect(objectPatterns(step, 's3:GetObject')).toEqual(AREAS.archives);
      expect(objectPatterns(step, 's3:DeleteObject')).toEqual([AREAS.staging, ...AREAS.archives].sort());
    }
  });

  it('let plan, lock and summary touch no object', () => {
    for (const step of ['plan', 'lock', 'summary'] as const) {
      // Act
      const actions = statementsOf(step).flatMap(actionsOf);
      // Assess
      expect(actions.filter((a) => a.startsWith('s3:') || a.startsWith('kms:'))).toEqual([]);
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
      const kms = statementsOf(step).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
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

  it('grant each step only the lock-table operations it issues', () => {
    // Prepare
    const expected: Record<Step, string[]> = {
      plan: [],
      lock: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      export: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      upload: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      verify: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      delete: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      summary: ['dynamodb:Query'],
    };
    const table = { 'Fn::GetAtt': [logicalId(synth.stack, synth.stack.lockTable.table), 'Arn'] };
    for (const step of STEPS) {
      // Act
      const dynamo = statementsOf(step).filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
      // Assess
      expect([step, dynamo.flatMap(actionsOf).sort()]).toEqual([step, expected[step]]);
      for (const s of dynamo) expect(resourcesOf(s)).toEqual([table]);
    }
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

describe('database network placement', () => {
  let placed: Synthesized;
  let network: { stack: Stack; vpc: ec2.Vpc; securityGroup: ec2.SecurityGroup };
  beforeAll(() => {
    // Prepare: the databases' VPC and a security group they admit, from another stack, as an operator passes them.
    placed = synthesize({
      props: (app) => {
        const stack = new Stack(app, 'Network');
        const vpc = new ec2.Vpc(stack, 'Vpc', {
          maxAzs: 2,
          natGateways: 0,
          subnetConfiguration: [{ name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
        });
        const securityGroup = new ec2.SecurityGroup(stack, 'Archiver', { vpc });
        network = { stack, vpc, securityGroup };
        return {
          vpc,
          vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
          securityGroups: [securityGroup],
        };
      },
    });
  }, 60_000);
  afterAll(() => placed.dispose());

  it('puts export, verify and delete in the VPC with the given security group, and nothing else', () => {
    for (const step of STEPS) {
      // Act
      const id = logicalId(placed.stack, placed.stack.functions[step].function);
      const vpcConfig = placed.template.toJSON().Resources[id].Properties.VpcConfig;
      // Assess
      if (['export', 'verify', 'delete'].includes(step)) {
        expect(vpcConfig.SubnetIds).toHaveLength(2);
        expect(JSON.stringify(vpcConfig.SecurityGroupIds)).toContain(
          network.stack.resolve((network.securityGroup.node.defaultChild as ec2.CfnSecurityGroup).logicalId),
        );
      } else {
        expect([step, vpcConfig]).toEqual([step, undefined]);
      }
    }
  });

  it('passes cdk-nag, the network-interface managed policy acknowledged', () => {
    // Act
    const found = nagViolations(placed.stack);
    // Assess
    expect(found).toEqual([]);
  });

  it('gives the VPC functions the network-interface policy and no other managed policy', () => {
    for (const step of STEPS) {
      // Act
      const role =
        placed.template.toJSON().Resources[logicalId(placed.stack, placed.stack.functions[step].role)];
      // Assess
      const managed = JSON.stringify(role.Properties.ManagedPolicyArns ?? []);
      const inVpc = ['export', 'verify', 'delete'].includes(step);
      expect([step, managed.includes('service-role/AWSLambdaVPCAccessExecutionRole')]).toEqual([step, inVpc]);
      expect(role.Properties.ManagedPolicyArns ?? []).toHaveLength(inVpc ? 1 : 0);
    }
  });
});
