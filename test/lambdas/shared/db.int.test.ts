import { describe, expect, inject, it } from 'vitest';
import { type ConnectionSettings, createDatabase } from '../../../lambdas/shared/db.js';
import { DatabaseUnavailableError } from '../../../lambdas/shared/errors.js';

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

        // Assess: refused, and not as a transient outage that the workflow would retry.
        await expect(attempt).rejects.toThrow(/does not support SSL connections/);
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
