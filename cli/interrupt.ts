import { printError, safeLine, type Write } from './output.js';

/** The shell's exit codes for a command ended by SIGINT (Ctrl-C) and SIGTERM (`kill`, a scheduler's timeout). */
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
type Signal = keyof typeof SIGNAL_EXIT_CODES;

/** How long the clean-up may take before the command ends anyway (a stand-in that no longer answers). */
const CLEANUP_MS = 10_000;

/** What ends the process: tests replace it and the signal source. */
export interface InterruptHooks {
  signals?: {
    once(signal: Signal, listener: () => void): unknown;
    off(signal: Signal, listener: () => void): unknown;
  };
  exit?: (code: number) => void;
  write?: Write;
}

/**
 * Runs `work`; on SIGINT or SIGTERM meanwhile, runs `cleanup` (at most CLEANUP_MS) and ends the process with the
 * signal's exit code, instead of Node's default of ending at once. A command that holds a table's lease gives it up
 * here: left behind, it would make the next run skip the table until it expires (`leaseSeconds`). A second signal
 * during the clean-up ends the process at once.
 */
export async function releasingOnInterrupt<T>(
  cleanup: () => Promise<string | undefined>,
  work: () => Promise<T>,
  hooks: InterruptHooks = {},
): Promise<T> {
  const signals = hooks.signals ?? process;
  const exit = hooks.exit ?? ((code: number) => process.exit(code));
  const write = hooks.write ?? printError;
  let stopping = false;
  const handlers = Object.fromEntries(
    (Object.keys(SIGNAL_EXIT_CODES) as Signal[]).map((signal) => [
      signal,
      () => {
        const code = SIGNAL_EXIT_CODES[signal];
        if (stopping) return exit(code);
        stopping = true;
        // Listen again: a second Ctrl-C ends the process at once rather than by Node's default.
        signals.once(signal, () => exit(code));
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<string>((resolve) => {
          timer = setTimeout(() => resolve('the clean-up did not finish in time'), CLEANUP_MS);
        });
        Promise.race([cleanup(), timeout])
          .catch((error: Error) => `the clean-up failed: ${error.name}: ${error.message}`)
          .then((said) => {
            clearTimeout(timer);
            write(safeLine(`Stopped by ${signal}${said ? `: ${said}` : ''}`));
            exit(code);
          });
      },
    ]),
  ) as Record<Signal, () => void>;
  const listened = Object.entries(handlers) as [Signal, () => void][];
  for (const [signal, handler] of listened) signals.once(signal, handler);
  try {
    return await work();
  } finally {
    for (const [signal, handler] of listened) signals.off(signal, handler);
  }
}
