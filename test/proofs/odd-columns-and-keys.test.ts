import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, fixedCutoffSql, TODAY_UTC_SQL } from '../support/fixtures.js';
import { describeRoundTrips, type RoundTripCase } from '../support/round-trips.js';

const q = pg.escapeIdentifier;
const day = (n: number) => `(${TODAY_UTC_SQL} - make_interval(days => ${n}))`;

/** Column names a JSON line, a manifest, a DynamoDB record and an S3 header each escape their own way. */
const ODD = [
  'a\nb',
  'tab\there',
  '\u0001ctl',
  'del\u007f',
  'ls\u2028ps\u2029',
  'back\\slash',
  'quo"te',
  "apo'strophe",
  'é',
  '😀',
  '\u200fbidi',
];
const KEY = 'k\n"\\';
const WHEN = 'when\r\n';
/** Names the archiver's own SQL gives its aliases and positional columns. */
const ALIASES = [
  'o',
  's',
  't',
  'v',
  'ts',
  'c0',
  'c1',
  'j',
  'k0',
  'g0',
  'w',
  'line',
  'inserted',
  'updated',
  'written',
  'h',
  'hashes',
  'found',
  'rows',
  'hi',
  'lo',
  'day',
  'excluded',
];

const CASES: RoundTripCase[] = [
  {
    name: 'odd_columns',
    timestampColumn: WHEN,
    keyColumns: [KEY],
    ddl: `CREATE TABLE public.odd_columns (${q(KEY)} text NOT NULL PRIMARY KEY, ${q(WHEN)} timestamptz,
            ${ODD.map((c) => `${q(c)} text`).join(', ')});
          INSERT INTO public.odd_columns
          SELECT 'k' || g, ${day(40)} + g * interval '1 hour', ${ODD.map((_, i) => `'v${i}-' || g`).join(', ')}
            FROM generate_series(1, 30) g;
          INSERT INTO public.odd_columns (${q(KEY)}, ${q(WHEN)}) VALUES ('new', ${day(1)});`,
  },
  {
    name: 'alias_columns',
    timestampColumn: 'ts',
    keyColumns: ['o', 's'],
    ddl: `CREATE TABLE public.alias_columns (${ALIASES.map((c) => `${q(c)} ${c === 'ts' ? 'timestamptz NOT NULL' : c === 'o' ? 'int NOT NULL' : c === 's' ? 'text NOT NULL' : 'text'}`).join(', ')},
            PRIMARY KEY (o, s));
          INSERT INTO public.alias_columns (o, s, ts, ${ALIASES.filter((c) => !['o', 's', 'ts'].includes(c))
            .map(q)
            .join(', ')})
          SELECT g % 5, 's' || g, ${day(40)} + g * interval '1 hour', ${ALIASES.filter(
            (c) => !['o', 's', 'ts'].includes(c),
          )
            .map((c) => `'${c}' || g`)
            .join(', ')}
            FROM generate_series(1, 30) g;`,
  },
  {
    name: 'inherits_child',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.inh_parent (id int NOT NULL, created_at timestamptz NOT NULL, v text);
          CREATE TABLE public.inherits_child (extra text, PRIMARY KEY (id)) INHERITS (public.inh_parent);
          INSERT INTO public.inh_parent SELECT g, ${day(40)}, 'parent' FROM generate_series(1, 10) g;
          INSERT INTO public.inherits_child SELECT g, ${day(40)} + g * interval '1 minute', 'child', 'x' FROM generate_series(1, 20) g;`,
  },
  {
    name: 'money_key',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.money_key (m money PRIMARY KEY, created_at timestamptz NOT NULL);
          INSERT INTO public.money_key SELECT (g * 1234.56)::numeric::money * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END),
            ${day(40)} + g * interval '1 minute' FROM generate_series(1, 30) g;
          INSERT INTO public.money_key VALUES ('92233720368547758.07', ${day(40)}), ('-92233720368547758.08', ${day(40)});`,
  },
  {
    name: 'array_range_keys',
    timestampColumn: 'created_at',
    keyColumns: ['a', 'r', 'tv'],
    ddl: `CREATE TABLE public.array_range_keys (a text[] NOT NULL, r int4range NOT NULL, tv tsvector NOT NULL,
            created_at timestamptz NOT NULL, PRIMARY KEY (a, r, tv));
          INSERT INTO public.array_range_keys
          SELECT CASE g % 4 WHEN 0 THEN ARRAY['a', NULL] WHEN 1 THEN '{}'::text[] WHEN 2 THEN ARRAY['a,b', '"q"', ''] ELSE '[0:1]={x,y}'::text[] END,
                 CASE g % 3 WHEN 0 THEN int4range(g, g + 2) WHEN 1 THEN 'empty'::int4range ELSE int4range(NULL, g) END,
                 to_tsvector('simple', 'w' || g || ' x'), ${day(40)} + (g % 4) * interval '1 hour'
            FROM generate_series(1, 40) g;`,
  },
  {
    name: 'rare_key_types',
    timestampColumn: 'created_at',
    keyColumns: ['ch', 'nm', 'vb', 'mac', 'ip', 'lsn', 'tm', 'ttz'],
    ddl: `CREATE TABLE public.rare_key_types (ch "char" NOT NULL, nm name NOT NULL, vb varbit NOT NULL, mac macaddr NOT NULL,
            ip inet NOT NULL, lsn pg_lsn NOT NULL, tm time NOT NULL, ttz timetz NOT NULL, x8 xid8 NOT NULL, o oid NOT NULL,
            created_at timestamptz NOT NULL);
          CREATE UNIQUE INDEX ON public.rare_key_types (ch, nm, vb, mac, ip, lsn, tm, ttz);
          INSERT INTO public.rare_key_types
          SELECT chr(65 + g % 3)::"char", 'n' || (g % 5), (g % 8)::bit(3)::varbit || (CASE WHEN g % 2 = 0 THEN B'0' ELSE B'' END),
                 ('08:00:2b:01:02:0' || (g % 4))::macaddr, ('10.0.0.' || g || '/' || (24 + g % 9))::inet,
                 ('0/' || to_hex(g % 3))::pg_lsn, time '23:59:59.999999' - g * interval '1 hour',
                 ('12:00' || CASE g % 3 WHEN 0 THEN '+01' WHEN 1 THEN '+00' ELSE '-15:59' END)::timetz,
                 (g % 2)::text::xid8, (4294967295 - g % 3)::oid, ${day(40)} + (g % 3) * interval '1 hour'
            FROM generate_series(1, 40) g;`,
  },
  {
    // A domain over timestamp(3) read in a zone of +05:45 (+05:41:16 before 1920): infinities, NULL, year one on
    // either side of the UTC new year, and local times on both sides of the UTC midnights of archived days.
    name: 'local_edges',
    timestampColumn: 'at',
    timestampTimeZone: 'Asia/Kathmandu',
    ddl: `CREATE DOMAIN public.local_at AS timestamp(3) CHECK (VALUE IS NULL OR VALUE <> 'epoch');
          CREATE TABLE public.local_edges (id int PRIMARY KEY, at public.local_at, v text);
          INSERT INTO public.local_edges VALUES (1, '-infinity', 'minus'), (2, 'infinity', 'plus'), (3, NULL, 'null'),
            (4, '0001-01-01 05:41:15.999', 'BC in UTC'), (5, '0001-01-01 05:41:16', 'year one in UTC'),
            (6, '0001-01-02 00:00', 'day two');
          INSERT INTO public.local_edges
          SELECT 100 + g, (${day(40)} AT TIME ZONE 'Asia/Kathmandu') + g * interval '15 minutes', 'q' || g
            FROM generate_series(0, 2 * 96) g;
          INSERT INTO public.local_edges SELECT 400 + g, (${day(40)} AT TIME ZONE 'Asia/Kathmandu') + make_interval(mins => 345) + g * interval '1 day' - interval '1 millisecond', 'edge'
            FROM generate_series(0, 2) g;`,
  },
];

