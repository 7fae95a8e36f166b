import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import { runLocalArchive } from '../../local/run.js';
import { batchThrough } from '../support/batch-stages.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  readLiveArchives,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * DDL that rewrites no row lands between a batch's verify and its delete: every exported row version is still in
 * its slot, and every column keeps its name and type name, so the delete's count and sum of row versions match.
 * Yet the rows read otherwise than their archive says, or the batch's key range selects other rows:
 * - a key column's collation changed, then VACUUM FULL compacted the table so that the rows the old key range now
 *   selects sit in exactly the slots of the rows export read (the same (tableoid, ctid, xmin) multiset): the delete
 *   would remove `á`, which no archive holds, and keep `a`, which one does;
 * - two labels of an enum swapped (`b` reads `c` now): a restore would give back the other value;
 * - an enum label a key bound names renamed: the bound no longer reads, and every delete failed with a bare 22P02;
 * - a composite type's attribute dropped and another added in its place, under another name or its own: the archive's
 *   `(1,99)` would restore 99 into the new attribute;
 * - two enum labels swapped whose comma-joined list reads the same either way (`a` and `a,a`).
 * Each delete rolls back and withdraws the batch, and the next run archives the rows as they read now.
 */
const ZERO = { batches: 0, rows: 0, bytes: 0 };
const spec = (name: string, batchSize?: number) => ({
  schema: 'public',
  name,
  timestampColumn: 'created_at',
  ...(batchSize ? { batchSize } : {}),
});
const OLD = `${TODAY_UTC_SQL} - interval '40 days'`;

const CASES = [
  {
    name: 'collation_compacted',
    // One INSERT (one xmin), behind a dead row: export (batch size 3, "C" order A < a < c < á) reads {A, a, c} in
    // slots 2-4 with bounds [A, c]; under ICU (a < A < á < c) and after VACUUM FULL, [A, c] is {A, á, c} in slots 2-4.
    seed: `CREATE TABLE public.collation_compacted (k text COLLATE "C" PRIMARY KEY, created_at timestamptz NOT NULL, v text);
           INSERT INTO public.collation_compacted SELECT k, ${OLD}, 'v-' || k FROM unnest(ARRAY['X', 'a', 'A', 'c', 'á']) AS k;
           DELETE FROM public.collation_compacted WHERE k = 'X';`,
    ddl: `ALTER TABLE public.collation_compacted ALTER COLUMN k TYPE text COLLATE "en-x-icu"`,
    compact: true,
    batchSize: 3,
  },
  {
    name: 'enum_swapped',
    seed: `CREATE TYPE public.state_swapped AS ENUM ('a', 'b', 'c');
           CREATE TABLE public.enum_swapped (id int PRIMARY KEY, created_at timestamptz NOT NULL, state public.state_swapped);
           INSERT INTO public.enum_swapped SELECT g, ${OLD}, (ARRAY['a', 'b', 'c'])[g % 3 + 1]::public.state_swapped
             FROM generate_series(1, 30) g;`,
    ddl: `ALTER TYPE public.state_swapped RENAME VALUE 'b' TO 'tmp';
          ALTER TYPE public.state_swapped RENAME VALUE 'c' TO 'b';
          ALTER TYPE public.state_swapped RENAME VALUE 'tmp' TO 'c'`,
  },
  {
    name: 'enum_bound',
    seed: `CREATE TYPE public.state_bound AS ENUM ('a', 'b', 'c');
           CREATE TABLE public.enum_bound (state public.state_bound NOT NULL, n int NOT NULL, created_at timestamptz NOT NULL,
             PRIMARY KEY (state, n));
           INSERT INTO public.enum_bound SELECT (ARRAY['a', 'b', 'c'])[g % 3 + 1]::public.state_bound, g, ${OLD}
             FROM generate_series(1, 30) g;`,
    ddl: `ALTER TYPE public.state_bound RENAME VALUE 'a' TO 'a_renamed'`,
  },
  {
    name: 'composite_replaced',
    seed: `CREATE TYPE public.amount AS (value int, cents int);
           CREATE TABLE public.composite_replaced (id int PRIMARY KEY, created_at timestamptz NOT NULL, amt public.amount);
           INSERT INTO public.composite_replaced SELECT g, ${OLD}, ROW(g, 99)::public.amount FROM generate_series(1, 10) g;`,
    ddl: `ALTER TYPE public.amount DROP ATTRIBUTE cents, ADD ATTRIBUTE tax_rate int`,
  },
  {
    // Labels that a comma-joined list reads the same in either order ("a,a,a").
    name: 'enum_comma_swapped',
    seed: `CREATE TYPE public.state_comma AS ENUM ('a', 'a,a');
           CREATE TABLE public.enum_comma_swapped (id int PRIMARY KEY, created_at timestamptz NOT NULL, state public.state_comma);
           INSERT INTO public.enum_comma_swapped SELECT g, ${OLD}, (ARRAY['a', 'a,a'])[g % 2 + 1]::public.state_comma
             FROM generate_series(1, 20) g;`,
    ddl: `ALTER TYPE public.state_comma RENAME VALUE 'a' TO 'tmp';
          ALTER TYPE public.state_comma RENAME VALUE 'a,a' TO 'a';
          ALTER TYPE public.state_comma RENAME VALUE 'tmp' TO 'a,a'`,
  },
  {
    // Dropped and added again under its name and type: the rows read `(1,)`, their archive `(1,99)`.
    name: 'composite_readded',
    seed: `CREATE TYPE public.amount_readded AS (value int, cents int);
           CREATE TABLE public.composite_readded (id int PRIMARY KEY, created_at timestamptz NOT NULL, amt public.amount_readded);
           INSERT INTO public.composite_readded SELECT g, ${OLD}, ROW(g, 99)::public.amount_readded FROM generate_series(1, 10) g;`,
    ddl: `ALTER TYPE public.amount_readded DROP ATTRIBUTE cents, ADD ATTRIBUTE cents int`,
  },
] as const;

