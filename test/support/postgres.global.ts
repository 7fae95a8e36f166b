import type { TestProject } from 'vitest/node';
import { type PostgresVersion, startLocalPostgres } from '../../local/postgres.js';
import { compileTestLocales } from './locales.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
    postgresVersion: number;
  }
}

/** One embedded PostgreSQL per project; every test file makes its own database in it. */
export function postgresGlobalSetup(version: PostgresVersion) {
  return async (project: TestProject) => {
    // Test files run side by side in one cluster, and the fleet test alone holds up to 2 pooled connections in each
    // of its 100 databases. The tests kill clients, backends and connections, never the machine under the server, so
    // flushing to disk proves nothing here and costs minutes (the fleet's 100 CREATE DATABASE, every COMMIT); the
    // benchmark's server keeps PostgreSQL's defaults.
    const locales = await compileTestLocales();
    const server = await startLocalPostgres(version, {
      maxConnections: 400,
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
      // The system's own locales stay reachable after the test ones.
      ...(locales ? { env: { LOCPATH: `${locales.dir}:/usr/lib/locale` } } : {}),
    });
    project.provide('postgresUrl', server.url());
    project.provide('postgresVersion', version);
    return async () => {
      await server.stop();
      locales?.remove();
    };
  };
}
