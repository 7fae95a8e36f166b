import { describe, expect, it } from 'vitest';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  compareRows,
  fixedCutoffSql,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';

const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
const fast = { retryIntervalScale: 0 };

/**
 * A restore that runs beside an archive run of its table, and two restores into one target at once: each writes
 * what it lists once, the run archives what it takes, and no row is lost or left in two places.
 */
describe('a restore into the archived table while an archive run of it is going', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'busy', 400), [spec('busy')], {
    defaults: { batchSize: 40, maxBatchesPerRun: 3 },
  });

  it('loses no row, and both report what they did', async () => {
    // Prepare: a first run archives part of the table
    const table = resolvedTable(spec('busy'));
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');

    // Act: the next run and a restore of the whole table into it, at once
    const [run, restore] = await Promise.all([
      runLocalArchive(bed.local, {}, fast),
      runLocalRestore(bed.local, { database: 'app', table: 'public.busy' }, fast),
    ]);

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(restore.execution.status).toBe('SUCCEEDED');
    const archived = (await readLiveArchives(bed.local, 'public', 'busy', bed.db.client)).flatMap(
      (a) => a.lines,
    );
    const present = await tableLines(bed.db.client, table);
    const { lost, extra } = compareRows(original, [...present, ...archived]);
    expect({ lost, extra }).toEqual({ lost: 0, extra: 0 });
    // Finish: the next runs leave no eligible row, and every row is still somewhere.
    for (let i = 0; i < 5; i += 1) await runLocalArchive(bed.local, {}, fast);
    const left = (
      await bed.db.client.query(`SELECT count(*)::int AS n FROM public.busy WHERE created_at < ${cutoff}`)
    ).rows[0].n as number;
    expect(left).toBe(0);
    const after = compareRows(original, [
      ...(await tableLines(bed.db.client, table)),
      ...(await readLiveArchives(bed.local, 'public', 'busy', bed.db.client)).flatMap((a) => a.lines),
    ]);
    expect({ lost: after.lost, extra: after.extra }).toEqual({ lost: 0, extra: 0 });
  });
});

describe('two restores of overlapping ranges into the same target at once', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'twice', 200);
      await db.client.query('CREATE TABLE public.twice_copy (LIKE public.twice INCLUDING ALL)');
    },
    [spec('twice')],
  );

  it('write every archived row once, and their results add up to what was written', async () => {
    // Prepare
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const archived = (await readLiveArchives(bed.local, 'public', 'twice')).flatMap((a) => a.lines);
    const days = (await readLiveArchives(bed.local, 'public', 'twice')).map((a) => a.manifest.day).sort();
    const mid = days[Math.floor(days.length / 2)];

    // Act: the whole table and its later half, into the same existing copy
    const [all, range] = await Promise.all([
      runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.twice', targetTable: 'public.twice_copy' },
        fast,
      ),
      runLocalRestore(
        bed.local,
        {
          database: 'app',
          table: 'public.twice',
          targetTable: 'public.twice_copy',
          mode: 'range',
          fromDay: mid,
        },
        fast,
      ),
    ]);

    // Assess
    const copied = await tableLines(bed.db.client, resolvedTable(spec('twice_copy')));
    const inserted = [...all.results, ...range.results].reduce((n, r) => n + r.inserted, 0);
    expect(all.execution.status).toBe('SUCCEEDED');
    expect(range.execution.status).toBe('SUCCEEDED');
    expect(copied.sort()).toEqual([...archived].sort());
    expect(inserted).toBe(archived.length);
  });
});
