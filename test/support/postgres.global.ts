import type { TestProject } from 'vitest/node';
import { type PostgresVersion, startLocalPostgres } from '../../local/postgres.js';

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
    // of its 100 databases.
    const server = await startLocalPostgres(version, { maxConnections: 400 });
    project.provide('postgresUrl', server.url());
    project.provide('postgresVersion', version);
    return () => server.stop();
  };
}
