import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import type { Database } from '../../lambdas/shared/database/db.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { batchThrough } from '../support/batch-stages.js';
import { archiverTestbed, TODAY_UTC_SQL } from '../support/fixtures.js';

const ZERO = { batches: 0, rows: 0, bytes: 0 };

/** Deps whose connections run `sql` in the transaction of the first statement matching `at`, just before it. */
function settingBefore(deps: StepDeps, at: RegExp, sql: string): StepDeps {
  const wrap = (client: pg.PoolClient): pg.PoolClient =>
    new Proxy(client, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop !== 'query') return typeof value === 'function' ? value.bind(target) : value;
        return (...args: unknown[]) => {
          const run = () => (target.query as (...a: unknown[]) => unknown)(...args);
          return typeof args[0] === 'string' && at.test(args[0]) ? target.query(sql).then(run) : run();
        };
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

/**
 * A server limit met by the DELETE of a batch already exported and verified: temp_file_limit, which a database or
 * role may lower (with a small work_mem, the DELETE's RETURNING spills to a temporary file). The batch is kept in flight
 * and every run resumes it whole, whatever batchSize says now: the error must not advise a smaller batchSize.
 */
describe('a delete that meets temp_file_limit', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.events (id int PRIMARY KEY, created_at timestamptz NOT NULL, v text);
        INSERT INTO public.events SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 second', 'v' || g
          FROM generate_series(1, 5000) g;`);
    },
    [{ name: 'events', timestampColumn: 'created_at' }],
    { defaults: { batchSize: 5000 } },
  );

  it('fails naming temp_file_limit, without advising a smaller batchSize, nothing deleted', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task } = await batchThrough(deps, 'public.events', 'verified');
    const limited = settingBefore(
      deps,
      /^WITH deleted AS \(DELETE/,
      "SET LOCAL work_mem = '64kB'; SET LOCAL temp_file_limit = 0",
    );

    // Act
    const error = await deleteBatch({ ...task, progress: ZERO }, limited).catch((thrown: Error) => thrown);

    // Assess
    const left = await bed.db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM public.events');
    expect(left.rows[0]?.n).toBe(5000);
    expect(error).toMatchObject({ name: 'ConfigError', message: expect.stringMatching(/temp_file_limit/) });
    expect((error as Error).message).not.toMatch(/lower the table's batchSize/);
  });
});
