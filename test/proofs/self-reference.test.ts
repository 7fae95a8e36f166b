import { describe, expect, it } from 'vitest';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
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

/**
 * A cause and its follow-up, both long past the cut-off, on either side of a batch boundary (batchSize 1 puts each
 * day in a batch of its own): the cause's batch cannot be deleted while its follow-up stays, and every run stops
 * there. The error says how to get past it; nothing is lost meanwhile.
 */
describe('a foreign key of the table onto itself, a cause and its follow-up in different batches', () => {
  const spec = { schema: 'public', name: 'spanning', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.spanning (id int PRIMARY KEY, cause_id int REFERENCES public.spanning (id),
                                      created_at timestamptz NOT NULL, what text NOT NULL);
        INSERT INTO public.spanning VALUES
          (1, NULL, ${day(40)} + interval '23 hours', 'login'),
          (2, 1, ${day(39)} + interval '1 hour', 'follow-up the next day'),
          (3, NULL, ${day(2)}, 'recent');`);
    },
    [spec],
    { defaults: { batchSize: 1 } },
  );

  it('keeps every row and names the remedy: a batch size that puts them in one batch', async () => {
    // Prepare
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.spanning'] }, { retryIntervalScale: 0 });

    // Assess
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(run.outcomes[0]?.error).toMatch(
      /^TableNotUsableError: .*When that table is the archived one, the referencing rows may be past the cut-off too, only beyond this batch .*raise the table's batchSize/,
    );
  });
});

/** A table keyed by id whose rows 1 and 2 (days 40 and 39) reference each other, and row 3 (day 2) is recent. */
const linkedPairSql = (name: string) => `
        CREATE TABLE public.${name} (id int PRIMARY KEY, linked_to int REFERENCES public.${name} (id),
                                    created_at timestamptz NOT NULL, what text NOT NULL);
        INSERT INTO public.${name} VALUES (1, NULL, ${day(40)}, 'entry'), (2, NULL, ${day(39)}, 'correction'),
                                         (3, NULL, ${day(2)}, 'recent');
        UPDATE public.${name} SET linked_to = 3 - id WHERE id < 3;`;

/**
 * Two archived rows that point at each other (an entry and its correction, linked both ways), on days 40 and 39: one
 * batch deletes them together, in one statement. A restore writes each archive in a transaction of its own, so each
 * row's reference is checked while the other is absent: the archive is refused naming the foreign key, and restoring
 * into a target without it brings both back.
 */
describe('a foreign key of the table onto itself, two archived rows that reference each other', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        ${linkedPairSql('linked')}
        CREATE TABLE public.linked_copy (LIKE public.linked INCLUDING ALL);`);
    },
    [{ schema: 'public', name: 'linked', timestampColumn: 'created_at' }],
    { defaults: { batchSize: 1000 } },
  );

  it('names the foreign key that refuses them, and restores them into a target without it', async () => {
    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.linked'] }, { retryIntervalScale: 0 });
    const intoTable = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.linked' },
      { retryIntervalScale: 0 },
    );
    const intoCopy = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.linked', targetTable: 'public.linked_copy' },
      { retryIntervalScale: 0 },
    );
    const copied = await bed.db.client.query<{ id: number; linked_to: number }>(
      'SELECT id, linked_to FROM public.linked_copy ORDER BY id',
    );

    // Assess
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 2 });
    for (const result of intoTable.results)
      expect(result.error).toMatch(
        /^RestoreConflictError: the target refused the archived rows: foreign key "linked_linked_to_fkey" of "public"\."linked" references a row that is not there \(SQLSTATE 23503\)/,
      );
    expect(intoCopy.execution.status).toBe('SUCCEEDED');
    expect(copied.rows).toEqual([
      { id: 1, linked_to: 2 },
      { id: 2, linked_to: 1 },
    ]);
  });
});

/**
 * The same two rows that point at each other, restored into a target whose foreign key onto itself is DEFERRABLE
 * INITIALLY DEFERRED: one group (one connection) writes both archives in one transaction, so the key holds at its
 * COMMIT though each archive alone breaks it. A target's deferred constraints are checked for the group as a whole.
 */
describe('a deferred foreign key of the target onto itself, two archived rows that reference each other', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        ${linkedPairSql('mutual')}
        CREATE TABLE public.mutual_deferred (LIKE public.mutual INCLUDING ALL,
          FOREIGN KEY (linked_to) REFERENCES public.mutual_deferred (id) DEFERRABLE INITIALLY DEFERRED);`);
    },
    [{ schema: 'public', name: 'mutual', timestampColumn: 'created_at' }],
    { defaults: { batchSize: 1000 }, maxConnections: 1 },
  );

  it('restores both archives, in the dry run too', async () => {
    // Prepare
    const run = await runLocalArchive(bed.local, { tables: ['public.mutual'] }, { retryIntervalScale: 0 });
    const request = { database: 'app', table: 'public.mutual', targetTable: 'public.mutual_deferred' };

    // Act
    const dry = await runLocalRestore(bed.local, { ...request, dryRun: true }, { retryIntervalScale: 0 });
    const real = await runLocalRestore(bed.local, request, { retryIntervalScale: 0 });
    const restored = await bed.db.client.query<{ id: number; linked_to: number }>(
      'SELECT id, linked_to FROM public.mutual_deferred ORDER BY id',
    );

    // Assess
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 2 });
    for (const result of [dry, real]) {
      expect(result.results.filter((r) => r.error)).toEqual([]);
      expect(result.execution.status).toBe('SUCCEEDED');
    }
    expect(restored.rows).toEqual([
      { id: 1, linked_to: 2 },
      { id: 2, linked_to: 1 },
    ]);
  });
});
