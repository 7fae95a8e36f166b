import type pg from 'pg';

export interface RowComparison {
  /** Rows `actual` returns. */
  rows: number;
  /** Rows of `expected` that `actual` lacks, and rows of `actual` that `expected` lacks (duplicates counted). */
  missing: number;
  extra: number;
}

/**
 * Compares what two queries return, row for row as PostgreSQL sees the rows: by each row's text form, which tells
 * every value apart (-0 from 0, NaN, infinities, json whitespace, jsonb null from SQL NULL). Both are SQL the caller
 * wrote from quoted identifiers, never user input.
 */
export async function compareRows(
  client: pg.ClientBase,
  expected: string,
  actual: string,
): Promise<RowComparison> {
  const result = await client.query<RowComparison>(`
    SELECT (SELECT count(*)::int FROM (${actual}) AS a) AS rows,
           (SELECT count(*)::int FROM (SELECT row(e.*)::text FROM (${expected}) AS e
                                       EXCEPT ALL SELECT row(a.*)::text FROM (${actual}) AS a) AS m) AS missing,
           (SELECT count(*)::int FROM (SELECT row(a.*)::text FROM (${actual}) AS a
                                       EXCEPT ALL SELECT row(e.*)::text FROM (${expected}) AS e) AS x) AS extra`);
  return result.rows[0] ?? { rows: 0, missing: 0, extra: 0 };
}
