import { describe, expect, it } from 'vitest';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import { COLUMN_CHANGES } from '../support/column-changes.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * A migration during a run (the threat model's operator), after export and before the delete (COLUMN_CHANGES).
 */
describe('a migration between export and delete', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      for (const { table, ddl } of COLUMN_CHANGES) {
        await seedEvents(db.client, table, 400);
        // The rows as the migration leaves them, what table and archives must hold together afterwards.
        await db.client.query(`CREATE TABLE public.${table}_expected (LIKE public.${table} INCLUDING ALL);
          INSERT INTO public.${table}_expected SELECT * FROM public.${table};
          ALTER TABLE public.${table}_expected ${ddl}`);
      }
    },
    COLUMN_CHANGES.map(({ table }) => spec(table)),
  );

  it.each(COLUMN_CHANGES)(
    '$ddl: the batch is taken back, and every row is archived with every column as it is now',
    async ({ table: name, ddl }) => {
      // Prepare: the migration runs once the first batch's first object is published, before verify and delete.
      const table = resolvedTable(spec(name));
      const expected = await tableLines(bed.db.client, resolvedTable(spec(`${name}_expected`)));
      let migrated = false;
      const fault = async (point: FaultPoint) => {
        if (point !== 'upload:afterManifest' || migrated) return;
        migrated = true;
        await bed.db.client.query(`ALTER TABLE public.${name} ${ddl}`);
      };

      // Act
      const run = await runLocalArchive(
        bed.local,
        { tables: [`public.${name}`] },
        { fault, retryIntervalScale: 0 },
      );

      // Assess: no archive without the column's values is live; the table and the archives hold every row once.
      const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, expected).catch(
        (error: Error) => error,
      );
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `a migration between export and delete (${ddl.split(' ').slice(0, 2).join(' ')})`,
        held: migrated && run.execution.status === 'SUCCEEDED' && !(counts instanceof Error),
      });
      if (counts instanceof Error) throw counts;
      expect(migrated).toBe(true);
      expect(run.execution.status).toBe('SUCCEEDED');
      expect(counts.inArchives).toBeGreaterThan(0);
    },
  );
});
