import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
/**
 * What the command files share. Every command file loads at start, because commander needs each command's options
 * for parsing and --help; what a command runs loads when it runs, in one marked place per command (the top of its
 * action, or the helper that needs it), and in ../context.ts and ../demo-database.ts. Two reasons: the AWS SDK, pg
 * and local mode's servers would slow every start-up, and the Lambda runtime's Powertools reads its log level when
 * its module loads, so local mode may load only after configureLogging.
 */

/** Whether `npm run cli` or `npm start` of this package started the process (cli/main.ts reads paths from INIT_CWD). */
export const LAUNCHED_BY_NPM_SCRIPT =
  process.env.npm_package_name === 'audit-archiver' &&
  ['cli', 'start'].includes(process.env.npm_lifecycle_event ?? '') &&
  process.env.INIT_CWD !== undefined;

/**
 * local/run.ts DEFAULT_STATE_DIR, repeated here because that module may load only after logging is set: in the folder
 * the command runs in, but the package's under an npm script, wherever it was typed, so every npm command of a clone
 * opens the state dir `npm start` made rather than an empty one that shows no archives.
 */
export const STATE_DIR_OPTION = [
  '-s, --state-dir <dir>',
  'where local S3 objects and DynamoDB state persist',
  LAUNCHED_BY_NPM_SCRIPT
    ? fileURLToPath(new URL('../../.audit-archiver', import.meta.url))
    : '.audit-archiver',
] as const;

/**
 * Refuses a state dir that is not there (mistyped) before a command that only reads it opens local mode, which would
 * make it and report no archives, no events or no leases: all as they should be, it would mislead.
 */
export function requireLocalState(stateDir: string): void {
  if (!existsSync(stateDir))
    throw new ConfigError(
      `--state-dir: no local state in ${resolve(stateDir)} (a local run makes it, or hold set --new-state); give the state dir your runs use`,
    );
}

/** Quiet Lambda-style JSON logs unless asked for; must run before the step modules load their Powertools singletons. */
export function configureLogging(verbose: boolean): void {
  process.env.POWERTOOLS_LOG_LEVEL ??= verbose ? 'INFO' : 'ERROR';
  process.env.POWERTOOLS_METRICS_DISABLED ??= verbose ? 'false' : 'true';
  // Local mode runs on the Node 20 it finds; the deployed functions run on Node 22, which the SDK's warning is about.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

/** `--config`, or with `--demo` the demo's config (`npm start`). Commander help text for both options. */
export const CONFIG_OR_DEMO_OPTIONS = {
  config: ['-c, --config <file>', 'config file (YAML); not needed with --demo'],
  demo: ['--demo', 'the demo of `npm start` (its archives and lock table in the state dir)', false],
} as const;

/**
 * The config a command reads: `--config`, or with `--demo` the one the demo left in the state dir, for commands that
 * need no database (the demo's PostgreSQL runs only during a `--demo` command, on a port of its own each time).
 */
export async function configPathOf(
  options: { config?: string; demo?: boolean; stateDir?: string },
  command: string,
): Promise<string> {
  if (!options.demo) {
    if (!options.config) throw new ConfigError(`${command} needs --config (or --demo)`);
    return options.config;
  }
  const stateDir = options.stateDir ?? STATE_DIR_OPTION[2];
  // local/demo.ts loads on use: it needs pg.
  const configPath = (await import('../../local/demo.js')).demoConfigPath(stateDir);
  if (!existsSync(configPath))
    throw new ConfigError(`--demo: no demo in ${resolve(stateDir)}; run \`npm start\` first`);
  return configPath;
}
