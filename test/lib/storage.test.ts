import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GLUE_TABLES_IN_STACK,
  GLUE_TABLES_PER_NESTED_STACK,
  glueTableNames,
} from '../../lib/archive-queries.js';
import { LockTable } from '../../lib/lock-table.js';
import {
  actionsOf,
  fixture,
  logicalId,
  resourcesOf,
  roleStatements,
  type Synthesized,
  synthesize,
} from './synth.js';

/** The stack fixture (defaults) and the fixture with every deployment option, each synthesized once here. */
let synth: Synthesized;
let production: Synthesized;
beforeAll(() => {
  synth = synthesize();
  production = synthesize({ configFile: fixture('production.yaml') });
}, 120_000);
afterAll(() => {
  synth?.dispose();
  production?.dispose();
});

describe('archive bucket', () => {
  it('encrypts with the stack key (SSE-KMS, bucket keys) and the key rotates', () => {
    // Prepare
    const key = logicalId(synth.stack, synth.stack.archiveBucket.encryptionKey);
    // Act
    const bucket =
      synth.template.toJSON().Resources[logicalId(synth.stack, synth.stack.archiveBucket.bucket)];
    // Assess
    expect(bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      {
        BucketKeyEnabled: true,
        ServerSideEncryptionByDefault: {
          SSEAlgorithm: 'aws:kms',
          KMSMasterKeyID: { 'Fn::GetAtt': [key, 'Arn'] },
        },
      },
    ]);
    synth.template.hasResource('AWS::KMS::Key', {
      Properties: { EnableKeyRotation: true },
      DeletionPolicy: 'Retain',
    });
  });

  it("denies every principal scheduling the archive key's deletion, or a key policy that bypasses the lockout check", () => {
    // Prepare
    const key = logicalId(synth.stack, synth.stack.archiveBucket.encryptionKey);
    // Act
    const statements = synth.template.toJSON().Resources[key].Properties.KeyPolicy.Statement;
    const sid = (name: string) => statements.find((s: { Sid?: string }) => s.Sid === name);
    // Assess: the account root keeps kms:* (IAM decides, and CloudFormation can still update the policy), but no one
    // makes every archive unreadable in one call: deleting the key, or a policy that shuts everyone out, takes a
    // change of this policy first.
    expect(sid('DenyArchiveKeyDeletion')).toEqual({
      Sid: 'DenyArchiveKeyDeletion',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'kms:ScheduleKeyDeletion',
      Resource: '*',
    });
    expect(sid('DenyKeyPolicyLockout')).toEqual({
      Sid: 'DenyKeyPolicyLockout',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'kms:PutKeyPolicy',
      Resource: '*',
      Condition: { Bool: { 'kms:BypassPolicyLockoutSafetyCheck': 'true' } },
    });
    expect(statements.filter((s: { Effect: string }) => s.Effect === 'Allow')).toHaveLength(1);
  });

  it('blocks public access, is versioned, logs access to the logs bucket and is retained', () => {
    // Prepare
    const logsBucket = logicalId(synth.stack, synth.stack.archiveBucket.accessLogsBucket);
    // Act
    const bucket =
      synth.template.toJSON().Resources[logicalId(synth.stack, synth.stack.archiveBucket.bucket)];
    // Assess
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.Properties.LoggingConfiguration).toEqual({
      DestinationBucketName: { Ref: logsBucket },
      LogFilePrefix: 'archive-bucket/',
    });
    expect(bucket.Properties.OwnershipControls).toEqual({
      Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }],
    });
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(bucket.UpdateReplacePolicy).toBe('Retain');
  });

  it('keeps its bucket policy with the bucket when the stack is deleted, so the retained archives stay protected', () => {
    // Prepare
    const bucket = logicalId(synth.stack, synth.stack.archiveBucket.bucket);
    // Act
    const policies = Object.values(
      synth.template.findResources('AWS::S3::BucketPolicy', { Properties: { Bucket: { Ref: bucket } } }),
    );
    // Assess: without it a retained bucket would take writes without TLS, overwrites and version deletes.
    expect(policies).toHaveLength(1);
    expect(policies[0]?.DeletionPolicy).toBe('Retain');
    expect(policies[0]?.UpdateReplacePolicy).toBe('Retain');
  });

  it('keeps the policies of the retained access-log and query-results buckets too, so logging goes on after teardown', () => {
    // Prepare
    const policyOf = (bucket: { node: { defaultChild?: unknown } }) =>
      Object.values(
        synth.template.findResources('AWS::S3::BucketPolicy', {
          Properties: { Bucket: { Ref: logicalId(synth.stack, bucket) } },
        }),
      );
    // Act
    const policies = [
      policyOf(synth.stack.archiveBucket.accessLogsBucket),
      policyOf(synth.stack.queries.resultsBucket),
    ];
    // Assess: the retained archive bucket keeps logging to the retained logs bucket, and S3 delivers the logs only
    // as the logs bucket's policy allows; without the policy every read of a retained archive goes unrecorded.
    for (const found of policies) {
      expect(found).toHaveLength(1);
      expect(found[0]?.DeletionPolicy).toBe('Retain');
      expect(found[0]?.UpdateReplacePolicy).toBe('Retain');
    }
  });

  it('denies requests without TLS, and below TLS 1.2, in the bucket policy', () => {
    // Prepare
    const bucket = logicalId(synth.stack, synth.stack.archiveBucket.bucket);
    // Act
    const policy = synth.template.findResources('AWS::S3::BucketPolicy', {
      Properties: { Bucket: { Ref: bucket } },
    });
    // Assess
    const statements = Object.values(policy).flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(statements).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Effect: 'Deny',
          Action: 's3:*',
          Principal: { AWS: '*' },
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
        expect.objectContaining({
          Effect: 'Deny',
          Action: 's3:*',
          Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
        }),
      ]),
    );
    expect(statements.filter((s) => s.Effect === 'Allow')).toEqual([]);
  });

  it('denies object creation without If-None-Match in every database archive area and the audit trail, and writes with other encryption anywhere', () => {
    // Prepare
    const bucket = logicalId(synth.stack, synth.stack.archiveBucket.bucket);
    const key = logicalId(synth.stack, synth.stack.archiveBucket.encryptionKey);
    const objects = (pattern: string) => ({
      'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, `/${pattern}`]],
    });
    // Act
    const policy = synth.template.findResources('AWS::S3::BucketPolicy', {
      Properties: { Bucket: { Ref: bucket } },
    });
    const statements = Object.values(policy).flatMap((p) => p.Properties.PolicyDocument.Statement);
    const sid = (name: string) => statements.find((s) => s.Sid === name);
    // Assess: archives, manifests and audit events are write-once for every principal; staging and quarantine are
    // not covered (staging objects are replaced by a retried export).
    expect(sid('DenyArchiveWritesWithoutIfNoneMatch')).toEqual({
      Sid: 'DenyArchiveWritesWithoutIfNoneMatch',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 's3:PutObject',
      Resource: [objects('audit/_audit/events/*'), objects('audit/billing/*'), objects('audit/crm/*')],
      Condition: { Null: { 's3:if-none-match': 'true' }, Bool: { 's3:ObjectCreationOperation': 'true' } },
    });
    expect(sid('DenyWritesWithOtherEncryption')).toMatchObject({
      Effect: 'Deny',
      Action: 's3:PutObject',
      Resource: objects('*'),
      Condition: {
        StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' },
        Null: { 's3:x-amz-server-side-encryption': 'false' },
      },
    });
    expect(sid('DenyWritesWithOtherKmsKey')).toMatchObject({
      Effect: 'Deny',
      Action: 's3:PutObject',
      Resource: objects('*'),
      Condition: {
        StringNotEquals: {
          's3:x-amz-server-side-encryption-aws-kms-key-id': [{ 'Fn::GetAtt': [key, 'Arn'] }, { Ref: key }],
        },
        Null: { 's3:x-amz-server-side-encryption-aws-kms-key-id': 'false' },
      },
    });
    expect(sid('DenyCustomerProvidedKeys')).toMatchObject({
      Effect: 'Deny',
      Condition: { Null: { 's3:x-amz-server-side-encryption-customer-algorithm': 'false' } },
    });
  });

  it('denies every principal deleting a version in the archive areas and the audit trail (a delete only adds a marker)', () => {
    // Prepare
    const bucket = logicalId(synth.stack, synth.stack.archiveBucket.bucket);
    const objects = (pattern: string) => ({
      'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, `/${pattern}`]],
    });
    // Act
    const statements = Object.values(
      synth.template.findResources('AWS::S3::BucketPolicy', { Properties: { Bucket: { Ref: bucket } } }),
    ).flatMap((p) => p.Properties.PolicyDocument.Statement);
    // Assess: no function issues DeleteObjectVersion; a version removed is gone for good (the console's "Empty"
    // does it to every version), while a delete marker can be removed and the archive is back.
    expect(statements.find((s) => s.Sid === 'DenyArchiveVersionDeletes')).toEqual({
      Sid: 'DenyArchiveVersionDeletes',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 's3:DeleteObjectVersion',
      Resource: [objects('audit/_audit/events/*'), objects('audit/billing/*'), objects('audit/crm/*')],
    });
  });

  it('expires staging objects (current and noncurrent) only, never archives', () => {
    // Act
    const bucket =
      synth.template.toJSON().Resources[logicalId(synth.stack, synth.stack.archiveBucket.bucket)];
    const rules = bucket.Properties.LifecycleConfiguration.Rules as Record<string, unknown>[];
    // Assess
    expect(rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } }),
        expect.objectContaining({ Prefix: 'audit/_staging/', ExpirationInDays: 7 }),
        expect.objectContaining({
          Prefix: 'audit/_staging/',
          NoncurrentVersionExpiration: { NoncurrentDays: 7 },
        }),
      ]),
    );
    const expiring = rules.filter((r) => r.NoncurrentVersionExpiration || r.ExpirationInDays);
    expect(expiring).toHaveLength(2);
    for (const rule of expiring) expect(rule.Prefix).toBe('audit/_staging/');
  });

  it('keeps the access logs bucket private, TLS-only and encrypted', () => {
    // Act
    const logs =
      synth.template.toJSON().Resources[logicalId(synth.stack, synth.stack.archiveBucket.accessLogsBucket)];
    // Assess
    expect(
      logs.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault,
    ).toEqual({
      SSEAlgorithm: 'AES256',
    });
    expect(logs.Properties.PublicAccessBlockConfiguration.RestrictPublicBuckets).toBe(true);
    synth.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logicalId(synth.stack, synth.stack.archiveBucket.accessLogsBucket) },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });
});

