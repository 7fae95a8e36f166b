/**
 * The database's defaults say how every session reads and writes time: a TimeZone 14 hours east of UTC, DateStyle
 * `SQL, MDY` (02/03/2026 is February 3rd) and IntervalStyle `sql_standard`. The archiver pins its own (UTC, ISO),
 * but a transaction-pooling proxy hands each lone statement a server connection with the database's defaults. A key
 * of timestamps rendered as text under one reading and read back under the other selects other rows; a cut-off or a
 * day window read in the session's zone is 14 hours off. The cut-off is a fixed date in the past.
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
import { behindTransactionPooler } from '../support/transaction-pooler.js';

const CUTOFF = '2026-03-01T00:00:00.000Z';

const tables = [
  // Keyed by its timestamp: each batch's bounds are timestamps, rendered and read back as text.
  {
    schema: 'public',
    name: 'keyed_by_time',
    timestampColumn: 'created_at',
    keyColumns: ['created_at', 'id'],
  },
  { schema: 'public', name: 'tokyo_local', timestampColumn: 'created_at', timestampTimeZone: 'Asia/Tokyo' },
];

describe('a database whose sessions default to a far zone, DateStyle SQL, MDY and IntervalStyle sql_standard, behind a transaction pooler', () => {
  const bed = archiverTestbed(async (db) => {
    // The test's own client opened before these defaults: it reads rows as UTC and ISO, as the archives hold them.
    await db.client.query(`
      CREATE TABLE public.keyed_by_time (created_at timestamptz NOT NULL, id int NOT NULL, note text NOT NULL,
        PRIMARY KEY (created_at, id));
      INSERT INTO public.keyed_by_time
        SELECT '2026-01-02 00:00:00+00'::timestamptz + g * interval '7 hours 13 minutes', g % 3, 'row ' || g
          FROM generate_series(0, 250) AS g;
      INSERT INTO public.keyed_by_time VALUES
        ('2026-02-28 23:59:59.999999+00', 7, 'last old'), ('2026-03-01 00:00:00+00', 7, 'first young'),
        ('2026-02-03 10:00:00+00', 9, 'third of February'), ('2026-03-02 10:00:00+00', 9, 'second of March');
      CREATE TABLE public.tokyo_local (id int PRIMARY KEY, created_at timestamp NOT NULL, note text NOT NULL);
      INSERT INTO public.tokyo_local
        SELECT g, '2026-01-02 00:00:00'::timestamp + g * interval '5 hours 7 minutes', 'row ' || g
          FROM generate_series(1, 250) AS g;
      INSERT INTO public.tokyo_local VALUES
        (1001, '2026-03-01 08:59:59.999999', 'last old'), (1002, '2026-03-01 09:00:00', 'first young'),
        (1003, '2026-03-01 00:30:00', 'old in Tokyo, young in UTC'), (1004, '2026-03-02 03:00:00', 'young');
      ALTER DATABASE "${db.name}" SET TimeZone = 'Pacific/Kiritimati';
      ALTER DATABASE "${db.name}" SET DateStyle = 'SQL, MDY';
      ALTER DATABASE "${db.name}" SET IntervalStyle = 'sql_standard';`);
  }, tables);

  it('archives exactly the rows before the cut-off, each once, and keeps the rest', async () => {
    // Prepare
    const young = {
      keyed_by_time: `SELECT count(*)::int AS n FROM public.keyed_by_time WHERE created_at >= '${CUTOFF}'`,
      tokyo_local: `SELECT count(*)::int AS n FROM public.tokyo_local WHERE (created_at AT TIME ZONE 'Asia/Tokyo') >= '${CUTOFF}'`,
    };
    const count = async (sql: string) => (await bed.db.client.query<{ n: number }>(sql)).rows[0]?.n;
    const before = {
      keyed_by_time: await count(young.keyed_by_time),
      tokyo_local: await count(young.tokyo_local),
    };
    const originals = await Promise.all(tables.map((t) => tableLines(bed.db.client, resolvedTable(t))));

    for (const [i, t] of tables.entries()) {
      // Act
      const run = await bed.local
        .workflow({ retryIntervalScale: 0, deps: behindTransactionPooler })
        .runArchiveTable({
          runId: `session-clock-${t.name}`,
          database: 'app',
          table: `public.${t.name}`,
          cutoff: CUTOFF,
          maxBatches: 20,
        });

      // Assess
      const original = originals[i] ?? [];
      const archives = await readLiveArchives(bed.local, 'public', t.name);
      const left = await tableLines(bed.db.client, resolvedTable(t));
      const { lost, doubled } = compareRows(original, [...archives.flatMap((a) => a.lines), ...left]);
      const kept = await count(young[t.name as keyof typeof young]);
      recordProof({ kind: 'invariant', rows: original.length, lost, doubled });
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `sets the database's TimeZone, DateStyle and IntervalStyle far from UTC and ISO, behind a transaction pooler (${t.name})`,
        held:
          run.status === 'SUCCEEDED' &&
          lost === 0 &&
          doubled === 0 &&
          kept === before[t.name as keyof typeof before] &&
          left.length === kept,
      });
      expect(run.status).toBe('SUCCEEDED');
      expect({ lost, doubled }).toEqual({ lost: 0, doubled: 0 });
      expect(kept).toBe(before[t.name as keyof typeof before]);
      expect(left).toHaveLength(kept ?? -1);
      for (const archive of archives) {
        expect(Date.parse(archive.manifest.timestampRange.max), archive.key).toBeLessThan(Date.parse(CUTOFF));
      }
    }
  });
});
