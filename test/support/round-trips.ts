import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ObjectSpan } from '../../lambdas/shared/archive/format.js';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, assertNoLossNoDuplicates, resolvedTable, tableLines } from './fixtures.js';

const q = pg.escapeIdentifier;

/** A table to archive and restore: its config entry and the SQL that creates and fills it. */
export interface RoundTripCase {
  schema?: string;
  name: string;
  timestampColumn: string;
  keyColumns?: string[];
  timestampTimeZone?: string;
  objectSpan?: ObjectSpan;
  ddl: string;
}

/**
 * One test per case: the table is archived by a local run (no row lost or doubled, some archived), then restored into
 * itself, and must then equal, row for row as PostgreSQL compares them, the copy taken before archiving.
 */
export function describeRoundTrips(title: string, cases: RoundTripCase[], batchSize: number): void {
  describe(title, () => {
    const bed = archiverTestbed(
      async (db) => {
        for (const [i, c] of cases.entries()) {
          await db.client.query(c.ddl);
          await db.client.query(
            `CREATE TABLE public.before_${i} AS SELECT * FROM ${q(c.schema ?? 'public')}.${q(c.name)}`,
          );
        }
      },
      cases.map(({ ddl: _ddl, ...spec }) => spec),
      { defaults: { batchSize } },
    );

    it.each(cases.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
      // Prepare
      const schema = c.schema ?? 'public';
      const table = resolvedTable({ ...c, schema });
      const original = await tableLines(bed.db.client, table);

      // Act
      const run = await runLocalArchive(
        bed.local,
        { tables: [`${schema}.${c.name}`] },
        { retryIntervalScale: 0 },
      );
      const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      const restore = await runLocalRestore(
        bed.local,
        { database: 'app', table: { schema, name: c.name } },
        { retryIntervalScale: 0 },
      );
      const compared = await compareRows(
        bed.db.client,
        `SELECT * FROM public.before_${i}`,
        `SELECT * FROM ${q(schema)}.${q(c.name)}`,
      );

      // Assess
      expect(run.execution.error ?? run.outcomes[0]?.error).toBeUndefined();
      expect(run.execution.status).toBe('SUCCEEDED');
      expect(counts.inArchives).toBeGreaterThan(0);
      expect(restore.execution.error).toBeUndefined();
      expect(restore.execution.status).toBe('SUCCEEDED');
      expect(compared).toEqual({ rows: original.length, missing: 0, extra: 0 });
    });
  });
}
