/**
 * One exit-code scheme for every command (docs/operating.md, Exit codes):
 * 0 all good; 1 findings or a failure (a check or archive failed, a table was refused or skipped, a run failed);
 * 2 usage or configuration error (bad flags, invalid config); 130 stopped at a prompt with Ctrl-C.
 */
export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_USAGE = 2;

/** The exit code of an error that ended a command: the user's input is at fault (2), or the work failed (1). */
export function exitCodeOf(error: Error): number {
  return error.name === 'ConfigError' || error.name === 'InvalidInputError' ? EXIT_USAGE : EXIT_FINDINGS;
}
