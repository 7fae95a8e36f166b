/**
 * A `timestamp without time zone` column is local time in the table's `timestampTimeZone`, and a row's age is the
 * instant PostgreSQL reads it as (`col AT TIME ZONE zone`). Where the zone's offset changes at a UTC midnight (a
 * cut-off), local times do not order as those instants:
 * - Antarctica/Troll falls back from UTC+2 to UTC+0 at 01:00 UTC on the last Sunday of October, so local 01:00–03:00
 *   happens twice, and that day's UTC midnight is local 02:00, inside the first pass. PostgreSQL reads an ambiguous
 *   local time as its later instant: 01:30 as 01:30 UTC, after the midnight.
 * - Asia/Jerusalem sprang forward from 02:00 to 03:00 at 00:00 UTC on 2024-03-29: 02:30 never happened there, and
 *   PostgreSQL reads it as 00:30 UTC, after the midnight, though it comes before 03:00, the first local time after it.
 * A range of local times cut at the midnight's local time (02:00, 03:00) took those rows as older than the cut-off,
 * and deleted them up to two hours before their retention ended.
 *
 * The cut-offs are fixed dates in the past, handed to the per-table state machine, so nothing here depends on today.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  archiverTestbed,
  compareRows,
  readLiveArchives,
  resolvedTable,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = (name: string, zone: string) => ({
  schema: 'public',
  name,
  timestampColumn: 'created_at',
  timestampTimeZone: zone,
});

/** Ids of the rows whose timestamp, read in `zone` as the archiver and PostgreSQL read it, is at or after `cutoff`. */
async function idsAtOrAfter(
  client: pg.Client,
  table: string,
  zone: string,
  cutoff: string,
): Promise<string[]> {
  const result = await client.query<{ id: string }>(
    `SELECT id::text FROM public.${table} WHERE (created_at AT TIME ZONE $1) >= $2::timestamptz ORDER BY id`,
    [zone, cutoff],
  );
  return result.rows.map((r) => r.id);
}

describe('a cut-off where the zone of a timestamp column changes its offset', () => {
  const cases = [
    // Ids below 10 are older than the cut-off by any reading; 10 and up PostgreSQL reads as at or after it.
    {
      table: 'troll',
      zone: 'Antarctica/Troll',
      cutoff: '2026-10-25T00:00:00.000Z',
      rows: `(1, '2026-10-20 12:00'), (2, '2026-10-24 12:00'), (3, '2026-10-24 23:59'), (10, '2026-10-25 01:00'),
             (11, '2026-10-25 01:30'), (12, '2026-10-25 01:59:59'), (13, '2026-10-25 02:30'), (14, '2026-10-26 12:00')`,
      young: ['10', '11', '12', '13', '14'],
    },
    {
      table: 'jerusalem',
      zone: 'Asia/Jerusalem',
      cutoff: '2024-03-29T00:00:00.000Z',
      rows: `(1, '2024-03-28 12:00'), (2, '2024-03-29 01:59'), (10, '2024-03-29 02:30'), (11, '2024-03-29 03:30')`,
      young: ['10', '11'],
    },
    // Europe/London's overlap starts at its UTC midnight (local 01:00 BST): local 00:30 is the 24th, 01:00 the 25th.
    {
      table: 'london',
      zone: 'Europe/London',
      cutoff: '2026-10-25T00:00:00.000Z',
      rows: `(1, '2026-10-24 12:00'), (2, '2026-10-25 00:30'), (10, '2026-10-25 01:00'), (11, '2026-10-25 01:30'),
             (12, '2026-10-25 03:00')`,
      young: ['10', '11', '12'],
    },
  ];
  const bed = archiverTestbed(
    async (db) => {
      for (const c of cases) {
        await db.client.query(`
          CREATE TABLE public.${c.table} (id bigint PRIMARY KEY, created_at timestamp NOT NULL, note text NOT NULL);
          CREATE INDEX ON public.${c.table} (created_at);
          INSERT INTO public.${c.table} SELECT v.id, v.at::timestamp, 'row ' || v.id
            FROM (VALUES ${c.rows}) AS v (id, at);`);
      }
    },
    cases.map((c) => spec(c.table, c.zone)),
  );

  const runTable = (table: string, cutoff: string, run: string) =>
    bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable({
      runId: `time-zones-${table}-${run}`,
      database: 'app',
      table: `public.${table}`,
      cutoff,
      maxBatches: 10,
    });

  for (const c of cases) {
    it(`${c.zone}: deletes no row read as at or after the cut-off, then archives each once its day has passed`, async () => {
      // Prepare
      const table = resolvedTable(spec(c.table, c.zone));
      const original = await tableLines(bed.db.client, table);
      expect(await idsAtOrAfter(bed.db.client, c.table, c.zone, c.cutoff)).toEqual(c.young);

      // Act: a run at the cut-off, then one two days later.
      const first = await runTable(c.table, c.cutoff, 'first');
      const keptByFirst = await idsAtOrAfter(bed.db.client, c.table, c.zone, c.cutoff);
      const archivedByFirst = await readLiveArchives(bed.local, 'public', c.table);
      const later = new Date(Date.parse(c.cutoff) + 2 * 86_400_000).toISOString();
      const second = await runTable(c.table, later, 'later');

      // Assess: the first run kept every young row, and no archive of it holds a row at or after its cut-off; the
      // later run took the rest; no row lost or doubled.
      expect([first.status, second.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
      expect(keptByFirst).toEqual(c.young);
      for (const archive of archivedByFirst) {
        expect(Date.parse(archive.manifest.timestampRange.max), archive.key).toBeLessThan(
          Date.parse(c.cutoff),
        );
      }
      expect(await idsAtOrAfter(bed.db.client, c.table, c.zone, later)).toEqual([]);
      const archived = (await readLiveArchives(bed.local, 'public', c.table)).flatMap((a) => a.lines);
      const left = await tableLines(bed.db.client, table);
      const { lost, doubled } = compareRows(original, [...archived, ...left]);
      recordProof({ kind: 'invariant', rows: original.length, lost, doubled });
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `archives a timestamp column read in ${c.zone}, with a cut-off where the zone's offset changes`,
        held: lost === 0 && doubled === 0 && keptByFirst.join() === c.young.join(),
      });
      expect({ lost, doubled }).toEqual({ lost: 0, doubled: 0 });
    });
  }
});

