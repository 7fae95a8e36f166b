import { describe, expect, it } from 'vitest';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
const CASES = [
  {
    name: 'recreated',
    ddl: `CREATE TABLE public.recreated_new (LIKE public.recreated INCLUDING ALL);
          INSERT INTO public.recreated_new SELECT * FROM public.recreated;
          ALTER SEQUENCE public.recreated_id_seq OWNED BY public.recreated_new.id;
          DROP TABLE public.recreated; ALTER TABLE public.recreated_new RENAME TO recreated`,
  },
  {
    name: 'truncated',
    ddl: `CREATE TEMP TABLE keep AS SELECT * FROM public.truncated; TRUNCATE public.truncated;
          INSERT INTO public.truncated SELECT * FROM keep; DROP TABLE keep`,
  },
  { name: 'retyped', ddl: `ALTER TABLE public.retyped ALTER COLUMN actor TYPE varchar(200)` },
  {
    // The last column dropped and added again under its name and type (no row rewritten): every row now reads the
    // new default, and the archive in flight still holds the dropped column's values under the same name.
    name: 'dropped_readded',
    ddl: `ALTER TABLE public.dropped_readded DROP COLUMN payload,
            ADD COLUMN payload jsonb NOT NULL DEFAULT '{"migrated": true}'`,
  },
] as const;

/**
 * A migration lands between a batch's verify and its delete. A table recreated, truncated and refilled, or a column
 * retyped rewrites the rows (their versions change), and a column dropped and added again under its name and type
 * changes its number in the table though no row is rewritten: each makes the delete roll back and withdraw the batch,
 * and the next run archives the rows as they are now.
 */
describe('DDL by the application between verify and delete', () => {
  const bed = archiverTestbed(
    async (db) => {
      for (const { name } of CASES) await seedEvents(db.client, name, 200);
    },
    CASES.map(({ name }) => spec(name)),
  );

  it.each(CASES)('$name: nothing lost or doubled, and the table is archived', async ({ name, ddl }) => {
    // Prepare: the DDL runs once, after verify read the batch's objects
    const cutoff = await fixedCutoffSql(bed.db.client);
    let done = false;
    let expected: string[] = [];
    const fault = async (point: FaultPoint) => {
      if (point !== 'verify:afterRead' || done) return;
      done = true;
      await bed.db.client.query(ddl);
      expected = await tableLines(bed.db.client, resolvedTable(spec(name)));
    };

    // Act
    const first = await runLocalArchive(
      bed.local,
      { tables: [`public.${name}`] },
      { fault, retryIntervalScale: 0 },
    );
    const second = await runLocalArchive(
      bed.local,
      { tables: [`public.${name}`] },
      { retryIntervalScale: 0 },
    );
    const counts = await assertNoLossNoDuplicates(
      bed.local,
      bed.db.client,
      resolvedTable(spec(name)),
      expected,
    ).catch((error: Error) => error);
    if (name === 'dropped_readded')
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: 'drops a column and adds it again under its name and type between verify and delete',
        held: !(counts instanceof Error),
      });

    // Assess
    expect(done).toBe(true);
    expect(first.outcomes[0]?.rowsArchived).toBeGreaterThan(0);
    if (counts instanceof Error) throw counts;
    expect(second.execution.status).toBe('SUCCEEDED');
    const left = (
      await bed.db.client.query(`SELECT count(*)::int AS n FROM public.${name} WHERE created_at < ${cutoff}`)
    ).rows[0].n as number;
    expect(left).toBe(0);
  });
});
