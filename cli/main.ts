import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import type { RestoreFileResult } from '../lambdas/shared/lock-table/restore-records.js';
import { type ArchiveScopeOptions, listCommand, validateCommand, withArchiveScope } from './archives.js';
import { registerOperatorCommands } from './operator-commands.js';
import type { OutputOptions } from './progress.js';
import {
  formatRestoreResults,
  type RestoreOptions,
  restoreRequest,
  runAwsRestore,
  withRestoreOptions,
} from './restore.js';

/**
 * audit-archiver command line. Local commands run the deployed state machine definitions in-process against local
 * S3 and DynamoDB stand-ins whose state lives in --state-dir (default .audit-archiver/).
 */
/** Same default as local/run.ts DEFAULT_STATE_DIR, repeated here because that module may load only after logging is set. */
const STATE_DIR_OPTION = [
  '-s, --state-dir <dir>',
  'where local S3 objects and DynamoDB state persist',
  '.audit-archiver',
] as const;

const program = new Command()
  .name('audit-archiver')
  .description('Archive old rows of PostgreSQL audit tables to S3 and delete them, with zero data loss.')
  .showHelpAfterError();

/** Quiet Lambda-style JSON logs unless asked for; must run before the step modules load their Powertools singletons. */
function configureLogging(verbose: boolean): void {
  process.env.POWERTOOLS_LOG_LEVEL ??= verbose ? 'INFO' : 'ERROR';
  process.env.POWERTOOLS_METRICS_DISABLED ??= verbose ? 'false' : 'true';
  // Local mode runs on the Node 20 it finds; the deployed functions run on Node 22, which the SDK's warning is about.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

async function archiveLocally(
  configPath: string,
  stateDir: string,
  input: Record<string, unknown>,
  extra?: (db: string, table: string) => Promise<number>,
  output: OutputOptions = {},
) {
  const { openLocalEnvironment, runLocalArchive, NOTIFICATIONS_FILE } = await import('../local/run.js');
  const { formatSummary } = await import('./report.js');
  const { commandOutput, notificationsOfRun } = await import('./progress.js');
  const { display, say } = commandOutput(output);
  const { tablePrefix } = await import('../lambdas/shared/archive/format.js');
  const { refuseCriticalTablesLocally } = await import('./plan.js');
  const local = await openLocalEnvironment(configPath, stateDir);
  try {
    refuseCriticalTablesLocally(local.config, input);
    const started = Date.now();
    say(`Archiving with the local workflow (state in ${resolve(stateDir)}) ...`);
    const { execution, outcomes } = await runLocalArchive(local, input, { onStep: display.onStep });
    display.finish();
    const notifications = join(resolve(stateDir), NOTIFICATIONS_FILE);
    if (output.verbose && existsSync(notifications)) {
      for (const message of notificationsOfRun(readFileSync(notifications, 'utf8'), execution.executionName))
        console.log(
          `Notification (local mode writes it to ${NOTIFICATIONS_FILE}; AWS sends it to SNS):\n${message}`,
        );
    }
    const seconds = (Date.now() - started) / 1000;
    const reports = await Promise.all(
      outcomes.map(async (outcome) => {
        const [schema = '', ...rest] = outcome.table.split('.');
        const prefix = tablePrefix({
          prefix: local.config.s3.prefix,
          database: outcome.database,
          schema,
          table: rest.join('.'),
        });
        return {
          outcome,
          rowsKept: extra ? await extra(outcome.database, outcome.table) : undefined,
          archiveLocation: join(resolve(stateDir), 's3', local.services.bucket, prefix),
        };
      }),
    );
    console.log(formatSummary(reports, seconds));
    if (execution.status !== 'SUCCEEDED') {
      console.error(
        `Execution ${execution.executionName} failed: ${execution.error?.name}: ${execution.error?.message}`,
      );
      return 1;
    }
    console.log(`Execution ${execution.executionName} succeeded.`);
    return 0;
  } finally {
    await local.close();
  }
}

const local = program
  .command('local')
  .description('Run the workflow locally (same ASL, same handlers, local S3 and DynamoDB).');
local
  .command('run')
  .description('Archive the tables of a config against your PostgreSQL, with local S3 and DynamoDB.')
  .requiredOption('-c, --config <file>', 'config file (YAML)')
  .option(...STATE_DIR_OPTION)
  .option('-d, --database <name>', 'only this database')
  .option('-t, --table <schema.name...>', 'only these tables')
  .option('-v, --verbose', 'print the functions’ JSON logs and metrics, and the run’s notifications', false)
  .option('-q, --quiet', 'print only the final summary and errors (no progress)', false)
  .action(
    async (options: {
      config: string;
      stateDir: string;
      database?: string;
      table?: string[];
      verbose: boolean;
      quiet: boolean;
    }) => {
      configureLogging(options.verbose);
      const input = {
        ...(options.database ? { database: options.database } : {}),
        ...(options.table ? { tables: options.table } : {}),
      };
      process.exitCode = await archiveLocally(options.config, options.stateDir, input, undefined, options);
    },
  );

program
  .command('demo')
  .description('Start an embedded PostgreSQL with a demo database, archive it locally, and print a summary.')
  .option(...STATE_DIR_OPTION)
  .option('-r, --rows <n>', 'rows to seed across the demo tables', (v) => Number.parseInt(v, 10), 250_000)
  .addOption(new Option('--postgres <major>', 'PostgreSQL major version').choices(['14', '18']).default('18'))
  .option('-v, --verbose', 'print the functions’ JSON logs and metrics, and the run’s notifications', false)
  .option('-q, --quiet', 'print only the final summary and errors (no progress)', false)
  .action(async (options: { stateDir: string; rows: number; postgres: '14' | '18' } & OutputOptions) => {
    configureLogging(options.verbose === true);
    const say = (line: string) => {
      if (!options.quiet) console.log(line);
    };
    const demo = await import('../local/demo.js');
    const pg = (await import('pg')).default;
    mkdirSync(options.stateDir, { recursive: true });
    demo.clearDemoArchives(options.stateDir);
    say(`Starting embedded PostgreSQL ${options.postgres} ...`);
    const server = await startDemoPostgres(options.stateDir, Number(options.postgres) as 14 | 18);
    try {
      say(`Seeding ${options.rows.toLocaleString('en-US')} audit rows spread over 400 days ...`);
      const url = await demo.seedDemoDatabase(server.url(), options.rows);
      demo.writeDemoState(options.stateDir, server.version);
      const configPath = demo.writeDemoConfig(options.stateDir, url);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const countRows = async (_db: string, table: string) => {
          const [schema = '', ...name] = table.split('.');
          const result = await client.query(
            `SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name.join('.'))}`,
          );
          return Number(result.rows[0].n);
        };
        process.exitCode = await archiveLocally(configPath, options.stateDir, {}, countRows, options);
        say('Bring the rows back with: npm run cli -- local restore --demo');
      } finally {
        await client.end();
      }
    } finally {
      await server.stop();
    }
  });

