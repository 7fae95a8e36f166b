/**
 * Error classes whose `name` is the contract the state machines' Retry and Catch match on.
 * Transient errors are retried by the ASL; every other named error ends the table's run with nothing deleted
 * that was not verified. test/statemachines checks that every name the ASL mentions is defined here.
 */
export abstract class ArchiverError extends Error {
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The config file or an execution input failed validation; nothing was touched. */
export class ConfigError extends ArchiverError {
  readonly retryable = false;
}

/** A step's input payload failed its schema: a wiring bug, never retried. */
export class InvalidInputError extends ArchiverError {
  readonly retryable = false;
}

/** Missing table or column, wrong column type, or no usable key: the table is refused before any row moves. */
export class TableNotUsableError extends ArchiverError {
  readonly retryable = false;
}

/** Authentication or authorization against the database failed; retrying would not help. */
export class DatabaseAccessError extends ArchiverError {
  readonly retryable = false;
}

/** Connection refused/reset, server restart, timeouts, serialization conflicts: safe to retry. */
export class DatabaseUnavailableError extends ArchiverError {
  readonly retryable = true;
}

/** S3 could not be reached or answered with a server error: safe to retry. */
export class StorageUnavailableError extends ArchiverError {
  readonly retryable = true;
}

/** A named replica replays too far behind (or is not connected): export waits, retried by the ASL with long intervals. */
export class ReplicaLagError extends ArchiverError {
  readonly retryable = true;
}

/** DynamoDB could not be reached or throttled us: safe to retry. */
export class LockStoreUnavailableError extends ArchiverError {
  readonly retryable = true;
}

/** This execution no longer holds the table's lease (expired and taken over): it must not delete. */
export class LeaseLostError extends ArchiverError {
  readonly retryable = false;
}

/** The archive object does not match its manifest (corrupted, truncated or tampered). Nothing is deleted. */
export class ArchiveIntegrityError extends ArchiverError {
  readonly retryable = false;
}

/** An object already exists under a write-once key with other content. Nothing is overwritten or deleted. */
export class ArchiveConflictError extends ArchiverError {
  readonly retryable = false;
}

/**
 * The rows in the database no longer equal the archived batch (updated, inserted or deleted since export).
 * The uncommitted archive is withdrawn and nothing is deleted; the next run archives the current rows.
 */
export class RowsChangedError extends ArchiverError {
  readonly retryable = false;
}

/**
 * Whether an interrupted delete committed cannot be established (its transaction is unknown to this server and the
 * rows neither match the archive nor are gone). Nothing is deleted or withdrawn until an operator decides.
 */
export class BatchOutcomeUnknownError extends ArchiverError {
  readonly retryable = false;
}

/** A previous attempt's delete transaction is still open on the server; retry once it has ended. */
export class DeleteInProgressError extends ArchiverError {
  readonly retryable = true;
}

/** Restore with strategy `fail` met rows that already exist in the target; nothing from that archive was written. */
export class RestoreConflictError extends ArchiverError {
  readonly retryable = false;
}

/**
 * The archive's columns or values do not fit the target table (a column removed in strict mode, a type with no
 * cast, a value the target's constraints refuse); nothing from that archive was written.
 */
export class SchemaDriftError extends ArchiverError {
  readonly retryable = false;
}

/**
 * The archived table's columns changed since its last archive and the config says `onSchemaDrift: fail`: the change
 * is in the audit trail, nothing was exported. Set `continue` for the table to archive under the new columns.
 */
export class SchemaChangedError extends ArchiverError {
  readonly retryable = false;
}

/** A restore finished with at least one archive not restored: the execution and the CLI end as failed. */
export class RestoreIncompleteError extends ArchiverError {
  readonly retryable = false;
}

/**
 * A critical table's archive is not SSE-KMS encrypted as S3 reports it (a bucket or a local S3 without KMS): the
 * batch stops before verify, so nothing is deleted.
 */
export class EncryptionRequiredError extends ArchiverError {
  readonly retryable = false;
}

/**
 * An archive in GLACIER or DEEP_ARCHIVE that S3 will not read until a restore from cold storage (RestoreObject) has
 * completed. Retrying cannot cure it: the operator restores the objects in S3 first.
 */
export class ArchiveInColdStorageError extends ArchiverError {
  readonly retryable = false;
}

/**
 * PostgreSQL's statement_timeout ended a statement (57014 that ran the archiver's limit; an administrator's cancel has
 * the same code and is retried). The same batch would meet the same limit, so it is not retried: the table fails at once.
 */
export class StatementTimeoutError extends ArchiverError {
  readonly retryable = false;
}

export const errorClasses = {
  ConfigError,
  InvalidInputError,
  TableNotUsableError,
  DatabaseAccessError,
  DatabaseUnavailableError,
  StorageUnavailableError,
  ReplicaLagError,
  LockStoreUnavailableError,
  LeaseLostError,
  ArchiveIntegrityError,
  ArchiveConflictError,
  RowsChangedError,
  BatchOutcomeUnknownError,
  DeleteInProgressError,
  RestoreConflictError,
  SchemaDriftError,
  SchemaChangedError,
  RestoreIncompleteError,
  EncryptionRequiredError,
  ArchiveInColdStorageError,
  StatementTimeoutError,
} as const;

/**
 * Whether an error of this name is transient: the state machines retry it (test/statemachines checks every Task's
 * Retry names these). Progress output says "retrying" for them rather than report a failure each attempt.
 */
export function isRetryableError(name: string): boolean {
  const errorClass = (errorClasses as Record<string, new (message: string) => ArchiverError>)[name];
  return errorClass !== undefined && new errorClass('').retryable;
}

const transientPgCodes = new Set([
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '53300', // too_many_connections
  '55P03', // lock_not_available (lock_timeout)
  '57014', // query_canceled by a client or an administrator (statement_timeout's own: StatementTimeoutError)
  '57P01', // admin_shutdown
  '57P02',
  '57P03', // cannot_connect_now
]);
const accessPgCodes = new Set(['28000', '28P01', '42501']);
const missingObjectPgCodes = new Set(['42P01', '42703', '3F000']);
const transientNodeCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);

