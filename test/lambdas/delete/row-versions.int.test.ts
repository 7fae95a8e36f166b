import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../../lambdas/delete/core.js';
import { exportBatch } from '../../../lambdas/export/core.js';
import { digestBatchInDatabase } from '../../../lambdas/shared/batch/batch.js';
import { describeTable } from '../../../lambdas/shared/database/table-shape.js';
import { RowsChangedError } from '../../../lambdas/shared/errors/step-errors.js';
import type { InFlight } from '../../../lambdas/shared/lock-table/table-state.js';
import type { StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../../lambdas/shared/step/table-task.js';
import { uploadBatch } from '../../../lambdas/upload/core.js';
import { verifyBatch } from '../../../lambdas/verify/core.js';
import { runLocalArchive } from '../../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  fixtureCutoff,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../../support/fixtures.js';

/**
 * The delete's proof by row versions (table-sql.ts rowVersionSql): whatever happens to the table between export and
 * delete, the delete either rolls back (nothing deleted, the batch withdrawn as "rows changed", the next run archives
 * the rows once) or commits having deleted exactly the archived rows. Never a wrong delete.
 */

const ZERO = { batches: 0, rows: 0, bytes: 0 };
/** One day a batch: the changes below aim at the rows of that one object. */
const BATCH_ROWS = 10;
const spec = (name: string) => ({
  schema: 'public',
  name,
  timestampColumn: 'created_at',
  batchSize: BATCH_ROWS,
});
/** The five eligible days in one batch of five objects, deleted in one transaction. */
const MANY_DAYS_ROWS = 50;

/**
 * 350 rows, 10 a UTC day over the 35 days before the cut-off's day and after (5 eligible days, the first batch is ids
 * 1–10), preceded in the heap by id 0 of yesterday (never eligible): removing it lets a rewrite move every batch row
 * to another slot. `actor` is indexed and `payload` is not, and pages are half full: an UPDATE of `payload` is HOT.
 */
const rowsSql = (table: string) => `
  INSERT INTO ${table} VALUES (0, ${TODAY_UTC_SQL} - interval '1 day', 'user_0', '{"n": 0}');
  INSERT INTO ${table}
  SELECT g, ${TODAY_UTC_SQL} - interval '35 days' + (g - 1) * interval '144 minutes' + interval '1 second',
         'user_' || g % 7, jsonb_build_object('n', g)
    FROM generate_series(1, 350) AS g;`;

async function seedPlain(client: pg.Client, name: string): Promise<void> {
  await client.query(`
    CREATE TABLE public.${name} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL,
                                 payload jsonb) WITH (fillfactor = 50);
    CREATE INDEX ON public.${name} (created_at);
    CREATE INDEX ON public.${name} (actor);
    ${rowsSql(`public.${name}`)}`);
}

/**
 * Hash partitions filled by one INSERT: the n-th row of each partition is at the same ctid with the same xmin. With
 * `copy`, the same transaction writes a standalone copy of the second partition with another actor, row for row: the
 * same (ctid, xmin) pairs, other content.
 */
async function seedPartitioned(client: pg.Client, name: string, copy?: string): Promise<void> {
  await client.query(`
    CREATE TABLE public.${name} (id bigint NOT NULL, created_at timestamptz NOT NULL, actor text NOT NULL,
                                 payload jsonb, PRIMARY KEY (id)) PARTITION BY HASH (id);
    CREATE TABLE public.${name}_p0 PARTITION OF public.${name} FOR VALUES WITH (MODULUS 2, REMAINDER 0);
    CREATE TABLE public.${name}_p1 PARTITION OF public.${name} FOR VALUES WITH (MODULUS 2, REMAINDER 1);
    ${copy ? `CREATE TABLE public.${copy} (LIKE public.${name});` : ''}
    BEGIN;
    ${rowsSql(`public.${name}`)}
    ${copy ? `INSERT INTO public.${copy} SELECT id, created_at, upper(actor), payload FROM public.${name}_p1 ORDER BY ctid;` : ''}
    COMMIT;`);
}

const PLAIN = [
  'many_days_updated',
  'many_days',
  'hot_update',
  'cold_update',
  'reinserted',
  'vacuumed',
  'frozen',
  'vacuum_full',
  'clustered',
  'dumped',
  'legacy_updated',
  'legacy_vacuum_full',
];

describe('delete by row versions: every change between export and delete ends in a rollback or a correct commit', () => {
  const bed = archiverTestbed(
    async (db) => {
      for (const name of PLAIN) await seedPlain(db.client, name);
      await seedPartitioned(db.client, 'parted');
      await seedPartitioned(db.client, 'swapped', 'swapped_copy');
    },
    [
      ...PLAIN.filter((name) => !name.startsWith('many_days')).map(spec),
      ...['many_days_updated', 'many_days'].map((name) => ({ ...spec(name), batchSize: MANY_DAYS_ROWS })),
      spec('parted'),
      spec('swapped'),
    ],
  );

  const query = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> =>
    (await bed.db.client.query<T>(sql)).rows;

  /** The first batch exported, uploaded and verified by one holder of the lease. */
  async function verifiedBatch(deps: StepDeps, name: string, rows: number): Promise<TableTask> {
    const ref = `public.${name}`;
    const acquired = await deps.locks.acquire('app', ref, `exec-${name}`, 600);
    if (!acquired.acquired) throw new Error(`could not acquire ${ref}`);
    const task: TableTask = {
      runId: `exec-${name}`,
      database: 'app',
      table: ref,
      cutoff: await fixtureCutoff(deps),
      lease: acquired.lease,
    };
    expect(await exportBatch(task, deps)).toMatchObject({ status: 'exported', rows });
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    return task;
  }

  /** (ctid, xmin) of the batch's rows (ids 1–10), in id order: what a change did to their identity. */
  const identities = async (name: string) =>
    (
      await query<{ ctid: string; xmin: string }>(
        `SELECT ctid::text AS ctid, xmin::text AS xmin FROM public.${name} WHERE id BETWEEN 1 AND ${BATCH_ROWS} ORDER BY id`,
      )
    ).map((r) => `${r.ctid}/${r.xmin}`);

  /**
   * Rewrites the table (VACUUM FULL or CLUSTER) until the deleted row ahead of the batch is gone and the batch rows
   * sit in other slots. A rewrite keeps a dead row that some transaction could still see; in the full suite another
   * file's transaction can hold the horizon for a moment, so the rewrite is repeated until the row is removable.
   */
  async function rewriteUntilMoved(
    client: pg.ClientBase,
    name: string,
    rewrite: string,
    before: string[],
  ): Promise<string[]> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      await client.query(rewrite);
      const after = await identities(name);
      if (after.every((identity, i) => identity !== before[i]) || Date.now() > deadline) return after;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  /**
   * Exports and verifies the first batch, runs `change`, deletes, and checks the outcome: `rollback` (nothing deleted,
   * the batch withdrawn) or `commit` (exactly the archived rows gone). Then a run archives what is eligible, once.
   */
  async function prove(
    name: string,
    expected: 'rollback' | 'commit',
    change: (client: pg.Client) => Promise<void>,
    before?: (deps: StepDeps, task: TableTask) => Promise<void>,
    rows = BATCH_ROWS,
  ): Promise<void> {
    // Prepare
    const deps = bed.local.deps();
    const ref = `public.${name}`;
    const cutoff = await fixedCutoffSql(bed.db.client);
    const table = resolvedTable(spec(name));
    const task = await verifiedBatch(deps, name, rows);
    await before?.(deps, task);
    await change(bed.db.client);
    const original = (await tableLines(bed.db.client, table)).sort();

    // Act
    const attempt = deleteBatch({ ...task, progress: ZERO }, deps);

    // Assess
    if (expected === 'rollback') {
      await expect(attempt).rejects.toThrow(RowsChangedError);
      expect((await tableLines(bed.db.client, table)).sort()).toEqual(original);
      expect((await deps.locks.get('app', ref)).inFlight).toBeUndefined();
      expect(await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original)).toEqual({
        inDatabase: original.length,
        inArchives: 0,
      });
    } else {
      expect((await attempt).rowsDeleted).toBe(rows);
      expect(await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original)).toEqual({
        inDatabase: original.length - rows,
        inArchives: rows,
      });
    }
    await deps.locks.release('app', ref, task.lease);
    const rerun = await runLocalArchive(bed.local, { tables: [ref] }, { retryIntervalScale: 0 });
    expect(rerun.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    const left = await query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${ref} WHERE created_at < ${cutoff}`,
    );
    expect(left[0]?.n).toBe(0);
  }

  it('a batch of five days, one object each, deleted in one transaction: commit', async () => {
    await prove('many_days', 'commit', async () => {}, undefined, MANY_DAYS_ROWS);
  });

  it('an UPDATE of one row on the last day of a five-day batch: the one transaction rolls back every day', async () => {
    await prove(
      'many_days_updated',
      'rollback',
      async (client) => {
        await client.query(`UPDATE public.many_days_updated SET payload = '{"edited": 1}' WHERE id = 45`);
      },
      undefined,
      MANY_DAYS_ROWS,
    );
  });

  it('an UPDATE of a row that is HOT (non-indexed column, room on the page): rollback', async () => {
    await prove('hot_update', 'rollback', async (client) => {
      await client.query('BEGIN');
      await client.query(`UPDATE public.hot_update SET payload = payload || '{"edited": 1}' WHERE id = 5`);
      const hot = await client.query<{ n: string }>(
        `SELECT pg_stat_get_xact_tuples_hot_updated('public.hot_update'::regclass)::text AS n`,
      );
      await client.query('COMMIT');
      expect(hot.rows[0]?.n).toBe('1');
    });
  });

  it('an UPDATE of a row that is not HOT (indexed column): rollback', async () => {
    await prove('cold_update', 'rollback', async (client) => {
      await client.query('BEGIN');
      await client.query(`UPDATE public.cold_update SET actor = 'someone_else' WHERE id = 5`);
      const hot = await client.query<{ n: string }>(
        `SELECT pg_stat_get_xact_tuples_hot_updated('public.cold_update'::regclass)::text AS n`,
      );
      await client.query('COMMIT');
      expect(hot.rows[0]?.n).toBe('0');
    });
  });

  it('a DELETE and re-INSERT of the same key with the same values: rollback', async () => {
    await prove('reinserted', 'rollback', async (client) => {
      const lines = (await tableLines(client, resolvedTable(spec('reinserted')))).sort();
      await client.query(
        'WITH gone AS (DELETE FROM public.reinserted WHERE id = 5 RETURNING *) INSERT INTO public.reinserted SELECT * FROM gone',
      );
      expect((await tableLines(client, resolvedTable(spec('reinserted')))).sort()).toEqual(lines);
    });
  });

  it('a plain VACUUM that prunes and compacts the batch pages: commit, the slots stay', async () => {
    const before = await identities('vacuumed');
    await prove('vacuumed', 'commit', async (client) => {
      // Dead rows beside the batch's on its page (id 0 first in the heap, the next day's ids 11–15 after it).
      await client.query('DELETE FROM public.vacuumed WHERE id = 0 OR id BETWEEN 11 AND 15');
      await client.query('VACUUM public.vacuumed');
      expect(await identities('vacuumed')).toEqual(before);
    });
  });

  it('a VACUUM FREEZE: commit, freezing keeps the raw xmin', async () => {
    await prove('frozen', 'commit', async (client) => {
      const before = await identities('frozen');
      await client.query('VACUUM (FREEZE) public.frozen');
      // relfrozenxid is now newer than every batch row's xmin: each of them is frozen.
      const unfrozen = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM public.frozen AS t
          WHERE id BETWEEN 1 AND ${BATCH_ROWS}
            AND age(t.xmin) <= (SELECT age(relfrozenxid) FROM pg_class WHERE oid = 'public.frozen'::regclass)`,
      );
      expect(unfrozen.rows[0]?.n).toBe(0);
      expect(await identities('frozen')).toEqual(before);
    });
  });

  it('a VACUUM FULL that moves the batch rows to other slots: rollback, the next run archives them once', async () => {
    const before = await identities('vacuum_full');
    await prove('vacuum_full', 'rollback', async (client) => {
      await client.query('DELETE FROM public.vacuum_full WHERE id = 0');
      const after = await rewriteUntilMoved(client, 'vacuum_full', 'VACUUM FULL public.vacuum_full', before);
      expect(after.map((i) => i.split('/')[1])).toEqual(before.map((i) => i.split('/')[1]));
      expect(after.filter((identity, i) => identity === before[i])).toEqual([]);
    });
  });

  it('a CLUSTER that moves the batch rows to other slots: rollback, the next run archives them once', async () => {
    const before = await identities('clustered');
    await prove('clustered', 'rollback', async (client) => {
      await client.query('DELETE FROM public.clustered WHERE id = 0');
      const after = await rewriteUntilMoved(
        client,
        'clustered',
        'CLUSTER public.clustered USING clustered_pkey',
        before,
      );
      expect(after.map((i) => i.split('/')[1])).toEqual(before.map((i) => i.split('/')[1]));
      expect(after.filter((identity, i) => identity === before[i])).toEqual([]);
    });
  });

  it('a dump and restore of the table (COPY out, TRUNCATE, COPY in): same slots, new xmin, rollback', async () => {
    const before = await identities('dumped');
    await prove('dumped', 'rollback', async (client) => {
      const chunks: Buffer[] = [];
      await pipeline(client.query(copyTo('COPY public.dumped TO STDOUT (FORMAT binary)')), async (source) => {
        for await (const chunk of source) chunks.push(chunk as Buffer);
      });
      await client.query('BEGIN');
      await client.query('TRUNCATE public.dumped');
      await pipeline(
        async function* () {
          yield* chunks;
        },
        client.query(copyFrom('COPY public.dumped FROM STDIN (FORMAT binary)')),
      );
      await client.query('COMMIT');
      const after = await identities('dumped');
      expect(after.map((i) => i.split('/')[0])).toEqual(before.map((i) => i.split('/')[0]));
      expect(after.filter((identity, i) => identity === before[i])).toEqual([]);
    });
  });

  it('a partitioned table whose batch rows in two partitions share ctid and xmin: commit', async () => {
    await prove('parted', 'commit', async () => {
      const shared = await query<{ n: number }>(
        `SELECT count(*)::int AS n FROM (
           SELECT ctid, xmin::text FROM public.parted WHERE id BETWEEN 1 AND ${BATCH_ROWS}
            GROUP BY 1, 2 HAVING count(DISTINCT tableoid) = 2) AS pairs`,
      );
      expect(shared[0]?.n).toBeGreaterThan(0);
    });
  });

  it('a partition swapped for a table with the same (ctid, xmin) pairs and other rows: tableoid tells, rollback', async () => {
    const pairs = (table: string) =>
      query<{ pairs: string }>(
        `SELECT string_agg(ctid::text || '/' || xmin::text, ' ' ORDER BY ctid) AS pairs FROM public.${table}`,
      );
    expect(await pairs('swapped_copy')).toEqual(await pairs('swapped_p1'));
    await prove('swapped', 'rollback', async (client) => {
      await client.query(`
        ALTER TABLE public.swapped DETACH PARTITION public.swapped_p1;
        ALTER TABLE public.swapped ATTACH PARTITION public.swapped_copy FOR VALUES WITH (MODULUS 2, REMAINDER 1);`);
    });
  });

  /**
   * A batch recorded by the version before row versions: its in-flight record has no versionDigest, and its figures
   * carry the row digest that version computed from the exported lines (the rows are untouched yet, so the
   * database's digest of them is that one).
   */
  const recordedBefore = async (deps: StepDeps, task: TableTask) => {
    const { inFlight } = await deps.locks.get(task.database, task.table);
    if (!inFlight?.versionDigest) throw new Error('the export recorded no version digest');
    const shape = await describeTable(bed.db.client, resolvedTable(spec(task.table.slice('public.'.length))));
    const objects = [];
    for (const object of inFlight.objects) {
      const { rowDigest } = await digestBatchInDatabase(bed.db.client, shape, object.bounds);
      objects.push({ ...object, figures: { ...object.figures, rowDigest } });
    }
    const { versionDigest: _, ...legacy }: InFlight = { ...inFlight, objects };
    await deps.locks.setInFlight(task.database, task.table, task.lease, 600, legacy, { unchanged: inFlight });
  };

  it('a batch recorded without a version digest keeps the line digest: an UPDATE still rolls back', async () => {
    await prove(
      'legacy_updated',
      'rollback',
      async (client) => {
        await client.query(`UPDATE public.legacy_updated SET payload = '{"edited": 1}' WHERE id = 5`);
      },
      recordedBefore,
    );
  });

  it('a batch recorded without a version digest keeps the line digest: a VACUUM FULL commits', async () => {
    await prove(
      'legacy_vacuum_full',
      'commit',
      async (client) => {
        await client.query('DELETE FROM public.legacy_vacuum_full WHERE id = 0');
        await client.query('VACUUM FULL public.legacy_vacuum_full');
      },
      recordedBefore,
    );
  });
});