/** The demo's PostgreSQL, kept between commands under the state dir's name. */
async function startDemoPostgres(stateDir: string, version: 14 | 18) {
  const { startLocalPostgres } = await import('../local/postgres.js');
  const { demoDataDir } = await import('../local/demo.js');
  return startLocalPostgres(version, { dataDir: demoDataDir(stateDir, version) });
}

withRestoreOptions(
  local
    .command('restore')
    .description(
      'Restore archives with the local restore workflow (same ASL and handlers as the deployed one). With --demo: every demo table archived by `npm start`, compared with the originals afterwards.',
    )
    .option('-c, --config <file>', 'config file (YAML); not needed with --demo')
    .option(...STATE_DIR_OPTION)
    .option(
      '--demo',
      'restore the demo database of `npm start` and compare it with the original rows',
      false,
    ),
  false,
)
  .option('-v, --verbose', 'print the functions’ JSON logs and metrics', false)
  .option('-q, --quiet', 'print only the final summary and errors (no progress)', false)
  .action(
    async (
      options: RestoreOptions & {
        config?: string;
        stateDir: string;
        demo: boolean;
        verbose: boolean;
        quiet: boolean;
      },
    ) => {
      configureLogging(options.verbose);
      process.exitCode = options.demo ? await restoreDemo(options) : await restoreLocally(options);
    },
  );

