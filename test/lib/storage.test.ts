import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, logicalId, type Synthesized, synthesize } from './synth.js';

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize();
}, 60_000);
afterAll(() => synth.dispose());

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

describe('lock table', () => {
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
