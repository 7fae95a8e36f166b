import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout } from 'node:timers/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type ConnectionSettings,
  createDatabase,
  type Database,
  inReadOnlyTransaction,
  inRolledBackTransaction,
  inTransaction,
} from '../../../../lambdas/shared/database/db.js';
import { ConfigError, DatabaseUnavailableError } from '../../../../lambdas/shared/errors/step-errors.js';
import { recordProof } from '../../../support/proof-ledger.js';

function settingsOf(url: string): ConnectionSettings {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: parsed.pathname.slice(1),
  };
}

describe('TLS to the database, against a server that has none', () => {
  it.each(['verify-full', 'require'] as const)(
    'with tls %s, a server that offers no TLS is refused: nothing is sent in clear text',
    async (tls) => {
      // Prepare: the embedded test server has no certificate, so it cannot speak TLS.
      const db = createDatabase(settingsOf(inject('postgresUrl')), {
        tls,
        maxConnections: 1,
        limits: { statementTimeoutSeconds: 10, lockTimeoutSeconds: 5 },
      });

      try {
        // Act
        const attempt = db.withConnection((client) => client.query('SELECT 1'));

        // Assess: refused as a configuration problem, not a transient outage the workflow would retry, naming
        // the setting that decides it.
        await expect(attempt).rejects.toThrow(/does not support SSL connections/);
        await expect(attempt).rejects.toThrow(/tls: disable/);
        await expect(attempt).rejects.toMatchObject({ name: 'ConfigError' });
        await expect(attempt).rejects.not.toBeInstanceOf(DatabaseUnavailableError);
      } finally {
        await db.end();
      }
    },
  );

  it('connects in clear text only when the config says tls: disable', async () => {
    // Prepare
    const db = createDatabase(settingsOf(inject('postgresUrl')), {
      tls: 'disable',
      maxConnections: 1,
      limits: { statementTimeoutSeconds: 10, lockTimeoutSeconds: 5 },
    });

    try {
      // Act
      const result = await db.withConnection((client) => client.query<{ one: number }>('SELECT 1 AS one'));

      // Assess
      expect(result.rows).toEqual([{ one: 1 }]);
    } finally {
      await db.end();
    }
  });
});

describe('connection errors name the config database entry', () => {
  it('names a database the server does not have as a config error of the entry, not a raw driver error', async () => {
    // Prepare
    const db = createDatabase(
      { ...settingsOf(inject('postgresUrl')), database: 'no_such_database' },
      {
        name: 'billing',
        tls: 'disable',
        maxConnections: 1,
        limits: { statementTimeoutSeconds: 10, lockTimeoutSeconds: 5 },
      },
    );

    try {
      // Act
      const attempt = db.withConnection((client) => client.query('SELECT 1'));

      // Assess
      await expect(attempt).rejects.toBeInstanceOf(ConfigError);
      await expect(attempt).rejects.toThrow(
        /^database billing: database error 3D000: database "no_such_database" does not exist\. The credentials of database billing/,
      );
    } finally {
      await db.end();
    }
  });
});

describe('session settings behind a transaction-pooling proxy', () => {
  const limits = { statementTimeoutSeconds: 10, lockTimeoutSeconds: 5 };
  const shown = `SELECT current_setting('search_path') AS search_path, current_setting('DateStyle') AS date_style,
                        current_setting('IntervalStyle') AS interval_style, current_setting('TimeZone') AS time_zone,
                        current_setting('extra_float_digits') AS extra_float_digits,
                        current_setting('bytea_output') AS bytea_output,
                        current_setting('client_encoding') AS client_encoding,
                        current_setting('statement_timeout') AS statement_timeout`;
  const pinned = {
    search_path: 'pg_catalog, pg_temp',
    date_style: 'ISO, YMD',
    interval_style: 'postgres',
    time_zone: 'UTC',
    extra_float_digits: '1',
    bytea_output: 'hex',
    client_encoding: 'UTF8',
    statement_timeout: '10s',
  };

  it.each([
    ['RESET ALL', inTransaction],
    ['DISCARD ALL', inReadOnlyTransaction],
  ] as const)(
    'a transaction sees the pinned settings even after %s reset the session between transactions',
    async (reset, transaction) => {
      // Prepare: one pooled connection, set up by a first checkout; then its session settings are reset by another
      // code path, as a transaction-pooling proxy (PgBouncer in transaction mode, not available here) hands the
      // next transaction a server connection whose session is not the one this client set up.
      const threat = 'session settings reset between transactions (transaction pooler)';
      const db = createDatabase(settingsOf(inject('postgresUrl')), {
        tls: 'disable',
        maxConnections: 1,
        limits,
      });
      try {
        await db.withConnection((client) => client.query('SELECT 1'));
        await db.withConnection((client) => client.query(reset));

        // Act
        const seen = await db.withConnection((client) =>
          transaction(client, async () => (await client.query(shown)).rows[0]),
        );
        const outside = await db.withConnection(
          async (client) => (await client.query(shown)).rows[0] as typeof pinned,
        );

        // Assess: pinned inside the transaction; the reset session itself is not (what the proxy would give).
        recordProof({
          kind: 'threat',
          actor: 'operator',
          attack: `${threat}: ${reset}`,
          held: JSON.stringify(seen) === JSON.stringify(pinned),
        });
        expect(seen).toEqual(pinned);
        expect(outside.search_path).not.toBe(pinned.search_path);
      } finally {
        await db.end();
      }
    },
  );
});

