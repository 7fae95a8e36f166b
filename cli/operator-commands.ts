import type { Command } from 'commander';
import pg from 'pg';
import type { ArchiveStore } from '../lambdas/shared/archive/store.js';
import type { DeploymentConfig } from '../lambdas/shared/config/deployment-schema.js';
import type { ArchiverConfig } from '../lambdas/shared/config/schema.js';
import type { TableMeasurement } from './cost.js';

/**
 * The operator commands `cost`, `wizard` and `doctor` (AWS) / `local doctor`. Their modules load on use, so the
 * other commands never pay for them.
 */
export function registerOperatorCommands(
  program: Command,
  local: Command,
  stateDirOption: readonly [string, string, string],
  configureLogging: (verbose: boolean) => void,
): void {
  program
    .command('cost')
    .description(
      'Estimate the monthly and cumulative S3 cost of the archives, per storage class and with the config’s lifecycle (transitions, expiry): storage, requests, early-deletion charges, and a full restore.',
    )
    .option(
      '--size <size>',
      'archive size, e.g. 120GB (binary units, as S3 bills); raw size with --compression-ratio',
    )
    .option('--compression-ratio <n>', 'raw size / archive size, for --size or --avg-row-bytes (default 2.5)')
    .option('--rows <n>', 'rows to archive now')
    .option('--avg-row-bytes <n>', 'average raw row width in bytes (with --rows)')
    .option('--monthly-rows <n>', 'rows archived each month afterwards (with --size or --rows)', '0')
    .option(
      '-c, --config <file>',
      'config: its lifecycle (aws.storage), and, without --size/--rows, its tables measured live',
    )
    .option('--demo', 'measure the demo database of `npm start` and its archives', false)
    .option('--local', 'with --config: measure the archives in the local state dir', false)
    .option('--bucket <name>', 'with --config: measure the archives in this S3 bucket')
    .option(...stateDirOption)
    .option('--months <n>', 'horizon of the cumulative cost, in months', '36')
    .option('--region <region>', 'AWS region of the prices', 'us-east-1')
    .option('--json', 'print JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  audit-archiver cost --size 120GB --monthly-rows 5000000
  audit-archiver cost --rows 400000000 --avg-row-bytes 180 -c archiver.yaml
  audit-archiver cost --demo
Prices: one dated table (cli/cost-prices.ts), us-east-1, from the Amazon S3 pricing page.`,
    )
    .action(async (raw: Record<string, unknown>) => {
      configureLogging(false);
      const cost = await import('./cost.js');
      const { loadDeploymentConfigFile } = await import('../lambdas/shared/config/deployment-schema.js');
      const options = cost.parseCostOptions(raw);
      const stateDir = String(raw.stateDir);
      const report = async (
        config: DeploymentConfig | undefined,
        measure?: () => Promise<TableMeasurement[]>,
      ) => {
        const batchSize = config?.defaults.batchSize ?? 50_000;
        const tables =
          options.size === undefined && options.rows === undefined && measure ? await measure() : undefined;
        const workload = tables
          ? cost.workloadFromTables(tables)
          : cost.workloadFromOptions(options, batchSize);
        const result = cost.costReport(
          workload,
          cost.plansFor(config),
          options.months,
          options.region,
          tables,
        );
        console.log(options.json ? JSON.stringify(result, null, 2) : cost.formatCostReport(result));
      };
      /** Measures against the local S3 state (archives written by local runs) of a config. */
      const reportLocally = async (configPath: string) => {
        const { openLocalEnvironment } = await import('../local/run.js');
        const env = await openLocalEnvironment(configPath, stateDir);
        try {
          await report(env.config, () => measureAll(env.config, env.deps().store));
        } finally {
          await env.close();
        }
      };
      cost.pricesFor(options.region);
      if (raw.demo) {
        const { withDemoDatabase } = await import('./demo-database.js');
        await withDemoDatabase(stateDir, ({ configPath }) => reportLocally(configPath));
        return;
      }
      if (!raw.config) return report(undefined);
      const configPath = String(raw.config);
      if (raw.local) return reportLocally(configPath);
      const config = loadDeploymentConfigFile(configPath);
      let store: ArchiveStore | undefined;
      if (raw.bucket) {
        const { ArchiveStore } = await import('../lambdas/shared/archive/store.js');
        const { S3Client } = await import('@aws-sdk/client-s3');
        store = new ArchiveStore(new S3Client({}), String(raw.bucket));
      }
      await report(config, () => measureAll(config, store));
    });

  program
    .command('wizard')
    .description(
      'Look at a database, find its audit tables (timestamp column, usable key, size, rows, age, index) and write a config that validates, with a suggested retention.',
    )
    .option('--database-url <url>', 'postgres:// URL to look at (written into the config: prefer --url-env)')
    .option('--url-env <name>', 'environment variable holding the URL (the config names the variable)')
    .option('--name <name>', 'logical database name in the config (default: from the database name)')
    .option('--tables <schema.name...>', 'tables to archive (default: the usable audit-like ones)')
    .option('--retention-days <n>', 'retention (default: suggested from the rows’ age)')
    .option(
      '--tls <mode>',
      'verify-full, require or disable (default: disable on loopback, else verify-full)',
    )
    .option('--bucket <name>', 'archive bucket (s3.bucket)')
    .option('-o, --out <file>', 'where to write the config', 'archiver.yaml')
    .option('-y, --yes', 'ask nothing, overwrite --out', false)
    .option('--demo', 'look at the demo database of `npm start`', false)
    .option(...stateDirOption)
    .addHelpText(
      'after',
      `
Interactive when the terminal is one (and without --yes): it asks for the database, the tables and the retention.
Examples:
  DATABASE_URL=postgres://... audit-archiver wizard --url-env DATABASE_URL
  audit-archiver wizard --url-env DATABASE_URL --tables public.audit_logs --retention-days 180 --out archiver.yaml --yes
  audit-archiver wizard --demo --yes`,
    )
    .action(async (raw: Record<string, unknown> & { demo: boolean; stateDir: string }) => {
      const wizard = await import('./wizard.js');
      const { demo, stateDir, ...rest } = raw;
      const run = async (url?: string) => {
        const options = wizard.parseWizardOptions(url ? { ...rest, databaseUrl: url } : rest);
        const interactive = process.stdin.isTTY === true && !options.yes;
        const { createInterface } = await import('node:readline/promises');
        const rl = interactive
          ? createInterface({ input: process.stdin, output: process.stdout })
          : undefined;
        try {
          await wizard.runWizard(options, {
            prompter: rl && {
              ask: async (question, fallback) =>
                (await rl.question(`${question} [${fallback}]: `)).trim() || fallback,
            },
            write: (line) => console.log(line),
            env: process.env,
            now: () => new Date(),
          });
        } finally {
          rl?.close();
        }
      };
      if (!demo) return run();
      const { withDemoDatabase } = await import('./demo-database.js');
      await withDemoDatabase(stateDir, ({ url }) => run(url));
    });

  const doctorHelp = (where: 'aws' | 'local') => `
Checks: the timeouts; per database its credentials, reachability, TLS; per table that the archiver can use it, the
SELECT and DELETE privileges, an index on the timestamp column; the bucket (reachable, writable${where === 'aws' ? ', versioning and Object Lock' : ''}); the lock table${where === 'aws' ? '; the last executions of the archive state machine' : ''}.
Exit code 0 all good, 1 warnings, 2 anything critical.
Example:
  audit-archiver ${where === 'aws' ? 'doctor -c archiver.yaml --state-machine-arn <ArchiveStateMachineArn> --lock-table <LockTableName>' : 'local doctor --demo'}`;

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
    .addHelpText('after', doctorHelp('aws'))
    .action(
      async (options: {
        config: string;
        stateMachineArn?: string;
        lockTable: string;
        bucket?: string;
        json: boolean;
      }) => {
        const doctor = await import('./doctor.js');
        const { loadDeploymentConfigFile } = await import('../lambdas/shared/config/deployment-schema.js');
        const { ConfigError } = await import('../lambdas/shared/errors/step-errors.js');
        const { S3Client } = await import('@aws-sdk/client-s3');
        const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
        const { SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
        const { SFNClient } = await import('@aws-sdk/client-sfn');
        const config = loadDeploymentConfigFile(options.config);
        const bucket = options.bucket ?? config.s3.bucket;
        if (!bucket) throw new ConfigError('--bucket: the config names no s3.bucket');
        const results = await doctor.runDoctor({
          config,
          mode: 'aws',
          env: process.env,
          s3: new S3Client({}),
          bucket,
          dynamodb: new DynamoDBClient({}),
          lockTable: options.lockTable,
          secrets: new SecretsManagerClient({}),
          sfn: new SFNClient({}),
          stateMachineArn: options.stateMachineArn,
          now: () => new Date(),
        });
        printDoctor(results, options.json, doctor);
      },
    );

  local
    .command('doctor')
    .description('Check a config in local mode: its databases and tables, and the local S3 and DynamoDB.')
    .option('-c, --config <file>', 'config file (YAML); not needed with --demo')
    .option('--demo', 'check the demo database of `npm start`', false)
    .option(...stateDirOption)
    .option('--json', 'print JSON', false)
    .addHelpText('after', doctorHelp('local'))
    .action(async (options: { config?: string; demo: boolean; stateDir: string; json: boolean }) => {
      configureLogging(false);
      const doctor = await import('./doctor.js');
      const { openLocalEnvironment } = await import('../local/run.js');
      const { ConfigError } = await import('../lambdas/shared/errors/step-errors.js');
      const check = async (configPath: string) => {
        const env = await openLocalEnvironment(configPath, options.stateDir);
        try {
          printDoctor(await doctor.runDoctor(doctor.localDoctorDeps(env, process.env)), options.json, doctor);
        } finally {
          await env.close();
        }
      };
      if (options.demo) {
        const { withDemoDatabase } = await import('./demo-database.js');
        await withDemoDatabase(options.stateDir, ({ configPath }) => check(configPath));
      } else if (options.config) await check(options.config);
      else throw new ConfigError('local doctor needs --config (or --demo)');
    });
}

function printDoctor(
  results: import('./doctor.js').CheckResult[],
  json: boolean,
  doctor: typeof import('./doctor.js'),
): void {
  const exitCode = doctor.doctorExitCode(results);
  console.log(json ? JSON.stringify({ exitCode, checks: results }, null, 2) : doctor.formatDoctor(results));
  process.exitCode = exitCode;
}

/** Every configured table measured, one connection per database (credentials as the config gives them). */
async function measureAll(config: ArchiverConfig, store?: ArchiveStore) {
  const { measureTable } = await import('./cost.js');
  const { resolveConnection } = await import('../lambdas/shared/database/credentials.js');
  const { sessionSetupSql, tlsOption } = await import('../lambdas/shared/database/db.js');
  const { tableRef } = await import('../lambdas/shared/config/schema.js');
  const needsSecrets = config.databases.some((db) => 'secretArn' in db.credentials);
  const secrets = needsSecrets
    ? new (await import('@aws-sdk/client-secrets-manager')).SecretsManagerClient({})
    : undefined;
  const measured = [];
  for (const db of config.databases) {
    const settings = await resolveConnection(db, { env: process.env, secrets });
    const client = new pg.Client({ ...settings, ssl: tlsOption(db.tls), connectionTimeoutMillis: 10_000 });
    await client.connect();
    try {
      // The steps' own settings (search_path pinned to pg_catalog): what it measures cannot be skewed by planted objects.
      await client.query(sessionSetupSql(config.defaults));
      for (const table of db.tables)
        measured.push(await measureTable(client, config, db.name, tableRef(table), store));
    } finally {
      await client.end();
    }
  }
  return measured;
}
