import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';

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
    const { startLocalPostgres } = await import('../local/postgres.js');
    const { seedDemoDatabase, writeDemoConfig } = await import('../local/demo.js');
    const pg = (await import('pg')).default;
    mkdirSync(options.stateDir, { recursive: true });
    console.log(`Starting embedded PostgreSQL ${options.postgres} ...`);
    const server = await startLocalPostgres(Number(options.postgres) as 14 | 18);
    try {
      console.log(`Seeding ${options.rows.toLocaleString('en-US')} audit rows spread over 400 days ...`);
      const url = await seedDemoDatabase(server.url(), options.rows);
      const configPath = writeDemoConfig(options.stateDir, url);
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
      } finally {
        await client.end();
      }
    } finally {
      await server.stop();
    }
  });

program.parseAsync().catch((error: Error) => {
  console.error(`${error.name}: ${error.message}`);
  process.exitCode = 2;
});