describe('archive bucket from a config that names bucket and key', () => {
  let dir: string;
  let named: Synthesized;
  beforeAll(() => {
    // Prepare
    dir = mkdtempSync(join(tmpdir(), 'archiver-config-'));
    const file = join(dir, 'named.yaml');
    const base = readFileSync(fixture('archiver.yaml'), 'utf8');
    writeFileSync(
      file,
      base.replace(
        's3:\n',
        's3:\n  bucket: acme-audit-archive\n  kmsKeyId: arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\n',
      ),
    );
    // Act
    named = synthesize({ configFile: file });
  }, 60_000);
  afterAll(() => {
    named.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('uses the configured bucket name and key, and creates no archive key of its own', () => {
    // Assess
    named.template.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: 'acme-audit-archive',
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          Match.objectLike({
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: 'aws:kms',
              KMSMasterKeyID: 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
            },
          }),
        ],
      },
    });
    // The only key in the stack is the alarm topic's (lib/monitoring.ts).
    expect(Object.keys(named.template.findResources('AWS::KMS::Key'))).toEqual([
      logicalId(named.stack, named.stack.monitoring.topicKey),
    ]);
  });
});

describe('archive bucket lifecycle and Object Lock from aws.storage', () => {
  const bucketOf = (synthesized: Synthesized) =>
    synthesized.template.toJSON().Resources[
      logicalId(synthesized.stack, synthesized.stack.archiveBucket.bucket)
    ];

  it('transitions and expires each database archive area as configured, and never staging or quarantine', () => {
    // Act
    const rules = bucketOf(production).Properties.LifecycleConfiguration.Rules as Record<string, unknown>[];
    // Assess
    for (const prefix of ['audit/billing/', 'audit/crm/']) {
      expect(rules.filter((r) => r.Prefix === prefix)).toEqual([
        {
          Prefix: prefix,
          Status: 'Enabled',
          Transitions: [
            { StorageClass: 'GLACIER_IR', TransitionInDays: 90 },
            { StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 365 },
          ],
          ExpirationInDays: 2555,
          NoncurrentVersionExpiration: { NoncurrentDays: 30 },
        },
        { Prefix: prefix, Status: 'Enabled', ExpiredObjectDeleteMarker: true },
      ]);
    }
    // Manifests (a few KiB) never transition: restore and validate read them at once.
    expect(bucketOf(production).Properties.LifecycleConfiguration.TransitionDefaultMinimumObjectSize).toBe(
      'all_storage_classes_128K',
    );
    const prefixes = rules.map((r) => r.Prefix).filter((p) => p !== undefined);
    expect(new Set(prefixes)).toEqual(new Set(['audit/_staging/', 'audit/billing/', 'audit/crm/']));
    expect(rules.filter((r) => r.Transitions && r.Prefix === undefined)).toEqual([]);
  });

  it('locks every new object version by default when Object Lock is configured', () => {
    // Act
    const bucket = bucketOf(production);
    // Assess
    expect(bucket.Properties.ObjectLockEnabled).toBe(true);
    expect(bucket.Properties.ObjectLockConfiguration).toEqual({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 2555 } },
    });
    expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.DeletionPolicy).toBe('Retain');
  });

  it('neither locks, transitions nor expires archives without aws.storage', () => {
    // Act
    const bucket = bucketOf(synth);
    // Assess
    expect(bucket.Properties.ObjectLockEnabled).toBeUndefined();
    expect(bucket.Properties.ObjectLockConfiguration).toBeUndefined();
    const rules = bucket.Properties.LifecycleConfiguration.Rules as Record<string, unknown>[];
    expect(rules.filter((r) => r.Transitions)).toEqual([]);
  });
});

