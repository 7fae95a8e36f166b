import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  readLiveArchives,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
  validateLocalTable,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = { schema: 'public', name: 'late', timestampColumn: 'created_at' };
const table = resolvedTable(spec);

/**
 * The application inserts rows dated days back (a queue drained late, a clock that was off) into days the archiver
 * is taking or has taken. Rows are 3 or 4 a UTC day, with even keys only, so a late key can fall inside a day's key
 * range (3) or beyond it (100001, 100003).
 */
describe('rows the application inserts back-dated into days a batch holds or a run committed', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
      CREATE TABLE public.late (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL, payload jsonb);
      INSERT INTO public.late
      SELECT 2 * g, ${TODAY_UTC_SQL} - interval '60 days' + g * interval '7 hours' + interval '1 second', 'user_' || g, NULL
        FROM generate_series(1, 200) AS g`);
    },
    [spec],
  );

  /** Inserts a late row `id` at `at` and returns its archive line. */
  const insertLate = async (client: pg.Client, id: number, at: string): Promise<string> => {
    await client.query(`INSERT INTO public.late VALUES ($1, $2::timestamptz, $3, NULL)`, [
      id,
      at,
      `late_${id}`,
    ]);
    const [line] = (await tableLines(client, table)).filter((l) => JSON.parse(l).id === String(id));
    if (!line) throw new Error(`late row ${id} not inserted`);
    return line;
  };

  it('roll back the batch whose key range they fall in, stay out of one they do not, and land once each in an archive of their day', async () => {
    // Prepare: the first batch's verify meets a late row inside the oldest day's key range (its delete would take it
    // unread); the second batch's, one beyond it (its delete leaves it)
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);
    // On the UTC day of the oldest row, an hour after it.
    const at = (
      await bed.db.client.query<{ at: string }>(
        `SELECT (created_at + interval '1 hour')::text AS at FROM public.late WHERE id = 2`,
      )
    ).rows[0]?.at;
    if (!at) throw new Error('no oldest row');
    const late = [3, 100001];
    const inserted: string[] = [];
    // verify reads each object behind this point: one insert a batch, after its export
    let armed = false;
    const fault = async (point: FaultPoint) => {
      if (point === 'export:afterStaging') armed = true;
      if (point !== 'verify:afterRead' || !armed) return;
      armed = false;
      const id = late.shift();
      if (id !== undefined) inserted.push(await insertLate(bed.db.client, id, at));
    };

    // Act: then one more into that day, after the run committed it
    const first = await runLocalArchive(
      bed.local,
      { tables: ['public.late'] },
      { fault, retryIntervalScale: 0 },
    );
    inserted.push(await insertLate(bed.db.client, 100003, at));
    const second = await runLocalArchive(bed.local, { tables: ['public.late'] }, { retryIntervalScale: 0 });

    // Assess
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, [
      ...original,
      ...inserted,
    ]).catch((error: Error) => error);
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'the application inserts back-dated rows into days a batch in flight holds or a run committed',
      held: !(counts instanceof Error),
    });
    if (counts instanceof Error) throw counts;
    expect(late).toEqual([]);
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(first.outcomes[0]?.withdrawnBatches).toBe(1);
    expect(second.execution.status).toBe('SUCCEEDED');
    expect(second.outcomes[0]?.rowsArchived).toBe(1);
    const archives = await readLiveArchives(bed.local, 'public', 'late', bed.db.client);
    const day = (key: string) => key.split('/').at(-1)?.slice(0, 8);
    const oldest = archives.find((a) => a.lines.some((line) => JSON.parse(line).id === '2'));
    const ofThatDay = archives.filter((a) => oldest && day(a.key) === day(oldest.key));
    expect(ofThatDay.map((a) => a.lines.length).sort()).toEqual([1, 1, 4]);
    expect(new Set(ofThatDay.map((a) => a.key)).size).toBe(3);
    const left = await bed.db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.late WHERE created_at < ${cutoff}`,
    );
    expect(left.rows[0]?.n).toBe(0);
  });

  it('are not reported by validate as archived twice when their keys fall inside a committed archive’s range', async () => {
    // Prepare: the previous test committed every old row; a late row goes between two keys of the oldest day.
    const [oldest] = (
      await bed.db.client.query<{ at: string }>(
        `SELECT (${TODAY_UTC_SQL} - interval '60 days' + interval '7 hours 1 second')::text AS at`,
      )
    ).rows;
    if (!oldest) throw new Error('no oldest day');
    const line = await insertLate(bed.db.client, 5, oldest.at);
    const run = await runLocalArchive(bed.local, { tables: ['public.late'] }, { retryIntervalScale: 0 });

    // Act
    const report = await validateLocalTable(bed.local, 'late');

    // Assess: its archive overlaps the day's committed key range but shares no row with it (before, validate warned
    // that rows were in both, which invited deleting the late row's only archive as a copy).
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'runs validate once a late row inside a committed key range is archived in an object of its own',
      held: report.problems.length === 0,
    });
    expect(run.outcomes[0]?.rowsArchived).toBe(1);
    const archives = await readLiveArchives(bed.local, 'public', 'late', bed.db.client);
    expect(archives.filter((a) => a.lines.includes(line))).toHaveLength(1);
    expect(report.problems).toEqual([]);
  });
});