/** Node's codes for a server certificate that verify-full cannot accept. */
const tlsCertificateCodes = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The fields of a driver (pg) error the classification reads. */
interface DriverError {
  code?: string;
  message?: string;
  where?: string;
  file?: string;
  routine?: string;
  hint?: string;
  detail?: string;
}

/**
 * A driver error as `database error <SQLSTATE>: <message>`, the message withheld where it may quote row values.
 * Data exceptions (class 22) quote the offending value, and so may what a function of the database raises in any
 * language (a CHECK, trigger, policy or generated column calling `RAISE EXCEPTION 'rejected %', value`; PL/pgSQL's P0
 * class, external routines' 38 and 39): only the SQLSTATE and the functions that raised it are kept. Told by the
 * source file that raised it (a procedural language's, never translated) as well as by the context, which is in the
 * server's language.
 */
export function databaseErrorMessage(error: unknown): { code: string; message: string; withheld: boolean } {
  const err = error as DriverError;
  const code = err.code ?? '';
  const withheld =
    code.startsWith('22') ||
    valueSyntaxError(code, err.message) ||
    ['P0', '38', '39'].includes(code.slice(0, 2)) ||
    /^(pl_|plpy|plperl|pltcl|plv8)/.test(err.file ?? '') ||
    /\bfunction\b/.test(err.where ?? '');
  const text = code.startsWith('22')
    ? 'data exception (message withheld: it may quote row values)'
    : valueSyntaxError(code, err.message)
      ? 'a value could not be read (message withheld: it may quote row values)'
      : withheld
        ? `raised in ${userFunctions(err.where) ?? 'a function of the database'} (message withheld: it may quote row values)`
        : (err.message ?? String(error));
  return { code, message: `database error${code ? ` ${code}` : ''}: ${text}`, withheld };
}

/**
 * Maps a driver error to a named archiver error; messages keep SQLSTATE but never row values. `database`, the config's
 * database entry, where the caller knows it: errors the entry's settings cure (credentials, database name, tls) name it.
 */