describe('settings a database or role sets for every session (ALTER DATABASE … SET)', () => {
  const adminUrl = inject('postgresUrl');
  const name = `settings_${Date.now()}`;
  let admin: pg.Client;
  let db: Database;
  let transactionTimeout: boolean;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    // transaction_timeout exists since PostgreSQL 17.
    transactionTimeout =
      (await admin.query(`SELECT current_setting('transaction_timeout', true) AS t`)).rows[0]?.t !== null;
    for (const setting of [
      'quote_all_identifiers = on',
      'exit_on_error = on',
      'default_transaction_read_only = on',
      ...(transactionTimeout ? ["transaction_timeout = '200ms'"] : []),
    ])
      await admin.query(`ALTER DATABASE ${name} SET ${setting}`);
    db = createDatabase(settingsOf(adminUrl.replace(/\/[^/]*$/, `/${name}`)), {
      tls: 'disable',
      maxConnections: 1,
      limits: { statementTimeoutSeconds: 10, lockTimeoutSeconds: 5 },
    });
  });

  afterAll(async () => {
    await db?.end();
    await admin?.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin?.end();
  });

  it('pins quote_all_identifiers and exit_on_error off, and transaction_timeout where the server has it', async () => {
    // Act
    const seen = await db.withConnection((client) =>
      inReadOnlyTransaction(client, async () => {
        // Longer than the database's transaction_timeout, which would end the session.
        await client.query('SELECT pg_sleep(0.4)');
        return (
          await client.query(`SELECT current_setting('quote_all_identifiers') AS quote_all_identifiers,
                                     current_setting('exit_on_error') AS exit_on_error,
                                     current_setting('transaction_timeout', true) AS transaction_timeout,
                                     format_type('jsonb'::regtype, NULL) AS type_name`)
        ).rows[0];
      }),
    );

    // Assess
    expect(seen).toEqual({
      quote_all_identifiers: 'off',
      exit_on_error: 'off',
      transaction_timeout: transactionTimeout ? '0' : null,
      type_name: 'jsonb',
    });
  });

  it('keeps the session after an error a savepoint takes back, as restore does after a refused COPY', async () => {
    // Act
    const after = await db.withConnection((client) =>
      inRolledBackTransaction(client, async () => {
        await client.query('SAVEPOINT archive');
        await client.query('SELECT 1 / 0').catch(() => undefined);
        await client.query('ROLLBACK TO SAVEPOINT archive');
        return (await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one;
      }),
    );

    // Assess
    expect(after).toBe(1);
  });

  it('writes in its transactions although the database makes transactions read-only by default', async () => {
    // Act
    await db.withConnection((client) =>
      inTransaction(client, async () => {
        await client.query('CREATE TABLE public.written (n int)');
        await client.query('INSERT INTO public.written VALUES (1)');
      }),
    );

    // Assess
    expect((await db.withConnection((client) => client.query('SELECT n FROM public.written'))).rows).toEqual([
      { n: 1 },
    ]);
  });

  it('names a write refused as read-only: the host is a standby, or the database or role is read-only', async () => {
    // Act: a write where the server allows none, as on a hot standby.
    const attempt = db.withConnection((client) =>
      inReadOnlyTransaction(client, () => client.query('INSERT INTO public.written VALUES (2)')),
    );

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(ConfigError);
    await expect(attempt).rejects.toThrow(
      /database error 25006: .* The database is read-only for the archiver: the host is a hot standby/,
    );
  });
});

describe('a statement ended by 57014, timed on the clock the database is given', () => {
  it.each([
    ['a query', 10_000, 'StatementTimeoutError'],
    ['a query', 9_000, 'DatabaseUnavailableError'],
    ['a COPY TO', 10_000, 'StatementTimeoutError'],
    ['a COPY TO', 9_000, 'DatabaseUnavailableError'],
  ] as const)(
    '%s that ran %i ms of a 10 s statement_timeout ends as %s, whatever the message says',
    async (kind, ranMs, name) => {
      // Prepare: a real cancel (PostgreSQL's timers do not fire under faketime) while the injected clock moves by
      // `ranMs`; a server in another language words a timeout and a cancel alike unknown.
      let clock = 0;
      const db = createDatabase(settingsOf(inject('postgresUrl')), {
        tls: 'disable',
        maxConnections: 1,
        limits: { statementTimeoutSeconds: 10, lockTimeoutSeconds: 5 },
        now: () => clock,
      });
      const admin = new pg.Client(inject('postgresUrl'));
      await admin.connect();
      try {
        // Act
        const attempt = db.withConnection(async (client) => {
          const { pid } =
            (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0] ?? {};
          const sleep = 'SELECT pg_sleep(60)';
          const statement =
            kind === 'a query'
              ? client.query(sleep)
              : pipeline(
                  client.query(copyTo(`COPY (${sleep}) TO STDOUT`)),
                  new Writable({ write: (_, __, next) => next() }),
                );
          // Its error is awaited after the cancel returns, and may come before.
          const ended = statement.then(
            () => undefined,
            (error: unknown) => error,
          );
          for (let waited = 0; ; waited++) {
            const active = await admin.query(
              "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep(60)%'",
              [pid],
            );
            if (active.rowCount) break;
            if (waited > 200) throw new Error('setup: the statement never ran');
            await setTimeout(25);
          }
          clock += ranMs;
          await admin.query('SELECT pg_cancel_backend($1)', [pid]);
          throw (await ended) ?? new Error('setup: the statement was not cancelled');
        });

        // Assess
        await expect(attempt).rejects.toMatchObject({
          name,
          message: expect.stringMatching(/database error 57014/),
        });
      } finally {
        await admin.end();
        await db.end();
      }
    },
  );
});
