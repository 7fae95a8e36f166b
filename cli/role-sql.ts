import { type ArchiverConfig, type DatabaseConfig, tableRef } from '../lambdas/shared/config/schema.js';
import { quoteIdent, quoteLiteral } from '../lambdas/shared/database/table-sql.js';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';
import { printable, replaceUnprintable, type SafeText, safeLines } from './output.js';

export interface RoleSqlOptions {
  /** The login role the archiver connects as. */
  role: string;
  /** Only this database of the config. */
  database?: string;
  /** Leave out what restores need (INSERT and UPDATE, sequences, restore targets). */
  noRestore?: boolean;
}

/**
 * A name or a text in the SQL, printable on a terminal with the same meaning: as usual when it has no control
 * character (line breaks, escape sequences, bidi marks), else in PostgreSQL's Unicode escape form (`U&"..."`,
 * `U&'...'`; standard_conforming_strings on, the default since 9.1), each such character written `\XXXX`.
 */
function unicodeEscaped(text: string, quote: '"' | "'"): string {
  const body = replaceUnprintable(
    text.replaceAll('\\', '\\\\').replaceAll(quote, quote + quote),
    (c) => `\\${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `U&${quote}${body}${quote}`;
}
const sqlIdent = (name: string) => (printable(name) === name ? quoteIdent(name) : unicodeEscaped(name, '"'));
const sqlLiteral = (text: string) =>
  printable(text) === text ? quoteLiteral(text) : unicodeEscaped(text, "'");

/** A dollar-quote tag that occurs in none of `texts`, so a name can never end the quoted body. */
function dollarTag(texts: string[]): string {
  for (let n = 0; ; n++) {
    const tag = `$grants${n || ''}$`;
    if (!texts.some((text) => text.includes(tag))) return tag;
  }
}

/**
 * The SQL that creates the archiver's database role with what the steps use, and nothing else: CONNECT; USAGE on
 * each table's schema; SELECT and DELETE on each configured table (a partitioned table's partitions are reached
 * through it); for restores, INSERT and UPDATE on those tables and USAGE, SELECT and UPDATE on the sequences that feed their
 * columns (restore moves them past the restored values), and on `restoreTargets` what creating and filling a target
 * needs; `pg_read_all_stats` when `replicaLag` reads `pg_stat_replication`; MAINTAIN (PostgreSQL 17 and later) when
 * `vacuumAfterRun` is set. Run it as a superuser or the tables' owner, in each database (psql -d <database> -f).
 */
export function roleSql(config: ArchiverConfig, options: RoleSqlOptions): SafeText {
  // Each database's SQL runs in that database: printed one at a time, so it cannot be piped into the wrong one.
  if (!options.database && config.databases.length > 1)
    throw new ConfigError(
      `the config has ${config.databases.length} databases: give --database (${config.databases.map((db) => db.name).join(', ')}) and run each one's SQL in it`,
    );
  const db = config.databases.find((d) => !options.database || d.name === options.database);
  if (!db) throw new ConfigError(`database "${options.database}" is not in the config`);
  return databaseSql(config, db, options);
}

/**
 * Refuses a role name the SQL would fail on or misuse: PostgreSQL knows no empty name and reserves public, none and
 * pg_*. A predefined role (pg_monitor, pg_read_all_data) exists already, so CREATE ROLE was skipped and every grant,
 * DELETE on the audit tables included, went to it and to every role that is a member of it.
 */
function requireRoleName(role: string): void {
  const why =
    role === ''
      ? 'must not be empty'
      : role === 'public' || role === 'none' || role.startsWith('pg_')
        ? "is reserved by PostgreSQL (public, none, pg_*): a predefined role's members would get the archiver's grants"
        : undefined;
  if (why) throw new ConfigError(`--role: "${role}" ${why}`);
}

