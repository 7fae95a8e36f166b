/**
 * What the command files share. Every command file loads at start, because commander needs each command's options
 * for parsing and --help; what a command runs loads when it runs, in one marked place per command (the top of its
 * action, or the helper that needs it), and in ../context.ts and ../demo-database.ts. Two reasons: the AWS SDK, pg
 * and local mode's servers would slow every start-up, and the Lambda runtime's Powertools reads its log level when
 * its module loads, so local mode may load only after configureLogging.
 */

/** Same default as local/run.ts DEFAULT_STATE_DIR, repeated here because that module may load only after logging is set. */
export const STATE_DIR_OPTION = [
  '-s, --state-dir <dir>',
  'where local S3 objects and DynamoDB state persist',
  '.audit-archiver',
] as const;

/** Quiet Lambda-style JSON logs unless asked for; must run before the step modules load their Powertools singletons. */
export function configureLogging(verbose: boolean): void {
  process.env.POWERTOOLS_LOG_LEVEL ??= verbose ? 'INFO' : 'ERROR';
  process.env.POWERTOOLS_METRICS_DISABLED ??= verbose ? 'false' : 'true';
  // Local mode runs on the Node 20 it finds; the deployed functions run on Node 22, which the SDK's warning is about.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

export const writeLine = (line: string): void => console.log(line);