describe('lock table', () => {
  it('expires run outcomes through the very attribute lambdas/shared/lock-table/table-client.ts writes', () => {
    // Prepare
    const source = readFileSync(
      new URL('../../lambdas/shared/lock-table/table-client.ts', import.meta.url),
      'utf8',
    );
    // Act
    const written = /'#ttl'\]?\s*[:=]\s*'(\w+)'/.exec(source)?.[1];
    // Assess: the attribute name, and a value in epoch seconds (what DynamoDB TTL reads).
    expect(written).toBe(LockTable.TTL_ATTRIBUTE);
    expect(source).toMatch(/#ttl = :ttl/);
    expect(source).toMatch(/':ttl'\]?\s*[:=]\s*Math\.floor\(this\.now\(\) \/ 1000\)/);
  });

  it('has pk/sk string keys, on-demand billing, PITR, SSE and the ttl attribute, and is retained', () => {
    // Act
    const table = synth.template.toJSON().Resources[logicalId(synth.stack, synth.stack.lockTable.table)];
    // Assess
    expect(table.Type).toBe('AWS::DynamoDB::Table');
    expect(table.Properties.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(table.Properties.AttributeDefinitions).toEqual([
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'sk', AttributeType: 'S' },
    ]);
    expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.Properties.SSESpecification).toEqual({ SSEEnabled: true });
    expect(table.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'ttl', Enabled: true });
    expect(table.Properties.DeletionProtectionEnabled).toBe(true);
    expect(table.Properties.GlobalSecondaryIndexes).toBeUndefined();
    expect(table.DeletionPolicy).toBe('Retain');
  });
});

