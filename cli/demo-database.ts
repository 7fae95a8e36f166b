import type { LocalPostgres } from '../local/postgres.js';

/**
 * The demo's PostgreSQL: one persistent cluster per state dir (local/demo.ts names its data dir), created by `demo`
 * and started again by every command's --demo flag. The embedded PostgreSQL and pg load on use: only --demo needs them.
 */
export async function startDemoPostgres(stateDir: string, version: 14 | 18): Promise<LocalPostgres> {
  const { demoDataDir } = await import('../local/demo.js');
  const { startLocalPostgres } = await import('../local/postgres.js');
  return startLocalPostgres(version, { dataDir: demoDataDir(stateDir, version) });
}

/** The demo database `npm start` left behind, started again, with its config rewritten for this server's port. */
export async function withDemoDatabase<T>(
  stateDir: string,
  work: (demo: { url: string; configPath: string }) => Promise<T>,
): Promise<T> {
  const demo = await import('../local/demo.js');
  const state = demo.readDemoState(stateDir);
  const server = await startDemoPostgres(stateDir, state.postgres);
  try {
    const url = server.url(demo.DEMO_PG_DATABASE);
    return await work({ url, configPath: demo.writeDemoConfig(stateDir, url, state.database) });
  } finally {
    await server.stop();
  }
}