describeRoundTrips(
  'hostile and alias-like column names, rarer key types and an inheritance child archive, delete and restore exactly',
  CASES,
  7,
);

/**
 * The round trips above restore by COPY (the rows are gone); rows already there take the reference path instead: a
 * staging table read as jsonb, INSERT … ON CONFLICT with EXCLUDED, positional names in RETURNING and a CTE.
 */
describe('hostile and alias-like column names restored row by row, over rows already there', () => {
  const cases = CASES.filter((c) => c.name === 'odd_columns' || c.name === 'alias_columns');
  const bed = archiverTestbed(
    async (db) => {
      for (const c of cases) {
        await db.client.query(c.ddl);
        await db.client.query(`CREATE TABLE public.${c.name}_before AS SELECT * FROM public.${c.name}`);
      }
    },
    cases.map(({ ddl: _ddl, ...spec }) => spec),
    { defaults: { batchSize: 7 } },
  );

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    // Prepare: archive, restore, then change every restored row's other columns and delete one row.
    const table = { schema: 'public', name };
    const cutoff = await fixedCutoffSql(bed.db.client);
    expect(
      (await runLocalArchive(bed.local, { tables: [`public.${name}`] }, { retryIntervalScale: 0 })).execution
        .status,
    ).toBe('SUCCEEDED');
    expect(
      (await runLocalRestore(bed.local, { database: 'app', table }, { retryIntervalScale: 0 })).execution
        .status,
    ).toBe('SUCCEEDED');
    const others = (
      await bed.db.client.query<{ attname: string }>(
        `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND atttypid = 'text'::regtype
          AND attname <> ALL ($2)`,
        [`public.${name}`, c.keyColumns ?? []],
      )
    ).rows.map((r) => r.attname);
    await bed.db.client.query(
      `UPDATE public.${name} SET ${others.map((o) => `${q(o)} = 'changed'`).join(', ')}`,
    );
    await bed.db.client.query(
      `DELETE FROM public.${name} WHERE ctid = (SELECT min(ctid) FROM public.${name})`,
    );

    // Act
    const restore = await runLocalRestore(
      bed.local,
      { database: 'app', table, strategy: 'overwrite', ignoreWatermark: true },
      { retryIntervalScale: 0 },
    );

    // Assess: the archived rows are back as archived; the rows the run left (younger) keep the change.
    expect(restore.execution.error).toBeUndefined();
    expect(restore.results.reduce((n, r) => n + r.overwritten, 0)).toBeGreaterThan(0);
    const compared = await compareRows(
      bed.db.client,
      `SELECT * FROM public.${name}_before WHERE ${q(c.timestampColumn)} < ${cutoff}`,
      `SELECT * FROM public.${name} WHERE ${q(c.timestampColumn)} < ${cutoff}`,
    );
    expect(compared).toMatchObject({ missing: 0, extra: 0 });
  });
});