describe('DDL that rewrites no row, between verify and delete, changing how the rows read', () => {
  const bed = archiverTestbed(
    async (db) => {
      for (const c of CASES) await db.client.query(c.seed);
      await db.client.query(`CREATE TYPE public.state_late AS ENUM ('a', 'b', 'c');
        CREATE TABLE public.enum_late (id int PRIMARY KEY, created_at timestamptz NOT NULL, state public.state_late);
        INSERT INTO public.enum_late SELECT g, ${OLD}, (ARRAY['a', 'b', 'c'])[g % 3 + 1]::public.state_late
          FROM generate_series(1, 30) g;`);
    },
    [...CASES.map((c) => spec(c.name, 'batchSize' in c ? c.batchSize : undefined)), spec('enum_late')],
  );

  /** VACUUM FULL until the dead row before the first live one is gone (a snapshot may still see it for a while). */
  async function compact(name: string): Promise<void> {
    for (let i = 0; i < 60; i++) {
      await bed.db.client.query(`VACUUM FULL public.${name}`);
      const first = await bed.db.client.query<{ ctid: string }>(
        `SELECT ctid::text AS ctid FROM public.${name} ORDER BY ctid LIMIT 1`,
      );
      if (first.rows[0]?.ctid === '(0,1)') return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`VACUUM FULL left the dead row of ${name}`);
  }

  it.each(CASES)(
    '$name: the delete rolls back and withdraws the batch; the next run archives the rows as they read now',
    async (c) => {
      // Prepare: a verified batch, then the DDL.
      const deps = bed.local.deps();
      const table = resolvedTable(spec(c.name));
      const { task } = await batchThrough(deps, `public.${c.name}`, 'verified');
      await bed.db.client.query(c.ddl);
      if ('compact' in c) await compact(c.name);
      const asTheyReadNow = await tableLines(bed.db.client, table);
      const cutoff = await fixedCutoffSql(bed.db.client);

      // Act
      const refused = await deleteBatch({ ...task, progress: ZERO }, deps).catch((error: Error) => error);
      const withdrawn = (await deps.locks.get('app', `public.${c.name}`)).inFlight === undefined;
      const archivedBefore = await readLiveArchives(bed.local, 'public', c.name, bed.db.client);
      await deps.locks.release('app', `public.${c.name}`, task.lease);
      const next = await runLocalArchive(
        bed.local,
        { tables: [`public.${c.name}`] },
        { retryIntervalScale: 0 },
      );

      // Assess
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `DDL that rewrites no row between verify and delete: ${c.name.replace('_', ' ')}`,
        held: refused instanceof Error && refused.name === 'RowsChangedError' && withdrawn,
      });
      expect(refused).toMatchObject({
        name: 'RowsChangedError',
        message: expect.stringMatching(
          /is read otherwise than when its batch was exported \(a column's collation/,
        ),
      });
      expect({ withdrawn, archivedBefore: archivedBefore.length }).toEqual({
        withdrawn: true,
        archivedBefore: 0,
      });
      expect(next.execution.status).toBe('SUCCEEDED');
      await assertNoLossNoDuplicates(bed.local, bed.db.client, table, asTheyReadNow);
      const left = await bed.db.client.query(
        `SELECT count(*)::int AS n FROM public.${c.name} WHERE created_at < ${cutoff}`,
      );
      expect(left.rows[0]?.n).toBe(0);
    },
  );

  it('two enum labels swapped while the DELETE runs (ALTER TYPE locks no table): the delete rolls back before COMMIT', async () => {
    // Prepare: a verified batch; the swap lands after the DELETE statement, before COMMIT.
    const deps = bed.local.deps();
    const { task } = await batchThrough(deps, 'public.enum_late', 'verified');
    const swapping = {
      ...deps,
      fault: async (point: string) => {
        if (point === 'delete:afterDelete')
          await bed.db.client.query(`ALTER TYPE public.state_late RENAME VALUE 'b' TO 'tmp';
            ALTER TYPE public.state_late RENAME VALUE 'c' TO 'b'; ALTER TYPE public.state_late RENAME VALUE 'tmp' TO 'c'`);
      },
    };

    // Act
    const refused = await deleteBatch({ ...task, progress: ZERO }, swapping).catch((error: Error) => error);

    // Assess: nothing deleted, the batch withdrawn.
    const left = await bed.db.client.query('SELECT count(*)::int AS n FROM public.enum_late');
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'swaps two enum labels while a delete runs, after its DELETE statement',
      held: refused instanceof Error && left.rows[0]?.n === 30,
    });
    expect(refused).toMatchObject({ name: 'RowsChangedError' });
    expect(left.rows[0]?.n).toBe(30);
    expect((await deps.locks.get('app', 'public.enum_late')).inFlight).toBeUndefined();
  });
});