export function classifyDatabaseError(error: unknown, database?: string): Error {
  if (error instanceof ArchiverError) return error;
  const err = error as DriverError;
  const { code, message, withheld } = databaseErrorMessage(error);
  const entry = database === undefined ? 'the database' : `database ${database}`;
  const ofEntry = database === undefined ? message : `${entry}: ${message}`;
  if (accessPgCodes.has(code)) return new DatabaseAccessError(ofEntry, { cause: error });
  // The entry's credentials name a database the server does not have: a fix in the config, never a retry.
  if (code === '3D000') {
    return new ConfigError(
      `${ofEntry}. The credentials of ${entry} in the config name a database this server does not have: correct the database name (the URL's path, or the secret's dbname)`,
      { cause: error },
    );
  }
  // TLS mismatches are settled by the database's `tls` setting or the server, never by retrying.
  if (/server does not support SSL connections/i.test(err.message ?? '')) {
    return new ConfigError(
      `${ofEntry}. The tls setting of ${entry} (default verify-full) asks for TLS: enable TLS on the server, or set tls: disable for a server reached only over a trusted network`,
      { cause: error },
    );
  }
  if (tlsCertificateCodes.has(code)) {
    return new ConfigError(
      `${ofEntry}. With tls: verify-full (${entry}) the server's certificate must chain to a trusted CA (for RDS, aws.databaseCaBundlePath) and name the host you connect to; tls: require encrypts without verifying either`,
      { cause: error },
    );
  }
  if (missingObjectPgCodes.has(code)) return new TableNotUsableError(message, { cause: error });
  // A write refused as read-only: the archiver says READ WRITE where it writes (db.ts), so what is left is a server
  // that cannot write at all. PostgreSQL refuses READ WRITE on a hot standby with 0A000, telling it by its message,
  // or, in a server whose lc_messages translates it, by the routine that reported it (never translated): the check of
  // a boolean setting, transaction_read_only's being the only one that answers 0A000.
  if (
    code === '25006' ||
    (code === '0A000' &&
      (/read-write mode during recovery/i.test(err.message ?? '') || err.routine === 'call_bool_check_hook'))
  ) {
    return new ConfigError(
      `${message}. The database is read-only for the archiver: the host is a hot standby (a read replica), or the database or the archiver's role is set read-only (default_transaction_read_only); point the database's host at the primary, or reset that setting`,
      { cause: error },
    );
  }
  // A limit the server's configuration sets (temp_file_limit, which a role or database may lower): the same batch
  // would meet it again, so it is not retried. PostgreSQL's message names the limit and never quotes a value.
  if (code === '53400') {
    return new ConfigError(
      `${message}. A configuration limit of the database server (the one named above) stopped the statement: raise it for the archiver's role, or, where export met it, lower the table's batchSize (a batch already exported, and a restore's archives, keep their size)`,
      { cause: error },
    );
  }
  // The server's lock table is full (53200 "out of shared memory"): every step locks each partition of a partitioned
  // table (describing it reads pg_partition_tree, which locks them; the delete's LOCK TABLE too), those made ahead of
  // today as well, so a table of thousands of partitions needs more than
  // max_locks_per_transaction × connections. The message alone reads like a server out of memory; PostgreSQL's hint
  // names the setting, untranslated in any lc_messages, and quotes no value. 53200 is also a process out of memory
  // (no such hint), left as it was. Not retried: the same table takes the same locks.
  const hint = err.hint ?? '';
  if (code === '53200' && /max_locks_per_transaction/.test(hint)) {
    return new ConfigError(
      `${ofEntry} (${hint}). The server's lock table could not hold the locks the statement takes: every step locks each partition of a partitioned table (those made ahead of today too), so one of thousands of partitions needs max_locks_per_transaction raised on the server (a restart), or fewer partitions (detach or drop emptied ones); other sessions holding many locks at once (pg_dump) fill it too. Not retried`,
      { cause: error },
    );
  }
  // A foreign key (ON DELETE NO ACTION or RESTRICT; another table's, or the table's own from rows newer than the batch)
  // still references rows being deleted: retrying cannot help until those references go. The message names the
  // constraint and tables; the key values are in the detail.
  if (code === '23503') {
    return new TableNotUsableError(
      `${message}; rows that stay (in that table) still reference rows of the batch, so none of it was committed. When that table is the archived one, the referencing rows may be past the cut-off too, only beyond this batch (a reference spanning batches): raise the table's batchSize so that rows referencing each other share a batch`,
      {
        cause: error,
      },
    );
  }
  // A publication publishes the table's deletes (or updates: a restore's overwrite) and its replica identity does not
  // cover them (there is none, or it lacks a column of the publication's row filter or column list, PostgreSQL 15+):
  // every such statement is refused until the table or the publication changes. The detail names which, never a value.
  // Told by its English message, or by the routine that raised it where lc_messages translates the message.
  if (
    (code === '55000' || code === '42P10') &&
    (/^cannot (delete from|update) table /.test(err.message ?? '') ||
      err.routine === 'CheckCmdReplicaIdentity')
  ) {
    const detail = err.detail;
    return new TableNotUsableError(
      `${message}${detail ? ` (${detail})` : ''}: a publication publishes this table's changes, which its replica identity must cover; give the table one that does (ALTER TABLE ... REPLICA IDENTITY USING INDEX on the key's unique index, or REPLICA IDENTITY FULL), or change the publication's row filter or column list, or leave the table out of it`,
      { cause: error },
    );
  }
  const timedOut = statementTimeout(error, ofEntry, { cure: 'setting' });
  if (timedOut) return timedOut;
  if (transientPgCodes.has(code) || transientNodeCodes.has(code) || code.startsWith('08')) {
    return new DatabaseUnavailableError(message, { cause: error });
  }
  if (
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|not queryable|terminating connection/i.test(
      err.message ?? '',
    )
  ) {
    return new DatabaseUnavailableError(message, { cause: error });
  }
  return error instanceof Error && !withheld ? error : new Error(message, { cause: error });
}

