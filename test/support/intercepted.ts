import type pg from 'pg';
import type { Database } from '../../lambdas/shared/database/db.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';

/**
 * Sends, or does not, one statement of the functions: given its connection, `query`'s arguments and the call that
 * sends it, it returns what `query` would (a COPY's stream synchronously, a promise otherwise).
 */
export type StatementInterceptor = (client: pg.PoolClient, args: unknown[], send: () => unknown) => unknown;

/** Deps whose database connections hand every statement to `intercept`. */
export function interceptingStatements(deps: StepDeps, intercept: StatementInterceptor): StepDeps {
  const wrap = (client: pg.PoolClient): pg.PoolClient =>
    new Proxy(client, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop !== 'query') return typeof value === 'function' ? value.bind(target) : value;
        return (...args: unknown[]) =>
          intercept(target, args, () => (target.query as (...a: unknown[]) => unknown)(...args));
      },
    });
  return {
    ...deps,
    async database(name) {
      const inner = await deps.database(name);
      return {
        ...inner,
        withConnection: (work) => inner.withConnection((client) => work(wrap(client))),
      } satisfies Database;
    },
  };
}

/** A statement's SQL, from `query`'s first argument (a COPY stream carries it too); undefined for none. */
export const statementText = (statement: unknown): string | undefined =>
  typeof statement === 'string' ? statement : (statement as { text?: string } | undefined)?.text;

/**
 * Deps whose database connections run `during` once, before the first statement matching `at`; it is handed that
 * statement's connection (to run SQL in its transaction).
 */
export function interceptedAt(
  deps: StepDeps,
  at: RegExp,
  during: (client: pg.PoolClient) => Promise<unknown>,
): StepDeps {
  let done = false;
  return interceptingStatements(deps, (client, args, send) => {
    const text = statementText(args[0]);
    if (done || !text || !at.test(text)) return send();
    done = true;
    return during(client).then(send);
  });
}
