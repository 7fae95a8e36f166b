import { TODAY_UTC_SQL } from '../support/fixtures.js';
import { describeRoundTrips, type RoundTripCase } from '../support/round-trips.js';

const day = (n: number) => `(${TODAY_UTC_SQL} - make_interval(days => ${n}))`;

/** Tables with unusual keys, each with rows on a few old days (many per day) and a few recent ones. */
const CASES: RoundTripCase[] = [
  {
    name: 'float_keys',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.float_keys (f float8 NOT NULL, r real NOT NULL, created_at timestamptz NOT NULL, v text,
            PRIMARY KEY (f, r));
          INSERT INTO public.float_keys
          SELECT f, r, ${day(40)} + (g % 3) * interval '1 hour', 'v' || g
            FROM (VALUES (1, '-0'::float8, '0'::real), (2, 'NaN', 'NaN'), (3, 'Infinity', '-Infinity'),
                         (4, '-Infinity', 'Infinity'), (5, '5e-324', '1e-45'), (6, '1.7976931348623157e308', '3.4028235e38'),
                         (7, '0.1', '0.1'), (8, '0.30000000000000004', '0.3'), (9, '-1e-300', '-0'),
                         (10, '1', 'NaN'), (11, '1', '-0'), (12, 'NaN', '1')) AS v(g, f, r);
          INSERT INTO public.float_keys SELECT g::float8 / 7, g, ${day(41)} + g * interval '1 minute', 'w' FROM generate_series(1, 40) g;
          INSERT INTO public.float_keys VALUES (123.5, 1, ${day(1)}, 'new');`,
  },
  {
    name: 'numeric_keys',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.numeric_keys (n numeric NOT NULL, k int NOT NULL, created_at timestamptz NOT NULL,
            PRIMARY KEY (n, k));
          INSERT INTO public.numeric_keys VALUES
            ('1.0', 1, ${day(40)}), ('1.00', 2, ${day(40)}), ('1', 3, ${day(40)}), ('1.000', 4, ${day(40)}),
            ('NaN', 1, ${day(40)}), ('Infinity', 1, ${day(40)}), ('-Infinity', 1, ${day(40)}),
            ('0.00000000000000000000000000001', 1, ${day(40)}), ('-0.0', 1, ${day(40)}), ('0', 2, ${day(40)}),
            ('123456789012345678901234567890.000000000000000000001', 1, ${day(40)}), ('2.50', 9, ${day(1)});`,
  },
  {
    name: 'mixed_keys',
    timestampColumn: 'created_at',
    keyColumns: ['b', 'u', 'iv', 't', 'bo'],
    ddl: `CREATE TABLE public.mixed_keys (t text COLLATE "C" NOT NULL, u uuid NOT NULL, iv interval NOT NULL,
            b bytea NOT NULL, bo boolean NOT NULL, created_at timestamptz NOT NULL, payload text);
          CREATE UNIQUE INDEX ON public.mixed_keys (bo, t, iv, u, b);
          INSERT INTO public.mixed_keys
          SELECT CASE g % 5 WHEN 0 THEN repeat(' ', g) WHEN 1 THEN E'back\\\\slash''quote"' || g WHEN 2 THEN E'new\\nline\\ttab' || g
                            WHEN 3 THEN 'ü' || g ELSE repeat('z', g) END,
                 md5((g % 4)::text)::uuid,
                 CASE g % 3 WHEN 0 THEN interval '1 mon' WHEN 1 THEN interval '30 days' ELSE interval '720 hours' END,
                 CASE g % 4 WHEN 0 THEN '\\x'::bytea WHEN 1 THEN '\\x5c00ff'::bytea WHEN 2 THEN convert_to('\\', 'UTF8')
                            ELSE decode(md5(g::text), 'hex') END,
                 g % 2 = 0, ${day(40)} + (g % 5) * interval '1 minute', 'p' || g
            FROM generate_series(1, 60) g;
          INSERT INTO public.mixed_keys VALUES ('new', gen_random_uuid(), '1 day', '\\x00', true, ${day(1)}, 'new');`,
  },
  {
    name: 'bigint_edges',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.bigint_edges (a bigint NOT NULL, b smallint NOT NULL, c int NOT NULL,
            created_at timestamptz NOT NULL, PRIMARY KEY (a, b, c));
          INSERT INTO public.bigint_edges VALUES
            (9223372036854775807, 32767, 2147483647, ${day(40)}), (-9223372036854775808, -32768, -2147483648, ${day(40)}),
            (0, 0, 0, ${day(40)}), (9223372036854775807, -32768, 0, ${day(40)}), (1, 1, 1, ${day(1)});`,
  },
  {
    name: 'identity_keys',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.identity_keys (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at timestamptz NOT NULL, v text);
          INSERT INTO public.identity_keys (created_at, v) SELECT ${day(40)} + g * interval '1 minute', 'v' FROM generate_series(1, 30) g;
          INSERT INTO public.identity_keys (created_at, v) VALUES (${day(1)}, 'new');`,
  },
  {
    name: 'jsonb_keys',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.jsonb_keys (j jsonb NOT NULL, k int NOT NULL, created_at timestamptz NOT NULL,
            PRIMARY KEY (j, k));
          INSERT INTO public.jsonb_keys VALUES
            ('1', 1, ${day(40)}), ('1.0', 2, ${day(40)}), ('1.00', 3, ${day(40)}), ('{"a":1,"a":2}', 1, ${day(40)}),
            ('"\\u00e9"', 1, ${day(40)}), ('null', 1, ${day(40)}), ('[]', 1, ${day(40)}), ('{}', 1, ${day(40)}),
            ('"x"', 9, ${day(1)});`,
  },
  {
    name: 'ts_key',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.ts_key (created_at timestamptz NOT NULL PRIMARY KEY, t timetz, v text);
          INSERT INTO public.ts_key
          SELECT ${day(40)} + g * interval '1 microsecond', '12:00+05'::timetz, 'v' FROM generate_series(0, 20) g;
          INSERT INTO public.ts_key VALUES (${day(39)} - interval '1 microsecond', '23:59:59.999999-15:59', 'last'),
                                           (${day(39)}, '00:00+15:59', 'first'), (${day(1)}, NULL, 'new');`,
  },
  {
    name: 'wide_pk',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.wide_pk (${Array.from({ length: 12 }, (_, i) => `k${i} ${['int', 'text', 'date', 'numeric'][i % 4]} NOT NULL`).join(', ')},
            created_at timestamptz NOT NULL, PRIMARY KEY (${Array.from({ length: 12 }, (_, i) => `k${i}`).join(', ')}));
          INSERT INTO public.wide_pk
          SELECT ${Array.from({ length: 12 }, (_, i) => [`g % ${i + 2}`, `'t' || (g % ${i + 3})`, `date '2020-01-01' + g % ${i + 2}`, `(g % ${i + 2})::numeric / 4`][i % 4]).join(', ')},
                 ${day(40)} + (g % 2) * interval '1 hour'
            FROM generate_series(1, 50) g;`,
  },
  {
    name: 'odd_text_keys',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.odd_text_keys (k text PRIMARY KEY, created_at timestamptz NOT NULL);
          INSERT INTO public.odd_text_keys VALUES
            ('', ${day(40)}), (chr(1), ${day(40)}), (chr(1) || chr(31) || chr(127), ${day(40)}), (' ', ${day(40)}),
            (chr(65535), ${day(40)}), (chr(1114111), ${day(40)}), ('"', ${day(40)}), (chr(92), ${day(40)}),
            (chr(92) || 'x01', ${day(40)}), ('a' || chr(10) || 'b', ${day(41)}), ('NULL', ${day(41)}), ('null', ${day(41)}),
            (chr(8232), ${day(41)}), ('x', ${day(1)});`,
  },
  {
    name: 'local_month',
    timestampColumn: 'at_local',
    timestampTimeZone: 'America/Santiago',
    objectSpan: 'month',
    ddl: `CREATE TABLE public.local_month (at_local timestamp NOT NULL, seq int NOT NULL, v text, PRIMARY KEY (at_local, seq));
          INSERT INTO public.local_month
          SELECT (${TODAY_UTC_SQL} AT TIME ZONE 'America/Santiago') - make_interval(days => 400) + g * interval '7 hours', g % 3, 'v'
            FROM generate_series(1, 300) g;`,
  },
  {
    // A key of a domain over a domain over text, and of varchar, through the pattern operator classes, and of cidr
    // (inet's operator class): their equality is the types' own, so ON CONFLICT arbitrates on the index as on a plain one.
    name: 'domain_keys',
    timestampColumn: 'created_at',
    keyColumns: ['k', 'v', 'c'],
    ddl: `CREATE DOMAIN public.tag1 AS text CHECK (VALUE <> 'forbidden');
          CREATE DOMAIN public.tag2 AS public.tag1;
          CREATE TABLE public.domain_keys (k public.tag2 NOT NULL, v varchar(20) NOT NULL, c cidr NOT NULL,
            created_at timestamptz NOT NULL);
          CREATE UNIQUE INDEX ON public.domain_keys (k text_pattern_ops, v varchar_pattern_ops, c);
          INSERT INTO public.domain_keys
          SELECT 'k' || (g % 7), 'v' || g || repeat(' ', g % 3), ('10.0.' || g || '.0/24')::cidr, ${day(40)} + (g % 4) * interval '1 hour' FROM generate_series(1, 30) g;
          INSERT INTO public.domain_keys VALUES ('new', 'new', '10.1.0.0/16', ${day(1)});`,
  },
  {
    // A DEFERRABLE primary key beside the immediate unique index the key is: ON CONFLICT (id) takes every unique
    // index on the key's columns as an arbiter, and refuses a deferrable one.
    name: 'deferrable_pk',
    timestampColumn: 'created_at',
    keyColumns: ['id'],
    ddl: `CREATE TABLE public.deferrable_pk (id bigint PRIMARY KEY DEFERRABLE, created_at timestamptz NOT NULL, v text);
          CREATE UNIQUE INDEX deferrable_pk_id ON public.deferrable_pk (id);
          INSERT INTO public.deferrable_pk SELECT g, ${day(40)} + (g % 4) * interval '1 hour', 'v' || g FROM generate_series(1, 20) g;
          INSERT INTO public.deferrable_pk VALUES (100, ${day(1)}, 'new');`,
  },
  {
    // The primary key, and a DEFERRABLE unique constraint on the same column.
    name: 'deferrable_twin',
    timestampColumn: 'created_at',
    ddl: `CREATE TABLE public.deferrable_twin (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, v text,
            CONSTRAINT deferrable_twin_once UNIQUE (id) DEFERRABLE INITIALLY DEFERRED);
          INSERT INTO public.deferrable_twin SELECT g, ${day(40)} + (g % 4) * interval '1 hour', 'v' || g FROM generate_series(1, 20) g;
          INSERT INTO public.deferrable_twin VALUES (100, ${day(1)}, 'new');`,
  },
];

describeRoundTrips('unusual keys archive, delete and restore exactly', CASES, 7);
