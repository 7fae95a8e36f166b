import type pg from 'pg';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { interceptingStatements, statementText } from './intercepted.js';

/** How long a killed connection may take to tell its client: the server closes it as its backend exits. */
const NOTICE_MS = 2_000;

/** A statement's kind: its text with what varies between executions left out (see the sweep's statementKind). */
export type KindOf = (statement: unknown) => string;

/**
 * Where each statement is in the steps' code, told from the statements alone: the kind of the statement before it on
 * the same connection, and its own (a COMMIT after a DELETE is not one after a COPY). Per connection, so statements of
 * others running meanwhile do not change it.
 */
export function statementPlaces(kindOf: KindOf): (client: pg.PoolClient, statement: unknown) => string {
  const previous = new WeakMap<pg.PoolClient, string>();
  return (client, statement) => {
    const kind = kindOf(statement);
    const place = `${previous.get(client) ?? '(first)'} -> ${kind}`;
    previous.set(client, kind);
    return place;
  };
}

/**
 * Deps whose database connections are ended by the server at the first statement the functions send at `place`
 * (statementPlaces): `admin` terminates that statement's backend. Before a statement with a promise, the backend has
 * exited and its client has heard of it (or NOTICE_MS passed) when the statement is sent; a COPY, whose stream must be
 * handed back at once, is sent first and its backend ended as it starts. `ended` gives the statement once its backend
 * exited.
 */
export function connectionEndedAt(
  place: string,
  kindOf: KindOf,
  admin: pg.Client,
): { deps: (deps: StepDeps) => StepDeps; ended: () => string | undefined } {
  const placeOf = statementPlaces(kindOf);
  let reached = false;
  let ended: string | undefined;
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
        if (placeOf(client, args[0]) !== place || reached) return send();
        reached = true;
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
