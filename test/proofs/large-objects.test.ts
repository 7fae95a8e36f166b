import { describe, expect, it } from 'vitest';
import { runLocalArchive } from '../../local/run.js';
import { archiverTestbed, TODAY_UTC_SQL } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * A column of the `lo` extension's type names a large object, kept in pg_largeobject, not in the row. An archive
 * would hold the oid alone; once the row is deleted, `vacuumlo` (the maintenance every lo-based application runs)
 * unlinks the object as an orphan, and a restored row would name an object that is gone. Such a table is refused by
 * name, as catalog oids (reg* types) are.
 */
describe.each([
  {
    kind: 'lo',
    types: '',
    column: 'lo',
    value: "lo_from_bytea(0, 'contract v1'::bytea)",
    shown: '(public\\.)?lo',
  },
  {
    kind: 'a domain over lo',
    types: 'CREATE DOMAIN public.attachment AS lo;',
    column: 'public.attachment',
    value: "lo_from_bytea(0, 'contract v1'::bytea)",
    shown: 'public\\.attachment',
  },
  {
    kind: 'a composite with an lo attribute',
    types: 'CREATE TYPE public.attached AS (name text, content lo);',
    column: 'public.attached',
    value: "ROW('contract', lo_from_bytea(0, 'contract v1'::bytea))",
    shown: 'public\\.attached',
  },
])(
  'an audit table whose rows carry attachments as large objects ($kind)',
  ({ kind, types, column, value, shown }) => {
    const bed = archiverTestbed(
      async (db) => {
        await db.client.query(`
        CREATE EXTENSION lo;
        ${types}
        CREATE TABLE public.mails (id int PRIMARY KEY, created_at timestamptz NOT NULL, attachment ${column});
        INSERT INTO public.mails VALUES (1, ${TODAY_UTC_SQL} - interval '40 days', ${value});`);
      },
      [{ schema: 'public', name: 'mails', timestampColumn: 'created_at' }],
    );

    it('is refused by name before any row is deleted', async () => {
      // Act
      const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
      const rows = await bed.db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM public.mails');

      // Assess
      const refusal = new RegExp(
        `^TableNotUsableError: column "attachment" of table "public"\\."mails" in database app is ${shown}, a large object's oid`,
      );
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `archives a table whose rows name large objects (${kind}), which vacuumlo unlinks once the rows are gone`,
        held: rows.rows[0]?.n === 1 && refusal.test(run.outcomes[0]?.error ?? ''),
      });
      expect(run.outcomes[0]?.error).toMatch(refusal);
      expect(rows.rows[0]?.n).toBe(1);
    });
  },
);
