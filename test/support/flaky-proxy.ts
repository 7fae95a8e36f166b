import { connect, createServer, type Server, type Socket } from 'node:net';

export interface FlakyProxy {
  port: number;
  /** Resets every open connection and refuses the next `refuseNext`, like a network outage seen from the client. */
  cut(refuseNext: number): void;
  /** Takes the endpoint down for `ms`: open connections are reset, new ones refused (ECONNREFUSED), then it is back. */
  down(ms: number): Promise<void>;
  resets: () => number;
  stop(): Promise<void>;
}

/** A TCP proxy on loopback in front of a local server, whose connections a test can cut or refuse altogether. */
export async function startFlakyProxy(targetPort: number): Promise<FlakyProxy> {
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
  const port = typeof address === 'object' && address ? address.port : 0;
  let relisten: NodeJS.Timeout | undefined;
  const resetOpen = () => {
    for (const socket of open) {
      resets += 1;
      socket.resetAndDestroy();
    }
    open.clear();
  };
  return {
    port,
    cut(refuseNext) {
      refuse = refuseNext;
      resetOpen();
    },
    async down(ms) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      resetOpen();
      await closed;
      relisten = setTimeout(() => server.listen(port, '127.0.0.1'), ms);
    },
    resets: () => resets,
    stop: () =>
      new Promise((resolve) => {
        clearTimeout(relisten);
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
