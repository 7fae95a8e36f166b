import { describe, expect, it } from 'vitest';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  readLiveArchives,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';

/**
 * Tables keyed by a fixed-length code: `character(6)` and `bit(16)` (a flags word or a hardware id). Restore checks a
 * watermark by digesting the target's rows inside each archive's time window and key range, each bound read by the
 * key column's type without its modifier (restore-sql.ts archivedPlace); `bit` and `character` alone mean one bit or
 * character in a cast, which would cut every bound to its first and leave the range without the archive's rows.
 */
describe.each([
  { type: 'character(6)', key: "chr(65 + d) || lpad(g::text, 5, '0')", array: 'bpchar[]' },
  { type: 'bit(16)', key: '((d * 256 + g)::int4)::bit(16)', array: 'bit(16)[]' },
])('a $type key and the restore watermark', ({ type, key, array }) => {
  const spec = { schema: 'public', name: 'coded', timestampColumn: 'created_at' };
  const fast = { retryIntervalScale: 0 };
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.coded (code ${type} PRIMARY KEY, created_at timestamptz NOT NULL, v text NOT NULL);
        INSERT INTO public.coded
        SELECT ${key}, ${TODAY_UTC_SQL} - make_interval(days => 40 + d) + g * interval '1 minute', 'v'
          FROM generate_series(0, 3) d, generate_series(1, 10) g;`);
    },
    [spec],
  );
  const forensics = resolvedTable({ ...spec, name: 'forensics' });
  const restore = () =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.coded', targetTable: 'public.forensics' },
      fast,
    );

  it('rows deleted from the target are written again by the next restore, not reported already restored', async () => {
    // Prepare: archive everything; restore into a forensics table; an investigator deletes one archive's rows there.
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);
    const run = await runLocalArchive(bed.local, {}, fast);
    expect(run.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    const archives = await readLiveArchives(bed.local, 'public', 'coded');
    expect(archives).toHaveLength(4);
    expect((await restore()).execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, forensics)).sort()).toEqual(original.sort());
    const [gone] = archives;
    if (!gone) throw new Error('setup: no archive');
    const codes = gone.lines.map((line) => String(JSON.parse(line).code));
    await bed.db.client.query(`DELETE FROM public.forensics WHERE code = ANY($1::${array})`, [codes]);

    // Act
    const again = await restore();

    // Assess: every archived row is in the target again.
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results.find((r) => r.key === gone.key)?.status).toBe('restored');
    expect((await tableLines(bed.db.client, forensics)).sort()).toEqual(original.sort());
  });

  it('a repeat over a target that holds every row is answered by the marks: already restored, nothing written', async () => {
    // Act: every row is there since the test above.
    const repeat = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.coded', targetTable: 'public.forensics', strategy: 'fail' },
      fast,
    );

    // Assess
    expect(repeat.results.map((r) => [r.status, r.error, r.warnings])).toEqual(
      repeat.results.map(() => ['already-restored', undefined, []]),
    );
    expect(repeat.execution.status).toBe('SUCCEEDED');
  });
});