async function restoreLocally(
  options: RestoreOptions & { config?: string; stateDir: string } & OutputOptions,
): Promise<number> {
  if (!options.config || !options.database || !options.table) {
    throw new ConfigError('local restore needs --config, --database and --table (or --demo)');
  }
  const { openLocalEnvironment, runLocalRestore } = await import('../local/run.js');
  const request = restoreRequest(options);
  const local = await openLocalEnvironment(options.config, options.stateDir);
  const { commandOutput } = await import('./progress.js');
  const { display } = commandOutput(options);
  try {
    const { execution, results } = await runLocalRestore(local, request, { onStep: display.onStep });
    display.finish();
    return reportRestore(execution, results, options.json);
  } finally {
    await local.close();
  }
}

async function restoreDemo(options: RestoreOptions & { stateDir: string } & OutputOptions): Promise<number> {
  if (options.database || options.table || options.target || options.key) {
    throw new ConfigError(
      '--demo restores both demo tables into themselves: leave out --database, --table, --target and --key',
    );
  }
  const demo = await import('../local/demo.js');
  const { openLocalEnvironment, runLocalRestore } = await import('../local/run.js');
  const pg = (await import('pg')).default;
  const server = await startDemoPostgres(options.stateDir, demo.readDemoState(options.stateDir).postgres);
  try {
    const url = server.url(demo.DEMO_DATABASE);
    const local = await openLocalEnvironment(demo.writeDemoConfig(options.stateDir, url), options.stateDir);
    let exitCode = 0;
    try {
      for (const table of local.config.databases[0]?.tables ?? []) {
        const { commandOutput } = await import('./progress.js');
        const { display, say } = commandOutput(options);
        say(`Restoring ${demo.DEMO_DATABASE}/${table.schema}.${table.name} ...`);
        const { execution, results } = await runLocalRestore(
          local,
          restoreRequest({
            ...options,
            database: demo.DEMO_DATABASE,
            table: `${table.schema}.${table.name}`,
          }),
          { onStep: display.onStep },
        );
        display.finish();
        exitCode = Math.max(exitCode, reportRestore(execution, results, options.json));
      }
    } finally {
      await local.close();
    }
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (const c of await demo.compareWithOriginals(client)) {
        const same = c.missing === 0 && c.extra === 0;
        console.log(
          `${c.table}: ${c.rows.toLocaleString('en-US')} rows; ${same ? 'identical to the original rows' : `DIFFERS from the original rows: ${c.missing} missing, ${c.extra} extra`}`,
        );
        if (!same) exitCode = 1;
      }
    } finally {
      await client.end();
    }
    return exitCode;
  } finally {
    await server.stop();
  }
}

function reportRestore(
  execution: {
    executionName: string;
    status: string;
    output?: unknown;
    error?: { name: string; message: string };
  },
  results: RestoreFileResult[],
  json: boolean,
): number {
  if (json) {
    console.log(JSON.stringify({ execution, results }, null, 2));
  } else {
    console.log(formatRestoreResults(results));
    if (execution.status === 'SUCCEEDED') console.log(`Execution ${execution.executionName} succeeded.`);
    else
      console.error(
        `Execution ${execution.executionName} failed: ${execution.error?.name}: ${execution.error?.message}`,
      );
  }
  return execution.status === 'SUCCEEDED' ? 0 : 1;
}

withRestoreOptions(
  program
    .command('restore')
    .description('Start the deployed restore state machine with these options and follow it to its end.')
    .requiredOption(
      '--state-machine-arn <arn>',
      'the restore state machine (stack output RestoreStateMachineArn)',
      process.env.AUDIT_ARCHIVER_RESTORE_ARN,
    ),
).action(async (options: RestoreOptions & { stateMachineArn: string }) => {
  const { SFNClient } = await import('@aws-sdk/client-sfn');
  const outcome = await runAwsRestore(new SFNClient({}), options.stateMachineArn, restoreRequest(options), {
    write: (line) => console.log(line),
  });
  console.log(JSON.stringify(outcome.output ?? { error: outcome.error, cause: outcome.cause }, null, 2));
  console.log(`Execution ${outcome.executionArn}: ${outcome.status}`);
  process.exitCode = outcome.status === 'SUCCEEDED' ? 0 : 1;
});

type ScopeCommandOptions = ArchiveScopeOptions & { config: string; strict: boolean };

