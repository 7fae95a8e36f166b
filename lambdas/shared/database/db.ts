import pg from 'pg';
import { ARCHIVE_LC_MONETARY } from '../archive/format.js';
import type { DatabaseConfig } from '../config/schema.js';
import { classifyDatabaseError, recordStatementTime } from '../errors/step-errors.js';

/** The archiver's sessions' application_name: the load throttle (batch/throttle.ts) leaves them out of the load. */
export const APPLICATION_NAME = 'audit-archiver';

/** A resolved connection: what credentials.ts produces from a secret, a URL or an env var. */
export interface ConnectionSettings {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface SessionLimits {
  statementTimeoutSeconds: number;
  lockTimeoutSeconds: number;
}

/**
 * Settings the proofs depend on. The row text the archive stores (and the digest computed over it in SQL) depends on
 * the first seven, so export, verify, delete and restore must all see the same values. lc_monetary sets money's text
 * ("$1,234.56" in C; "$ 1.234,56" where "," is the decimal separator, which reads C's "$12.34" as 1234): archives
 * write it as ARCHIVE_LC_MONETARY (C), and restore reads each archive under the lc_monetary its manifest records. xmloption sets how xml
 * values read, not how they are written: content (PostgreSQL's default) reads documents and fragments, where DOCUMENT,
 * which a database or role may set, refuses the fragments an archive holds; array_nulls off (also a database's or
 * role's to set) reads an array's unquoted NULL element as the text "NULL". timezone_abbreviations decides what
 * `col AT TIME ZONE 'EST'` means, since PostgreSQL reads a zone name as an abbreviation first (EST is UTC+10 in the
 * Australia set, not the zone's UTC-5): a row's instant, its age and its day. The search_path makes every
 * unqualified function, operator and type resolve in pg_catalog: whatever another role creates in public or in the
 * table's own schema (a better-matching `convert_to(text, text)`, an `=` on some type) is never picked. pg_temp is
 * listed last, or it would be searched first for relations. quote_all_identifiers on would quote the type names
 * format_type gives (the manifest's columns, restore's casts); exit_on_error on would end the session at restore's
 * first refused COPY, which a savepoint is there to take back. synchronous_commit off (a database's or role's, for
 * the application's speed) acknowledges a COMMIT before its WAL is on disk: a crash then takes back a delete whose
 * archive the inventory already records as committed, and the rows are archived a second time. `local` (a role's, to
 * spare the application a synchronous standby's round trip) is overridden too: a failover to that standby would take
 * back such a delete the same way, and the archiver commits once a batch, so the wait costs it little.
 */
const PINNED_SETTINGS: readonly (readonly [string, string])[] = [
  ['client_encoding', "'UTF8'"],
  ['DateStyle', "'ISO, YMD'"],
  ['IntervalStyle', "'postgres'"],
  ['TimeZone', "'UTC'"],
  ['extra_float_digits', '1'],
  ['bytea_output', "'hex'"],
  ['lc_monetary', `'${ARCHIVE_LC_MONETARY}'`],
  ['xmloption', "'content'"],
  ['array_nulls', 'on'],
  ['timezone_abbreviations', "'Default'"],
  ['search_path', 'pg_catalog, pg_temp'],
  ['quote_all_identifiers', 'off'],
  ['exit_on_error', 'off'],
  ['synchronous_commit', 'on'],
];

/**
 * transaction_timeout (PostgreSQL 17+; a database or role may set it) would end a transaction the archiver bounds
 * itself with statement_timeout and idle_in_transaction_session_timeout, a long export's among them: off, set only
 * where the setting exists. Set within a transaction, it also stops the timer that transaction started with.
 */
const transactionTimeoutSql = (local: boolean): string =>
  `SELECT pg_catalog.set_config('transaction_timeout', '0', ${local}) WHERE pg_catalog.current_setting('transaction_timeout', true) IS NOT NULL`;

function settingsSql(limits: SessionLimits | undefined, scope: 'SET' | 'SET LOCAL'): string[] {
  const pinned = [
    ...PINNED_SETTINGS.map(([name, value]) => `${scope} ${name} = ${value}`),
    transactionTimeoutSql(scope === 'SET LOCAL'),
  ];
  if (!limits) return pinned;
  return [
    ...pinned,
    `${scope} statement_timeout = ${Math.round(limits.statementTimeoutSeconds * 1000)}`,
    `${scope} lock_timeout = ${Math.round(limits.lockTimeoutSeconds * 1000)}`,
    // An invocation that dies mid-transaction must not hold row locks until TCP keepalive notices.
    `${scope} idle_in_transaction_session_timeout = ${Math.round(Math.max(60, limits.statementTimeoutSeconds) * 1000)}`,
    `${scope} application_name = ${pg.escapeLiteral(APPLICATION_NAME)}`,
  ];
}

/** Session settings every archiver connection starts with (see PINNED_SETTINGS). */
export function sessionSetupSql(limits: SessionLimits): string {
  return settingsSql(limits, 'SET').join('; ');
}

/** The SET LOCALs that open every archiver transaction; the connection's limits travel with it (see withConnection). */
const TRANSACTION_SETUP = Symbol('audit-archiver transaction setup');
type WithSetup = { [TRANSACTION_SETUP]?: string };

/**
 * A transaction's access mode, always said: a database or role may set default_transaction_read_only, which would
 * make a plain BEGIN read-only. Only transactions that write say READ WRITE, which a hot standby refuses; reads run
 * anywhere.
 */
type AccessMode = ' READ WRITE' | ' READ ONLY';

/**
 * BEGIN together with SET LOCAL of every setting, in one round trip. Behind a transaction-pooling proxy (PgBouncer in
 * transaction mode) consecutive transactions may run on different server connections, so settings made once per
 * connection cannot be relied on; a transaction always runs on one server connection, so these hold in all of it.
 * READ COMMITTED is said too: a database or role may default to repeatable read or serializable, whose one snapshot,
 * taken by the setup's SELECT, would hide from the checks made after a lock (delete, restore) a foreign key, trigger or
 * partition committed while the lock was awaited, which the statement that follows fires all the same.
 */
function beginSql(client: pg.ClientBase, mode: AccessMode): string {
  const setup = (client as WithSetup)[TRANSACTION_SETUP] ?? settingsSql(undefined, 'SET LOCAL').join('; ');
  return `BEGIN ISOLATION LEVEL READ COMMITTED${mode}; ${setup}`;
}

export function tlsOption(mode: DatabaseConfig['tls']): pg.PoolConfig['ssl'] {
  if (mode === 'disable') return false;
  // verify-full checks the chain and host name; the RDS CA bundle reaches Node through NODE_EXTRA_CA_CERTS.
  return mode === 'verify-full' ? { rejectUnauthorized: true } : { rejectUnauthorized: false };
}

export interface Database {
  /** Runs `work` on one pooled connection with the archiver's session settings; maps driver errors to named ones. */
  withConnection<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  end(): Promise<void>;
}

export interface DatabaseOptions {
  /** The config's database entry, which errors its settings cure name. */
  name?: string;
  tls: DatabaseConfig['tls'];
  maxConnections: number;
  limits: SessionLimits;
  /** Fetched for every new connection, so a rotated secret reaches a warm container (cached by the source). */
  password?: () => Promise<string>;
  /** Called when the server rejects the password: the source forgets what it cached, and the connect is retried once. */
  onAuthFailure?: () => void;
  /** The clock statements are timed on, in milliseconds (tests move it); performance.now by default. */
  now?: () => number;
}

export function createDatabase(settings: ConnectionSettings, options: DatabaseOptions): Database {
  const pool = new pg.Pool({
    ...settings,
    password: options.password ?? settings.password,
    ssl: tlsOption(options.tls),
    max: options.maxConnections,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
  });
  // Without a listener, a server-side disconnect of an idle client crashes the whole process.
  pool.on('error', () => undefined);
  const now = options.now ?? (() => performance.now());
  const setup = sessionSetupSql(options.limits);
  const transactionSetup = settingsSql(options.limits, 'SET LOCAL').join('; ');
  // Session settings are made once per pooled connection (one round trip less per step). Every statement whose result
  // depends on them runs in a transaction that sets them again (beginSql), so they hold behind a transaction pooler too.
  return {
    async withConnection(work) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        if ((error as { code?: string }).code !== '28P01' || !options.onAuthFailure)
          throw classifyDatabaseError(error, options.name);
        options.onAuthFailure();
        try {
          client = await pool.connect();
        } catch (retryError) {
          throw classifyDatabaseError(retryError, options.name);
        }
      }
      let broken = false;
      // A server-side disconnect while the client is checked out is emitted here; the failing query reports it.
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      try {
        if ((client as WithSetup)[TRANSACTION_SETUP] === undefined) {
          timeStatements(client, Math.round(options.limits.statementTimeoutSeconds * 1000), now);
          await client.query(setup);
          (client as WithSetup)[TRANSACTION_SETUP] = transactionSetup;
        }
        return await work(client);
      } catch (error) {
        broken = true;
        throw classifyDatabaseError(error, options.name);
      } finally {
        client.off('error', onError);
        // A failed client may sit in an aborted transaction or a half-read COPY: never hand it out again.
        client.release(broken || abandoned(client));
      }
    },
    end: () => pool.end(),
  };
}

