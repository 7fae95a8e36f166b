import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { batchThrough } from '../support/batch-stages.js';
import { archiverTestbed, TODAY_UTC_SQL } from '../support/fixtures.js';
import { interceptedAt } from '../support/intercepted.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * Delete refuses a table whose partitions carry a trigger that fires on DELETE, and restore one whose partitions carry
 * one that fires on INSERT; each checks under a lock held to COMMIT, so a trigger added meanwhile waits. ATTACH
 * PARTITION takes only SHARE UPDATE EXCLUSIVE on the partitioned table, which the ROW EXCLUSIVE lock those writes
 * take lets through: a partition that already carried such a trigger joined after the check. A delete then committed
 * what a soft-delete trigger did to another table; a restore wrote rows a trigger restamped.
 *
 * Here another session attaches such a partition while each runs (the delete asking for its transaction id, just
 * before its DELETE; the restore opening its first archive's savepoint). Each describes its table again before COMMIT,
 * refuses it by the trigger and rolls back what the trigger did.
 */
const OLD = `${TODAY_UTC_SQL} - interval '40 days'`;
const ZERO = { batches: 0, rows: 0, bytes: 0 };
const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

describe('a partition carrying a trigger, attached while a delete or a restore writes', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.unrelated (id int PRIMARY KEY);
        INSERT INTO public.unrelated SELECT generate_series(1, 10);
        CREATE FUNCTION public.soft_delete() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN DELETE FROM public.unrelated; RETURN NULL; END $$;
        CREATE FUNCTION public.restamp() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN NEW.v := 'stamped'; RETURN NEW; END $$;`);
      for (const name of ['deleted', 'restored']) {
        await db.client.query(`
          CREATE TABLE public.${name} (id int NOT NULL, region text NOT NULL, created_at timestamptz NOT NULL, v text,
            PRIMARY KEY (id, region)) PARTITION BY LIST (region);
          CREATE TABLE public.${name}_eu PARTITION OF public.${name} FOR VALUES IN ('eu');
          INSERT INTO public.${name} SELECT g, 'eu', ${OLD} + g * interval '1 minute', 'v' || g FROM generate_series(1, 20) g;
          CREATE TABLE public.${name}_late (LIKE public.${name} INCLUDING ALL);`);
      }
      await db.client.query(`
        INSERT INTO public.deleted_late VALUES (5, 'late', ${OLD} + interval '5 minutes', 'late');
        CREATE TRIGGER soft BEFORE DELETE ON public.deleted_late FOR EACH ROW EXECUTE FUNCTION public.soft_delete();
        CREATE TRIGGER restamp BEFORE INSERT ON public.restored_late FOR EACH ROW EXECUTE FUNCTION public.restamp();`);
    },
    [spec('deleted'), spec('restored')],
  );

  /** The ATTACH, from another session. */
  async function attach(table: string): Promise<void> {
    const session = new pg.Client({ connectionString: bed.db.url });
    await session.connect();
    try {
      await session.query(
        `ALTER TABLE public.${table} ATTACH PARTITION public.${table}_late FOR VALUES IN ('late')`,
      );
    } finally {
      await session.end();
    }
  }

  it('a delete: refused by the trigger before COMMIT, nothing deleted and nothing the trigger did kept', async () => {
    // Prepare
    const deps = bed.local.deps();
    const { task } = await batchThrough(deps, 'public.deleted', 'verified');
    const racing = interceptedAt(deps, /pg_current_xact_id/, () => attach('deleted'));

    // Act
    const refused = await deleteBatch({ ...task, progress: ZERO }, racing).catch((error: Error) => error);

    // Assess: the soft-delete trigger fired in the delete's transaction, which rolled back.
    const unrelated = await bed.db.client.query('SELECT count(*)::int AS n FROM public.unrelated');
    const left = await bed.db.client.query(
      `SELECT count(*)::int AS n FROM public.deleted WHERE region = 'eu'`,
    );
    const { inFlight } = await deps.locks.get('app', 'public.deleted');
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'attaches a partition carrying a DELETE trigger while a delete runs',
      held: refused instanceof Error && unrelated.rows[0]?.n === 10 && left.rows[0]?.n === 20,
    });
    expect(refused).toMatchObject({
      name: 'TableNotUsableError',
      message: expect.stringMatching(/trigger "soft" on public\.deleted_late/),
    });
    expect(unrelated.rows[0]?.n).toBe(10);
    expect(left.rows[0]?.n).toBe(20);
    expect(inFlight?.stage).toBe('verified');
  });

  it('a restore: the group is refused by the trigger before COMMIT, and no restored row is restamped', async () => {
    // Prepare: the table archived.
    const archived = await runLocalArchive(
      bed.local,
      { tables: ['public.restored'] },
      { retryIntervalScale: 0 },
    );
    expect(archived.execution.status).toBe('SUCCEEDED');
    const racing = (deps: StepDeps) =>
      interceptedAt(deps, /^SAVEPOINT audit_archiver_archive/, () => attach('restored'));

    // Act
    const restore = await runLocalRestore(
      bed.local,
      { database: 'app', table: { schema: 'public', name: 'restored' } },
      { retryIntervalScale: 0, deps: racing },
    );

    // Assess
    const written = await bed.db.client.query(
      `SELECT count(*) FILTER (WHERE v = 'stamped')::int AS stamped, count(*)::int AS n FROM public.restored`,
    );
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'attaches a partition carrying an INSERT trigger while a restore writes',
      held: written.rows[0]?.stamped === 0,
    });
    expect(restore.execution.status).toBe('FAILED');
    expect(restore.results.map((r) => r.error)).toContainEqual(
      expect.stringMatching(/^TableNotUsableError: .*restamp/),
    );
    expect(written.rows[0]).toEqual({ stamped: 0, n: 0 });
  });
});