/** validate and list, each locally (local S3 in the state dir) and against AWS S3 (the config's bucket). */
for (const [name, description, run] of [
  [
    'validate',
    'Re-read every archive in scope and check checksums, row counts and sidecars; find orphans, staging leftovers and day gaps. Exit 1 on errors (2 on warnings with --strict).',
    validateCommand,
  ],
  ['list', 'List the archives in scope with day, rows, bytes and storage class.', listCommand],
] as const) {
  for (const [parent, where] of [
    [local, 'local'],
    [program, 'aws'],
  ] as const) {
    const command = withArchiveScope(
      parent
        .command(name)
        .description(description)
        .requiredOption('-c, --config <file>', 'config file (YAML)'),
    );
    if (name === 'validate') command.option('--strict', 'warnings fail too (exit 2)', false);
    if (where === 'local') command.option(...STATE_DIR_OPTION);
    else {
      command.option('--bucket <name>', 'archive bucket (default: the config’s s3.bucket)');
      if (name === 'validate')
        command.option(
          '--lock-table <name>',
          'the deployed lock table: compare the archives with its inventory of committed archives',
        );
    }
    command.action(
      async (options: ScopeCommandOptions & { stateDir?: string; bucket?: string; lockTable?: string }) => {
        configureLogging(false);
        const write = (line: string) => console.log(line);
        if (where === 'local') {
          const { openLocalEnvironment } = await import('../local/run.js');
          const env = await openLocalEnvironment(options.config, options.stateDir);
          try {
            const deps = env.deps();
            process.exitCode = await run(deps.store, env.config, options, write, deps.inventory);
          } finally {
            await env.close();
          }
          return;
        }
        const { loadDeploymentConfigFile } = await import('../lambdas/shared/config/deployment-schema.js');
        const { ArchiveStore } = await import('../lambdas/shared/archive/store.js');
        const { S3Client } = await import('@aws-sdk/client-s3');
        const config = loadDeploymentConfigFile(options.config);
        const bucket = options.bucket ?? config.s3.bucket;
        if (!bucket) throw new ConfigError('give --bucket: the config names no s3.bucket');
        let inventory:
          | import('../lambdas/shared/lock-table/archive-inventory.js').ArchiveInventory
          | undefined;
        if (options.lockTable) {
          const { ArchiveInventory } = await import('../lambdas/shared/lock-table/archive-inventory.js');
          const { LockTableClient } = await import('../lambdas/shared/lock-table/table-client.js');
          const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
          const { DynamoDBDocumentClient } = await import('@aws-sdk/lib-dynamodb');
          inventory = new ArchiveInventory(
            new LockTableClient(DynamoDBDocumentClient.from(new DynamoDBClient({})), options.lockTable),
          );
        } else if (name === 'validate') {
          write(
            'note: without --lock-table the archives are not compared with the inventory of committed archives',
          );
        }
        process.exitCode = await run(
          new ArchiveStore(new S3Client({}), bucket),
          config,
          options,
          write,
          inventory,
        );
      },
    );
  }
}

program
  .command('plan')
  .description(
    'Dry run in local mode: per table the eligible rows, batches, estimated bytes, cut-off, oldest row, lock, legal hold, retention policy and encryption. Changes nothing.',
  )
  .option('-c, --config <file>', 'config file (YAML); not needed with --demo')
  .option('--demo', 'plan the demo database of `npm start`', false)
  .option(...STATE_DIR_OPTION)
  .option('-d, --database <name>', 'only this database')
  .option('-t, --table <schema.name...>', 'only these tables')
  .option('--json', 'print the report as JSON', false)
  .action(
    async (options: {
      config?: string;
      demo: boolean;
      stateDir: string;
      database?: string;
      table?: string[];
      json: boolean;
    }) => {
      configureLogging(false);
      const { planLocally, formatPlanReport } = await import('./plan.js');
      const { openLocalEnvironment } = await import('../local/run.js');
      const selection = { database: options.database, tables: options.table };
      const plan = async (configPath: string) => {
        const env = await openLocalEnvironment(configPath, options.stateDir);
        try {
          const report = await planLocally(env, selection);
          console.log(options.json ? JSON.stringify(report, null, 2) : formatPlanReport(report));
        } finally {
          await env.close();
        }
      };
      if (!options.demo) {
        if (!options.config) throw new ConfigError('plan needs --config (or --demo)');
        return plan(options.config);
      }
      const demo = await import('../local/demo.js');
      const server = await startDemoPostgres(options.stateDir, demo.readDemoState(options.stateDir).postgres);
      try {
        await plan(demo.writeDemoConfig(options.stateDir, server.url(demo.DEMO_DATABASE)));
      } finally {
        await server.stop();
      }
    },
  );

