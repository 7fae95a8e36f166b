import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { ConfigError } from '../lambdas/shared/errors.js';
import type { RestoreFileResult } from '../lambdas/shared/locks.js';
import { type ArchiveScopeOptions, listCommand, validateCommand, withArchiveScope } from './archives.js';
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
) {
  const { openLocalEnvironment, runLocalArchive } = await import('../local/run.js');
  const { progressPrinter, formatSummary } = await import('./report.js');
  const { tablePrefix } = await import('../lambdas/shared/archive-format.js');
  const local = await openLocalEnvironment(configPath, stateDir);
  try {
    const started = Date.now();
    console.log(`Archiving with the local workflow (state in ${resolve(stateDir)}) ...`);
    const { execution, outcomes } = await runLocalArchive(local, input, {
      onStep: progressPrinter((line) => console.log(line)),
    });
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
  .option('-v, --verbose', 'print the functions’ JSON logs and metrics', false)
  .action(
    async (options: {
      config: string;
      stateDir: string;
      database?: string;
      table?: string[];
      verbose: boolean;
    }) => {
      configureLogging(options.verbose);
      const input = {
        ...(options.database ? { database: options.database } : {}),
        ...(options.table ? { tables: options.table } : {}),
      };
      process.exitCode = await archiveLocally(options.config, options.stateDir, input);
    },
  );

program
  .command('demo')
  .description('Start an embedded PostgreSQL with a demo database, archive it locally, and print a summary.')
  .option(...STATE_DIR_OPTION)
  .option('-r, --rows <n>', 'rows to seed across the demo tables', (v) => Number.parseInt(v, 10), 250_000)
  .addOption(new Option('--postgres <major>', 'PostgreSQL major version').choices(['14', '18']).default('18'))
  .option('-v, --verbose', 'print the functions’ JSON logs and metrics', false)
  .action(async (options: { stateDir: string; rows: number; postgres: '14' | '18'; verbose: boolean }) => {
    configureLogging(options.verbose);
    const demo = await import('../local/demo.js');
    const pg = (await import('pg')).default;
    mkdirSync(options.stateDir, { recursive: true });
    demo.clearDemoArchives(options.stateDir);
    console.log(`Starting embedded PostgreSQL ${options.postgres} ...`);
    const server = await startDemoPostgres(options.stateDir, Number(options.postgres) as 14 | 18);
    try {
      console.log(`Seeding ${options.rows.toLocaleString('en-US')} audit rows spread over 400 days ...`);
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
        process.exitCode = await archiveLocally(configPath, options.stateDir, {}, countRows);
        console.log('Bring the rows back with: npm run cli -- local restore --demo');
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
  .action(
    async (
      options: RestoreOptions & { config?: string; stateDir: string; demo: boolean; verbose: boolean },
    ) => {
      configureLogging(options.verbose);
      process.exitCode = options.demo ? await restoreDemo(options) : await restoreLocally(options);
    },
  );

async function restoreLocally(
  options: RestoreOptions & { config?: string; stateDir: string },
): Promise<number> {
  if (!options.config || !options.database || !options.table) {
    throw new ConfigError('local restore needs --config, --database and --table (or --demo)');
  }
  const { openLocalEnvironment, runLocalRestore } = await import('../local/run.js');
  const request = restoreRequest(options);
  const local = await openLocalEnvironment(options.config, options.stateDir);
  try {
    const { execution, results } = await runLocalRestore(local, request);
    return reportRestore(execution, results, options.json);
  } finally {
    await local.close();
  }
}

async function restoreDemo(options: RestoreOptions & { stateDir: string }): Promise<number> {
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
        console.log(`Restoring ${demo.DEMO_DATABASE}/${table.schema}.${table.name} ...`);
        const { execution, results } = await runLocalRestore(local, {
          ...restoreRequest({
            ...options,
            database: demo.DEMO_DATABASE,
            table: `${table.schema}.${table.name}`,
          }),
        });
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
    else command.option('--bucket <name>', 'archive bucket (default: the config’s s3.bucket)');
    command.action(async (options: ScopeCommandOptions & { stateDir?: string; bucket?: string }) => {
      configureLogging(false);
      const write = (line: string) => console.log(line);
      if (where === 'local') {
        const { openLocalEnvironment } = await import('../local/run.js');
        const env = await openLocalEnvironment(options.config, options.stateDir);
        try {
          process.exitCode = await run(env.deps().store, env.config, options, write);
        } finally {
          await env.close();
        }
        return;
      }
      const { loadConfigFile } = await import('../lambdas/shared/config.js');
      const { ArchiveStore } = await import('../lambdas/shared/s3.js');
      const { S3Client } = await import('@aws-sdk/client-s3');
      const config = loadConfigFile(options.config);
      const bucket = options.bucket ?? config.s3.bucket;
      if (!bucket) throw new ConfigError('give --bucket: the config names no s3.bucket');
      process.exitCode = await run(new ArchiveStore(new S3Client({}), bucket), config, options, write);
    });
  }
}

program.parseAsync().catch((error: Error) => {
  console.error(`${error.name}: ${error.message}`);
  process.exitCode = 2;
});
