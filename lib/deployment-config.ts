import { type ArchiverConfig, loadConfigFile } from '../lambdas/shared/config.js';
import { ConfigError } from '../lambdas/shared/errors.js';

/** Config path used when the CDK context names none (`cdk synth -c config=path/to/archiver.yaml`). */
export const DEFAULT_CONFIG_PATH = 'config/archiver.example.yaml';

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/;
const KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;
const KEY_ID = /^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** A config field that is valid for local mode but cannot be deployed, or deploys with a caveat. */
export interface DeploymentFinding {
  /** Dotted path of the field, as the config validator reports it. */
  readonly path: string;
  readonly message: string;
}

/**
 * What the stack needs beyond the shared schema: IAM can only scope grants to ARNs, so database secrets must be
 * named by ARN and the archive key by key ARN or key id (an alias cannot be the resource of a grant).
 */
export function deploymentErrors(config: ArchiverConfig): DeploymentFinding[] {
  const errors: DeploymentFinding[] = [];
  config.databases.forEach((db, i) => {
    if ('secretArn' in db.credentials && !SECRET_ARN.test(db.credentials.secretArn)) {
      errors.push({
        path: `databases.${i}.credentials.secretArn`,
        message:
          'must be a Secrets Manager secret ARN (the functions are granted read on exactly that secret)',
      });
    }
  });
  const keyId = config.s3.kmsKeyId;
  if (keyId !== undefined && !KEY_ARN.test(keyId) && !KEY_ID.test(keyId)) {
    errors.push({
      path: 's3.kmsKeyId',
      message: 'must be a KMS key ARN or key id; aliases cannot be scoped in IAM grants',
    });
  }
  return errors;
}

/** Credentials that deploy but are a poor fit for Lambda; reported as synth warnings. */
export function deploymentWarnings(config: ArchiverConfig): DeploymentFinding[] {
  const warnings: DeploymentFinding[] = [];
  config.databases.forEach((db, i) => {
    if ('url' in db.credentials) {
      warnings.push({
        path: `databases.${i}.credentials.url`,
        message: 'the URL (and any password in it) is shipped inside the Lambda asset; use secretArn in AWS',
      });
    } else if ('urlEnv' in db.credentials) {
      warnings.push({
        path: `databases.${i}.credentials.urlEnv`,
        message: `the stack does not set ${db.credentials.urlEnv} on the functions; use secretArn in AWS`,
      });
    }
  });
  return warnings;
}

/**
 * Loads the archiver config for a deployment: the shared zod schema first, then the deployment rules above.
 * Throws a ConfigError whose message lists every problem as "field: reason", before any construct exists.
 *
 * @param path config file, relative to the current directory (the CDK app runs from the project root)
 */
export function loadDeploymentConfig(path: string): ArchiverConfig {
  const config = loadConfigFile(path);
  const errors = deploymentErrors(config);
  if (errors.length > 0) {
    const lines = errors.map((e) => `${e.path}: ${e.message}`).join('\n');
    throw new ConfigError(`${path} cannot be deployed:\n${lines}`);
  }
  return config;
}