/** PostgreSQL's message for a statement its statement_timeout ended, when the server's lc_messages is English. */
const STATEMENT_TIMEOUT_MESSAGE = 'canceling statement due to statement timeout';

/** How long the statement an error ended ran, by the archiver's clock, and the statement_timeout it set for it. */
export interface StatementTime {
  ranMs: number;
  /** 0: no limit. */
  limitMs: number;
}

const STATEMENT_TIME = Symbol('audit-archiver statement time');

/** Records on a driver error how long its statement ran (database/db.ts times every statement). */
export function recordStatementTime(error: unknown, time: StatementTime): void {
  if (error !== null && typeof error === 'object')
    (error as { [STATEMENT_TIME]?: StatementTime })[STATEMENT_TIME] = time;
}

/**
 * Whether a 57014 is statement_timeout's rather than a cancel (a client's or an administrator's, the same code). The
 * message tells only in English, and lc_messages is the server's (superuser-only), so the statement's own time decides
 * wherever the archiver timed it: the client's clock starts before the server's timer, so a timeout has always run its
 * limit here, and a cancel has not, unless it came within a round trip of the limit, which the statement was about to
 * meet anyway.
 */
function endedByTimeout(err: { code?: string; message?: string }): boolean {
  if (err.code !== '57014') return false;
  if (err.message === STATEMENT_TIMEOUT_MESSAGE) return true;
  const time = (err as { [STATEMENT_TIME]?: StatementTime })[STATEMENT_TIME];
  return time !== undefined && time.limitMs > 0 && time.ranMs >= time.limitMs;
}

/**
 * What shortens a statement statementTimeout names: `batch`, a new batch's (export's COPY), which a smaller batchSize
 * shortens; `in flight`, a batch's already exported (delete's DELETE), which every run resumes whole whatever batchSize
 * says now; `setting`, one of another step (a restore's COPY of an archive, whose size is its own; a plan's count).
 * Only the setting cures the last two.
 */
type TimedOut =
  | { statement: string; cure: 'batch' | 'in flight' }
  | { statement?: undefined; cure: 'setting' };

