import { describe, expect, inject, it } from 'vitest';
import {
  type ConnectionSettings,
  createDatabase,
  inReadOnlyTransaction,
  inTransaction,
} from '../../../../lambdas/shared/database/db.js';
import { DatabaseUnavailableError } from '../../../../lambdas/shared/errors/step-errors.js';
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
