/**
 * The one way a command writes to the terminal. Its text carries names and messages that come from the database, S3
 * or another operator (table and schema names, hold reasons, error messages, archive keys): a table named
 * `"\u001b[2J"` or with a line break in it could erase the screen or forge a line of output. So the writers here take
 * only `SafeText`, which only this module makes:
 *
 * - `safeLine`: one line; every control character in it, line breaks included, is escaped.
 * - `safeLines`: a formatter's lines, each as `safeLine` (so a break inside one cannot start another).
 * - `safeJson`: a JSON document for machines (`--json`, JSON progress lines). JSON.stringify already escapes C0
 *   controls inside strings; DEL, C1 controls, U+2028/U+2029 and the bidirectional marks it leaves raw are written
 *   as `\uXXXX` too. These characters occur only inside JSON strings, where `\uXXXX` stands for the very same
 *   character: the text stays valid JSON and parses to the same value.
 * - `redrawn`: progress bars redrawn in place, whose cursor movements are this module's own.
 *
 * A test (test/cli/output.test.ts) fails on any `console` call or write to process.stdout/stderr elsewhere in cli/.
 */

// C0 and C1 controls and DEL, the Unicode line and paragraph separators, the bidirectional marks (the Arabic letter
// mark too) and overrides, and the invisible characters that join or split a name unseen (zero-width space, word
// joiner and invisible operators, the byte order mark). Zero-width (non-)joiners stay: scripts and emoji use them.
const UNPRINTABLE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/**
 * Text from the database or an operator made safe for a terminal or a comment line: control characters (line breaks,
 * ANSI escapes) and the invisible ones that reorder a line become `\uXXXX`.
 */
export function printable(text: string): string {
  return replaceUnprintable(text, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Each character `printable` escapes, replaced by what `replacement` makes of it (another language's escape syntax). */
export function replaceUnprintable(text: string, replacement: (character: string) => string): string {
  return text.replace(UNPRINTABLE, replacement);
}

declare const SAFE: unique symbol;
/** Text every line of which went through `printable`: made only by the functions of this module. */
export type SafeText = string & { readonly [SAFE]: true };

/** One line: a line break, an escape sequence or a bidi mark in it is written as `\uXXXX`. */
export function safeLine(text: string): SafeText {
  return printable(text) as SafeText;
}

/** Lines of a report, each one line (`safeLine`), joined by line breaks. */
export function safeLines(lines: readonly string[]): SafeText {
  return lines.map(printable).join('\n') as SafeText;
}

/** A JSON document (indented by `indent`, 0 for one line) that stays valid JSON of the same value; see above. */
export function safeJson(value: unknown, indent = 2): SafeText {
  // JSON.stringify breaks lines only between tokens (a line break in a string is written `\n`): escaped line by line.
  return safeLines((JSON.stringify(value, null, indent) ?? 'null').split('\n'));
}

/** One JSON object on one line, with its line break: a JSON progress event. */
export function safeJsonLine(value: unknown): SafeText {
  return `${safeJson(value, 0)}\n` as SafeText;
}

/**
 * Bars drawn over the `previous` lines drawn before: the cursor up over them, then each line cleared and drawn again.
 * These cursor movements are the only control characters a command writes.
 */
export function redrawn(previous: number, lines: readonly string[]): SafeText {
  const up = previous > 0 ? `\x1b[${previous}A` : '';
  return `${up}${lines.map((line) => `\r\x1b[2K${printable(line)}\n`).join('')}` as SafeText;
}

/** Where a command's lines go: stdout in the CLI, an array in tests. */
export type Write = (text: SafeText) => void;

/** A line (or lines) on stdout. */
export const print: Write = (text) => console.log(text);

/** A line (or lines) on stderr: errors and warnings a script reading stdout must not mix with the result. */
export const printError: Write = (text) => console.error(text);

/** Text on stdout as it is, without a line break added: progress bars and JSON progress lines. */
export const writeStdout: Write = (text) => {
  process.stdout.write(text);
};

/**
 * A reader that goes away (`| head -3`, `| grep -m1 …`) closes the pipe; the next write then fails with EPIPE, which
 * Node raises as an uncaught 'error' event: the command died mid-work with a stack trace, leaving a run's leases held,
 * a batch in flight and the demo's PostgreSQL running. What is written after that goes nowhere, and the command carries
 * on to its end (its exit code unchanged); any other error of the stream is raised as before.
 */
export function ignoreClosedReader(
  streams: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr],
): void {
  for (const stream of streams)
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
}
