/**
 * Random table shapes through the real local workflows (test/support/shape-fuzz.ts makes them from a seed): each
 * case is a table of random columns, types, names, key and values, with rows on UTC days around the cut-off, in a
 * database of its own (UTF8, LATIN1 or SQL_ASCII) that may set other TimeZone, DateStyle and planner settings, for
 * itself and for the workflow's role in it; the table may be partitioned on two levels, inherit from a parent, or
 * have an inheritance child, whose rows must stay as they were. The case is archived, then
 * restored into a new table, back into itself, and (the table renamed away) into a table made from the manifests,
 * and must keep the product's invariants:
 *
 * - every eligible row (its instant at or after 0001-01-01 and before the run's cut-off) is in exactly one committed
 *   archive of its UTC day and gone from the table; every other row is still there, unchanged;
 * - every restore brings back exactly the archived rows, compared by each row's text under fixed settings;
 * - a table the workflow refuses is refused by a named error, losing and doubling nothing.
 *
 * `npm test` runs the fixed seeds below (under a minute on a quiet machine). More seeds, or one that failed:
 *
 *   FUZZ_SEEDS=1000-1199 npx vitest run --project pg18 test/proofs/shape-fuzz.test.ts
 *   FUZZ_SEEDS=17,4242 npx vitest run --project pg18 test/proofs/shape-fuzz.test.ts
 *   PROOF_PG=14 FUZZ_SEEDS=1-50 npx vitest run --project pg14 test/proofs/shape-fuzz.test.ts
 *
 * A failure names its seed and prints the case's statements (FUZZ_VERBOSE=1 prints them for every case).
 */
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { describeTable } from '../../lambdas/shared/database/table-shape.js';
import { rowLineSql } from '../../lambdas/shared/database/table-sql.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  createTestDatabase,
  expectRequestsWithinRoles,
  openTestEnvironment,
  readLiveArchives,
  resolvedTable,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';
import { type FuzzCase, generateCase, seedsFromEnv } from '../support/shape-fuzz.js';

const q = pg.escapeIdentifier;
const lit = pg.escapeLiteral;

/**
 * A spread of quick shapes: partitioned tables whose mid partition is partitioned again (14 by range, with an old
 * partition made on its own, its columns in another order, and attached holding rows; 45 by list, its old partition
 * detached and attached again; 116 by range in a LATIN1 database; 84 by hash, refused for a nondeterministic key);
 * a keyless refusal (9); month objects (13); a table inheriting from a parent with rows of its own (24); tables with
 * an inheritance child holding copies of their rows (68 in LATIN1, 2 in SQL_ASCII with bytes that are not UTF-8,
 * refused by name); role settings in 9, 13 and 14.
 */
const FIXED_SEEDS = [2, 9, 13, 14, 24, 45, 68, 84, 116];

const SEEDS = seedsFromEnv('FUZZ_SEEDS') ?? FIXED_SEEDS;

/** The statements that shape the case, rows left out, for a failure's message. */
const shapeOf = (c: FuzzCase): string =>
  [
    `seed ${c.seed}: ${JSON.stringify(c.spec)} batchSize ${c.batchSize}`,
    ...(c.encoding ? [`CREATE DATABASE … ENCODING ${c.encoding}`] : []),
    ...c.databaseSettings.map(([name, value]) => `ALTER DATABASE … SET ${name} = ${lit(value)}`),
    ...c.roleSettings.map(
      ([name, value]) => `ALTER ROLE CURRENT_USER IN DATABASE … SET ${name} = ${lit(value)}`,
    ),
    ...c.setup.map((sql) => (sql.startsWith('INSERT') ? `${sql.slice(0, 300)}…` : sql)),
  ].join(';\n');

/** The multiset difference of two queries' single text column `r`: rows of `a` not in `b`, and of `b` not in `a`. */
async function differences(
  client: pg.Client,
  a: string,
  b: string,
): Promise<{ missing: number; extra: number }> {
  const result = await client.query<{ missing: number; extra: number }>(
    `SELECT (SELECT count(*)::int FROM (${a} EXCEPT ALL ${b}) AS m) AS missing,
            (SELECT count(*)::int FROM (${b} EXCEPT ALL ${a}) AS x) AS extra`,
  );
  return result.rows[0] ?? { missing: -1, extra: -1 };
}

/** A failed execution's error, or the first archive a restore refused, as `Name: message`. */
function failure(restore: Awaited<ReturnType<typeof runLocalRestore>>): string | undefined {
  const { error } = restore.execution;
  const refused = restore.results.find((r) => r.status === 'failed');
  if (error)
    return `${error.name}: ${error.message}${refused ? ` (${JSON.stringify(refused).slice(0, 2000)})` : ''}`;
  return restore.execution.status === 'SUCCEEDED' ? undefined : restore.execution.status;
}

/** A named error of the archiver: `Name: message`. */
const NAMED_ERROR = /^[A-Z][A-Za-z]+Error: \S/;

