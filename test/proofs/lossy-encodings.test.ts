import { describe, expect, it } from 'vitest';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, listKeys, type TestEncoding, TODAY_UTC_SQL } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const day = (n: number) => `(${TODAY_UTC_SQL} - make_interval(days => ${n}))`;
const from = (encoding: string, hex: string) => `convert_from('\\x${hex}'::bytea, '${encoding}')`;

/**
 * Archives are UTF-8. In EUC_JP, 23 two-byte characters (NEC's row-13 duplicates of JIS X 0208 symbols, 0xADF0 "≒"
 * beside 0xA2E2 "≒") convert to the Unicode character of their twin, and come back from UTF-8 as the twin; in
 * EUC_JIS_2004, a letter and a combining mark (0xA9DC 0xABDC) come back as the one precomposed character (0xABC4); in
 * EUC_TW, a CNS 11643 plane-1 character in its four-byte form (0x8EA1A4A1) comes back in its two-byte form (0xA4A1). A
 * value would be restored as other bytes, a key of one row could select its twin's, and two columns named by twins
 * resolve to one. Such databases are refused before anything is archived; one whose characters all come back as they
 * were (EUC_KR) archives and restores exactly.
 */
describe.each([
  { encoding: 'EUC_JP', lossy: true, hex: ['adf0', 'a2e2'] },
  { encoding: 'EUC_JIS_2004', lossy: true, hex: ['a9dcabdc', 'abc4'] },
  { encoding: 'EUC_TW', lossy: true, hex: ['8ea1a4a1', 'a4a1'] },
  { encoding: 'EUC_KR', lossy: false, hex: ['b0a1', 'b0a2'] },
])('a database encoded $encoding', ({ encoding, lossy, hex }) => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.notes (id int PRIMARY KEY, created_at timestamptz NOT NULL, note text NOT NULL);
        INSERT INTO public.notes VALUES
          (1, ${day(40)}, ${from(encoding, hex[0] ?? '')}), (2, ${day(40)} + interval '1 hour', ${from(encoding, hex[1] ?? '')}),
          (3, ${day(2)}, 'young');
        CREATE TABLE public.notes_before AS SELECT * FROM public.notes;`);
    },
    [{ schema: 'public', name: 'notes', timestampColumn: 'created_at' }],
    { encoding: encoding as TestEncoding },
  );

  it(
    lossy
      ? 'is refused, naming the encoding, before anything is archived or deleted'
      : 'archives and restores every byte',
    async () => {
      // Act
      const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
      const archives = (await listKeys(bed.local, 'archive/')).filter((key) => key.endsWith('.jsonl.gz'));
      if (!lossy)
        await runLocalRestore(
          bed.local,
          { database: 'app', table: 'public.notes' },
          { retryIntervalScale: 0 },
        );
      const compared = await compareRows(
        bed.db.client,
        'SELECT * FROM public.notes_before',
        'SELECT * FROM public.notes',
      );
      const bytes = await bed.db.client.query<{ hex: string }>(
        `SELECT encode(convert_to(note, '${encoding}'), 'hex') AS hex FROM public.notes WHERE id < 3 ORDER BY id`,
      );

      // Assess
      const exact =
        compared.missing === 0 && compared.extra === 0 && bytes.rows.map((r) => r.hex).join() === hex.join();
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `archives a table of a database encoded ${encoding}, holding characters ${hex.join(' and ')}`,
        held: exact && (lossy ? archives.length === 0 : run.execution.status === 'SUCCEEDED'),
      });
      expect(bytes.rows.map((r) => r.hex)).toEqual(hex);
      expect(compared).toEqual({ rows: 3, missing: 0, extra: 0 });
      if (lossy) {
        expect(run.outcomes[0]?.error).toMatch(
          new RegExp(
            `^TableNotUsableError: database app is encoded ${encoding}, some of whose characters come back from UTF-8`,
          ),
        );
        expect(archives).toEqual([]);
      } else {
        expect(run.execution.status).toBe('SUCCEEDED');
        expect(archives.length).toBeGreaterThan(0);
      }
    },
  );
});
