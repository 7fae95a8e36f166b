import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { DeploymentConfig } from '../../lambdas/shared/config/deployment-schema.js';
import { AuditArchiverStack } from '../../lib/audit-archiver-stack.js';
import { databaseCaBundleFile, loadDeploymentConfig } from '../../lib/deployment-config.js';

export const fixture = (name: string): string =>
  fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const cdkJson = fileURLToPath(new URL('../../cdk.json', import.meta.url));

export interface SynthOptions {
  /** Run esbuild and the config copy; otherwise assets are staged unbundled (fast). */
  readonly bundling?: boolean;
  /** Config file; default: test/lib/fixtures/archiver.yaml. */
  readonly configFile?: string;
}

export interface Synthesized {
  readonly app: App;
  readonly stack: AuditArchiverStack;
  readonly template: Template;
  readonly config: DeploymentConfig;
  /** Removes the cloud assembly directory. */
  dispose(): void;
}

/** An app with the project's feature flags (cdk.json context); without bundling unless asked for. */
export function projectApp(options: { bundling?: boolean } = {}): App {
  const context = (JSON.parse(readFileSync(cdkJson, 'utf8')) as { context: Record<string, unknown> }).context;
  return new App({ context: { ...context, ...(options.bundling ? {} : { 'aws:cdk:bundling-stacks': [] }) } });
}

/** Synthesizes the stack as `cdk synth` does: same feature flags, same validated config. */
export function synthesize(options: SynthOptions = {}): Synthesized {
  const app = projectApp(options);
  const configFile = options.configFile ?? fixture('archiver.yaml');
  const config = loadDeploymentConfig(configFile);
  const stack = new AuditArchiverStack(app, 'AuditArchiver', {
    config,
    databaseCaBundleFile: databaseCaBundleFile(config, configFile),
  });
  const template = Template.fromStack(stack);
  return {
    app,
    stack,
    template,
    config,
    dispose: () => rmSync(app.outdir, { recursive: true, force: true }),
  };
}

/** The logical id of a construct's CloudFormation resource, as `Fn::GetAtt`/`Ref` name it. */
export function logicalId(
  stack: AuditArchiverStack,
  construct: { node: { defaultChild?: unknown } },
): string {
  const child = construct.node.defaultChild as Parameters<AuditArchiverStack['getLogicalId']>[0];
  return stack.resolve(stack.getLogicalId(child)) as string;
}

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

/**
 * The statements of every policy the stack attaches to the role with this logical id: its inline policies, and the
 * managed policies CDK moves statements to when a role's inline policy would pass IAM's size limit.
 */
export function roleStatements(template: Template, roleLogicalId: string): Statement[] {
  const policies = [
    ...Object.values(template.findResources('AWS::IAM::Policy')),
    ...Object.values(template.findResources('AWS::IAM::ManagedPolicy')),
  ];
  return policies
    .filter((policy) =>
      ((policy.Properties.Roles ?? []) as { Ref: string }[]).some((role) => role.Ref === roleLogicalId),
    )
    .flatMap((policy) => policy.Properties.PolicyDocument.Statement as Statement[]);
}

export const actionsOf = (statement: Statement): string[] =>
  Array.isArray(statement.Action) ? statement.Action : [statement.Action];

export const resourcesOf = (statement: Statement): unknown[] =>
  Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
