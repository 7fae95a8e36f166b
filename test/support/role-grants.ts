import { rmSync } from 'node:fs';
import { Template } from 'aws-cdk-lib/assertions';
import type { DeploymentConfig } from '../../lambdas/shared/config/deployment-schema.js';
import { AuditArchiverStack } from '../../lib/audit-archiver-stack.js';
import type { LoggedRequest } from '../../local/services.js';
import type { FunctionName } from '../../local/workflow.js';
import { logicalId, projectApp, roleStatements, type Statement } from '../lib/synth.js';

/**
 * The IAM the deployed stack gives each function, applied to the requests local mode's functions sent. The local S3
 * server and local DynamoDB authorize nothing, so a path that calls what its role does not allow (an AccessDenied
 * in AWS) would pass every local test: this check finds it. It evaluates the identity policies of each function's
 * role as IAM does for these requests (Allow unless nothing allows or a Deny matches), with the request context the
 * archiver's grants condition on (`s3:prefix`, `dynamodb:LeadingKeys`). KMS calls happen inside S3 and are not seen.
 */

const REGION = 'us-east-1';
const ACCOUNT = '000000000000';

/** One permission a request needs: the IAM action, the resource ARN and the condition keys it carries. */
export interface NeededPermission {
  action: string;
  resource: string;
  context: Record<string, string | string[]>;
}

export interface Denial {
  caller: string;
  request: string;
  needs: string;
}

type Resolvable =
  | string
  | { Ref?: string; 'Fn::GetAtt'?: [string, string]; 'Fn::Join'?: [string, Resolvable[]] };

/** The resources a statement names, with the stack's bucket and table resolved to the local ones' ARNs. */
function resolver(names: Record<string, { arn: string; ref: string }>) {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::Region': REGION,
    'AWS::AccountId': ACCOUNT,
    'AWS::URLSuffix': 'amazonaws.com',
  };
  const resolve = (value: Resolvable): string => {
    if (typeof value === 'string') return value;
    if (value.Ref) return pseudo[value.Ref] ?? names[value.Ref]?.ref ?? `unresolved:${value.Ref}`;
    const getAtt = value['Fn::GetAtt'];
    if (getAtt) return names[getAtt[0]]?.arn ?? `unresolved:${getAtt.join('.')}`;
    const join = value['Fn::Join'];
    if (join) return join[1].map(resolve).join(join[0]);
    return `unresolved:${JSON.stringify(value)}`;
  };
  return resolve;
}