type HoldCommandOptions = {
  config: string;
  stateDir: string;
  lockTable?: string;
  bucket?: string;
  actor: string;
};

/** Local mode (the state dir's DynamoDB and S3) unless --lock-table names the deployed lock table. */
async function withHoldContext<T>(
  options: HoldCommandOptions,
  work: (ctx: import('./holds.js').HoldContext & { s3: import('@aws-sdk/client-s3').S3Client }) => Promise<T>,
): Promise<T> {
  configureLogging(false);
  const { S3Client } = await import('@aws-sdk/client-s3');
  if (!options.lockTable) {
    const { openLocalEnvironment } = await import('../local/run.js');
    const env = await openLocalEnvironment(options.config, options.stateDir);
    try {
      const deps = env.deps();
      const s3 = new S3Client({ endpoint: env.services.s3Endpoint, forcePathStyle: true });
      return await work({
        config: env.config,
        holds: deps.holds,
        store: deps.store,
        actor: options.actor,
        s3,
      });
    } finally {
      await env.close();
    }
  }
  const { loadDeploymentConfigFile } = await import('../lambdas/shared/config/deployment-schema.js');
  const { ArchiveStore } = await import('../lambdas/shared/archive/store.js');
  const { LegalHolds } = await import('../lambdas/shared/lock-table/legal-holds.js');
  const { LockTableClient } = await import('../lambdas/shared/lock-table/table-client.js');
  const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
  const { DynamoDBDocumentClient } = await import('@aws-sdk/lib-dynamodb');
  const config = loadDeploymentConfigFile(options.config);
  const bucket = options.bucket ?? config.s3.bucket;
  if (!bucket) throw new ConfigError('give --bucket: the config names no s3.bucket');
  const s3 = new S3Client({});
  const holds = new LegalHolds(
    new LockTableClient(DynamoDBDocumentClient.from(new DynamoDBClient({})), options.lockTable),
  );
  return work({ config, holds, store: new ArchiveStore(s3, bucket), actor: options.actor, s3 });
}

const withHoldOptions = (command: Command) =>
  command
    .requiredOption('-c, --config <file>', 'config file (YAML)')
    .option(...STATE_DIR_OPTION)
    .option('--lock-table <name>', 'the deployed lock table (stack output); without it, local mode')
    .option('--bucket <name>', 'archive bucket of the audit trail (default: the config’s s3.bucket)')
    .option('--actor <name>', 'who acts, for the hold and the audit trail', process.env.USER ?? 'operator');

const hold = program
  .command('hold')
  .description(
    'Legal hold on a table, in the lock table: a held table is skipped (status held) until cleared.',
  );
withHoldOptions(hold.command('set <database> <table>').description('Put a table under legal hold.'))
  .requiredOption('--reason <text>', 'why (kept with the hold and in the audit trail)')
  .action(async (database: string, table: string, options: HoldCommandOptions & { reason: string }) => {
    const { setHold } = await import('./holds.js');
    const set = await withHoldContext(options, (ctx) => setHold(ctx, database, table, options.reason));
    console.log(`${database}/${table} is under legal hold: ${set.reason}`);
  });
withHoldOptions(hold.command('clear <database> <table>').description('Lift a table’s legal hold.')).action(
  async (database: string, table: string, options: HoldCommandOptions) => {
    const { clearHold } = await import('./holds.js');
    const cleared = await withHoldContext(options, (ctx) => clearHold(ctx, database, table));
    console.log(
      cleared ? `${database}/${table}: hold cleared` : `${database}/${table} had no hold in the lock table`,
    );
  },
);
withHoldOptions(hold.command('list').description('List the legal holds in the lock table.')).action(
  async (options: HoldCommandOptions) => {
    const { formatHolds } = await import('./holds.js');
    console.log(await withHoldContext(options, async (ctx) => formatHolds(await ctx.holds.list())));
  },
);

