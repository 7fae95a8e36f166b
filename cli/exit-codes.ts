/**
 * One exit-code scheme for every command (docs/operating.md, Exit codes):
 * 0 all good; 1 findings or a failure (a check or archive failed, a table was refused or skipped, a run failed);
 * 2 usage or configuration error (bad flags, invalid config); 130 stopped at a prompt with Ctrl-C, or a
 * local run or batch settle stopped by SIGINT (143: SIGTERM) after it gave its leases back (interrupt.ts).
 */
export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_USAGE = 2;

/** Errors that say the user's input is at fault: the config, a flag, or what the flags asked for. */
const USAGE_ERRORS = new Set(['ConfigError', 'InvalidInputError']);

/** The exit code of an error that ended a command: the user's input is at fault (2), or the work failed (1). */
export function exitCodeOf(error: Error): number {
  return USAGE_ERRORS.has(error.name) ? EXIT_USAGE : EXIT_FINDINGS;
}

/**
 * The exit code of a finished execution, by the name of the error that ended it: a plan step refusing the input (a
 * table or database not in the config, a restore target not allowed) is a usage error (2), as the CLI's own check of
 * the same input is; any other failure is 1. A table's own failure ends a run as ArchiveRunFailed, so it is 1.
 */
export function executionExitCode(status: string, errorName: string | undefined): number {
  if (status === 'SUCCEEDED') return EXIT_OK;
  return errorName !== undefined && USAGE_ERRORS.has(errorName) ? EXIT_USAGE : EXIT_FINDINGS;
}