/** The logical id of an L1 resource (CfnTable, CfnWorkGroup, ...), which has no default child. */
const cfnId = (built: Synthesized, resource: CfnElement): string =>
  built.stack.resolve(built.stack.getLogicalId(resource)) as string;

/** CloudFormation JSON, as `Template.toJSON()` types it. */
type Json = ReturnType<Template['toJSON']>;
/** A Glue table's resource, from the template of the nested stack that holds it. */
const glueTable = (built: Synthesized, ref: string): Json => {
  const table = built.stack.queries.tables[ref];
  if (!table) throw new Error(`no Glue table for ${ref}`);
  const stack = Stack.of(table);
  return Template.fromStack(stack).toJSON().Resources[stack.resolve(stack.getLogicalId(table))];
};
const tableInput = (built: Synthesized, ref: string): Json => glueTable(built, ref).Properties.TableInput;
/** What the parent stack passes for a parameter of the nested stack that holds the Glue tables. */
const passedIn = (built: Synthesized, parameter: string): unknown =>
  Object.values(built.template.findResources('AWS::CloudFormation::Stack'))
    .map((nested) => nested.Properties.Parameters?.[parameter])
    .find((value) => value !== undefined);
/** A Fn::Join of the bucket's name (or a nested stack's parameter passed it) and literal text, rendered with "<bucket>". */
const rendered = (built: Synthesized, value: unknown): string => {
  const bucket = logicalId(built.stack, built.stack.archiveBucket.bucket);
  const join = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  return join[1]
    .map((part) => {
      if (typeof part === 'string') return part;
      const ref = (part as { Ref?: string }).Ref ?? '';
      const bucketRef = JSON.stringify({ Ref: bucket });
      return ref === bucket || JSON.stringify(passedIn(built, ref)) === bucketRef ? '<bucket>' : '?';
    })
    .join(join[0]);
};