/** An IAM wildcard pattern (`*`, `?`; `${*}`, `${?}` and `${$}` stand for themselves) as a regular expression. */
function globOf(pattern: string, ignoreCase = false): RegExp {
  const parts = pattern.split(/(\$\{[*?$]\}|[*?])/);
  const source = parts
    .map((part) => {
      if (part === '*') return '.*';
      if (part === '?') return '.';
      if (/^\$\{[*?$]\}$/.test(part)) return `\\${part[2]}`;
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '');
}

const asList = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** Whether a statement's conditions hold for the request's context; an operator this check does not know never does. */
function conditionsHold(statement: Statement, context: NeededPermission['context']): boolean {
  return Object.entries(statement.Condition ?? {}).every(([operator, keys]) =>
    Object.entries(keys).every(([key, expected]) => {
      const patterns = asList(expected as string | string[]).map(String);
      const given = context[key];
      const values = asList(given);
      switch (operator) {
        case 'StringLike':
          return given !== undefined && values.every((v) => patterns.some((p) => globOf(p).test(v)));
        case 'StringEquals':
          return given !== undefined && values.every((v) => patterns.includes(v));
        case 'ForAllValues:StringLike':
          return values.every((v) => patterns.some((p) => globOf(p).test(v)));
        default:
          return false;
      }
    }),
  );
}

/** The permissions IAM checks for a request a local server logged. */
export function permissionsFor(request: LoggedRequest, bucket: string, tableArn: string): NeededPermission[] {
  if (request.service === 'dynamodb') {
    return [
      {
        action: `dynamodb:${request.operation}`,
        resource: tableArn,
        context: { 'dynamodb:LeadingKeys': request.leadingKeys ?? [] },
      },
    ];
  }
  const bucketArn = `arn:aws:s3:::${bucket}`;
  const object = (action: string, key = request.key ?? '') => ({
    action,
    resource: `${bucketArn}/${key}`,
    context: {},
  });
  const listing = (prefix: string) => ({
    action: 's3:ListBucket',
    resource: bucketArn,
    context: { 's3:prefix': prefix },
  });
  switch (request.operation) {
    case 'HeadObject':
    case 'GetObject':
      return [
        object(request.versionId ? 's3:GetObjectVersion' : 's3:GetObject'),
        // S3 answers a missing key with 404 only to a caller that may list it, otherwise 403, which the store settles
        // by listing the key itself (ArchiveStore.isMissing): either way the role must let it list that key.
        ...(request.status === 404 ? [listing(request.key ?? '')] : []),
      ];
    case 'PutObject':
    case 'CreateMultipartUpload':
    case 'UploadPart':
    case 'CompleteMultipartUpload':
      return [object('s3:PutObject')];
    case 'CopyObject':
    case 'UploadPartCopy':
      return [object('s3:PutObject'), object('s3:GetObject', request.sourceKey)];
    case 'AbortMultipartUpload':
      return [object('s3:AbortMultipartUpload')];
    case 'DeleteObject':
      return [object(request.versionId ? 's3:DeleteObjectVersion' : 's3:DeleteObject')];
    case 'DeleteObjects':
      return (request.keys ?? []).map((key) => object('s3:DeleteObject', key));
    case 'ListObjects':
    case 'ListObjectsV2':
      return [listing(request.prefix ?? '')];
    case 'HeadBucket':
      return [{ action: 's3:ListBucket', resource: bucketArn, context: {} }];
    default:
      return [{ action: `s3:${request.operation}`, resource: bucketArn, context: {} }];
  }
}

/** Whether these statements allow the permission: an Allow matches and no Deny does. */
export function allows(
  statements: Statement[],
  needed: NeededPermission,
  resolve: (r: Resolvable) => string,
) {
  const matches = (statement: Statement) =>
    asList(statement.Action).some((action) => globOf(action, true).test(needed.action)) &&
    asList(statement.Resource as Resolvable | Resolvable[]).some((resource) =>
      globOf(resolve(resource)).test(needed.resource),
    ) &&
    conditionsHold(statement, needed.context);
  const relevant = statements.filter(matches);
  return relevant.some((s) => s.Effect === 'Allow') && !relevant.some((s) => s.Effect === 'Deny');
}

/** Each function's role in the stack synthesized from `config`, as statements, with the resolver of its resources. */
export interface StackRoles {
  statementsOf(caller: string): Statement[] | undefined;
  resolve(resource: Resolvable): string;
}

/** Synthesizes the stack for the config local mode runs (unbundled, fast) and reads every function's role. */
export function stackRoles(
  config: DeploymentConfig,
  local: { bucket: string; lockTable: string },
): StackRoles {
  const app = projectApp();
  try {
    const stack = new AuditArchiverStack(app, 'AuditArchiver', { config, databaseCaBundleFile: undefined });
    const template = Template.fromStack(stack);
    const roles: Partial<Record<FunctionName, { node: { defaultChild?: unknown } }>> = {
      plan: stack.functions.plan.role,
      lock: stack.functions.lock.role,
      export: stack.functions.export.role,
      upload: stack.functions.upload.role,
      verify: stack.functions.verify.role,
      delete: stack.functions.delete.role,
      summary: stack.functions.summary.role,
      'restore-plan': stack.restore.plan.role,
      'restore-file': stack.restore.file.role,
      'restore-summary': stack.restore.summary.role,
    };
    const statements = new Map(
      Object.entries(roles).map(([name, role]) => [
        name,
        roleStatements(template, logicalId(stack, role as { node: { defaultChild?: unknown } })),
      ]),
    );
    const names = {
      [logicalId(stack, stack.archiveBucket.bucket)]: {
        arn: `arn:aws:s3:::${local.bucket}`,
        ref: local.bucket,
      },
      [logicalId(stack, stack.lockTable.table)]: {
        arn: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${local.lockTable}`,
        ref: local.lockTable,
      },
    };
    return { statementsOf: (caller) => statements.get(caller), resolve: resolver(names) };
  } finally {
    rmSync(app.outdir, { recursive: true, force: true });
  }
}

/**
 * The requests local functions sent that their deployed roles would refuse, one per request and permission. With
 * several deployments (an operator who changed the config and deployed again between runs), a request passes when
 * the role of any of them allows it.
 */
export function deniedRequests(
  requests: LoggedRequest[],
  deployments: StackRoles[],
  local: { bucket: string; lockTable: string },
): Denial[] {
  const tableArn = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${local.lockTable}`;
  const denials: Denial[] = [];
  for (const request of requests) {
    // Requests of the tests themselves, of local mode's setup and of the CLI name no function (an SDK client without
    // an app id, which Powertools marks `PT-…` when it traces it); any other name must be a function's.
    if (request.caller === '' || request.caller.startsWith('PT-')) continue;
    const roles = deployments.flatMap((roles) => {
      const statements = roles.statementsOf(request.caller);
      return statements ? [{ statements, resolve: roles.resolve }] : [];
    });
    if (roles.length === 0) {
      denials.push({ caller: request.caller, request: request.operation, needs: 'a function of the stack' });
      continue;
    }
    for (const needed of permissionsFor(request, local.bucket, tableArn)) {
      if (roles.some(({ statements, resolve }) => allows(statements, needed, resolve))) continue;
      denials.push({
        caller: request.caller,
        request: `${request.operation} ${request.key ?? request.table ?? ''} (${request.status})`,
        needs: `${needed.action} on ${needed.resource} ${JSON.stringify(needed.context)}`,
      });
    }
  }
  return denials;
}
