import { describe, expect, it } from 'vitest';
import type { FaultPoint, StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * Export describes the table, then reads the lock table and S3 (holds, schema drift) before its first statement on
 * the table's rows. Another role that may ALTER the table swaps the names of two columns of one type in that window,
 * and swaps them back once export's transaction ended: no row is rewritten, and the names, types and numbers the delete
 * compares are again those export described. Had the COPY read the columns by the names they had in between, each
 * one's values would be archived under the other's name, and the delete would commit. Export locks the table before
 * it describes it, so the swap waits for its COPYs.
 */
const spec = { schema: 'public', name: 'col_aba', timestampColumn: 'created_at' };
const SWAP = `ALTER TABLE public.col_aba RENAME COLUMN actor TO tmp_swap;
              ALTER TABLE public.col_aba RENAME COLUMN target TO actor;
              ALTER TABLE public.col_aba RENAME COLUMN tmp_swap TO target;`;

describe('two columns renamed in turn while export reads the table, and renamed back before the delete', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.col_aba (id int PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL,
                                     target text NOT NULL);
        INSERT INTO public.col_aba
        SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 minute', 'user_' || g, 'resource_' || g
          FROM generate_series(1, 20) g;`);
    },
    [spec],
  );

  it('archives each value under its own column: the swap waits for export’s COPYs, and nothing is lost', async () => {
    // Prepare: the swap starts when export's schema-drift check reads the lease item (after the description, before
    // the COPYs) and is not awaited there: it waits for export's lock, if export holds one. The swap back runs once
    // export's transaction has ended and the swap has gone through.
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);
    let swapped: Promise<unknown> | undefined;
    let swappedBack = false;
    const deps = (base: StepDeps): StepDeps => ({
      ...base,
      locks: new Proxy(base.locks, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver);
          if (property !== 'get' || typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            if (!swapped && (new Error().stack ?? '').includes('checkSchemaDrift'))
              swapped = bed.db.client.query(SWAP);
            return value.apply(target, args);
          };
        },
      }),
    });
    const fault = async (point: FaultPoint) => {
      if (point !== 'export:afterStaging' || !swapped || swappedBack) return;
      await swapped;
      await bed.db.client.query(SWAP);
      swappedBack = true;
    };

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.col_aba'] },
      { fault, deps, retryIntervalScale: 0 },
    );
    const check = assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack:
        'swaps the names of two columns of one type while export reads the table, and back before the delete',
      held: await check.then(
        () => true,
        () => false,
      ),
    });

    // Assess
    expect(swappedBack).toBe(true);
    expect(run.execution.status).toBe('SUCCEEDED');
    await check;
  });
});

describe('two enum labels swapped between two COPYs of one export, and back before the delete', () => {
  // ALTER TYPE takes no lock on the table, so export's lock does not hold it back. 12 old UTC days of 3 rows: two
  // COPYs (8 days, then 4); the labels are swapped before the second and back once every COPY is done.
  const spec = { schema: 'public', name: 'enum_aba', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TYPE public.verdict AS ENUM ('allow', 'deny');
        CREATE TABLE public.enum_aba (id int PRIMARY KEY, created_at timestamptz NOT NULL, verdict public.verdict NOT NULL);
        INSERT INTO public.enum_aba
        SELECT g, ${TODAY_UTC_SQL} - interval '60 days' + (g / 3) * interval '1 day' + (g % 3) * interval '1 hour',
               (ARRAY['allow', 'deny'])[g % 2 + 1]::public.verdict
          FROM generate_series(0, 35) g;`);
    },
    [spec],
    { defaults: { batchSize: 1000 } },
  );

  it('refuses the batch before it is recorded; the next run archives every row as it reads', async () => {
    // Prepare
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);
    const swap = `ALTER TYPE public.verdict RENAME VALUE 'allow' TO 'tmp';
                  ALTER TYPE public.verdict RENAME VALUE 'deny' TO 'allow';
                  ALTER TYPE public.verdict RENAME VALUE 'tmp' TO 'deny';`;
    let swaps = 0;
    const fault = async (point: FaultPoint) => {
      if (point === 'export:betweenObjects' && swaps === 0) {
        await bed.db.client.query(swap);
        swaps = 1;
      }
      if (point === 'export:afterStaging' && swaps === 1) {
        await bed.db.client.query(swap);
        swaps = 2;
      }
    };
    // The swap back, when export refuses the batch before staging ends: the table reads as at first again.
    const swapBack = async () => {
      if (swaps !== 1) return;
      await bed.db.client.query(swap);
      swaps = 2;
    };

    // Act
    const attacked = await runLocalArchive(
      bed.local,
      { tables: ['public.enum_aba'] },
      { fault, retryIntervalScale: 0 },
    );
    await swapBack();
    const [outcome] = attacked.outcomes;
    const next = await runLocalArchive(bed.local, { tables: ['public.enum_aba'] }, { retryIntervalScale: 0 });
    const check = assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'swaps two enum labels between two COPYs of one export, and back before the delete',
      held: await check.then(
        () => true,
        () => false,
      ),
    });

    // Assess
    expect(outcome).toMatchObject({ status: 'failed', rowsArchived: 0 });
    expect(outcome?.error).toMatch(
      /TableNotUsableError: public\.enum_aba: a type a column uses .* changed while export read its rows/,
    );
    expect(next.execution.status).toBe('SUCCEEDED');
    await check;
  });
});
