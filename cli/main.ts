import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerArchiveCommands } from './commands/archives.js';
import { registerAudit } from './commands/audit.js';
import { LAUNCHED_BY_NPM_SCRIPT } from './commands/common.js';
import { registerCost } from './commands/cost.js';
import { registerDemo } from './commands/demo.js';
import { registerDoctor } from './commands/doctor.js';
import { registerHolds } from './commands/holds.js';
import { registerLeases } from './commands/leases.js';
import { registerLocalRun } from './commands/local-run.js';
import { registerPlan } from './commands/plan.js';
import { registerRestore } from './commands/restore.js';
import { registerRoleSql } from './commands/role-sql.js';
import { registerRun } from './commands/run.js';
import { registerWizard } from './commands/wizard.js';
import { EXIT_USAGE, exitCodeOf } from './exit-codes.js';
import { ignoreClosedReader, printError, safeLines } from './output.js';

// `npm run cli` and `npm start` run a script in the package's folder, wherever the operator typed them (npm keeps that
// folder in INIT_CWD): paths they give (--config, --state-dir, --out) are read from where they typed them, as the
// installed command reads them. Left in the package's folder, a config beside the operator was "not found" and a
// relative state dir landed in the package, apart from the one a later command in their folder opens. The default
// state dir stays the package's (STATE_DIR_OPTION).
if (LAUNCHED_BY_NPM_SCRIPT && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
ignoreClosedReader();

/**
 * audit-archiver command line. Local commands run the deployed state machine definitions in-process against local
 * S3 and DynamoDB stand-ins whose state lives in --state-dir (default .audit-archiver/). Each command lives in
 * commands/; the order below is the order of --help.
 */
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const program = new Command()
  .name('audit-archiver')
  .version(version, '-V, --version', 'print the version and exit')
  .description('Archive old rows of PostgreSQL audit tables to S3 and delete them, with zero data loss.')
  .showHelpAfterError();
// Usage errors exit 2 like a bad config (docs/operating.md, Exit codes); commander's own default is 1. Subcommands inherit it.
program.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE));
const local = program
  .command('local')
  .description('Run the workflow locally (same ASL, same handlers, local S3 and DynamoDB).');

registerLocalRun(local);
registerDemo(program);
registerRestore(program, local);
registerArchiveCommands(program, local);
registerPlan(program);
registerHolds(program);
registerLeases(program);
registerRun(program);
registerRoleSql(program);
registerCost(program);
registerWizard(program);
registerDoctor(program, local);
registerAudit(program);

program.parseAsync().catch((error: Error) => {
  // A message may span lines on purpose (a config's issues, one a line); each line is made printable. A name with a
  // line break in it can still begin a line here, but one that carries no control character.
  printError(safeLines(`${error.name}: ${error.message}`.split('\n')));
  process.exitCode = exitCodeOf(error);
});
