import { describe, expect, it } from 'vitest';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  compareRows,
  cutoffSql,
  resolvedTable,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/** Over 100 MB (PostgreSQL allows 1 GB per value): an 8 MB row took seconds before, a 64 MB one never finished. */
const VALUE_BYTES = 100 * 1024 * 1024;
/** 34-byte blocks holding a quote and a newline, so the archive line escapes them (it grows to ~106 MB). */
const BLOCK = `md5(random()::text) || E'"\\n'`;

describe('an operator archives a table holding one row of over 100 MB', () => {
  const table = resolvedTable({ name: 'wide', timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        'CREATE TABLE public.wide (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, payload text)',
      );
      // Short rows on both sides of the large one, on its UTC day: lines of every size share chunks.
      await db.client.query(
        `INSERT INTO public.wide
         SELECT g, ${cutoffSql()} - interval '1 day' + g * interval '1 minute',
                CASE WHEN g = 3 THEN repeat(${BLOCK}, ${Math.ceil(VALUE_BYTES / 34)}) ELSE 'short ' || g END
           FROM generate_series(1, 5) AS g`,
      );
      await db.client.query(
        `INSERT INTO public.wide VALUES (6, ${TODAY_UTC_SQL} - interval '1 day', 'recent, kept')`,
      );
    },
    [{ schema: 'public', name: 'wide', timestampColumn: 'created_at' }],
  );

  // PostgreSQL renders, hashes and parses the ~106 MB line several times (export, delete, restore): about a minute
  // of CPU, stretched further on a busy machine.
  it('archives, verifies, deletes and restores it through the real workflow, losing nothing', {
    timeout: 600_000,
  }, async () => {
    // Prepare
    const original = await tableLines(bed.db.client, table);
    expect(original.some((line) => line.length > VALUE_BYTES)).toBe(true);

    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    const archived = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original).catch(
      (error: Error) => error,
    );
    const restore = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.wide', targetTable: 'public.restored' },
      { retryIntervalScale: 0 },
    );
    // Rows kept in the source plus rows restored from the archives must be the original table, row for row.
    const restored = compareRows(original, [
      ...(await tableLines(bed.db.client, table)),
      ...(await tableLines(
        bed.db.client,
        resolvedTable({ name: 'restored', timestampColumn: 'created_at' }),
      )),
    ]);

    // Assess
    const noLoss = !(archived instanceof Error) && archived.inArchives === 5 && archived.inDatabase === 1;
    const restoredExactly = restored.lost === 0 && restored.doubled === 0 && restored.extra === 0;
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'one row of 100 MB archives and restores',
      held: run.execution.status === 'SUCCEEDED' && noLoss && restoredExactly,
    });
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 5 });
    expect(archived).toEqual({ inDatabase: 1, inArchives: 5 });
    expect(restore.execution.status).toBe('SUCCEEDED');
    expect(restore.results.reduce((n, r) => n + r.inserted, 0)).toBe(5);
    expect(restored).toEqual({ lost: 0, doubled: 0, extra: 0 });
  });
});
