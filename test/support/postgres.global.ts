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
    const server = await startLocalPostgres(version);
    project.provide('postgresUrl', server.url());
    project.provide('postgresVersion', version);
    return () => server.stop();
  };
}
