/**
 * Month objects of a `timestamp without time zone` column read in Pacific/Apia, fourteen hours east of UTC since
 * Samoa skipped 30 December 2011 (its offset moved from UTC−10 to UTC+14, a whole day): its local New Year's Day
 * morning is still December in UTC, its last afternoon of October (at UTC−10) is already November, and the local
 * times of the skipped day never happened. A month is archived once
 * all of it, as instants, lies before the first of the cut-off's month; each row lands in the object of the UTC month
 * PostgreSQL reads it in, once. The cut-offs are fixed dates in the past.
 */
import { describe, expect, it } from 'vitest';
import {
  archiverTestbed,
  compareRows,
  readLiveArchives,
  resolvedTable,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const ZONE = 'Pacific/Apia';
const spec = {
  schema: 'public',
  name: 'apia_events',
  timestampColumn: 'created_at',
  timestampTimeZone: ZONE,
  objectSpan: 'month' as const,
};

describe('month objects of a timestamp column read in a zone whose offset jumped a day', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
      CREATE TABLE public.apia_events (id int PRIMARY KEY, created_at timestamp NOT NULL, note text NOT NULL);
      CREATE INDEX ON public.apia_events (created_at);
      INSERT INTO public.apia_events
        SELECT g, '2011-11-20 00:00'::timestamp + g * interval '11 hours 17 minutes', 'row ' || g
          FROM generate_series(1, 200) AS g;
      INSERT INTO public.apia_events VALUES
        (1001, '2011-12-29 23:59:59.999999', 'last local time before the jump'),
        (1002, '2011-12-30 12:00', 'a local time that never happened'),
        (1003, '2011-12-31 00:00', 'first local time after the jump'),
        (1004, '2012-01-01 00:00', 'local New Year, December in UTC'),
        (1005, '2012-01-01 13:59:59.999999', 'the last local time of December in UTC'),
        (1006, '2012-01-01 14:00', 'the first of January in UTC'),
        (1007, '2011-10-31 13:59:59.999999', 'October in UTC (UTC-10 then)'),
        (1008, '2011-10-31 14:00', 'November in UTC');`);
    },
    [spec],
  );

  const runTable = (cutoff: string, run: string) =>
    bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable({
      runId: `apia-${run}`,
      database: 'app',
      table: 'public.apia_events',
      cutoff,
      maxBatches: 20,
    });
  const idsFrom = async (instant: string) =>
    (
      await bed.db.client.query<{ id: number }>(
        'SELECT id FROM public.apia_events WHERE (created_at AT TIME ZONE $1) >= $2::timestamptz ORDER BY id',
        [ZONE, instant],
      )
    ).rows.map((r) => r.id);

  it('archives each UTC month whole once it ended before the cut-off, each row once, in its UTC month', async () => {
    // Prepare
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);
    const january = await idsFrom('2012-01-01T00:00:00Z');

    // Act: a cut-off in January takes the months before it; one in February takes January too.
    const first = await runTable('2012-01-20T00:00:00.000Z', 'january');
    const keptByFirst = await idsFrom('2011-01-01T00:00:00Z');
    const archivedByFirst = await readLiveArchives(bed.local, 'public', 'apia_events');
    const second = await runTable('2012-02-20T00:00:00.000Z', 'february');

    // Assess
    expect([first.status, second.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(keptByFirst).toEqual(january);
    expect(january).toContain(1006);
    expect(january).not.toContain(1005);
    for (const archive of archivedByFirst) {
      expect(archive.manifest.span, archive.key).toBe('month');
      expect(Date.parse(archive.manifest.timestampRange.max), archive.key).toBeLessThan(
        Date.parse('2012-01-01T00:00:00Z'),
      );
    }
    const archives = await readLiveArchives(bed.local, 'public', 'apia_events');
    for (const archive of archives) {
      const month = archive.manifest.day.slice(0, 7);
      expect(archive.manifest.timestampRange.min.slice(0, 7), archive.key).toBe(month);
      expect(archive.manifest.timestampRange.max.slice(0, 7), archive.key).toBe(month);
    }
    expect(archives.map((a) => a.manifest.day).sort()).toEqual([
      '2011-10-01',
      '2011-11-01',
      '2011-12-01',
      '2012-01-01',
    ]);
    const left = await tableLines(bed.db.client, table);
    const { lost, doubled } = compareRows(original, [...archives.flatMap((a) => a.lines), ...left]);
    recordProof({ kind: 'invariant', rows: original.length, lost, doubled });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: `archives a timestamp column read in ${ZONE} in month objects, across the day its offset jumped`,
      held: lost === 0 && doubled === 0 && keptByFirst.join() === january.join(),
    });
    expect({ lost, doubled }).toEqual({ lost: 0, doubled: 0 });
    // Only February's rows stay: its month has not ended before the second cut-off's.
    expect(await idsFrom('2011-01-01T00:00:00Z')).toEqual(await idsFrom('2012-02-01T00:00:00Z'));
    expect(left.length).toBe((await idsFrom('2012-02-01T00:00:00Z')).length);
  });
});
