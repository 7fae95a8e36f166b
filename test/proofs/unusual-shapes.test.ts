import { TODAY_UTC_SQL } from '../support/fixtures.js';
import { describeRoundTrips, type RoundTripCase } from '../support/round-trips.js';

const day = (n: number) => `(${TODAY_UTC_SQL} - make_interval(days => ${n}))`;

/**
 * Rows of a `timestamp` column read in `zone`: local times of UTC midnights and a microsecond before them, through one
 * old day, and local times at the ends of the type's range, whose instant lies outside `timestamptz`'s (294276 AD read
 * west of UTC, 4714 BC read east of it in local mean time: converting them fails, which `overflows` checks), or in
 * another era (a local time of 1 BC that is an instant of 1 AD west of UTC).
 */
const overflows = (local: string, zone: string) =>
  `DO $$ BEGIN PERFORM '${local}'::timestamp AT TIME ZONE '${zone}'; RAISE EXCEPTION 'converts';
          EXCEPTION WHEN datetime_field_overflow THEN NULL; END $$;`;
const localEdges = (zone: string) => {
  const local = (n: number, shift = '0') => `((${day(n)} + interval '${shift}') AT TIME ZONE '${zone}')`;
  return `(1, ${local(40)}, 'utc midnight'), (2, ${local(40, '-1 microsecond')}, 'just before'),
    (3, ${local(39, '-1 microsecond')}, 'last of day'), (4, ${local(39)}, 'next midnight'),
    (5, '294276-12-31 23:59:59.999999', 'max'), (6, 'infinity', 'inf'), (7, '-infinity', '-inf'),
    (8, '4714-11-24 00:00:00 BC', 'min'), (9, NULL, 'null'), (10, '0001-01-01 00:00:00', 'year one'),
    (11, '0001-12-31 23:59:59.999999 BC', '1 BC'), (12, ${local(40, '5 hours')}, 'a'), (13, ${local(40, '13 hours')}, 'b'),
    (14, ${local(40, '23 hours 59 minutes')}, 'c'), (15, ${local(1)}, 'young')`;
};

/**
 * Tables of unusual shapes: multi-level partitions (list, range, hash, defaults) built apart with other column orders
 * and dropped columns, unlogged, rows at day boundaries and timestamp edges (of a `timestamptz` column, and of
 * `timestamp` columns read in zones east and west of UTC, with and without an index), hostile schema, table and
 * column names, a STORED generated timestamp column.
 */
