import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A locale whose money text reads otherwise than C's: its currency is "$" as C's, but its decimal separator is "," and
 * "." separates thousands, so C's "$12.34" reads under it as 1234. A server whose databases default to it shows what a
 * restore into another locale would do to money values.
 */
export const COMMA_DECIMAL_LOCALE = 'es_AR.UTF-8';

/**
 * Compiles the test locales into a directory of their own (a system may lack them, and installing them needs root),
 * for a server started with LOCPATH there. Undefined when this system cannot (no localedef, or no locale sources: the
 * Debian package `locales`); a test that needs them says so.
 */
export async function compileTestLocales(): Promise<{ dir: string; remove: () => void } | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'audit-archiver-locales-'));
  // The server may run as the postgres user.
  chmodSync(dir, 0o755);
  const remove = () => rmSync(dir, { recursive: true, force: true });
  // localedef exits non-zero on mere warnings: whether the locale was written is what counts.
  await promisify(execFile)('localedef', [
    '-c',
    '-i',
    'es_AR',
    '-f',
    'UTF-8',
    join(dir, COMMA_DECIMAL_LOCALE),
  ]).catch(() => undefined);
  if (existsSync(join(dir, COMMA_DECIMAL_LOCALE, 'LC_MONETARY'))) {
    // Readable by the server's user whatever the umask made of them.
    for (const name of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
      const path = join(dir, name);
      chmodSync(path, statSync(path).isDirectory() ? 0o755 : 0o644);
    }
    return { dir, remove };
  }
  remove();
  return undefined;
}
