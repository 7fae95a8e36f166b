import { describe, expect, it } from 'vitest';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, TODAY_UTC_SQL } from '../support/fixtures.js';

const day = (n: number) => `(${TODAY_UTC_SQL} - make_interval(days => ${n}))`;

/**
 * Restore's reference path (a staging table, then INSERT … ON CONFLICT) into a partitioned table whose partitions were
 * made with PARTITION OF, as most are. PostgreSQL cannot return a system column of a row it routes into such a
 * partition ("cannot retrieve a system column in this context"), so an INSERT that returned `xmax` failed every
 * archive that took that path: one with a column of a type of the database's own (a domain here), or one whose COPY
 * met a row already there. Shape found by test/proofs/shape-fuzz.test.ts (seeds 14, 55 and 75).
 */
describe('restore into a partitioned table by the reference path', () => {
  const spec = (name: string) => ({ name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE DOMAIN public.amount AS int;
        CREATE TABLE public.parted (id int NOT NULL, created_at timestamptz NOT NULL, v public.amount,
                                    PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
        CREATE TABLE public.parted_rest PARTITION OF public.parted DEFAULT;
        INSERT INTO public.parted SELECT g, ${day(40)} + g * interval '1 hour', g FROM generate_series(1, 6) AS g;
        CREATE TABLE public.plain_parted (id int NOT NULL, created_at timestamptz NOT NULL, v int,
                                          PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
        CREATE TABLE public.plain_parted_rest PARTITION OF public.plain_parted DEFAULT;
        INSERT INTO public.plain_parted SELECT g, ${day(40)} + g * interval '1 hour', g FROM generate_series(1, 6) AS g;
        CREATE TABLE public.before_parted AS SELECT * FROM public.parted;
        CREATE TABLE public.before_plain_parted AS SELECT * FROM public.plain_parted;`);
    },
    [spec('parted'), spec('plain_parted')],
  );

  it('writes back rows with a column of a domain, which never take the COPY path', async () => {
    // Prepare
    const run = await runLocalArchive(bed.local, { tables: ['public.parted'] }, { retryIntervalScale: 0 });

    // Act
    const restore = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.parted' },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 6 });
    expect(restore.results.map((r) => r.error)).toEqual([undefined]);
    expect(restore.execution.status).toBe('SUCCEEDED');
    expect(
      await compareRows(bed.db.client, 'SELECT * FROM public.before_parted', 'SELECT * FROM public.parted'),
    ).toEqual({ rows: 6, missing: 0, extra: 0 });
  });

  it('writes back the rows missing beside one already there (its COPY refused); overwrite is refused by name', async () => {
    // Prepare: one archived row put back by hand, so the archive's COPY meets its key.
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.plain_parted'] },
      { retryIntervalScale: 0 },
    );
    await bed.db.client.query(
      'INSERT INTO public.plain_parted SELECT * FROM public.before_plain_parted WHERE id = 3',
    );

    // Act
    const skip = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.plain_parted' },
      { retryIntervalScale: 0 },
    );
    const overwrite = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.plain_parted', strategy: 'overwrite', ignoreWatermark: true },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 6 });
    expect(skip.results.map((r) => [r.error, r.inserted, r.skipped])).toEqual([[undefined, 5, 1]]);
    expect(
      await compareRows(
        bed.db.client,
        'SELECT * FROM public.before_plain_parted',
        'SELECT * FROM public.plain_parted',
      ),
    ).toEqual({ rows: 6, missing: 0, extra: 0 });
    expect(overwrite.execution.status).toBe('FAILED');
    expect(overwrite.results.map((r) => r.error)).toEqual([
      expect.stringMatching(
        /^SchemaDriftError: strategy "overwrite" cannot .*partitioned table "public"."plain_parted"/,
      ),
    ]);
  });
});
