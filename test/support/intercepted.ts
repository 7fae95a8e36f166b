import type pg from 'pg';
import type { Database } from '../../lambdas/shared/database/db.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';

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
  const intercept = (client: pg.PoolClient): pg.PoolClient =>
    new Proxy(client, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop !== 'query') return typeof value === 'function' ? value.bind(target) : value;
        // Synchronous for every other statement: a COPY's query returns its stream, not a promise.
        return (...args: unknown[]) => {
          const run = () => (target.query as (...a: unknown[]) => unknown)(...args);
          const text =
            typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
          if (done || !text || !at.test(text)) return run();
          done = true;
          return during(target).then(run);
        };
      },
    });
  return {
    ...deps,
    async database(name) {
      const inner = await deps.database(name);
      return {
        ...inner,
        withConnection: (work) => inner.withConnection((client) => work(intercept(client))),
      } satisfies Database;
    },
  };
}
