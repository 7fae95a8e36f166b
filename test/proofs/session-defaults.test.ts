import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import { batchThrough } from '../support/batch-stages.js';
import { archiverTestbed, TODAY_UTC_SQL } from '../support/fixtures.js';
import { interceptedAt } from '../support/intercepted.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * A database (or the archiver's role) whose default_transaction_isolation is repeatable read or serializable, as an
 * operator may set for the application. The delete locks the table, then describes it again so that a foreign key or
 * trigger added meanwhile is seen; under a transaction snapshot the second look reads the catalog as the
 * transaction's first statement saw it. Another session adds an ON DELETE CASCADE foreign key from a table of notes
 * between the two: the DELETE then fired it, and the notes, which no archive holds, were deleted with the batch.
 */
const OLD = `${TODAY_UTC_SQL} - interval '40 days'`;
const ZERO = { batches: 0, rows: 0, bytes: 0 };

describe.each(['repeatable read', 'serializable'])(
  'a database whose default isolation is %s',
  (isolation) => {
    const bed = archiverTestbed(
      async (db) => {
        await db.client.query(
          `ALTER DATABASE ${pg.escapeIdentifier(db.name)} SET default_transaction_isolation = ${pg.escapeLiteral(isolation)}`,
        );
        await db.client.query(`
        CREATE TABLE public.events (id int PRIMARY KEY, created_at timestamptz NOT NULL, v text);
        INSERT INTO public.events SELECT g, ${OLD} + g * interval '1 minute', 'v' || g FROM generate_series(1, 20) g;
        CREATE TABLE public.notes (id int PRIMARY KEY, event_id int NOT NULL, body text);
        INSERT INTO public.notes SELECT g, g, 'note ' || g FROM generate_series(1, 20) g;`);
      },
      [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
    );

    it('a cascading foreign key added while the delete takes its lock: refused, no note deleted, no event either', async () => {
      // Prepare: a verified batch, and another session that adds the foreign key just before the delete's LOCK.
      const deps = bed.local.deps();
      const { task } = await batchThrough(deps, 'public.events', 'verified');
      const racing = interceptedAt(deps, /^LOCK TABLE/, async () => {
        const session = new pg.Client({ connectionString: bed.db.url });
        await session.connect();
        try {
          await session.query(
            'ALTER TABLE public.notes ADD FOREIGN KEY (event_id) REFERENCES public.events ON DELETE CASCADE',
          );
        } finally {
          await session.end();
        }
      });

      // Act
      const refused = await deleteBatch({ ...task, progress: ZERO }, racing).catch((error: Error) => error);

      // Assess
      const counts = await bed.db.client.query(
        `SELECT (SELECT count(*) FROM public.notes)::int AS notes, (SELECT count(*) FROM public.events)::int AS events`,
      );
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `adds an ON DELETE CASCADE foreign key while a delete takes its lock, the database's default isolation ${isolation}`,
        held: counts.rows[0]?.notes === 20,
      });
      expect(counts.rows[0]).toEqual({ notes: 20, events: 20 });
      expect(refused).toMatchObject({
        name: 'TableNotUsableError',
        message: expect.stringMatching(
          /foreign key "notes_event_id_fkey" of public\.notes with ON DELETE CASCADE/,
        ),
      });
    });
  },
);