function databaseSql(config: ArchiverConfig, db: DatabaseConfig, options: RoleSqlOptions): SafeText {
  requireRoleName(options.role);
  const role = sqlIdent(options.role);
  const restore = !options.noRestore;
  const tables = db.tables.map((t) => ({
    ...t,
    qualified: `${sqlIdent(t.schema)}.${sqlIdent(t.name)}`,
    // As regclass reads it, in a literal: the plain quoted form (regclass knows no U&), the literal escaped instead.
    regclass: sqlLiteral(`${quoteIdent(t.schema)}.${quoteIdent(t.name)}`),
  }));
  const schemas = [...new Set(tables.map((t) => t.schema))];
  const tag = dollarTag([
    options.role,
    ...tables.flatMap((t) => [t.schema, t.name]),
    ...(db.restoreTargets ?? []),
  ]);
  const lines = [
    `-- audit-archiver role for database ${db.name} (${tables.map((t) => printable(tableRef(t))).join(', ')}).`,
    '-- Run in that database as a superuser or the owner of its tables; then set the password (psql: \\password)',
    '-- and store it in the secret the config names.',
    // A superuser runs this: only PostgreSQL's own functions and operators may answer its names, never one another
    // role created in a schema the default search_path reaches (public, or one named like the superuser).
    'SET search_path = pg_catalog, pg_temp;',
    // The role is cluster-wide: created by the first database's SQL, found by the next one's.
    `DO ${tag} BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) ${sqlLiteral(options.role)}) THEN CREATE ROLE ${role} LOGIN; END IF; END ${tag};`,
    // TEMPORARY: a restore stages an archive that cannot go straight into its target in a temporary table.
    `DO ${tag} BEGIN EXECUTE pg_catalog.format('GRANT CONNECT${restore ? ', TEMPORARY' : ''} ON DATABASE %I TO %s', pg_catalog.current_database(), ${sqlLiteral(role)}); END ${tag};`,
    ...schemas.map((schema) => `GRANT USAGE ON SCHEMA ${sqlIdent(schema)} TO ${role};`),
    ...tables.map(
      (t) => `GRANT SELECT, DELETE${restore ? ', INSERT, UPDATE' : ''} ON TABLE ${t.qualified} TO ${role};`,
    ),
  ];
  if (restore) {
    lines.push('-- Restore moves the sequences that feed a restored column past the restored values.');
    for (const t of tables) {
      lines.push(
        `DO ${tag} DECLARE s text; BEGIN
  FOR s IN SELECT pg_catalog.pg_get_serial_sequence(${t.regclass}, a.attname)
             FROM pg_catalog.pg_attribute a
            WHERE a.attrelid OPERATOR(pg_catalog.=) ${t.regclass}::regclass AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
           UNION
           -- A sequence a column's default draws on without owning it (DEFAULT nextval('seq')).
           SELECT p.refobjid::regclass::text
             FROM pg_catalog.pg_attrdef d
             JOIN pg_catalog.pg_depend p ON p.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::regclass
                  AND p.objid OPERATOR(pg_catalog.=) d.oid
             JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.refobjid AND c.relkind OPERATOR(pg_catalog.=) 'S'
            WHERE d.adrelid OPERATOR(pg_catalog.=) ${t.regclass}::regclass LOOP
    IF s IS NOT NULL THEN EXECUTE pg_catalog.format('GRANT USAGE, SELECT, UPDATE ON SEQUENCE %s TO %s', s, ${sqlLiteral(role)}); END IF;
  END LOOP;
END ${tag};`,
      );
    }
    for (const target of db.restoreTargets ?? []) {
      const dot = target.indexOf('.');
      const schema = sqlIdent(target.slice(0, dot));
      const name = target.slice(dot + 1);
      lines.push(`-- restoreTargets ${printable(target)}: create a missing target (CREATE) and fill it.`);
      lines.push(`GRANT USAGE, CREATE ON SCHEMA ${schema} TO ${role};`);
      lines.push(
        name === '*'
          ? `GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ${schema} TO ${role};`
          : `-- an existing ${printable(target)} also needs: GRANT SELECT, INSERT, UPDATE ON TABLE ${schema}.${sqlIdent(name)} TO ${role};`,
      );
    }
  }
  if (db.replicaLag) {
    lines.push('-- replicaLag: replay lag of the named replicas in pg_stat_replication.');
    lines.push(`GRANT pg_read_all_stats TO ${role};`);
  }
  if (config.defaults.vacuumAfterRun) {
    lines.push(
      '-- vacuumAfterRun: VACUUM needs MAINTAIN (PostgreSQL 17+); before 17 only the owner may VACUUM.',
    );
    lines.push(...tables.map((t) => `GRANT MAINTAIN ON TABLE ${t.qualified} TO ${role};`));
  }
  lines.push('RESET search_path;');
  // Every name above is printable already (sqlIdent, sqlLiteral, printable): the statements' own line breaks stay.
  return safeLines(lines.join('\n').split('\n'));
}
