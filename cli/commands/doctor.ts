import type { Command } from 'commander';
import { loadDeploymentConfigFile } from '../../lambdas/shared/config/deployment-schema.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { boundedRequests } from '../../lambdas/shared/runtime/aws-requests.js';
import { archiveBucket, withLocalEnvironmentReadOnly } from '../context.js';
import { withDemoDatabase } from '../demo-database.js';
import type { CheckResult } from '../doctor.js';
import { print, safeJson } from '../output.js';
import { configureLogging, STATE_DIR_OPTION } from './common.js';

const doctorHelp = (where: 'aws' | 'local') => `
Checks: the timeouts; per database its credentials, reachability, TLS; per table that the archiver can use it, the
SELECT and DELETE privileges, an index on the timestamp column; the bucket (reachable, writable${where === 'aws' ? ', versioning and Object Lock' : ''}); the lock table${where === 'aws' ? '; the last executions of the archive state machine' : ''}.
Exit code 0 when every check is ok or only warns (1 with --strict), 1 when any is critical, 2 on a usage or config error.
Example:
  audit-archiver ${where === 'aws' ? 'doctor -c archiver.yaml --state-machine-arn <ArchiveStateMachineArn> --lock-table <LockTableName>' : 'local doctor --demo'}`;

/** Loaded on use: the doctor's checks need the AWS SDK and pg (see common.ts). */
const loadDoctor = () => import('../doctor.js');

/** `doctor` (a deployed archiver, with the environment's AWS credentials) and `local doctor`. */
export function registerDoctor(program: Command, local: Command): void {
  program
    .command('doctor')
    .description('Check everything a deployed archiver needs, with AWS credentials of the environment.')
    .requiredOption('-c, --config <file>', 'config file (YAML)')
    .option(
      '--state-machine-arn <arn>',
      'archive state machine (stack output ArchiveStateMachineArn)',
      process.env.AUDIT_ARCHIVER_ARCHIVE_ARN,
    )
    .requiredOption(
      '--lock-table <name>',
      'lock table (stack output LockTableName)',
      process.env.AUDIT_ARCHIVER_LOCK_TABLE,
    )
    .option(
      '--bucket <name>',
      'archive bucket (default: the config’s s3.bucket; stack output ArchiveBucketName)',
    )
    .option('--json', 'print JSON', false)
    .option('--strict', 'warnings fail too (exit 1)', false)
    .addHelpText('after', doctorHelp('aws'))
    .action(
      async (options: {
        config: string;
        stateMachineArn?: string;
        lockTable: string;
        bucket?: string;
        json: boolean;
        strict: boolean;
      }) => {
        const doctor = await loadDoctor();
        const { S3Client } = await import('@aws-sdk/client-s3');
        const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
        const { SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
        const { SFNClient } = await import('@aws-sdk/client-sfn');
        const config = loadDeploymentConfigFile(options.config);
        const results = await doctor.runDoctor({
          config,
          mode: 'aws',
          env: process.env,
          s3: new S3Client({ requestHandler: boundedRequests() }),
          bucket: archiveBucket(config, options.bucket),
          dynamodb: new DynamoDBClient({ requestHandler: boundedRequests() }),
          lockTable: options.lockTable,
          secrets: new SecretsManagerClient({ requestHandler: boundedRequests() }),
          sfn: new SFNClient({ requestHandler: boundedRequests() }),
          stateMachineArn: options.stateMachineArn,
          now: () => new Date(),
        });
        printDoctor(doctor, results, options);
      },
    );

  local
    .command('doctor')
    .description('Check a config in local mode: its databases and tables, and the local S3 and DynamoDB.')
    .option('-c, --config <file>', 'config file (YAML); not needed with --demo')
    .option('--demo', 'check the demo database of `npm start`', false)
    .option(...STATE_DIR_OPTION)
    .option('--json', 'print JSON', false)
    .option('--strict', 'warnings fail too (exit 1)', false)
    .addHelpText('after', doctorHelp('local'))
    .action(
      async (options: {
        config?: string;
        demo: boolean;
        stateDir: string;
        json: boolean;
        strict: boolean;
      }) => {
        configureLogging(false);
        const doctor = await loadDoctor();
        const check = (configPath: string) =>
          withLocalEnvironmentReadOnly(configPath, options.stateDir, async (env) =>
            printDoctor(doctor, await doctor.runDoctor(doctor.localDoctorDeps(env, process.env)), options),
          );
        if (options.demo) await withDemoDatabase(options.stateDir, ({ configPath }) => check(configPath));
        else if (options.config) await check(options.config);
        else throw new ConfigError('local doctor needs --config (or --demo)');
      },
    );
}

function printDoctor(
  doctor: Awaited<ReturnType<typeof loadDoctor>>,
  results: CheckResult[],
  { json, strict }: { json: boolean; strict: boolean },
): void {
  const exitCode = doctor.doctorExitCode(results, strict);
  print(json ? safeJson({ exitCode, checks: results }) : doctor.formatDoctor(results));
  process.exitCode = exitCode;
}