function statementTimeout(
  error: unknown,
  message: string,
  named: TimedOut,
): StatementTimeoutError | undefined {
  if (!endedByTimeout(error as { code?: string; message?: string })) return undefined;
  // The archiver sets statement_timeout on each session and transaction (database/db.ts), over any the role or
  // database sets, so the config's setting is the one to raise.
  const limit =
    "defaults.statementTimeoutSeconds (the archiver sets statement_timeout from it on its sessions and transactions, over a role's or database's own)";
  const advice = {
    batch: `raise it, or lower the table's batchSize so that one batch's statements end within it; not retried, since the same batch would meet the same limit`,
    'in flight': `raise defaults.statementTimeoutSeconds (the batch is kept in flight and resumed whole by every run, so a smaller batchSize shortens only the batches after it); not retried, since the same batch would meet the same limit`,
    setting: `raise defaults.statementTimeoutSeconds; not retried, since the same statement would meet the same limit`,
  }[named.cure];
  return new StatementTimeoutError(
    `${message}: ${named.statement ?? 'a statement'} ran longer than ${limit} allows: ${advice}`,
    { cause: error },
  );
}

/**
 * `error` as a StatementTimeoutError naming `statement` (what the operator would look for: "export's COPY of the
 * batch's rows") when statement_timeout ended it; any other error unchanged. `cure`: 'in flight' for a statement of a
 * batch already exported, which a smaller batchSize does not shorten.
 */
export function timedOutStatement<E>(
  error: E,
  statement: string,
  cure: 'batch' | 'in flight' = 'batch',
): E | StatementTimeoutError {
  return (
    statementTimeout(error, `database error 57014: ${STATEMENT_TIMEOUT_MESSAGE}`, { statement, cure }) ??
    error
  );
}

/**
 * A syntax error (42601) raised by a type's input function reading a value (tsquery, jsonpath), which quotes the
 * value, rather than by the SQL parser reading a statement ("syntax error at or near" a token, or "at end of input").
 */
const valueSyntaxError = (code: string, message = ''): boolean =>
  code === '42601' && !/^syntax error at (or near "[^"]*"|end of input)$/.test(message);

/**
 * The functions an error's context (`where`) names, by name and argument types ("PL/pgSQL function
 * public.check_email(text) line 3 at RAISE", `PL/Python function "f"`), or undefined when it names none. Only those
 * parts: the context also quotes the statements the functions ran, which may hold values.
 */
function userFunctions(where: string | undefined): string | undefined {
  const names = [
    ...(where ?? '').matchAll(/\b((?:PL\/\w+|SQL) function (?:"[^"]*"|[^\s("])+(?:\([^)]*\))?)/g),
  ].map((match) => match[1]);
  return names.length > 0 ? [...new Set(names)].join(', called from ') : undefined;
}

/**
 * Whether an AWS SDK error is transient: network, 5xx, throttling (TooManyRequests included), and S3's 409
 * ConditionalRequestConflict, its answer to one of two conditional writes to a key at once, which it asks to retry.
 */
export function isTransientAwsError(error: unknown): boolean {
  const err = error as {
    name?: string;
    code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const status = err.$metadata?.httpStatusCode ?? 0;
  // DynamoDB answers throttling of a hot partition (ProvisionedThroughputExceeded: a restore target's watermarks share
  // one partition key) and of the account (RequestLimitExceeded) with HTTP 400, once the SDK's own retries are spent.
  return (
    status >= 500 ||
    status === 429 ||
    transientNodeCodes.has(err.code ?? '') ||
    /Throttl|TooManyRequests|TimeoutError|RequestTimeout|SlowDown|ServiceUnavailable|InternalError|InternalServiceError|ConditionalRequestConflict|ProvisionedThroughputExceeded|RequestLimitExceeded|socket hang up/i.test(
      `${err.name ?? ''} ${err.message ?? ''}`,
    )
  );
}

/** Maps an AWS SDK error to a named archiver error when it is transient (network, 5xx, throttling). */
export function classifyAwsError(error: unknown, kind: 's3' | 'dynamodb'): Error {
  if (error instanceof ArchiverError) return error;
  const err = error as { name?: string; message?: string };
  if (!isTransientAwsError(error)) return error instanceof Error ? error : new Error(String(error));
  const message = `${kind} unavailable: ${err.name ?? 'Error'}: ${err.message ?? ''}`;
  return kind === 's3'
    ? new StorageUnavailableError(message, { cause: error })
    : new LockStoreUnavailableError(message, { cause: error });
}
