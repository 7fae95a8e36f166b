import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import { batchThrough } from '../support/batch-stages.js';
import { archiverTestbed, TODAY_UTC_SQL } from '../support/fixtures.js';
import { interceptedAt } from '../support/intercepted.js';

const ZERO = { batches: 0, rows: 0, bytes: 0 };

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
    const limited = interceptedAt(deps, /^WITH deleted AS \(DELETE/, (client) =>
      client.query("SET LOCAL work_mem = '64kB'; SET LOCAL temp_file_limit = 0"),
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
