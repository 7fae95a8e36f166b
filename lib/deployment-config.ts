import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  type DeploymentConfig,
  loadDeploymentConfigFile,
} from '../lambdas/shared/config/deployment-schema.js';
import { tableRef } from '../lambdas/shared/config/schema.js';
import { lifecycleRank } from '../lambdas/shared/config/storage-classes.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { skippedRun } from './schedule-skips.js';

/** Config path used when the CDK context names none (`cdk synth -c config=path/to/archiver.yaml`). */
export const DEFAULT_CONFIG_PATH = 'config/archiver.example.yaml';

/** A secret's name holds letters, digits and /_+=.@- only: never "*" or "?", which IAM would read as wildcards. */
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;
const KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;
const KEY_ID = /^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** A config field that is valid for local mode but cannot be deployed, or deploys with a caveat. */
export interface DeploymentFinding {
  /** Dotted path of the field, as the config validator reports it. */
  readonly path: string;
  readonly message: string;
}

/** `aws.databaseCaBundlePath` as an absolute path: relative to the config file, which it is committed next to. */
export function databaseCaBundleFile(config: DeploymentConfig, configPath: string): string | undefined {
  const path = config.aws.databaseCaBundlePath;
  return path === undefined ? undefined : resolve(dirname(configPath), path);
}

/**
 * What the stack needs beyond the shared schema: IAM can only scope grants to ARNs, so database secrets must be
 * named by ARN and the archive key by key ARN or key id (an alias cannot be the resource of a grant); rules that
 * span sections (storage classes, Athena tables, concurrency); and the files the config names.
 *
 * @param configPath the config file, against which `aws.databaseCaBundlePath` is resolved
 */
export function deploymentErrors(config: DeploymentConfig, configPath: string): DeploymentFinding[] {
  const errors: DeploymentFinding[] = [];
  const expiry = config.aws.storage?.expireAfterDays;
  const locked = config.aws.storage?.objectLock !== undefined;
  config.databases.forEach((db, i) => {
    if ('secretArn' in db.credentials && !SECRET_ARN.test(db.credentials.secretArn)) {
      errors.push({
        path: `databases.${i}.credentials.secretArn`,
        message:
          'must be a Secrets Manager secret ARN whose name has only letters, digits and /_+=.@- (the functions are granted read on exactly that secret; IAM would read "*" or "?" as wildcards)',
      });
    }
    // The bundled config ships in every function's asset, which lambda:GetFunction reads.
    if ('url' in db.credentials && new URL(db.credentials.url).password !== '') {
      errors.push({
        path: `databases.${i}.credentials.url`,
        message:
          'holds a password, which would be shipped in plain text inside every function (anyone who may read a function reads it); use secretArn in AWS',
      });
    }
    // Expiry removes a held table's archives on schedule: only Object Lock's legal holds keep them.
    db.tables.forEach((table, t) => {
      if (table.legalHold !== undefined && table.legalHold !== false && expiry !== undefined && !locked) {
        errors.push({
          path: `databases.${i}.tables.${t}.legalHold`,
          message: `cannot keep this table's archives while aws.storage.expireAfterDays (${expiry}) deletes them: set aws.storage.objectLock (legal-hold place then holds each object), or remove the expiry`,
        });
      }
    });
  });
  // Every S3 grant is scoped by the prefix: IAM would read "*" and "?" there as wildcards and "${" as a variable.
  if (/[*?$]/.test(config.s3.prefix)) {
    errors.push({
      path: 's3.prefix',
      message:
        'must not contain "*", "?" or "$" in AWS: the functions\' S3 grants are scoped by the prefix, where IAM reads them as wildcards or policy variables',
    });
  }
  const { expression, timeZone } = config.aws.schedule;
  const skipped = skippedRun(expression, timeZone);
  if (skipped) errors.push({ path: 'aws.schedule.expression', message: skipped });
  const keyId = config.s3.kmsKeyId;
  if (keyId !== undefined && !KEY_ARN.test(keyId) && !KEY_ID.test(keyId)) {
    errors.push({
      path: 's3.kmsKeyId',
      message: 'must be a KMS key ARN or key id; aliases cannot be scoped in IAM grants',
    });
  }
  const [firstTransition] = config.aws.storage?.transitions ?? [];
  if (
    firstTransition &&
    lifecycleRank(firstTransition.storageClass) <= lifecycleRank(config.s3.storageClass)
  ) {
    errors.push({
      path: 'aws.storage.transitions.0.storageClass',
      message: `archives are written as ${config.s3.storageClass} (s3.storageClass); S3 cannot move them to ${firstTransition.storageClass}`,
    });
  }
  errors.push(...athenaTableErrors(config), ...concurrencyErrors(config));
  const caFile = databaseCaBundleFile(config, configPath);
  if (caFile !== undefined) {
    const problem = pemProblem(caFile);
    if (problem) errors.push({ path: 'aws.databaseCaBundlePath', message: problem });
  }
  return errors;
}

