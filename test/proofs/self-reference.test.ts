import { describe, expect, it } from 'vitest';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';

const day = (n: number) => `(${TODAY_UTC_SQL} - make_interval(days => ${n}))`;

/**
 * An audit table whose events point at the event that caused them: a foreign key of the table onto itself (ON DELETE
 * NO ACTION), a follow-up on a later day than its cause. PostgreSQL checks it at the end of each statement, so the
 * delete takes the batch's days in one statement: rows of a batch that reference each other go together. A row that
 * stays (younger than the cut-off) holds its cause back, as another table's reference would.
 */
describe('a foreign key of the table onto itself', () => {
  const spec = { schema: 'public', name: 'caused', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.caused (id int PRIMARY KEY, cause_id int REFERENCES public.caused (id),
                                    created_at timestamptz NOT NULL, what text NOT NULL);
        INSERT INTO public.caused VALUES
          (1, NULL, ${day(40)} + interval '23 hours', 'login'),
          (2, 1, ${day(39)} + interval '1 hour', 'follow-up the next day'),
          (3, NULL, ${day(38)}, 'logout'),
          (4, NULL, ${day(2)}, 'recent');`);
    },
    [spec],
    // One batch holds every old day.
    { defaults: { batchSize: 1000 } },
  );
  const table = resolvedTable(spec);
  /** Every row the table ever held: those in it now and those archived. */
  let original: string[] = [];

  it('archives and deletes rows of one batch that reference each other', async () => {
    // Prepare
    original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);

    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.caused'] }, { retryIntervalScale: 0 });
    const left = await bed.db.client.query(
      `SELECT count(*)::int AS n FROM public.caused WHERE created_at < ${cutoff}`,
    );

    // Assess
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(run.outcomes[0]?.error).toBeUndefined();
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(left.rows[0]?.n).toBe(0);
  });

  it('keeps a row a younger one still references, and says why without quoting a key', async () => {
    // Prepare: an old row, and a row younger than the cut-off that references it
    const before = await tableLines(bed.db.client, table);
    await bed.db.client.query(`
      INSERT INTO public.caused VALUES (5, NULL, ${day(37)}, 'old cause'), (6, 5, ${day(1)}, 'recent follow-up')`);
    const added = (await tableLines(bed.db.client, table)).filter((line) => !before.includes(line));

    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.caused'] }, { retryIntervalScale: 0 });

    // Assess: the batch rolled back; the rows are where they were
    expect(added).toHaveLength(2);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, [...original, ...added]);
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(
      /^TableNotUsableError: database error 23503: .* violates foreign key constraint "caused_cause_id_fkey" on table "caused"; rows that stay \(in that table\) still reference rows of the batch/,
    );
    expect(run.outcomes[0]?.error).not.toMatch(/\(id\)=/);
  });
});