/** What timeStatements wraps: a statement's promise, or a submittable (a COPY stream) whose errors pg hands it. */
type Submittable = { submit: unknown; handleError: (error: unknown, ...rest: unknown[]) => unknown };

/**
 * Records on every error of the client's statements how long the statement ran, from its sending to its error, against
 * `limitMs`, the statement_timeout the archiver sets (settingsSql): a timeout and a cancel share SQLSTATE 57014, and
 * only an English server's message tells them apart (step-errors.ts). Installed once per pooled connection.
 */
function timeStatements(client: pg.PoolClient, limitMs: number, now: () => number): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  const timed = (...args: unknown[]): unknown => {
    const started = now();
    const record = (error: unknown) => recordStatementTime(error, { ranMs: now() - started, limitMs });
    const submittable = args[0] as Partial<Submittable> | undefined;
    const handleError = submittable?.handleError;
    if (typeof submittable?.submit === 'function' && typeof handleError === 'function') {
      submittable.handleError = (error, ...rest) => {
        record(error);
        return handleError.call(submittable, error, ...rest);
      };
    }
    const result = query(...args);
    return result instanceof Promise
      ? result.catch((error: unknown) => {
          record(error);
          throw error;
        })
      : result;
  };
  client.query = timed as typeof client.query;
}