function athenaTableErrors(config: DeploymentConfig): DeploymentFinding[] {
  const errors: DeploymentFinding[] = [];
  const seen = new Set<string>();
  (config.aws.athena?.tables ?? []).forEach((entry, i) => {
    const db = config.databases.find((d) => d.name === entry.database);
    const id = `${entry.database}/${entry.table}`;
    if (!db?.tables.some((t) => tableRef(t) === entry.table)) {
      errors.push({
        path: `aws.athena.tables.${i}`,
        message: `${entry.table} of database "${entry.database}" is not a configured table`,
      });
    } else if (seen.has(id)) {
      errors.push({ path: `aws.athena.tables.${i}`, message: `duplicate entry for ${id}` });
    }
    seen.add(id);
  });
  return errors;
}

/**
 * Each table archived at once runs one database step at a time, and a restore runs up to its database's
 * maxConnections archives at once: every database function needs that many instances.
 */
function concurrencyErrors(config: DeploymentConfig): DeploymentFinding[] {
  const reserved = config.aws.databaseFunctionConcurrency;
  const needed = Math.max(config.run.maxConcurrency, ...config.databases.map((db) => db.maxConnections));
  if (reserved === undefined || reserved >= needed) return [];
  return [
    {
      path: 'aws.databaseFunctionConcurrency',
      message: `must be at least ${needed} (run.maxConcurrency, and every database's maxConnections for restores), or steps are throttled`,
    },
  ];
}

function pemProblem(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
  return text.includes('-----BEGIN CERTIFICATE-----')
    ? undefined
    : `${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`;
}

/**
 * What deploys but is a poor fit, reported as synth warnings: credentials Lambda would get in plain text or not at
 * all, and archive expiry that a delete marker could bring forward.
 */
export function deploymentWarnings(config: DeploymentConfig): DeploymentFinding[] {
  const warnings: DeploymentFinding[] = [];
  // The lifecycle rule removes a noncurrent archive version 30 days after it became noncurrent, whatever made it so:
  // expiry, or a delete marker written early by a principal allowed s3:DeleteObject there (the functions that
  // withdraw batches, an operator). Only Object Lock retention as long as the expiry keeps each version until then.
  const storage = config.aws.storage;
  const expiry = storage?.expireAfterDays;
  if (expiry !== undefined && (storage?.objectLock?.retentionDays ?? 0) < expiry) {
    warnings.push({
      path: 'aws.storage.expireAfterDays',
      message:
        `a delete marker written on a committed archive or manifest before it is ${expiry} days old removes it for good 30 days ` +
        `later (the noncurrent-version rule); set aws.storage.objectLock with retentionDays ${expiry} to keep every archive until it expires`,
    });
  }
  config.databases.forEach((db, i) => {
    if ('url' in db.credentials) {
      warnings.push({
        path: `databases.${i}.credentials.url`,
        message: 'the URL is shipped inside the Lambda asset; use secretArn in AWS',
      });
    } else if ('urlEnv' in db.credentials) {
      warnings.push({
        path: `databases.${i}.credentials.urlEnv`,
        message: `the stack does not set ${db.credentials.urlEnv} on the functions; use secretArn in AWS`,
      });
    }
    if (db.tls === 'disable') {
      warnings.push({
        path: `databases.${i}.tls`,
        message:
          'disable sends the password and every archived row unencrypted between Lambda and the database',
      });
    }
  });
  return warnings;
}

/**
 * Loads the archiver config for a deployment: the deployment schema first, then the rules above.
 * Throws a ConfigError whose message lists every problem as "field: reason", before any construct exists.
 *
 * @param path config file, relative to the current directory (the CDK app runs from the project root)
 */
export function loadDeploymentConfig(path: string): DeploymentConfig {
  const config = loadDeploymentConfigFile(path);
  const errors = deploymentErrors(config, path);
  if (errors.length > 0) {
    const lines = errors.map((e) => `${e.path}: ${e.message}`).join('\n');
    throw new ConfigError(`${path} cannot be deployed:\n${lines}`);
  }
  return config;
}
