import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  classifyAwsError,
  classifyDatabaseError,
  DatabaseAccessError,
  DatabaseUnavailableError,
  databaseErrorMessage,
  LockStoreUnavailableError,
  recordStatementTime,
  StatementTimeoutError,
  StorageUnavailableError,
  TableNotUsableError,
  timedOutStatement,
} from '../../../../lambdas/shared/errors/step-errors.js';

const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('error classification', () => {
  it.each([
    ['28P01', DatabaseAccessError],
    ['42501', DatabaseAccessError],
    ['42P01', TableNotUsableError],
    ['23503', TableNotUsableError],
    ['57P01', DatabaseUnavailableError],
    ['40001', DatabaseUnavailableError],
    ['55P03', DatabaseUnavailableError],
    ['ECONNREFUSED', DatabaseUnavailableError],
  ])('maps %s to %s', (code, type) => {
    expect(classifyDatabaseError(pgError(code, 'x'))).toBeInstanceOf(type);
  });

  it('ends a statement stopped by statement_timeout as not retryable, naming the statement and the setting to raise', () => {
    // Prepare: PostgreSQL's own message for a statement its statement_timeout ended
    const timedOut = pgError('57014', 'canceling statement due to statement timeout');

    // Act
    const named = timedOutStatement(timedOut, "export's COPY of 2 day(s) of the batch's rows");
    const unnamed = classifyDatabaseError(timedOut, 'app');

    // Assess: the same batch would meet the same limit, so the ASL does not retry it (States.ALL fails the table).
    expect(named).toBeInstanceOf(StatementTimeoutError);
    expect((named as StatementTimeoutError).retryable).toBe(false);
    expect(named.message).toMatch(/export's COPY of 2 day\(s\) of the batch's rows ran longer than/);
    expect(named.message).toMatch(/defaults\.statementTimeoutSeconds/);
    expect(named.message).toMatch(/batchSize/);
    expect(unnamed).toBeInstanceOf(StatementTimeoutError);
    expect(unnamed.message).toMatch(/^database app: database error 57014: .*a statement ran longer than/);
  });

  it("advises no batchSize for delete's DELETE: the batch in flight is resumed whole on every run, whatever it says", () => {
    // Act: delete names its statement as a batch in flight's, which a smaller batchSize does not shrink
    const error = timedOutStatement(
      pgError('57014', 'canceling statement due to statement timeout'),
      "delete's DELETE of the batch's 3 object(s) of rows",
      'in flight',
    );

    // Assess: the setting to raise; lowering batchSize alone would leave the table failing at every run.
    expect(error).toBeInstanceOf(StatementTimeoutError);
    expect(error.message).toMatch(/delete's DELETE of the batch's 3 object\(s\) of rows ran longer than/);
    expect(error.message).toMatch(/raise defaults\.statementTimeoutSeconds/);
    expect(error.message).not.toMatch(/lower the table's batchSize/);
  });

  it("advises no batchSize for a statement it cannot name: a restore's or a plan's does not shrink with it", () => {
    // Act: a statement ended by statement_timeout that no step named (restore-file's COPY into the target)
    const error = classifyDatabaseError(
      pgError('57014', 'canceling statement due to statement timeout'),
      'app',
    );

    // Assess: the setting to raise, and nothing about a batch it may not belong to.
    expect(error).toBeInstanceOf(StatementTimeoutError);
    expect(error.message).toMatch(/raise defaults\.statementTimeoutSeconds/);
    expect(error.message).not.toMatch(/batch/);
  });

  it('retries a statement an administrator cancelled (57014 too): a cancel is no limit the batch meets again', () => {
    // Act
    const error = timedOutStatement(
      pgError('57014', 'canceling statement due to user request'),
      "export's COPY",
    );

    // Assess
    expect(classifyDatabaseError(error)).toBeInstanceOf(DatabaseUnavailableError);
  });

  it('tells a statement_timeout from a cancel in a server of another language by how long the statement ran', () => {
    // Prepare: PostgreSQL's German messages (lc_messages = de_DE), the statements timed against a 10 s limit.
    const timedOut = pgError('57014', 'storniere Anfrage wegen Zeitüberschreitung der Anweisung');
    recordStatementTime(timedOut, { ranMs: 10_004, limitMs: 10_000 });
    const cancelled = pgError('57014', 'storniere Anfrage wegen Benutzeranforderung');
    recordStatementTime(cancelled, { ranMs: 9_990, limitMs: 10_000 });
    const unlimited = pgError('57014', 'storniere Anfrage wegen Benutzeranforderung');
    recordStatementTime(unlimited, { ranMs: 600_000, limitMs: 0 });

    // Act
    const named = timedOutStatement(timedOut, "export's COPY");
    const unnamed = classifyDatabaseError(timedOut, 'app');

    // Assess: a statement that ran its limit is the timeout, in any language; one that stopped short of it, or ran
    // with none, was cancelled and is retried.
    expect(named).toBeInstanceOf(StatementTimeoutError);
    expect(named.message).toMatch(/^database error 57014: .*export's COPY ran longer than/);
    expect(unnamed).toBeInstanceOf(StatementTimeoutError);
    expect(unnamed.message).toMatch(
      /^database app: database error 57014: storniere Anfrage .*a statement ran longer/,
    );
    expect(classifyDatabaseError(timedOutStatement(cancelled, "export's COPY"))).toBeInstanceOf(
      DatabaseUnavailableError,
    );
    expect(classifyDatabaseError(unlimited)).toBeInstanceOf(DatabaseUnavailableError);
  });

  it('names a certificate verify-full cannot accept as a config error, with what to change', () => {
    // Act
    const error = classifyDatabaseError(pgError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'));

    // Assess: not retried as an outage; the message says which setting decides.
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/verify-full.*databaseCaBundlePath.*tls: require/);
  });

  it.each([
    [
      '55000',
      'cannot update table "events" because it does not have a replica identity and publishes updates',
      undefined,
    ],
    [
      '42P10',
      'cannot delete from table "events"',
      'Column list used by the publication does not cover the replica identity.',
    ],
  ])(
    'names a publication the replica identity does not cover (%s) as a table to change, with the remedy',
    (code, text, detail) => {
      // Act
      const error = classifyDatabaseError(Object.assign(pgError(code, text), { detail }));

      // Assess: not retried, not a raw driver error
      expect(error).toBeInstanceOf(TableNotUsableError);
      expect(error.message).toContain(detail ?? text);
      expect(error.message).toMatch(/REPLICA IDENTITY USING INDEX.*or leave the table out of it$/);
    },
  );

  it('names a database the server does not have as a config error naming the config entry', () => {
    // Act
    const error = classifyDatabaseError(pgError('3D000', 'database "nodb" does not exist'), 'app');

    // Assess: not a raw driver error; nothing to retry
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/^database app: database error 3D000: database "nodb" does not exist\./);
    expect(error.message).toContain('The credentials of database app in the config name a database');
  });

  it.each([
    ['28P01', 'password authentication failed for user "archiver"', DatabaseAccessError],
    ['08P01', 'The server does not support SSL connections', ConfigError],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate', ConfigError],
  ])('names the config database entry in %s, which its settings cure', (code, text, type) => {
    // Act
    const error = classifyDatabaseError(pgError(code, text), 'billing');

    // Assess
    expect(error).toBeInstanceOf(type);
    expect(error.message).toMatch(/^database billing: database error /);
  });

  it.each([
    ['25006', 'cannot execute DELETE in a read-only transaction'],
    ['0A000', 'cannot set transaction read-write mode during recovery'],
  ])(
    'names a database that cannot be written (%s) as a config error: a standby host, or a read-only database or role',
    (code, text) => {
      // Act
      const error = classifyDatabaseError(pgError(code, text));

      // Assess: not retried, and says why and what to change.
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.message).toContain(`database error ${code}: ${text}.`);
      expect(error.message).toMatch(
        /read-only for the archiver: the host is a hot standby .*\(default_transaction_read_only\)/,
      );
    },
  );

  it.each([
    ['P0001', 'rejected email alice@example.com', 'PL/pgSQL function check_email(text) line 3 at RAISE'],
    [
      '23514',
      'alice@example.com is not allowed',
      'PL/pgSQL function public.guard() line 4 at RAISE\nSQL statement "SELECT public.guard()"\nSQL function "outer_check" statement 1',
    ],
    ['P0004', 'assertion failed for alice@example.com', undefined],
    ['38000', 'rejected email alice@example.com', 'PL/Tcl function "check_email"'],
    [
      '38000',
      'ValueError: rejected alice@example.com',
      'Traceback (most recent call last):\n  PL/Python function "check_email", line 3',
    ],
    ['38000', 'rejected alice@example.com at line 2.', 'PL/Perl function "check_email"'],
    ['23514', 'rejected alice@example.com', 'PL/pgSQL function public."Check Email"(text) line 3 at RAISE'],
    // A server whose messages are in French: the context is translated, the source file is not.
    [
      '23505',
      'rejected alice@example.com',
      'fonction PL/pgSQL check_email(text), ligne 3 à RAISE',
      'pl_exec.c',
    ],
  ])(
    'withholds the message of an error a function of the database raised (%s): it may quote the row it refused',
    (code, text, where, file?: string) => {
      // Act
      const error = classifyDatabaseError(Object.assign(pgError(code, text), { where, file }));

      // Assess: the SQLSTATE and the functions by name and argument types stay; no value, no statement text.
      expect(error.message).toContain(`database error ${code}: raised in `);
      expect(error.message).toContain('(message withheld: it may quote row values)');
      expect(error.message).not.toContain('alice@example.com');
      expect(error.message).not.toContain('SELECT');
      if (code === 'P0001') expect(error.message).toContain('PL/pgSQL function check_email(text)');
      if (where?.includes('Check Email'))
        expect(error.message).toContain('raised in PL/pgSQL function public."Check Email"(text)');
      if (where?.includes('PL/Python'))
        expect(error.message).toContain('raised in PL/Python function "check_email"');
      if (where?.includes('guard'))
        expect(error.message).toContain(
          'raised in PL/pgSQL function public.guard(), called from SQL function "outer_check"',
        );
    },
  );

  it('leaves another feature_not_supported error as it is', () => {
    // Act
    const error = pgError('0A000', 'cannot copy from view "v"');

    // Assess
    expect(classifyDatabaseError(error)).toBe(error);
  });

  it('names a configuration limit of the server (temp_file_limit) as a config error naming the limit', () => {
    // Act
    const error = classifyDatabaseError(
      pgError('53400', 'temporary file size exceeds "temp_file_limit" (64kB)'),
    );

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(
      /^database error 53400: temporary file size exceeds "temp_file_limit" \(64kB\)\. A configuration limit of the database server/,
    );
    // A smaller batchSize shortens only batches export has yet to read: a restore's archives keep their size.
    expect(error.message).toMatch(/where export met it, lower the table's batchSize/);
  });

  it('withholds the message of any SQLSTATE a function of the database raised, as databaseErrorMessage gives it too', () => {
    // Prepare: a policy or trigger function raising 53400 with a row's value in its message.
    const raised = Object.assign(pgError('53400', 'limit met for ann@example.com'), {
      where: 'PL/pgSQL function audit_guard() line 3 at RAISE',
    });

    // Act
    const described = databaseErrorMessage(raised);
    const classified = classifyDatabaseError(raised);

    // Assess
    expect(described).toEqual({
      code: '53400',
      message:
        'database error 53400: raised in PL/pgSQL function audit_guard() (message withheld: it may quote row values)',
      withheld: true,
    });
    expect(classified.message).toContain(described.message);
    expect(classified.message).not.toContain('ann@example.com');
  });

  it('names a lock table too small for the locks a statement takes (53200, hinted) as a config error naming the setting', () => {
    // Prepare: PostgreSQL's error in German (lc_messages = de_DE); the hint names the setting untranslated.
    const full = Object.assign(pgError('53200', 'Speicher im Shared Memory aufgebraucht'), {
      hint: 'Sie müssen möglicherweise „max_locks_per_transaction“ erhöhen.',
    });
    const outOfMemory = Object.assign(pgError('53200', 'out of memory'), {
      detail: 'Failed on request of size 1048576 in memory context "ExecutorState".',
    });

    // Act
    const lockTable = classifyDatabaseError(full, 'app');
    const process = classifyDatabaseError(outOfMemory, 'app');

    // Assess
    expect(lockTable).toBeInstanceOf(ConfigError);
    expect(lockTable.message).toMatch(/max_locks_per_transaction.*lock table/);
    expect(process).not.toBeInstanceOf(ConfigError);
    expect(process.message).not.toMatch(/lock table/);
  });

  it('tells a hot standby and a publication without replica identity in a server whose lc_messages is German', () => {
    // Prepare: PostgreSQL's errors in German (lc_messages = de_DE), with the routine that raised each, as it sends it.
    const standby = Object.assign(
      pgError(
        '0A000',
        'kann Transaktion während der Wiederherstellung nicht in den Lese/Schreib-Modus setzen',
      ),
      { routine: 'call_bool_check_hook', file: 'guc.c' },
    );
    const published = Object.assign(
      pgError(
        '55000',
        'kann nicht aus Tabelle »events« löschen, weil sie keine Replik-Identität hat und Deletes publiziert',
      ),
      { routine: 'CheckCmdReplicaIdentity', file: 'execReplication.c' },
    );

    // Act
    const readOnly = classifyDatabaseError(standby);
    const identity = classifyDatabaseError(published);

    // Assess
    expect(readOnly).toBeInstanceOf(ConfigError);
    expect(readOnly.message).toMatch(/hot standby/);
    expect(identity).toBeInstanceOf(TableNotUsableError);
    expect(identity.message).toMatch(/REPLICA IDENTITY/);
  });

  it('treats a dropped connection as transient', () => {
    expect(
      classifyDatabaseError(new Error('Client has encountered a connection error and is not queryable')),
    ).toBeInstanceOf(DatabaseUnavailableError);
  });

  it('never repeats the message of a data exception, which may quote row values', () => {
    // Act
    const error = classifyDatabaseError(
      pgError('22P02', 'invalid input syntax for type integer: "alice@example.com"'),
    );

    // Assess
    expect(error.message).toBe(
      'database error 22P02: data exception (message withheld: it may quote row values)',
    );
  });

  it('never repeats the message of a syntax error a type raised reading a value, but keeps the parser’s own', () => {
    // Act
    const tsquery = classifyDatabaseError(pgError('42601', 'syntax error in tsquery: "alice & & bob"'));
    const jsonpath = classifyDatabaseError(
      pgError('42601', 'syntax error at or near "alice" of jsonpath input'),
    );
    const parser = classifyDatabaseError(pgError('42601', 'syntax error at or near "SELEKT"'));

    // Assess
    for (const error of [tsquery, jsonpath]) {
      expect(error.message).toBe(
        'database error 42601: a value could not be read (message withheld: it may quote row values)',
      );
    }
    expect(parser.message).toBe('syntax error at or near "SELEKT"');
  });

  it('names transient AWS failures and leaves the rest alone', () => {
    const throttled = Object.assign(new Error('slow down'), {
      name: 'SlowDown',
      $metadata: { httpStatusCode: 503 },
    });
    const denied = Object.assign(new Error('denied'), {
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    expect(classifyAwsError(throttled, 's3')).toBeInstanceOf(StorageUnavailableError);
    expect(classifyAwsError(throttled, 'dynamodb')).toBeInstanceOf(LockStoreUnavailableError);
    expect(classifyAwsError(denied, 's3')).toBe(denied);
  });

  it("names DynamoDB's throttling of a partition or of the account, answered with HTTP 400, a lock-table outage", () => {
    for (const name of ['ProvisionedThroughputExceededException', 'RequestLimitExceeded']) {
      const throttled = Object.assign(new Error('throughput exceeded'), {
        name,
        $metadata: { httpStatusCode: 400 },
      });
      expect(classifyAwsError(throttled, 'dynamodb')).toBeInstanceOf(LockStoreUnavailableError);
    }
  });
});