const legalHold = program
  .command('legal-hold')
  .description('S3 Object Lock legal hold on a table’s archives (a bucket with Object Lock, so AWS only).');
for (const [action, status] of [
  ['place', 'ON'],
  ['lift', 'OFF'],
] as const) {
  withHoldOptions(
    legalHold
      .command(`${action} <database> <table>`)
      .description(
        `${action === 'place' ? 'Place' : 'Lift'} the legal hold on every archive and manifest of the table, or of a day range.`,
      )
      .option('--from <day>', 'first day partition (YYYY-MM-DD)')
      .option('--to <day>', 'last day partition (YYYY-MM-DD)'),
  ).action(
    async (database: string, table: string, options: HoldCommandOptions & { from?: string; to?: string }) => {
      const { setObjectLegalHold } = await import('./holds.js');
      if (!options.lockTable) {
        throw new ConfigError(
          'legal-hold needs S3 Object Lock, which local S3 does not implement: run it against AWS (--lock-table)',
        );
      }
      const done = await withHoldContext(options, (ctx) =>
        setObjectLegalHold(ctx, database, table, status, { fromDay: options.from, toDay: options.to }),
      );
      console.log(
        `${database}/${table}: legal hold ${status} on ${done.objects} objects (${done.archives} archives)`,
      );
    },
  );
}

registerOperatorCommands(program, local, STATE_DIR_OPTION, configureLogging);

program
  .command('audit')
  .description(
    'List the audit trail (runs, table outcomes, restores, schema drift, legal holds, config changes), oldest first. Reads the local state dir; with --aws the config’s bucket in AWS.',
  )
  .option('-c, --config <file>', 'config file (YAML); not needed with --demo')
  .option('--demo', 'the audit trail of the demo (`npm start`)', false)
  .option(...STATE_DIR_OPTION)
  .option('--aws', 'read the bucket in AWS instead of the local state dir', false)
  .option('--bucket <name>', 'archive bucket with --aws (default: the config’s s3.bucket)')
  .option('--since <time>', 'from this day (YYYY-MM-DD) or ISO-8601 time')
  .option('--until <time>', 'up to this day (inclusive) or time')
  .option('--kind <kind...>', 'only these kinds')
  .option('-d, --database <name>', 'only this database')
  .option('-t, --table <schema.name>', 'only this table')
  .option('--json', 'print the events as JSON', false)
  .action(
    async (
      options: import('./audit.js').AuditOptions & {
        config?: string;
        demo: boolean;
        stateDir: string;
        aws: boolean;
        bucket?: string;
      },
    ) => {
      configureLogging(false);
      const { auditCommand } = await import('./audit.js');
      const write = (line: string) => console.log(line);
      const configPath = options.demo ? join(options.stateDir, 'demo-config.yaml') : options.config;
      if (!configPath) throw new ConfigError('audit needs --config (or --demo)');
      if (options.demo && !existsSync(configPath)) {
        throw new ConfigError(`--demo: no demo in ${resolve(options.stateDir)}; run \`npm start\` first`);
      }
      if (options.aws) {
        const { loadDeploymentConfigFile } = await import('../lambdas/shared/config/deployment-schema.js');
        const { ArchiveStore } = await import('../lambdas/shared/archive/store.js');
        const { S3Client } = await import('@aws-sdk/client-s3');
        const config = loadDeploymentConfigFile(configPath);
        const bucket = options.bucket ?? config.s3.bucket;
        if (!bucket) throw new ConfigError('--bucket: the config names no s3.bucket');
        process.exitCode = await auditCommand(
          new ArchiveStore(new S3Client({}), bucket),
          config.s3.prefix,
          options,
          write,
        );
        return;
      }
      const { openLocalEnvironment } = await import('../local/run.js');
      const env = await openLocalEnvironment(configPath, options.stateDir);
      try {
        process.exitCode = await auditCommand(env.deps().store, env.config.s3.prefix, options, write);
      } finally {
        await env.close();
      }
    },
  );

program.parseAsync().catch((error: Error) => {
  console.error(`${error.name}: ${error.message}`);
  process.exitCode = 2;
});
