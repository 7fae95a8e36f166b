import type pg from 'pg';
import type { Database } from '../../lambdas/shared/database/db.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';

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
  const intercept = (client: pg.PoolClient): pg.PoolClient =>
    new Proxy(client, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop !== 'query') return typeof value === 'function' ? value.bind(target) : value;
        return (...args: unknown[]) => {
          const run = () => (target.query as (...a: unknown[]) => unknown)(...args);
          if (++sent !== nth) return run();
          const statement = args[0] as string | { text?: string; submit?: unknown };
          const text = typeof statement === 'string' ? statement : statement.text;
          ended = (text ?? 'a submitted statement').replace(/\s+/g, ' ').slice(0, 100);
          if (typeof statement !== 'string' && typeof statement.submit === 'function') {
            const stream = run();
            void end(target);
            return stream;
          }
          const gone = noticed(target);
          return end(target)
            .then(() => gone)
            .then(run);
        };
      },
    });
  return {
    ended: () => ended,
    deps: (deps) => ({
      ...deps,
      async database(name) {
        const inner = await deps.database(name);
        return {
          ...inner,
          withConnection: (work) => inner.withConnection((client) => work(intercept(client))),
        } satisfies Database;
      },
    }),
  };
}