const ABANDONED = Symbol('abandoned');
type Abandonable = pg.ClientBase & { [ABANDONED]?: true };

/**
 * Marks a connection left in the middle of a COPY TO (its stream destroyed): the server goes on sending rows, so no
 * statement, ROLLBACK included, can follow on it. The transaction helpers then skip their ROLLBACK (it would wait
 * forever) and the pool closes the connection, which ends the transaction on the server.
 */
export function abandonConnection(client: pg.ClientBase): void {
  (client as Abandonable)[ABANDONED] = true;
}

const abandoned = (client: pg.ClientBase) => (client as Abandonable)[ABANDONED] === true;

const rollBack = async (client: pg.ClientBase) => {
  if (!abandoned(client)) await client.query('ROLLBACK').catch(() => undefined);
};

/**
 * Runs `work` in a READ WRITE transaction and rolls back on any error, including errors thrown by `work` itself.
 */
export function inTransaction<T>(client: pg.ClientBase, work: () => Promise<T>): Promise<T> {
  return committed(client, ' READ WRITE', work);
}

/**
 * Runs reads in a READ ONLY transaction: the archiver's settings hold for each of them (beginSql), and no function
 * they might call can write to the database in it.
 */
export function inReadOnlyTransaction<T>(client: pg.ClientBase, work: () => Promise<T>): Promise<T> {
  return committed(client, ' READ ONLY', work);
}

async function committed<T>(client: pg.ClientBase, mode: AccessMode, work: () => Promise<T>): Promise<T> {
  await client.query(beginSql(client, mode));
  try {
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await rollBack(client);
    throw error;
  }
}

/**
 * Runs `work` under a savepoint of the transaction under way: a statement of it that fails rolls back to the savepoint
 * and the transaction goes on (the error is thrown). For a caller that reports a failure and carries on reading, in a
 * transaction it needs for its pinned settings (SET LOCAL, which a transaction pooler keeps, where a session SET may
 * be lost between statements).
 */
export async function underSavepoint<T>(client: pg.ClientBase, work: () => Promise<T>): Promise<T> {
  await client.query('SAVEPOINT audit_archiver_read');
  try {
    const result = await work();
    await client.query('RELEASE SAVEPOINT audit_archiver_read');
    return result;
  } catch (error) {
    await client.query('ROLLBACK TO SAVEPOINT audit_archiver_read');
    throw error;
  }
}

/** Runs `work` in a transaction that always rolls back: a dry run sees what would happen and leaves nothing. */
export async function inRolledBackTransaction<T>(client: pg.ClientBase, work: () => Promise<T>): Promise<T> {
  await client.query(beginSql(client, ' READ WRITE'));
  try {
    return await work();
  } finally {
    await rollBack(client);
  }
}
