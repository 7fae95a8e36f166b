import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback in front of a local server, whose connections a test can cut: `cut(n)` resets every open
 * connection and refuses the next `n`, like a network outage seen from the client.
 */
export async function startFlakyProxy(
  targetPort: number,
): Promise<{ port: number; cut(refuseNext: number): void; resets: () => number; stop(): Promise<void> }> {
  const open = new Set<Socket>();
  let refuse = 0;
  let resets = 0;
  const server: Server = createServer((client) => {
    client.on('error', () => undefined);
    if (refuse > 0) {
      refuse -= 1;
      resets += 1;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    const drop = () => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    cut(refuseNext) {
      refuse = refuseNext;
      for (const socket of open) {
        resets += 1;
        socket.resetAndDestroy();
      }
      open.clear();
    },
    resets: () => resets,
    stop: () =>
      new Promise((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
