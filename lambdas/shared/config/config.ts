import { readFileSync } from 'node:fs';
import { LineCounter, parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { canonicalJson, longestKeyBytes, S3_MAX_KEY_BYTES } from '../archive/format.js';
import { ConfigError } from '../errors/step-errors.js';
import { governanceIssues } from './governance.js';
import { type ArchiverConfig, ArchiverConfigObject, tableRef } from './schema.js';

/**
 * Rules across fields and sections: names unique per level, the lock timeout below the statement timeout, every table
 * within the retention and encryption policy.
 */
export function checkConfig(config: ArchiverConfig, ctx: z.RefinementCtx): void {
  const seenDatabases = new Set<string>();
  config.databases.forEach((db, i) => {
    if (seenDatabases.has(db.name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['databases', i, 'name'],
        message: `duplicate database name "${db.name}"`,
      });
    }
    seenDatabases.add(db.name);
    // By the name lock-table items use (schema.name): two tables whose names only differ in where the dot falls
    // ("a.b"."c" and "a"."b.c") would share them, so the second is refused as well, naming both.
    const seenTables = new Map<string, { schema: string; name: string }>();
    db.tables.forEach((t, j) => {
      const ref = tableRef(t);
      const seen = seenTables.get(ref);
      if (seen) {
        const same = seen.schema === t.schema && seen.name === t.name;
        ctx.addIssue({
          code: 'custom',
          path: ['databases', i, 'tables', j],
          message: same
            ? `duplicate table ${ref}`
            : `table "${t.schema}"."${t.name}" has the name ${ref} in the lock table (its lease, progress and inventory), as "${seen.schema}"."${seen.name}" does: archive only one of them under this database entry`,
        });
      }
      seenTables.set(ref, { schema: t.schema, name: t.name });
      const longest = longestKeyBytes({
        prefix: config.s3.prefix,
        database: db.name,
        schema: t.schema,
        table: t.name,
      });
      if (longest > S3_MAX_KEY_BYTES)
        ctx.addIssue({
          code: 'custom',
          path: ['databases', i, 'tables', j, 'name'],
          message: `under s3.prefix (${Buffer.byteLength(config.s3.prefix)} bytes) this table's keys would reach ${longest} bytes, past the ${S3_MAX_KEY_BYTES} S3 takes (its names are percent-encoded in them): shorten s3.prefix`,
        });
    });
  });
  // Two entries with the same credentials reach the same database: a table both list would be archived under two
  // leases, prefixes and inventories, and a restore, validate or list through either would miss what the other took.
  config.databases.forEach((db, i) => {
    const twin = config.databases
      .slice(0, i)
      .find((other) => canonicalJson(other.credentials) === canonicalJson(db.credentials));
    const shared = twin && db.tables.find((t) => twin.tables.some((o) => tableRef(o) === tableRef(t)));
    if (twin && shared)
      ctx.addIssue({
        code: 'custom',
        path: ['databases', i, 'credentials'],
        message: `database entries "${twin.name}" and "${db.name}" have the same credentials, so they reach the same database, and both list ${tableRef(shared)}: list it under one of them`,
      });
  });
  // statement_timeout counts the wait for locks too, so it would end any wait lock_timeout does not end first.
  const { lockTimeoutSeconds: lock, statementTimeoutSeconds: statement } = config.defaults;
  if (lock >= statement)
    ctx.addIssue({
      code: 'custom',
      path: ['defaults', 'lockTimeoutSeconds'],
      message: `${lock} must be below defaults.statementTimeoutSeconds (${statement}): statement_timeout counts a statement's wait for locks too, so a wait would end as a statement timeout, which fails the table, instead of as a lock timeout, which is retried`,
    });
  for (const issue of governanceIssues(config)) ctx.addIssue({ code: 'custom', ...issue });
}

/** The config as the functions load it (the `aws:` section unread: see ArchiverConfigObject). */
export const ArchiverConfigSchema = ArchiverConfigObject.superRefine(checkConfig);

/** What a mistyped field name looks like; any other key is no name (a comment line, a URL) and may hold a password. */
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/**
 * An unknown key as a message may show it: a field name as written, any other text (a `//` comment line a JSON
 * config's editor allowed, a URL split at a comma) only by its length, since it may hold a connection string.
 */
const shownKey = (key: string): string =>
  FIELD_NAME.test(key) ? `"${key}"` : `a key that is no field name (${key.length} characters, not shown)`;

/** Formats zod issues as "path: reason" lines so operators can find the offending field. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
      const message =
        issue.code === 'unrecognized_keys'
          ? `Unrecognized ${issue.keys.length > 1 ? 'keys' : 'key'}: ${issue.keys.map(shownKey).join(', ')}`
          : issue.message;
      return `${path}: ${message}`;
    })
    .join('\n');
}

/** Validates `raw` against `schema`; a ConfigError lists every problem as "field: reason" under `source`. */
export function parseWith<T>(schema: z.ZodType<T>, raw: unknown, source = 'config'): T {
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(`${source} is invalid:\n${formatIssues(result.error)}`);
  }
  return result.data;
}

/** Reads a YAML (or JSON, which is YAML) config file and validates it against `schema`. */
export function loadWith<T>(schema: z.ZodType<T>, path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  const lines = new LineCounter();
  try {
    // Without pretty errors: those quote the config's lines, and a `url:` line holds a database password.
    raw = parseYaml(text, { prettyErrors: false, lineCounter: lines });
  } catch (error) {
    // Aliases that expand past the library's bound fail as it builds the value (a ReferenceError, with no place).
    if (!(error instanceof YAMLParseError))
      throw new ConfigError(`${path} is not valid YAML: ${(error as Error).message}`);
    const { line, col } = lines.linePos(error.pos[0]);
    throw new ConfigError(`${path} is not valid YAML at line ${line}, column ${col}: ${error.message}`);
  }
  return parseWith(schema, raw, path);
}

export const parseConfig = (raw: unknown, source?: string): ArchiverConfig =>
  parseWith(ArchiverConfigSchema, raw, source);

/** Reads and validates a config file as the functions do. */
export const loadConfigFile = (path: string): ArchiverConfig => loadWith(ArchiverConfigSchema, path);
