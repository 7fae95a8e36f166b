import type pg from 'pg';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { interceptingStatements, statementText } from './intercepted.js';

/** How long a killed connection may take to tell its client: the server closes it as its backend exits. */
const NOTICE_MS = 2_000;

/**
 * Deps whose database connections are ended by the server at the `nth` statement the functions send (counted across
 * every connection of the execution, from 1), once: `admin` terminates that statement's backend. Before a statement
 * with a promise, the backend is gone and its client has noticed when the statement is sent (the driver refuses it
 * on a connection it knows is broken); a COPY, whose stream must be handed back at once, is sent first and its backend
 * ended while it runs.
 */
export function connectionEndedAt(
  nth: number,
  admin: pg.Client,
): { deps: (deps: StepDeps) => StepDeps; ended: () => string | undefined } {
  let sent = 0;
  let ended: string | undefined;
  const end = async (client: pg.PoolClient) => {
    const pid = (client as unknown as { processID: number | null }).processID;
    await admin.query('SELECT pg_catalog.pg_terminate_backend($1, 10000)', [pid]);
  };
  const noticed = (client: pg.PoolClient) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        client.off('error', done);
        client.off('end', done);
        resolve();
      };
      const timer = setTimeout(done, NOTICE_MS);
      client.once('error', done);
      client.once('end', done);
    });
  return {
    ended: () => ended,
    deps: (deps) =>
      interceptingStatements(deps, (client, args, send) => {
        if (++sent !== nth) return send();
        ended = (statementText(args[0]) ?? 'a submitted statement').replace(/\s+/g, ' ').slice(0, 100);
        if (typeof (args[0] as { submit?: unknown }).submit === 'function') {
          const stream = send();
          void end(client);
          return stream;
        }
        const gone = noticed(client);
        return end(client)
          .then(() => gone)
          .then(send);
      }),
  };
}