describe('a fleet of 1,000 tables in 100 databases (what one run covers)', () => {
  it('synthesizes within 500 resources per stack, and each role within the managed policies IAM lets it take', () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'archiver-fleet-'));
    const databases = Array.from({ length: 100 }, (_, d) => ({
      name: `db${d}`,
      credentials: {
        secretArn: `arn:aws:secretsmanager:eu-west-1:111122223333:secret:audit-archiver/db${d}-AbCdEf`,
      },
      tables: Array.from({ length: 10 }, (_, t) => ({ name: `audit_${t}`, timestampColumn: 'created_at' })),
    }));
    const configFile = join(dir, 'fleet.yaml');
    writeFileSync(configFile, JSON.stringify({ s3: { prefix: 'audit/' }, databases }));

    try {
      // Act: CDK refuses a stack of more than 500 resources as it synthesizes.
      const fleet = synthesize({ configFile });
      const stacks = [fleet.stack, ...fleet.stack.queries.tableStacks];
      const resources = stacks.map(
        (stack) => Object.keys(Template.fromStack(stack).toJSON().Resources).length,
      );
      // IAM limits a role's inline policies to 10,240 characters and a managed policy to 6,144: CDK moves what does
      // not fit inline to managed policies, sized by its estimate of the deployed text. A role takes 10 of them.
      const managedPerRole = Object.values(fleet.template.findResources('AWS::IAM::ManagedPolicy'))
        .flatMap((policy) => (policy.Properties.Roles ?? []).map((role: { Ref: string }) => role.Ref))
        .reduce((count, role) => count.set(role, (count.get(role) ?? 0) + 1), new Map<string, number>());
      const later = fleet.stack.queries.tables['db99/public.audit_9'];
      const nested = later && Stack.of(later);
      const laterTable =
        nested && Template.fromStack(nested).toJSON().Resources[nested.resolve(nested.getLogicalId(later))];
      fleet.dispose();

      // Assess
      expect(Object.keys(fleet.stack.queries.tables)).toHaveLength(1000);
      expect(stacks.length).toBe(1 + Math.ceil((1000 - GLUE_TABLES_IN_STACK) / GLUE_TABLES_PER_NESTED_STACK));
      // The first tables keep the place and logical ids they had before nested stacks, so a deployed stack updates.
      const first = fleet.stack.queries.tables['db0/public.audit_0'];
      expect(first && Stack.of(first)).toBe(fleet.stack);
      expect(first?.node.path).toBe('AuditArchiver/Queries/Table0');
      // A table past them lives in a nested stack, which the parent passes the database's name (ordering it after).
      expect(nested).toBe(fleet.stack.queries.tableStacks.at(-1));
      expect(passedIn(fleet, laterTable.Properties.DatabaseName.Ref)).toEqual({
        Ref: cfnId(fleet, fleet.stack.queries.database),
      });
      expect(Math.max(...resources)).toBeLessThanOrEqual(500);
      expect(Math.max(0, ...managedPerRole.values())).toBeLessThanOrEqual(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Glue catalog', () => {
  it('has one database and one table per configured table, and nothing crawls', () => {
    // Act
    const tables = synth.template.findResources('AWS::Glue::Table');
    // Assess: a config of a few tables keeps them all in the stack itself.
    expect(synth.stack.queries.tableStacks).toEqual([]);
    synth.template.resourceCountIs('AWS::Glue::Database', 1);
    synth.template.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'auditarchiver' } });
    expect(Object.keys(synth.stack.queries.tables).sort()).toEqual([
      'billing/audit.invoice_events',
      'billing/public.audit_log',
      'crm/public.contact_history',
    ]);
    expect(Object.keys(tables)).toHaveLength(3);
    synth.template.resourceCountIs('AWS::Glue::Crawler', 0);
    for (const table of Object.values(tables)) {
      expect(table.Properties.DatabaseName).toEqual({ Ref: cfnId(synth, synth.stack.queries.database) });
    }
  });

  it('names each table by its own identity, whatever the order of the config, where two reduce to one name', () => {
    // Prepare: "Audit" and "audit" both reduce to billing__public__audit
    const upper = { database: 'billing', schema: 'public', table: 'Audit' };
    const lower = { database: 'billing', schema: 'public', table: 'audit' };
    const other = { database: 'billing', schema: 'public', table: 'events' };

    // Act
    const listed = glueTableNames([upper, lower, other]);
    const reordered = glueTableNames([other, lower, upper]);

    // Assess: before, the first listed kept the plain name, so reordering the config handed it (and the queries
    // saved under it) to the other table's archives.
    expect(listed[0]).toMatch(/^billing__public__audit_[0-9a-f]{8}$/);
    expect(listed[1]).toMatch(/^billing__public__audit_[0-9a-f]{8}$/);
    expect(listed[0]).not.toBe(listed[1]);
    expect([reordered[2], reordered[1], reordered[0]]).toEqual(listed);
    expect(listed[2]).toBe('billing__public__events');
  });

  it('reads each table prefix as gzip JSON lines with the OpenX SerDe, every column a string', () => {
    // Act
    const input = tableInput(production, 'billing/audit.Invoice Events');
    const storage = input.StorageDescriptor;
    // Assess: the key layout of lambdas/shared/archive/format.ts (identifiers %XX-encoded).
    expect(input.Name).toBe('billing__audit__invoice_events');
    expect(input.TableType).toBe('EXTERNAL_TABLE');
    expect(rendered(production, storage.Location)).toBe(
      's3://<bucket>/audit/billing/audit.Invoice%20Events/',
    );
    expect(storage.InputFormat).toBe('org.apache.hadoop.mapred.TextInputFormat');
    expect(storage.SerdeInfo.SerializationLibrary).toBe('org.openx.data.jsonserde.JsonSerDe');
    expect(storage.Columns.every((c: Json) => c.Type === 'string')).toBe(true);
    expect(input.PartitionKeys).toEqual([
      { Name: 'year', Type: 'string' },
      { Name: 'month', Type: 'string' },
      { Name: 'day', Type: 'string' },
    ]);
  });

  it('declares the listed columns, mapping each Glue name back to its exact JSON key', () => {
    // Act
    const storage = tableInput(production, 'billing/audit.Invoice Events').StorageDescriptor;
    const names = storage.Columns.map((c: Json) => c.Name);
    // Assess: lower case, [a-z0-9_], and never the name of a partition column.
    expect(names.slice(0, 4)).toEqual(['tenant_id', 'event_id', 'occurred_at', 'payload']);
    expect(names[4]).toMatch(/^year_[0-9a-f]{8}$/);
    expect(storage.SerdeInfo.Parameters).toEqual({
      'case.insensitive': 'false',
      'mapping.occurred_at': 'Occurred At',
      [`mapping.${names[4]}`]: 'year',
    });
  });

  it('declares the key and timestamp columns the config names when aws.athena lists none', () => {
    // Act
    const withKeys = tableInput(production, 'billing/public.audit_log').StorageDescriptor.Columns;
    const withoutKeys = tableInput(synth, 'crm/public.contact_history').StorageDescriptor.Columns;
    // Assess
    expect(withKeys).toEqual([
      { Name: 'id', Type: 'string' },
      { Name: 'created_at', Type: 'string' },
    ]);
    expect(withoutKeys).toEqual([{ Name: 'changed_at', Type: 'string' }]);
  });

  it('projects year/month/day partitions onto the key layout, so new days need no crawler', () => {
    // Act
    const plainParameters = tableInput(synth, 'billing/public.audit_log').Parameters;
    const parameters = tableInput(production, 'billing/audit.Invoice Events').Parameters;
    // Assess
    expect(plainParameters).toMatchObject({
      'projection.enabled': 'true',
      'projection.year.type': 'integer',
      'projection.year.range': '2000,2100',
      'projection.month.type': 'integer',
      'projection.month.range': '1,12',
      'projection.month.digits': '2',
      'projection.day.type': 'integer',
      'projection.day.range': '1,31',
      'projection.day.digits': '2',
      EXTERNAL: 'TRUE',
    });
    expect(parameters['projection.year.range']).toBe('2015,2035');
    expect(rendered(production, parameters['storage.location.template'])).toBe(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Athena's projection placeholders
      's3://<bucket>/audit/billing/audit.Invoice%20Events/year=${year}/month=${month}/day=${day}/',
    );
  });

  it('partitions a table of month objects by year and month, whose folder also holds its earlier day folders', () => {
    // Act
    const input = tableInput(synth, 'crm/public.contact_history');
    // Assess
    expect(input.PartitionKeys).toEqual([
      { Name: 'year', Type: 'string' },
      { Name: 'month', Type: 'string' },
    ]);
    expect(Object.keys(input.Parameters).filter((name) => name.startsWith('projection.day'))).toEqual([]);
    expect(rendered(synth, input.Parameters['storage.location.template'])).toBe(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Athena's projection placeholders
      's3://<bucket>/audit/crm/public.contact_history/year=${year}/month=${month}/',
    );
  });
});