const CASES: RoundTripCase[] = [
  {
    name: 'ml_parted',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.ml_parted (id bigint NOT NULL, region text NOT NULL, gone int, created_at timestamptz NOT NULL,
            payload jsonb, PRIMARY KEY (id, region, created_at)) PARTITION BY LIST (region);
          ALTER TABLE public.ml_parted DROP COLUMN gone;
          -- a partition made apart with other column order and a dropped column, then attached
          CREATE TABLE public.ml_eu (junk text, payload jsonb, created_at timestamptz NOT NULL, region text NOT NULL,
            id bigint NOT NULL) PARTITION BY RANGE (created_at);
          ALTER TABLE public.ml_eu DROP COLUMN junk;
          CREATE TABLE public.ml_eu_old (created_at timestamptz NOT NULL, x int, id bigint NOT NULL, region text NOT NULL, payload jsonb);
          ALTER TABLE public.ml_eu_old DROP COLUMN x;
          ALTER TABLE public.ml_eu ATTACH PARTITION public.ml_eu_old FOR VALUES FROM (MINVALUE) TO (${day(35)});
          CREATE TABLE public.ml_eu_def PARTITION OF public.ml_eu DEFAULT;
          ALTER TABLE public.ml_parted ATTACH PARTITION public.ml_eu FOR VALUES IN ('eu');
          CREATE TABLE public.ml_us PARTITION OF public.ml_parted FOR VALUES IN ('us') PARTITION BY HASH (id);
          CREATE TABLE public.ml_us0 PARTITION OF public.ml_us FOR VALUES WITH (MODULUS 2, REMAINDER 0);
          CREATE TABLE public.ml_us1 PARTITION OF public.ml_us FOR VALUES WITH (MODULUS 2, REMAINDER 1);
          CREATE TABLE public.ml_other PARTITION OF public.ml_parted DEFAULT;
          INSERT INTO public.ml_parted (id, region, created_at, payload)
          SELECT g, (ARRAY['eu','us','ap'])[g % 3 + 1], ${day(45)} + g * interval '37 minutes', jsonb_build_object('g', g)
            FROM generate_series(1, 600) g;
          INSERT INTO public.ml_parted VALUES (1, 'eu', ${day(1)}, 'null');`,
  },
  {
    name: 'unlogged_t',
    timestampColumn: 'created_at',
    ddl: `CREATE UNLOGGED TABLE public.unlogged_t (id int PRIMARY KEY, created_at timestamptz NOT NULL, v text);
          INSERT INTO public.unlogged_t SELECT g, ${day(40)} + g * interval '1 hour', 'v' FROM generate_series(1, 50) g;`,
  },
  {
    name: 'boundaries',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.boundaries (id int PRIMARY KEY, created_at timestamptz, v text);
          INSERT INTO public.boundaries VALUES
            (1, ${day(40)}, 'midnight'), (2, ${day(40)} - interval '1 microsecond', 'just before'),
            (3, ${day(39)} - interval '1 microsecond', 'last of day'), (4, ${day(39)}, 'next midnight'),
            (5, '0001-01-01 00:00:00+00', 'year one'), (6, '0001-01-01 00:00:00+00'::timestamptz - interval '1 microsecond', 'BC'),
            (7, '-infinity', 'minus infinity'), (8, 'infinity', 'plus infinity'), (9, NULL, 'null'),
            (10, '4000-01-01', 'far future'), (11, '1900-01-01 00:00:00+00', 'old'), (12, '0099-12-31 23:59:59.999999+00', 'y99'),
            (13, '2000-01-01 00:00:00+00', 'pg epoch'), (14, '1970-01-01 00:00:00+00', 'unix epoch'),
            (15, '1969-12-31 23:59:59.999999+00', 'before unix'), (16, '0001-12-31 23:59:59.999999+00', 'end of year 1');`,
  },
  {
    name: 'local_edges_west',
    timestampColumn: 'at_local',
    timestampTimeZone: 'America/New_York',
    ddl: `CREATE TABLE public.local_edges_west (id int PRIMARY KEY, at_local timestamp, v text);
          INSERT INTO public.local_edges_west VALUES ${localEdges('America/New_York')};
          ${overflows('294276-12-31 23:59:59.999999', 'America/New_York')}`,
  },
  {
    name: 'local_edges_east',
    timestampColumn: 'at_local',
    timestampTimeZone: 'Asia/Tokyo',
    ddl: `CREATE TABLE public.local_edges_east (id int PRIMARY KEY, at_local timestamp, v text);
          CREATE INDEX ON public.local_edges_east (at_local);
          INSERT INTO public.local_edges_east VALUES ${localEdges('Asia/Tokyo')};
          ${overflows('4714-11-24 00:00:00 BC', 'Asia/Tokyo')}`,
  },
  {
    name: 'gen_ts',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.gen_ts (id int PRIMARY KEY, epoch float8 NOT NULL,
            created_at timestamptz GENERATED ALWAYS AS (to_timestamp(epoch)) STORED, v text);
          INSERT INTO public.gen_ts (id, epoch, v)
          SELECT g, extract(epoch FROM ${day(40)}) + g * 3600, 'v' FROM generate_series(1, 30) g;`,
  },
  {
    schema: 'select',
    name: '1 From."Where"',
    timestampColumn: 'a',
    keyColumns: ['A', 'Aa', ' a'],
    ddl: `CREATE SCHEMA "select";
          CREATE TABLE "select"."1 From.""Where""" ("A" int NOT NULL, "Aa" text NOT NULL, " a" text NOT NULL,
            a timestamp NOT NULL, "a " text, "A.b" text, "1" int, PRIMARY KEY ("A", "Aa", " a"));
          INSERT INTO "select"."1 From.""Where""" SELECT g % 4, 'x' || g, ' ', ${day(40)} + g * interval '1 hour', 'a ', 'A.b', g
            FROM generate_series(1, 30) g;`,
  },
];

describeRoundTrips('unusual table shapes and names archive, delete and restore exactly', CASES, 11);
