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
  let lostPort: Error | undefined;
  // Another process may take the port while the endpoint is down: try again for a few seconds, then let stop() say so
  // rather than leave the test to time out on refused connections.
  const listenAgain = (attemptsLeft: number) => {
    const retry = (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' && attemptsLeft > 0) {
        relisten = setTimeout(() => listenAgain(attemptsLeft - 1), 100);
      } else {
        lostPort = new Error(`flaky proxy could not listen on port ${port} again: ${error.message}`);
      }
    };
    server.once('error', retry);
    server.listen(port, '127.0.0.1', () => server.off('error', retry));
  };
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
      relisten = setTimeout(() => listenAgain(50), ms);
    },
    resets: () => resets,
    stop: () =>
      new Promise((resolve, reject) => {
        clearTimeout(relisten);
        for (const socket of open) socket.destroy();
        server.close(() => (lostPort ? reject(lostPort) : resolve()));
      }),
  };
}