describe('Athena workgroup and results', () => {
  const workGroup = (built: Synthesized): Json =>
    built.template.toJSON().Resources[cfnId(built, built.stack.queries.workGroup)].Properties;
  const resultsBucket = (built: Synthesized): Json =>
    built.template.toJSON().Resources[logicalId(built.stack, built.stack.queries.resultsBucket)];

  it('enforces its configuration: results in the stack bucket, SSE-KMS with the archive key, a scan limit', () => {
    // Prepare
    const key = logicalId(synth.stack, synth.stack.archiveBucket.encryptionKey);
    const results = logicalId(synth.stack, synth.stack.queries.resultsBucket);
    // Act
    const { WorkGroupConfiguration: configuration, Name } = workGroup(synth);
    // Assess
    expect(Name).toBe('AuditArchiver');
    expect(configuration.EnforceWorkGroupConfiguration).toBe(true);
    expect(configuration.BytesScannedCutoffPerQuery).toBe(100 * 1024 ** 3);
    expect(configuration.ResultConfiguration).toEqual({
      OutputLocation: { 'Fn::Join': ['', ['s3://', { Ref: results }, '/']] },
      EncryptionConfiguration: { EncryptionOption: 'SSE_KMS', KmsKey: { 'Fn::GetAtt': [key, 'Arn'] } },
      ExpectedBucketOwner: { Ref: 'AWS::AccountId' },
    });
  });

  it('keeps results in a private, TLS-only, KMS-encrypted, logged bucket that expires them', () => {
    // Prepare
    const key = logicalId(synth.stack, synth.stack.archiveBucket.encryptionKey);
    const results = logicalId(synth.stack, synth.stack.queries.resultsBucket);
    // Act
    const bucket = resultsBucket(synth);
    const policy = Object.values(
      synth.template.findResources('AWS::S3::BucketPolicy', { Properties: { Bucket: { Ref: results } } }),
    ).flatMap((p) => p.Properties.PolicyDocument.Statement);
    // Assess
    expect(bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      {
        BucketKeyEnabled: true,
        ServerSideEncryptionByDefault: {
          SSEAlgorithm: 'aws:kms',
          KMSMasterKeyID: { 'Fn::GetAtt': [key, 'Arn'] },
        },
      },
    ]);
    expect(Object.values(bucket.Properties.PublicAccessBlockConfiguration)).toEqual([true, true, true, true]);
    expect(bucket.Properties.LoggingConfiguration.LogFilePrefix).toBe('athena-results/');
    expect(bucket.Properties.LifecycleConfiguration.Rules).toEqual([
      { ExpirationInDays: 30, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
    ]);
    expect(resultsBucket(production).Properties.LifecycleConfiguration.Rules[0].ExpirationInDays).toBe(7);
    expect(policy).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
    expect(policy.filter((s) => s.Effect === 'Allow')).toEqual([]);
    expect(bucket.DeletionPolicy).toBe('Retain');
  });
});

