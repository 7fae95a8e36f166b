import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { planRestore } from '../../../lambdas/restore-plan/core.js';
import { TableNotUsableError } from '../../../lambdas/shared/errors/step-errors.js';
import { createTarget } from '../../../lambdas/shared/restore/create-target.js';
import { RestoreRequestSchema } from '../../../lambdas/shared/restore/restore-task.js';
import { runLocalArchive } from '../../../local/run.js';
import { archiverTestbed, restoreTaskOf, seedEvents } from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';

/**
 * Two restores into the same table that does not exist yet: both plans find it missing and create it. The one whose
 * CREATE comes second restores into the table the first created, instead of failing on the catalog's unique names.
 */
describe('a restore target another restore creates meanwhile', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'events', 60, 36),
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );
  beforeAll(async () => {
    const archived = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    if (archived.execution.status !== 'SUCCEEDED') throw new Error('archiving failed');
  });

  const exists = async (name: string) =>
    (await bed.db.client.query('SELECT to_regclass($1) IS NOT NULL AS e', [`public.${name}`])).rows[0]?.e;

  it('plans into the table whose uncommitted CREATE its own CREATE waited on', async () => {
    // Prepare: the other restore's plan has created the target, not yet committed.
    const other = new pg.Client({ connectionString: bed.db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('CREATE TABLE public.copy_waiting (LIKE public.events INCLUDING ALL)');

      // Act: this plan finds no target, and its CREATE waits on the other's until that commits.
      const request = RestoreRequestSchema.parse({
        database: 'app',
        table: 'public.events',
        targetTable: 'public.copy_waiting',
      });
      const planned = planRestore('r-waiting', request, bed.local.deps());
      planned.catch(() => undefined);
      await Promise.race([
        waitForLockWait(bed.db.client, bed.db.name),
        planned.then(() => {
          throw new Error('the plan did not wait on the other CREATE');
        }),
      ]);
      await other.query('COMMIT');

      // Assess
      const outcome = await planned.then(
        (plan) => plan.targetCreated,
        () => undefined,
      );
      recordProof({
        kind: 'threat',
        actor: 'execution starter',
        attack: 'starts two restores into the same new target at once',
        held: outcome === false,
      });
      await expect(planned).resolves.toMatchObject({ targetCreated: false, archives: expect.any(Number) });
    } finally {
      await other.end();
    }
  });

  it('createTarget creates nothing and leaves the transaction usable when the name was committed meanwhile', async () => {
    // Prepare: created (and committed) after the caller found it missing.
    await bed.db.client.query('CREATE TABLE public.copy_committed (LIKE public.events INCLUDING ALL)');

    // Act: in a session of its own, which the failure this guards against would leave in an aborted transaction.
    const session = new pg.Client({ connectionString: bed.db.url });
    await session.connect();
    let created: boolean | undefined;
    let usable: pg.QueryResult | undefined;
    try {
      await session.query('BEGIN');
      created = await createTarget(session, restoreTaskOf('events', 'copy_committed'));
      usable = await session.query('SELECT 1 AS one');
      await session.query('COMMIT');
    } finally {
      await session.end();
    }

    // Assess
    expect(created).toBe(false);
    expect(usable?.rows).toEqual([{ one: 1 }]);
    expect(await exists('copy_committed')).toBe(true);
  });

  it('refuses, saying why, a new target whose name a type that is no table takes', async () => {
    // Prepare: the name taken as another restore's committed CREATE would take it between its two checks (42710).
    await bed.db.client.query(`CREATE TYPE public.copy_typed AS ENUM ('a')`);
    const request = RestoreRequestSchema.parse({
      database: 'app',
      table: 'public.events',
      targetTable: 'public.copy_typed',
    });

    // Act
    const planned = planRestore('r-typed', request, bed.local.deps());

    // Assess
    await expect(planned).rejects.toThrow(TableNotUsableError);
    await expect(planned).rejects.toThrow(
      'restore target "public"."copy_typed" in database app could not be created: a type of that name exists, and it is no table',
    );
  });
});

/** Waits until a session of `database` waits on a lock (another's uncommitted catalog rows). */
async function waitForLockWait(client: pg.Client, database: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const waiting = await client.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`,
      [database],
    );
    if (waiting.rows[0]?.n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('no session waited on a lock');
}
