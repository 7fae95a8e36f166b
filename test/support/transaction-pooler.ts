import pg from 'pg';

import type { Database } from '../../lambdas/shared/database/db.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';

const textOf = (config: unknown): string =>
  typeof config === 'string' ? config : String((config as { text?: unknown } | undefined)?.text ?? '');

/**
 * Whether a statement starts on a connection the proxy may have swapped: one sent outside a transaction. Fed each
 * statement in order, it follows BEGIN and COMMIT/ROLLBACK (a ROLLBACK TO SAVEPOINT stays inside).
 */
function transactionTracker(): (config: unknown) => boolean {
  let inTransaction = false;
  return (config) => {
    const text = textOf(config).trimStart().toUpperCase();
    const swapped = !inTransaction;
    if (text.startsWith('BEGIN') || text.startsWith('START TRANSACTION')) inTransaction = true;
    else if (text.startsWith('COMMIT') || (text.startsWith('ROLLBACK') && !text.startsWith('ROLLBACK TO')))
      inTransaction = false;
    return swapped;
  };
}

/**
 * The session state a transaction-pooling proxy (PgBouncer in `pool_mode = transaction`) gives a client: each
 * transaction, explicit or a lone statement, may run on another server connection, whose session settings are not
 * the ones this client set. No PgBouncer binary is available here, so the client is wrapped instead: before every
 * transaction it starts, `RESET ALL` puts the server connection's settings back to the database's defaults, which is
 * what a server connection handed over by the proxy would have at best.
 */
function resettingBetweenTransactions(client: pg.PoolClient): pg.PoolClient {
  const swapped = transactionTracker();
  const query = (config: unknown, ...rest: unknown[]) => {
    // Queued on the same connection before the statement itself: the client sends queries in order.
    if (swapped(config)) client.query('RESET ALL').catch(() => undefined);
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

/**
 * Every pg.Client made until the returned function is called, but `except`, behind the simulated pooler: for the
 * commands (doctor, cost, wizard) that open their own client, which no dependency hands them. Patches the prototype.
 */
export function everyClientBehindTransactionPooler(except: pg.Client): () => void {
  const original = pg.Client.prototype.query;
  const trackers = new WeakMap<pg.Client, (config: unknown) => boolean>();
  pg.Client.prototype.query = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
    const call = (...args: unknown[]) => (original as (...a: unknown[]) => unknown).apply(this, args);
    if (this === except || textOf(config) === 'RESET ALL') return call(config, ...rest);
    const swapped = trackers.get(this) ?? transactionTracker();
    trackers.set(this, swapped);
    if (swapped(config)) (call('RESET ALL') as Promise<unknown>).catch(() => undefined);
    return call(config, ...rest);
  } as typeof original;
  return () => {
    pg.Client.prototype.query = original;
  };
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