describe('query role', () => {
  const statements = () =>
    roleStatements(synth.template, logicalId(synth.stack, synth.stack.queries.queryRole));

  it('runs queries in this workgroup only and reads exactly the archive tables of the catalog', () => {
    // Act
    const all = statements();
    const athena = all.filter((s) => actionsOf(s).some((a) => a.startsWith('athena:')));
    const glue = all.filter((s) => actionsOf(s).some((a) => a.startsWith('glue:')));
    // Assess
    const workGroupArn = JSON.stringify(athena.flatMap(resourcesOf));
    expect(workGroupArn).toContain(':workgroup/"');
    expect(workGroupArn).toContain(JSON.stringify({ Ref: cfnId(synth, synth.stack.queries.workGroup) }));
    expect(athena.flatMap(resourcesOf)).toHaveLength(1);
    expect(glue.flatMap(actionsOf).every((a) => a.startsWith('glue:Get'))).toBe(true);
    // The tables of the archiver's own Glue database: named one by one, a fleet's would pass the policy size limit.
    const glueResources = JSON.stringify(glue.flatMap(resourcesOf));
    expect(glueResources).toContain(':table/auditarchiver/*');
    expect(glueResources).not.toMatch(/:table\/\*|:database\/\*/);
  });

  it('reads the archive areas only, writes only query results, never deletes', () => {
    // Act
    const all = statements();
    const objectResources = (action: string) =>
      JSON.stringify(all.filter((s) => actionsOf(s).includes(action)).flatMap(resourcesOf));
    const results = logicalId(synth.stack, synth.stack.queries.resultsBucket);
    // Assess
    for (const area of ['/audit/billing/*', '/audit/crm/*'])
      expect(objectResources('s3:GetObject')).toContain(area);
    expect(objectResources('s3:GetObject')).not.toContain('_staging');
    expect(objectResources('s3:PutObject')).toBe(
      JSON.stringify([{ 'Fn::Join': ['', [{ 'Fn::GetAtt': [results, 'Arn'] }, '/*']] }]),
    );
    expect(all.flatMap(actionsOf).filter((a) => a.includes('Delete') || a.includes('*'))).toEqual([]);
  });

  it('is assumable from this account only', () => {
    // Act
    const role = synth.template.toJSON().Resources[logicalId(synth.stack, synth.stack.queries.queryRole)];
    // Assess
    expect(JSON.stringify(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal)).toContain(
      ':root',
    );
    expect(JSON.stringify(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal)).toContain(
      'AWS::AccountId',
    );
  });

  it('is assumable only by the principals aws.athena.queryPrincipals names, when it names some', () => {
    // Act
    const role =
      production.template.toJSON().Resources[logicalId(production.stack, production.stack.queries.queryRole)];
    // Assess: not the account root, which would let any principal whose IAM allows sts:AssumeRole on "*" read every
    // archived row.
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      {
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Principal: { AWS: 'arn:aws:iam::111122223333:role/audit-readers' },
      },
    ]);
  });

  it('is the only principal with Athena or Glue permissions: no function gets any', () => {
    // Act
    const policies = Object.values(synth.template.findResources('AWS::IAM::Policy'));
    const withQueryActions = policies.filter((p) =>
      JSON.stringify(p.Properties.PolicyDocument).match(/"(athena|glue):/),
    );
    // Assess
    expect(withQueryActions.flatMap((p) => p.Properties.Roles)).toEqual([
      { Ref: logicalId(synth.stack, synth.stack.queries.queryRole) },
    ]);
  });
});
