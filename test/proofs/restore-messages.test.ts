import { describe, expect, it } from 'vitest';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, restoreAsShown, TODAY_UTC_SQL } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/** A personal value only the archived rows hold. */
const EMAIL = 'private-person@example.com';

/**
 * Audit rows hold personal data, and a restore's results travel far: the lock table's restore records, the execution's
 * output, the CLI's report. A function of the database that refuses a row may quote it (`RAISE EXCEPTION 'rejected
 * %', value`, a common validation idiom); its message must not travel with the result.
 */
describe('what a refused restore says', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        `CREATE TABLE people (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, email text NOT NULL)`,
      );
      await db.client.query(
        `INSERT INTO people
           SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 minute', 'alice' || g || '.${EMAIL}'
             FROM generate_series(1, 20) g`,
      );
    },
    [{ schema: 'public', name: 'people', timestampColumn: 'created_at' }],
  );

  it('names the function that refused the rows, never the row value its message quotes', async () => {
    // Prepare: the rows are archived; then the table gets a CHECK (NOT VALID: the rows left are not checked) whose
    // PL/pgSQL function raises with the value (SQLSTATE P0001)
    const archived = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    await bed.db.client.query(`CREATE FUNCTION public.check_email(e text) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN
        IF e LIKE '%private-person%' THEN RAISE EXCEPTION 'rejected email %', e; END IF;
        RETURN true;
      END $$`);
    await bed.db.client.query(
      `ALTER TABLE people ADD CONSTRAINT email_ok CHECK (public.check_email(email)) NOT VALID`,
    );

    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.people' },
      { retryIntervalScale: 0 },
    );
    const shown = restoreAsShown(restored);
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'a CHECK whose function raises with the value it refuses, met by a restore',
      held: !shown.includes(EMAIL),
    });

    // Assess
    expect(archived.execution.status).toBe('SUCCEEDED');
    expect(restored.execution.status).toBe('FAILED');
    expect(restored.results.length).toBeGreaterThan(0);
    for (const result of restored.results) {
      expect(result.status).toBe('failed');
      expect(result.error).toContain(
        'database error P0001: raised in PL/pgSQL function public.check_email(text) (message withheld: it may quote row values)',
      );
    }
    expect(shown).not.toContain(EMAIL);
  });

  it.each([
    ['regclass', 'regclass'],
    ['regrole', 'regrole'],
    ['regproc', 'regproc'],
    ['aclitem', 'aclitem'],
    ['regclass_domain', 'public.object_ref'],
    ['regclass_array', 'regclass[]'],
  ])(
    'refuses a target whose column reads the archived text as catalog names (%s), quoting no value',
    async (name, type) => {
      // Prepare: the rows are archived (before); a target whose email column is of a type whose input looks the text up
      // as a catalog object, and whose error for an unknown one (42P01, 42704, 42883: not a data exception) quotes it.
      await bed.db.client.query(`DO $$ BEGIN
        IF to_regtype('public.object_ref') IS NULL THEN CREATE DOMAIN public.object_ref AS regclass; END IF;
      END $$`);
      await bed.db.client.query(
        `CREATE TABLE people_${name} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, email ${type})`,
      );

      // Act
      const restored = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.people', targetTable: `public.people_${name}` },
        { retryIntervalScale: 0 },
      );
      const shown = restoreAsShown(restored);
      const written = await bed.db.client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM people_${name}`,
      );
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `restores into a target whose column is of type ${type}, whose input quotes an unknown name`,
        held: !shown.includes(EMAIL),
      });

      // Assess: refused before anything is read, naming the column and its type (before: the restore results, the
      // execution's output and error cause quoted the archived value, "relation \"alice1.private-person…\" does not
      // exist", and for regrole and regproc a raw error reached the Lambda runtime's log).
      expect(restored.execution.status).toBe('FAILED');
      expect(restored.results.length).toBeGreaterThan(0);
      for (const result of restored.results)
        expect(result).toMatchObject({
          status: 'failed',
          error: expect.stringContaining(
            `TableNotUsableError: restore target "public"."people_${name}": column "email" is of type ${type}, which holds catalog`,
          ),
        });
      expect(shown).not.toContain(EMAIL);
      expect(written.rows[0]?.n).toBe(0);
    },
  );
});
