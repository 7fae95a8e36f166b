import type pg from 'pg';
import type { Database } from '../../lambdas/shared/database/db.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';

const textOf = (config: unknown): string =>
  typeof config === 'string' ? config : String((config as { text?: unknown } | undefined)?.text ?? '');

/**
 * The session state a transaction-pooling proxy (PgBouncer in `pool_mode = transaction`) gives a client: each
 * transaction, explicit or a lone statement, may run on another server connection, whose session settings are not
 * the ones this client set. No PgBouncer binary is available here, so the client is wrapped instead: before every
 * transaction it starts, `RESET ALL` puts the server connection's settings back to the database's defaults, which is
 * what a server connection handed over by the proxy would have at best.
 */
function resettingBetweenTransactions(client: pg.PoolClient): pg.PoolClient {
  let inTransaction = false;
  const query = (config: unknown, ...rest: unknown[]) => {
    const text = textOf(config).trimStart().toUpperCase();
    // Queued on the same connection before the statement itself: the client sends queries in order.
    if (!inTransaction) client.query('RESET ALL').catch(() => undefined);
    if (text.startsWith('BEGIN') || text.startsWith('START TRANSACTION')) inTransaction = true;
    else if (text.startsWith('COMMIT') || text.startsWith('ROLLBACK')) inTransaction = false;
    return (client.query as (...args: unknown[]) => unknown)(config, ...rest);
  };
  return new Proxy(client, {
    get(target, property) {
      if (property === 'query') return query;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The functions' dependencies with every database connection behind the simulated transaction pooler. */
export function behindTransactionPooler(deps: StepDeps): StepDeps {
  return {
    ...deps,
    async database(name) {
      const database: Database = await deps.database(name);
      return {
        withConnection: (work) =>
          database.withConnection((client) => work(resettingBetweenTransactions(client))),
        end: () => database.end(),
      };
    },
  };
}
