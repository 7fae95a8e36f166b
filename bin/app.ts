import { Annotations, App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { DeploymentConfig } from '../lambdas/shared/config/deployment-schema.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { AuditArchiverStack } from '../lib/audit-archiver-stack.js';
import {
  DEFAULT_CONFIG_PATH,
  databaseCaBundleFile,
  deploymentWarnings,
  loadDeploymentConfig,
} from '../lib/deployment-config.js';

const app = new App();
const configPath: string = app.node.tryGetContext('config') ?? DEFAULT_CONFIG_PATH;

// Validate before any construct exists: a bad config stops here with every "field: reason" line.
let config: DeploymentConfig;
try {
  config = loadDeploymentConfig(configPath);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`audit-archiver: ${error.message}`);
  process.exit(1);
}

const stack = new AuditArchiverStack(app, 'AuditArchiver', {
  description: 'audit-archiver: archives old rows of PostgreSQL audit tables to S3, then deletes them',
  config,
  databaseCaBundleFile: databaseCaBundleFile(config, configPath),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
for (const warning of deploymentWarnings(config)) {
  Annotations.of(stack).addWarningV2(
    `audit-archiver:${warning.path}`,
    `${configPath}: ${warning.path}: ${warning.message}`,
  );
}
Tags.of(app).add('application', 'audit-archiver');

// cdk-nag v3 runs as a policy validation plugin; acknowledgments live next to the resources they concern.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
