import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { type LocalPostgres, type PostgresVersion, startLocalPostgres } from '../../local/postgres.js';

/**
 * A PostgreSQL server of the calling file's own, of the version its project runs, for what holds for a whole server
 * (sessions the throttle counts, synchronous_standby_names): started before the file's tests, stopped after them with
 * every client `connect` opened.
 */
export function ownServer(): {
  connect(options?: { user?: string; password?: string }): Promise<pg.Client>;
} {
  let server: LocalPostgres | undefined;
  const clients: pg.Client[] = [];
  beforeAll(async () => {
    server = await startLocalPostgres(inject('postgresVersion') as PostgresVersion);
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    await server?.stop();
  });
  return {
    async connect(options = {}) {
      if (!server) throw new Error('the server is not started');
      const url = new URL(server.url());
      if (options.user) url.username = options.user;
      if (options.password) url.password = options.password;
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      clients.push(client);
      return client;
    },
  };
}