/**
 * `AT TIME ZONE 'EST'` reads the name as a time zone abbreviation first, from the session's `timezone_abbreviations`,
 * which a database or role may set: under the Australia set EST is UTC+10, not the zone EST (UTC−5), and every local
 * time read 15 hours earlier. A run then deleted rows up to 15 hours before their retention ended.
 */
describe('a database whose timezone_abbreviations gives the zone name of a timestamp column another offset', () => {
  const cutoff = '2026-10-25T00:00:00.000Z';
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`ALTER DATABASE "${db.name}" SET timezone_abbreviations = 'Australia'`);
      await db.client.query(`
        CREATE TABLE public.eastern (id bigint PRIMARY KEY, created_at timestamp NOT NULL, note text NOT NULL);
        -- 1 is before the cut-off in EST (17:00 UTC); 10 and 11 are after it (01:00 and 14:00 UTC on the 25th).
        INSERT INTO public.eastern VALUES (1, '2026-10-24 12:00', 'old'), (10, '2026-10-24 20:00', 'young'),
                                          (11, '2026-10-25 09:00', 'young');`);
    },
    [spec('eastern', 'EST')],
  );

  it('EST: reads the zone as the zone, whatever abbreviations the database sets, and keeps the young rows', async () => {
    // Act
    const run = await bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable({
      runId: 'time-zones-eastern',
      database: 'app',
      table: 'public.eastern',
      cutoff,
      maxBatches: 10,
    });

    // Assess
    const kept = await bed.db.client.query<{ id: string }>('SELECT id::text FROM public.eastern ORDER BY id');
    const archived = (await readLiveArchives(bed.local, 'public', 'eastern')).flatMap((a) => a.lines);
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'a database sets timezone_abbreviations so that a timestamp column zone name (EST) reads as +10',
      held: kept.rows.map((r) => r.id).join() === '10,11',
    });
    expect(run.status).toBe('SUCCEEDED');
    expect(kept.rows.map((r) => r.id)).toEqual(['10', '11']);
    expect(archived).toHaveLength(1);
  });
});