async function runCase(c: FuzzCase): Promise<string> {
  const db = await createTestDatabase(c.encoding ? { encoding: c.encoding } : {});
  let env: Awaited<ReturnType<typeof openTestEnvironment>> | undefined;
  try {
    for (const sql of c.setup) await db.client.query(sql);
    for (const [name, value] of c.databaseSettings)
      await db.client.query(`ALTER DATABASE ${q(db.name)} SET ${name} = ${lit(value)}`);
    // The workflow connects as the suite's role: its settings in this database alone (the database drops them).
    for (const [name, value] of c.roleSettings)
      await db.client.query(`ALTER ROLE CURRENT_USER IN DATABASE ${q(db.name)} SET ${name} = ${lit(value)}`);
    const ref = `${q(c.schema)}.${q(c.table)}`;
    // A plain table's own rows (ONLY: an inheritance child's rows are not the table's); a partitioned one's partitions'.
    const relkind = await db.client.query<{ relkind: string }>(
      'SELECT relkind FROM pg_class WHERE oid = $1::regclass',
      [ref],
    );
    const from = relkind.rows[0]?.relkind === 'p' ? ref : `ONLY ${ref}`;
    /** The rows of the tables the run must not touch, each as its text. */
    const untouchedSql = c.untouched.map(
      (u) => `SELECT ${lit(u)} || ': ' || row(u.*)::text AS r FROM ${u} AS u`,
    );
    const untouchedRows = untouchedSql.length > 0 ? `SELECT r FROM public.fz_untouched` : '';
    if (untouchedSql.length > 0)
      await db.client.query(`CREATE TABLE public.fz_untouched AS ${untouchedSql.join(' UNION ALL ')}`);
    const expectUntouched = async (when: string) => {
      if (untouchedSql.length === 0) return;
      expect(
        await differences(db.client, untouchedRows, untouchedSql.join(' UNION ALL ')),
        `an inheritance parent's or child's rows changed ${when}`,
      ).toEqual({ missing: 0, extra: 0 });
    };
    const columns = await db.client.query<{ name: string }>(
      `SELECT attname AS name FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
        ORDER BY attnum`,
      [ref],
    );
    const rowText = (alias: string) =>
      `row(${columns.rows.map((col) => `${alias}.${q(col.name)}`).join(', ')})::text`;
    const identity = resolvedTable(c.spec as Parameters<typeof resolvedTable>[0]);
    // The archive line of each row, where the table can be described (a table without a usable key cannot).
    let lineSql = 'NULL::text';
    try {
      lineSql = rowLineSql(await describeTable(db.client, identity, 'rows'), 't');
    } catch {}
    // Each row's instant as the product reads it; local times whose instant timestamptz cannot hold at the ends.
    const ts = `t.${q(c.spec.timestampColumn)}`;
    const zone = lit(c.spec.timestampTimeZone ?? 'UTC');
    const kind = await db.client.query<{ type: string }>(
      `SELECT format_type(coalesce(nullif(y.typbasetype, 0), y.oid), NULL) AS type
         FROM pg_attribute a JOIN pg_type y ON y.oid = a.atttypid WHERE a.attrelid = $1::regclass AND a.attname = $2`,
      [ref, c.spec.timestampColumn],
    );
    const type = kind.rows[0]?.type;
    const instant =
      type === 'timestamp with time zone'
        ? ts
        : type === 'timestamp without time zone'
          ? `CASE WHEN ${ts} > '4713-01-02 00:00 BC'::timestamp AND ${ts} < '294276-12-30'::timestamp
                  THEN ${ts} AT TIME ZONE ${zone}
                  WHEN ${ts} <= '4713-01-02 00:00 BC'::timestamp THEN '-infinity'::timestamptz
                  WHEN ${ts} IS NOT NULL THEN 'infinity'::timestamptz END`
          : `(${ts}::timestamp AT TIME ZONE 'UTC')`;
    await db.client.query(
      `CREATE TABLE public.fz_orig AS SELECT ${rowText('t')} AS r, ${lineSql} AS line, ${instant} AS at
         FROM ${from} AS t`,
    );
    env = await openTestEnvironment(db, [c.spec], { defaults: { batchSize: c.batchSize } });

    // Act: archive, remembering the cut-off the run took (a midnight may pass between seeding and running).
    const cutoffs = new Set<string>();
    const run = await runLocalArchive(
      env.local,
      { tables: [`${c.schema}.${c.table}`] },
      {
        retryIntervalScale: 0,
        onStep: (event) => {
          const found = JSON.stringify(event.payload ?? {}).match(/"cutoff":"([^"]+)"/);
          if (found?.[1]) cutoffs.add(found[1]);
        },
      },
    );
    const error =
      run.outcomes[0]?.error ??
      (run.execution.error ? `${run.execution.error.name}: ${run.execution.error.message}` : undefined);
    const archives = await readLiveArchives(env.local, c.schema, c.table, db.client);
    await db.client.query(
      `CREATE TABLE public.fz_archived AS SELECT * FROM unnest($1::text[], $2::text[]) AS a(line, day)`,
      [archives.flatMap((a) => a.lines), archives.flatMap((a) => a.lines.map(() => a.manifest.day))],
    );
    const remaining = `SELECT ${rowText('t')} AS r FROM ${from} AS t`;
    await expectUntouched('by the archive');
    const none = { missing: 0, extra: 0 };
    // Rows archived are rows of the table, each once; the table holds every other row as it was.
    expect(
      await differences(
        db.client,
        'SELECT line AS r FROM public.fz_archived',
        'SELECT line AS r FROM public.fz_orig WHERE line IN (SELECT line FROM public.fz_archived)',
      ),
      'archived rows that are not rows of the table, or archived twice',
    ).toEqual(none);
    expect(
      await differences(
        db.client,
        'SELECT r FROM public.fz_orig WHERE line IS NULL OR line NOT IN (SELECT line FROM public.fz_archived)',
        remaining,
      ),
      'rows of the table changed or lost (missing), or not deleted though archived (extra)',
    ).toEqual(none);

    if (error !== undefined || run.execution.status !== 'SUCCEEDED') {
      // Assess a refusal: named, and one the generator made the table for.
      expect(error, 'a refusal names its error').toMatch(NAMED_ERROR);
      expect(c.mayRefuse.length > 0 ? 'refused as it may be' : error).toBe('refused as it may be');
      return `refused: ${error?.slice(0, 160)}`;
    }

    // Assess the archive: exactly the eligible rows are archived, each in an archive of its UTC day.
    expect(cutoffs.size, 'one cut-off').toBe(1);
    const cutoff = lit([...cutoffs][0] ?? '');
    // A month object holds a UTC month that ended before the cut-off; a day object one UTC day.
    const month = c.spec.objectSpan === 'month';
    const end = month
      ? `(date_trunc('month', ${cutoff}::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')`
      : `${cutoff}::timestamptz`;
    const eligible = `at >= '0001-01-01 00:00:00+00' AND at < ${end}`;
    expect(
      await differences(
        db.client,
        `SELECT coalesce(line, 'undescribed') || to_char(at AT TIME ZONE 'UTC', ${month ? `' YYYY-MM-"01"'` : `' YYYY-MM-DD'`}) AS r FROM public.fz_orig WHERE ${eligible}`,
        `SELECT line || ' ' || day AS r FROM public.fz_archived`,
      ),
      'eligible rows not archived (missing), or archived rows not eligible or not in an archive of their day (extra)',
    ).toEqual(none);
    const archived = await db.client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.fz_archived',
    );
    expect(run.outcomes[0]?.budgetReached).toBe(false);

    /** Restores the table's archives into the new table `public.<name>`, which must hold exactly the archived rows. */
    const { local } = env;
    const restoreInto = async (name: string, what: string) => {
      const restored = await runLocalRestore(
        local,
        {
          database: 'app',
          table: { schema: c.schema, name: c.table },
          targetTable: { schema: 'public', name },
        },
        { retryIntervalScale: 0 },
      );
      expect(failure(restored), what).toBeUndefined();
      expect(
        await differences(
          db.client,
          `SELECT r FROM public.fz_orig WHERE ${eligible}`,
          `SELECT ${rowText('t')} AS r FROM public.${name} AS t`,
        ),
      ).toEqual({ missing: 0, extra: 0 });
    };

    // Act and assess: restore into a new table, then into the table itself.
    await restoreInto('fz_restored', 'restore into a new table');
    const restoredBack = await runLocalRestore(
      env.local,
      { database: 'app', table: { schema: c.schema, name: c.table } },
      { retryIntervalScale: 0 },
    );
    expect(failure(restoredBack), 'restore into the table').toBeUndefined();
    expect(await differences(db.client, 'SELECT r FROM public.fz_orig', remaining)).toEqual({
      missing: 0,
      extra: 0,
    });
    await expectUntouched('by the restore into the table');

    // Act and assess: the table gone (renamed away), a new table made from the archives' manifests alone.
    await db.client.query(`ALTER TABLE ${ref} RENAME TO fz_gone`);
    await restoreInto('fz_made', 'restore into a table made from the manifests');
    await expectRequestsWithinRoles(env.local);
    return `archived ${archived.rows[0]?.n} rows in ${archives.length} objects`;
  } finally {
    await env?.close();
    await db.drop();
  }
}

describe(`random table shapes archive, restore, or are refused by name (seeds ${SEEDS.length > 12 ? `${SEEDS[0]}…${SEEDS.at(-1)}` : SEEDS.join(', ')})`, () => {
  it.each(SEEDS)('seed %i', async (seed) => {
    // Prepare
    const c = generateCase(seed, inject('postgresVersion'));
    if (process.env.FUZZ_VERBOSE) process.stdout.write(`${shapeOf(c)}\n`);

    // Act and assess
    try {
      const outcome = await runCase(c);
      recordProof({
        kind: 'fuzz',
        property: 'a random table shape archives and restores, or is refused',
        cases: 1,
      });
      if (process.env.FUZZ_VERBOSE) process.stdout.write(`seed ${seed}: ${outcome}\n`);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- the case:\n${shapeOf(c)}`, { cause: error });
    }
  });
});
