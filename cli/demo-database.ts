/**
 * The demo database `npm start` left behind, started again from its persistent cluster (as `local restore --demo`
 * does) for the operator commands' --demo flag.
 */
export async function withDemoDatabase<T>(
  stateDir: string,
  work: (demo: { url: string; configPath: string }) => Promise<T>,
): Promise<T> {
  const demo = await import('../local/demo.js');
  const { startLocalPostgres } = await import('../local/postgres.js');
  const version = demo.readDemoState(stateDir).postgres;
  const server = await startLocalPostgres(version, { dataDir: demo.demoDataDir(stateDir, version) });
  try {
    const url = server.url(demo.DEMO_DATABASE);
    return await work({ url, configPath: demo.writeDemoConfig(stateDir, url) });
  } finally {
    await server.stop();
  }
}
