import type pg from 'pg';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { interceptingStatements, statementText } from './intercepted.js';

/** How long a killed connection may take to tell its client: the server closes it as its backend exits. */
const NOTICE_MS = 2_000;

/**
 * Deps whose database connections are ended by the server at the `nth` statement the functions send (counted across
 * every connection of the execution, from 1), once: `admin` terminates that statement's backend. Before a statement
 * with a promise, the backend has exited and its client has heard of it (or NOTICE_MS passed) when the statement is
 * sent; a COPY, whose stream must be handed back at once, is sent first and its backend ended as it starts. `ended`
 * gives the statement once its backend exited.
 */
export function connectionEndedAt(
  nth: number,
  admin: pg.Client,
): { deps: (deps: StepDeps) => StepDeps; ended: () => string | undefined } {
  let sent = 0;
  let ended: string | undefined;
  /** Ends the connection's backend and waits for it to exit; the statement is recorded only once it has. */
  const end = async (client: pg.PoolClient, statement: unknown) => {
    const pid = (client as unknown as { processID: number | null }).processID;
    const { rows } = await admin.query<{ ended: boolean | null }>(
      'SELECT pg_catalog.pg_terminate_backend($1, 10000) AS ended',
      [pid],
    );
    if (rows[0]?.ended) ended = statementText(statement) ?? 'a submitted statement';
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
        if (typeof (args[0] as { submit?: unknown }).submit === 'function') {
          const stream = send();
          // A failure here leaves `ended` unset, which the sweep reports.
          end(client, args[0]).catch(() => undefined);
          return stream;
        }
        const gone = noticed(client);
        return end(client, args[0])
          .then(() => gone)
          .then(send);
      }),
  };
}
