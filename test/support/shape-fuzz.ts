import pg from 'pg';
import type { TableSpec } from './fixtures.js';
import { seededRandom } from './proof-ledger.js';

/**
 * A seeded generator of tables to archive: random columns of random types and names, a random key, random values
 * with their edges, rows on UTC days around the cut-off. The same seed gives the same case on every machine and at
 * every hour (timestamps are written relative to today's UTC midnight, as SQL). test/proofs/shape-fuzz.test.ts runs
 * the cases through the local workflows and checks the product's invariants.
 */

const q = pg.escapeIdentifier;
const lit = pg.escapeLiteral;

/** The seeded choices of one case. */
export class Rng {
  private readonly random: () => number;
  constructor(seed: number) {
    this.random = seededRandom(seed);
  }
  next(): number {
    return this.random();
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
}

/** The seeds the environment variable `name` lists (`17,4242` or ranges `1000-1199`), if set. */
export function seedsFromEnv(name: string): number[] | undefined {
  const text = process.env[name];
  if (!text) return undefined;
  return text.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number);
    if (from === undefined || Number.isNaN(from))
      throw new Error(`${name}: ${part} is not a seed or a range`);
    const last = to ?? from;
    return Array.from({ length: last - from + 1 }, (_, i) => from + i);
  });
}

/** A column type: its DDL, the SQL that defines it first, and its values as text (null for SQL NULL). */
interface FuzzType {
  sql: string;
  setup: string[];
  value(rng: Rng): string | null;
  /** The i-th of distinct key values, when the type may be a key. */
  key?(i: number): string;
  /** False when `key` repeats values (an enum has few labels): such a type is never a key's last column. */
  uniqueKeys?: boolean;
  label: string;
}

const TEXTS = [
  '',
  ' ',
  'a',
  'NULL',
  '\\N',
  '\\',
  'back\\slash',
  'tab\there',
  'new\nline',
  'cr\rreturn',
  'quote"d',
  "it's",
  '\u2028line\u2029para',
  'emoji 😀',
  'ëü日本語',
  '{a,b}',
  '(1,2)',
  '  padded  ',
  '\u0001\u001f\u007f',
  '\u202eevil\u202c',
  'e\u0301',
  '\u200b',
];

function randomText(rng: Rng, max = 20): string {
  const alphabet = 'abcXYZ 019_-\\"\'\t,{}()é日😀';
  const chars = Array.from(alphabet);
  let out = '';
  const n = rng.int(0, max);
  for (let i = 0; i < n; i++) out += rng.pick(chars);
  return out;
}

function textValue(rng: Rng): string {
  if (rng.chance(0.05)) return 'long '.repeat(rng.int(200, 1500));
  return rng.chance(0.5) ? rng.pick(TEXTS) : randomText(rng);
}

/** An array or record element as its text quotes it (backslash and quote escaped). */
const quoted = (text: string) => `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

const scalar = (
  label: string,
  sql: string,
  edges: string[],
  random: (rng: Rng) => string,
  key?: (i: number) => string,
): FuzzType => ({
  label,
  sql,
  setup: [],
  value: (rng) => (rng.chance(0.1) ? null : rng.chance(0.4) ? rng.pick(edges) : random(rng)),
  ...(key ? { key } : {}),
});

const pad = (n: number, width: number) => String(n).padStart(width, '0');
const uuidOf = (i: number) => `${pad(i, 8)}-0000-4000-8000-${pad(i * 7919, 12).slice(-12)}`;

/** The types PostgreSQL ships (`version` gates those that need a newer server). */
function builtinTypes(version: number, encoding?: string): FuzzType[] {
  const types: FuzzType[] = [
    scalar(
      'int2',
      'int2',
      ['0', '-32768', '32767'],
      (r) => String(r.int(-32768, 32767)),
      (i) => String(i * 3 - 200),
    ),
    scalar(
      'int4',
      'int4',
      ['0', '-2147483648', '2147483647'],
      (r) => String(r.int(-2e9, 2e9)),
      (i) => String(i * 104729 - 2147483648),
    ),
    scalar(
      'int8',
      'int8',
      ['-9223372036854775808', '9223372036854775807', '0'],
      (r) => `${r.int(-9e8, 9e8)}${pad(r.int(0, 1e9 - 1), 9)}`,
      (i) => `${i}000000000000${pad(i, 3)}`,
    ),
    scalar(
      'numeric',
      'numeric',
      ['NaN', '-0.000100', '123456789012345678901234567890.123456789012345678901234567890', '0', '1e-30'],
      (r) => `${r.int(-1e6, 1e6)}.${pad(r.int(0, 9999), r.int(1, 6))}`,
      (i) => (i === 0 ? 'NaN' : `${i - 50}.${pad(i, 4)}0`),
    ),
    scalar(
      'numeric(12,4)',
      'numeric(12,4)',
      ['NaN', '-99999999.9999', '0.00005', '0'],
      (r) => `${r.int(-1e6, 1e6)}.${pad(r.int(0, 99999), 5)}`,
      (i) => `${i - 50}.25`,
    ),
    scalar(
      'float8',
      'float8',
      [
        'NaN',
        'Infinity',
        '-Infinity',
        '-0',
        '5e-324',
        '1.7976931348623157e308',
        '0.1',
        '2.2250738585072014e-308',
      ],
      (r) => String((r.next() - 0.5) * 10 ** r.int(-20, 20)),
      (i) => (i === 0 ? 'NaN' : i === 1 ? '-Infinity' : String((i - 40) / 3)),
    ),
    scalar(
      'float4',
      'float4',
      ['NaN', 'Infinity', '-0', '1.17549435e-38', '3.4028235e38', '1e-45', '0.1'],
      (r) => String(Math.fround((r.next() - 0.5) * 10 ** r.int(-10, 10))),
      (i) => String(Math.fround((i - 40) / 7)),
    ),
    scalar('text', 'text', TEXTS, textValue, (i) => `${TEXTS[i % TEXTS.length]}#${i}`),
    scalar('text C', 'text COLLATE "C"', TEXTS, textValue, (i) => `${TEXTS[i % TEXTS.length]}·${i}`),
    scalar('text icu', 'text COLLATE "und-x-icu"', TEXTS, textValue, (i) => `${i % 7 ? 'b' : 'B'}-${i}é`),
    {
      ...scalar('text numeric', 'text COLLATE public.fz_numeric', TEXTS, textValue, (i) => `a${i % 13}b${i}`),
      setup: ["CREATE COLLATION IF NOT EXISTS public.fz_numeric (provider = icu, locale = 'en-u-kn-true')"],
    },
    {
      ...scalar('text ci', 'text COLLATE public.fz_ci', TEXTS, textValue, (i) => `K${i}`),
      setup: [
        "CREATE COLLATION IF NOT EXISTS public.fz_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
      ],
    },
    scalar(
      'varchar(12)',
      'varchar(12)',
      ['', ' ', 'x'.repeat(12), '\\'],
      (r) => randomText(r, 12),
      (i) => `v${i}`,
    ),
    scalar(
      'char(4)',
      'char(4)',
      ['', ' ', 'ab', 'abcd', 'é'],
      (r) => randomText(r, 4).trimEnd(),
      (i) => `${i % 10} ${Math.floor(i / 10)}`,
    ),
    scalar(
      'bpchar',
      'bpchar',
      ['', ' ', 'a  ', '  '],
      (r) => `${randomText(r, 6)}  `,
      (i) => `k${i}  `,
    ),
    scalar('"char"', '"char"', ['a', '', '\\', ' ', '\u007f'], (r) =>
      r.pick(['a', 'Z', '\\', '"', ',', ' ']),
    ),
    scalar(
      'name',
      'name',
      ['', 'x'.repeat(63), 'ü'.repeat(31)],
      (r) => randomText(r, 30),
      (i) => `${'n'.repeat(i % 60)}${i}`,
    ),
    scalar(
      'bytea',
      'bytea',
      ['\\x', '\\x00', '\\xff00ff', 'abc\\000\\\\'],
      (r) => `\\x${Array.from({ length: r.int(0, 12) }, () => pad(r.int(0, 255), 3).slice(-2)).join('')}`,
      (i) => `\\x${i.toString(16).padStart(4, '0')}`,
    ),
    scalar('bool', 'bool', ['t', 'f'], (r) => (r.chance(0.5) ? 't' : 'f')),
    scalar(
      'date',
      'date',
      ['infinity', '-infinity', '4713-01-01 BC', '5874897-12-31', '0001-01-01', '2000-02-29'],
      (r) => `${r.int(1, 2999)}-${pad(r.int(1, 12), 2)}-${pad(r.int(1, 28), 2)}`,
      (i) => `${pad(i + 1, 4)}-03-0${(i % 9) + 1}${i % 2 ? ' BC' : ''}`,
    ),
    scalar(
      'time',
      'time',
      ['00:00:00', '24:00:00', '23:59:59.999999'],
      (r) => `${pad(r.int(0, 23), 2)}:${pad(r.int(0, 59), 2)}:${pad(r.int(0, 59), 2)}.${r.int(0, 999999)}`,
      (i) => `${pad(i % 24, 2)}:${pad(Math.floor(i / 24), 2)}:00.5`,
    ),
    scalar(
      'timetz',
      'timetz',
      ['00:00:00+15:59', '24:00:00-15:59', '12:00:00+05:30'],
      (r) => `${pad(r.int(0, 23), 2)}:${pad(r.int(0, 59), 2)}:01${r.pick(['+00', '-08', '+05:45', '+14'])}`,
      (i) => `${pad(i % 24, 2)}:${pad(Math.floor(i / 24), 2)}:00+0${i % 3}`,
    ),
    scalar(
      'timestamp',
      'timestamp',
      [
        'infinity',
        '-infinity',
        '4714-11-24 00:00:00 BC',
        '294276-12-31 23:59:59.999999',
        '1999-12-31 23:59:59.999999',
      ],
      (r) => `${r.int(1, 2999)}-0${r.int(1, 9)}-1${r.int(0, 9)} 0${r.int(0, 9)}:30:00.${r.int(0, 999999)}`,
      (i) => `${pad(i + 1, 4)}-06-15 12:00:00.${pad(i, 6)}${i % 2 ? ' BC' : ''}`,
    ),
    scalar(
      'timestamptz',
      'timestamptz',
      [
        'infinity',
        '-infinity',
        '4714-11-24 00:00:00+00 BC',
        '294276-12-31 23:59:59.999999+00',
        '2024-03-10 02:30:00 America/New_York',
      ],
      (r) =>
        `${r.int(1, 2999)}-0${r.int(1, 9)}-1${r.int(0, 9)} 0${r.int(0, 9)}:30:00.${r.int(0, 999999)}+0${r.int(0, 9)}`,
      (i) => `${pad(i + 1, 4)}-06-15 12:00:00.${pad(i, 6)}+00${i % 2 ? ' BC' : ''}`,
    ),
    scalar(
      'interval',
      'interval',
      [
        '0',
        '-178000000 years',
        '178000000 years',
        '1 mon -1 days',
        '-00:00:00.000001',
        '1 day 25:00:00',
        'P1Y2M3DT4H5M6.7S',
        ...(version >= 17 ? ['infinity', '-infinity'] : []),
      ],
      (r) => `${r.int(-50, 50)} days ${r.int(-30, 30)}:${pad(r.int(0, 59), 2)}:00.${r.int(0, 999)}`,
      (i) => `${i} days ${i} hours`,
    ),
    scalar(
      'uuid',
      'uuid',
      ['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff'],
      (r) => uuidOf(r.int(0, 99999999)),
      uuidOf,
    ),
    scalar(
      'json',
      'json',
      [
        ' {"a" : 1 } ',
        '[]',
        '"x"',
        'null',
        '{"a":1,"a":2}',
        '"\\u0000"',
        '1e400',
        '{"\\u2028":"\\ud83d\\ude00"}',
      ],
      (r) => JSON.stringify({ v: textValue(r), n: r.int(-5, 5) }),
    ),
    scalar(
      'jsonb',
      'jsonb',
      ['null', '{}', '{"b":1,"a":[true,null,1.50]}', '"\\u00e9"', '1e400', '-0', '[[]]'],
      (r) => JSON.stringify({ v: textValue(r).replaceAll('\u0000', ''), n: r.next() }),
      (i) => (i % 3 === 0 ? `[${i}, "x"]` : `{"k": ${i}}`),
    ),
    scalar(
      'inet',
      'inet',
      ['10.0.0.1', '10.0.0.1/8', '::1', '::ffff:1.2.3.4/128', '0.0.0.0/0'],
      (r) => `${r.int(0, 255)}.${r.int(0, 255)}.0.${r.int(0, 255)}/${r.int(8, 32)}`,
      (i) => `10.${i % 256}.${Math.floor(i / 256)}.1/${(i % 24) + 8}`,
    ),
    scalar('cidr', 'cidr', ['10.0.0.0/8', '::/0', '192.168.1.0/24'], (r) => `10.${r.int(0, 255)}.0.0/16`),
    scalar(
      'macaddr',
      'macaddr',
      ['08:00:2b:01:02:03', '00:00:00:00:00:00'],
      (r) => `08:00:2b:01:02:${pad(r.int(10, 99), 2)}`,
      (i) => `08:00:2b:01:${pad(Math.floor(i / 100), 2)}:${pad(i % 100, 2)}`,
    ),
    scalar(
      'money',
      'money',
      ['0', '-92233720368547758.08', '92233720368547758.07', '-0.01'],
      (r) => `${r.int(-1e6, 1e6)}.${pad(r.int(0, 99), 2)}`,
      (i) => `${i - 30}.5`,
    ),
    scalar('bit(5)', 'bit(5)', ['10101', '00000'], (r) => pad(Number(r.int(0, 31).toString(2)), 5)),
    scalar(
      'varbit',
      'varbit',
      ['', '1', '0000000000000000000000000000000001'],
      (r) => Array.from({ length: r.int(0, 40) }, () => (r.chance(0.5) ? '1' : '0')).join(''),
      (i) => i.toString(2),
    ),
    scalar(
      'tsvector',
      'tsvector',
      ['', 'a fat cat', "a:1A fat:2B,4C cat:5D 'with space' 'quo''te'", 'back\\\\slash'],
      (r) => `w${r.int(0, 9)} x${r.int(0, 9)}:${r.int(1, 9)}`,
    ),
    scalar(
      'tsquery',
      'tsquery',
      ['fat & (rat | cat)', '!a', 'a <-> b', "'x y':*"],
      (r) => `w${r.int(0, 9)} & v`,
    ),
    scalar(
      'point',
      'point',
      ['(1,2)', '(NaN,Infinity)', '(-0,0)', '(1e-320,1)'],
      (r) => `(${r.next()},${r.int(-9, 9)})`,
    ),
    scalar('box', 'box', ['(1,1),(0,0)', '(-0,0),(1e-10,2)'], (r) => `(${r.int(0, 9)},1),(0,${r.next()})`),
    scalar(
      'int4range',
      'int4range',
      ['empty', '(,)', '[1,5)', '(,3]'],
      (r) => `[${r.int(-9, 0)},${r.int(1, 9)})`,
    ),
    scalar(
      'numrange',
      'numrange',
      ['empty', '(,)', '[1.50,2.500]'],
      (r) => `(${r.int(-9, 0)}.5,${r.int(1, 9)}.25]`,
    ),
    scalar(
      'tstzrange',
      'tstzrange',
      ['[-infinity,infinity)', '["2020-01-01 00:00+00",)', 'empty'],
      (r) => `[2020-01-0${r.int(1, 4)} 00:00+00,2020-02-01 00:00+05:30)`,
    ),
    scalar(
      'daterange',
      'daterange',
      ['empty', '[2000-01-01,infinity)', '(,)'],
      (r) => `[2000-01-${pad(r.int(1, 9), 2)},)`,
    ),
    scalar(
      'int4multirange',
      'int4multirange',
      ['{}', '{[1,3),[5,7)}', '{(,)}'],
      (r) => `{[${r.int(0, 3)},${r.int(4, 9)})}`,
    ),
    scalar(
      'pg_lsn',
      'pg_lsn',
      ['0/0', 'FFFFFFFF/FFFFFFFF'],
      (r) => `${r.int(0, 99)}/${r.int(0, 9999)}`,
      (i) => `0/${i}`,
    ),
    scalar(
      'oid',
      'oid',
      ['0', '4294967295'],
      (r) => String(r.int(0, 4e9)),
      (i) => String(i * 1000),
    ),
    scalar(
      'xml',
      'xml',
      ['<a>x</a>', 'fragment <b/> text', '', '<?xml version="1.0"?><r/>'],
      (r) => `<v n="${r.int(0, 9)}"/>`,
    ),
  ];
  // ICU does not take SQL_ASCII: its collations are unusable there.
  return encoding === 'SQL_ASCII'
    ? types.filter((t) => !['text icu', 'text numeric', 'text ci'].includes(t.label))
    : types;
}

/** An array of `element`: NULL elements, empty arrays, two dimensions, lower bounds other than 1. */
function arrayOf(element: FuzzType): FuzzType {
  // box separates its array elements with ';' (its typdelim), as its own text holds commas.
  const d = element.label === 'box' ? ';' : ',';
  const elements = (rng: Rng, n: number) =>
    Array.from({ length: n }, () => {
      const value = element.value(rng);
      return value === null ? 'NULL' : quoted(value);
    });
  return {
    label: `${element.label}[]`,
    sql: `${element.sql.replace(/ COLLATE .*$/, '')}[]`,
    setup: element.setup,
    value(rng) {
      if (rng.chance(0.1)) return null;
      switch (rng.int(0, 4)) {
        case 0:
          return '{}';
        case 1:
          return `{{${elements(rng, 2).join(d)}}${d}{${elements(rng, 2).join(d)}}}`;
        case 2:
          return `[0:1]={${elements(rng, 2).join(d)}}`;
        default:
          return `{${elements(rng, rng.int(1, 4)).join(d)}}`;
      }
    },
    ...(element.key ? { key: (i: number) => `{${quoted(element.key?.(i) ?? '')}}` } : {}),
  };
}

/** Names of columns, types and tables: plain, mixed case, spaces, quotes, unicode, reserved words, 63 bytes. */
const NAMES = [
  'id',
  'Id',
  'ID ',
  'select',
  'from',
  'order',
  'user',
  'check',
  'with space',
  'quo"te',
  "apo'strophe",
  'ëvent',
  '日付',
  't',
  's',
  'o',
  'v',
  'ts',
  'c0',
  'line',
  'k',
  'b',
  'constructor',
  '__proto__',
  'a.b',
  'semi;colon',
  '\\back',
  'tab\tname',
  'x'.repeat(63),
  `${'é'.repeat(31)}x`,
];

function nameFrom(rng: Rng, taken: Set<string>): string {
  for (;;) {
    const base = rng.chance(0.6) ? rng.pick(NAMES) : `${rng.pick(NAMES).slice(0, 20)}${rng.int(0, 99)}`;
    const name = Buffer.byteLength(base) > 63 ? base.slice(0, 20) : base;
    if (!taken.has(name) && !name.startsWith('fz_')) {
      taken.add(name);
      return name;
    }
  }
}

/** User-defined types, defined in `schema`: enums, domains over a scalar and an array, composites, a range. */
function userType(rng: Rng, schema: string, types: FuzzType[], n: number): FuzzType {
  const name = `${q(schema)}.${q(`ty ${n}${rng.pick(['', '"', 'É', 'Select'])}`)}`;
  const kind = rng.int(0, 5);
  if (kind === 0) {
    const labels = ['a', 'B', 'with space', 'quo"te', "it's", 'ü', 'NULL', 'x'.repeat(63), '\\'];
    const first = labels.slice(0, rng.int(2, labels.length));
    // A label added BEFORE another sorts ahead of it: the enum's order is not its labels' creation order.
    const added = 'added first';
    return {
      label: 'enum',
      sql: name,
      setup: [
        `CREATE TYPE ${name} AS ENUM (${first.map(lit).join(', ')})`,
        `ALTER TYPE ${name} ADD VALUE ${lit(added)} BEFORE ${lit(first[0] ?? 'a')}`,
      ],
      value: (r) => (r.chance(0.1) ? null : r.pick([...first, added])),
      key: (i) => [...first, added][i % (first.length + 1)] ?? 'a',
      uniqueKeys: false,
    };
  }
  const base = rng.pick(types.filter((t) => t.label !== 'xml'));
  if (kind === 1 || kind === 2) {
    // A domain over a scalar (with a CHECK that every value passes) or over an array of it.
    const over = kind === 1 ? base : arrayOf(base);
    return {
      label: `domain over ${over.label}`,
      sql: name,
      setup: [
        ...over.setup,
        `CREATE DOMAIN ${name} AS ${over.sql} CHECK (VALUE IS NOT NULL OR VALUE IS NULL)`,
      ],
      value: over.value,
      ...(over.key && kind === 1 ? { key: over.key, uniqueKeys: over.uniqueKeys } : {}),
    };
  }
  if (kind === 3 || kind === 4) {
    // A composite of two or three attributes, one dropped: its text is a record literal.
    const parts = [base, rng.pick(types), rng.pick(types)].slice(0, rng.int(1, 3));
    const attrs = parts.map((t, i) => `${q(`f${i} ${rng.pick(['', 'x"', 'É'])}`)} ${t.sql}`);
    return {
      label: `composite of ${parts.map((p) => p.label).join(', ')}`,
      sql: name,
      setup: [
        ...parts.flatMap((p) => p.setup),
        `CREATE TYPE ${name} AS (${attrs.join(', ')}, gone int)`,
        `ALTER TYPE ${name} DROP ATTRIBUTE gone`,
      ],
      value(r) {
        if (r.chance(0.1)) return null;
        return `(${parts
          .map((p) => {
            const v = p.value(r);
            return v === null ? '' : quoted(v);
          })
          .join(',')})`;
      },
    };
  }
  const subtype = rng.pick(['int8', 'numeric', 'timestamp', 'text COLLATE "C"', 'float8']);
  return {
    label: `range over ${subtype}`,
    sql: name,
    setup: [`CREATE TYPE ${name} AS RANGE (subtype = ${subtype.replace(/ COLLATE.*/, '')})`],
    value(r) {
      if (r.chance(0.15)) return r.pick(['empty', '(,)', null]);
      const [lo, hi] =
        subtype === 'timestamp'
          ? ['"2000-01-01 00:00"', '"2000-01-02 00:00"']
          : subtype.startsWith('text')
            ? ['"a b"', '"z\\"z"']
            : [String(r.int(-9, 0)), String(r.int(1, 9))];
      return `${r.pick(['[', '('])}${lo},${hi}${r.pick([']', ')'])}`;
    },
  };
}

export interface FuzzCase {
  seed: number;
  schema: string;
  table: string;
  spec: TableSpec;
  /** Statements that make the types, the table and its rows, in order. */
  setup: string[];
  /** `ALTER DATABASE {db} SET …` settings the archiver's sessions start with (it pins what it needs). */
  databaseSettings: [string, string][];
  batchSize: number;
  /** Why the product may refuse this table, when the generator made it so; empty: it must archive it. */
  mayRefuse: string[];
  /** `ALTER ROLE {the workflow's role} IN DATABASE {db} SET …`: a role's settings, which override the database's. */
  roleSettings: [string, string][];
  /** The database's server encoding when not UTF8 (its values and names are then ones that encoding holds). */
  encoding?: 'LATIN1' | 'SQL_ASCII';
  /**
   * Tables besides the case's whose rows the run must leave exactly as they were: an inheritance child of the table
   * (read and deleted `ONLY`), or the parent the table inherits from.
   */
  untouched: string[];
}

/**
 * `text` with every character `encoding` cannot hold replaced by one it can (the same character for the same input,
 * so names stay consistent across statements), and JSON escapes of such characters (which jsonb would convert to the
 * server encoding) by an escape of one it holds.
 */
function fitEncoding(text: string, encoding: 'LATIN1' | 'SQL_ASCII'): string {
  const top = encoding === 'LATIN1' ? 0xff : 0x7f;
  const swap = (cp: number) =>
    encoding === 'LATIN1' ? String.fromCodePoint(0xc0 + (cp % 0x40)) : String.fromCodePoint(0x61 + (cp % 26));
  return Array.from(
    text.replace(/\\u([0-9a-fA-F]{4})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?/g, (all, hex: string) =>
      Number.parseInt(hex, 16) > top ? `\\u00${encoding === 'LATIN1' ? 'e9' : '41'}` : all,
    ),
  )
    .map((c) => ((c.codePointAt(0) ?? 0) > top ? swap(c.codePointAt(0) ?? 0) : c))
    .join('');
}

const ZONES = [
  'UTC',
  'America/New_York',
  'Asia/Kolkata',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
  'Antarctica/Troll',
];

const SETTINGS: [string, string][] = [
  ['TimeZone', 'Asia/Kathmandu'],
  ['TimeZone', 'America/St_Johns'],
  ['DateStyle', 'SQL, DMY'],
  ['DateStyle', 'German'],
  ['IntervalStyle', 'iso_8601'],
  ['IntervalStyle', 'sql_standard'],
  ['extra_float_digits', '-3'],
  ['bytea_output', 'escape'],
  ['standard_conforming_strings', 'off'],
  ['default_transaction_isolation', 'serializable'],
  ['timezone_abbreviations', 'Australia'],
  ['enable_indexscan', 'off'],
  ['enable_seqscan', 'off'],
  ['work_mem', '64kB'],
  ['parallel_setup_cost', '0'],
  ['parallel_tuple_cost', '0'],
  ['min_parallel_table_scan_size', '0'],
  ['jit', 'off'],
  ['search_path', 'public'],
  ['search_path', '"$user", pg_temp, public'],
  ['IntervalStyle', 'postgres_verbose'],
  ['extra_float_digits', '3'],
  ['lc_monetary', 'C.utf8'],
  ['lc_numeric', 'POSIX'],
  ['xmloption', 'document'],
  ['array_nulls', 'off'],
  ['DateStyle', 'Postgres, YMD'],
  ['intervalstyle', 'sql_standard'],
  ['transform_null_equals', 'on'],
  ['enable_partition_pruning', 'off'],
  ['plan_cache_mode', 'force_generic_plan'],
  ['max_parallel_workers_per_gather', '0'],
  ['default_toast_compression', 'pglz'],
  ['backslash_quote', 'on'],
  ['default_text_search_config', 'pg_catalog.simple'],
  ['enable_hashjoin', 'off'],
  ['enable_bitmapscan', 'off'],
  ['constraint_exclusion', 'off'],
];

/** The SQL of an instant `days` days and `micros` microseconds after today's UTC midnight. */
const instantSql = (days: number, micros: number) => {
  // Whole seconds and the microseconds left: PostgreSQL 14 reads at most 2^31 - 1 microseconds in an interval.
  const seconds = Math.floor(micros / 1e6);
  return `(date_trunc('day', now(), 'UTC') + make_interval(days => ${days}, secs => ${seconds}) + interval '${micros - seconds * 1e6} microseconds')`;
};

/** The instant `instant` as a value of the archive column's kind (a local time in `zone`, or a UTC day). */
const instantAs = (kind: 'timestamptz' | 'timestamp' | 'date', zone: string, instant: string) =>
  kind === 'timestamptz'
    ? instant
    : kind === 'timestamp'
      ? `(${instant} AT TIME ZONE ${lit(zone)})`
      : `(${instant} AT TIME ZONE 'UTC')::date`;

/**
 * The archive column's value of one row, as SQL: mostly instants on UTC days before the cut-off (30 days' retention)
 * and after it, some at day boundaries and the cut-off ±1 µs, some at the ends of time.
 */
function timestampSql(
  rng: Rng,
  kind: 'timestamptz' | 'timestamp' | 'date',
  zone: string,
  nullable: boolean,
  oldest: number,
): string {
  const asKind = (instant: string) => instantAs(kind, zone, instant);
  const roll = rng.next();
  if (roll < 0.55) return asKind(instantSql(-rng.int(31, oldest), rng.int(0, 86_399_999_999)));
  if (roll < 0.75) return asKind(instantSql(-rng.int(0, 29), rng.int(0, 86_399_999_999)));
  const edge = rng.int(0, 11);
  if (edge === 0 && nullable) return 'NULL';
  const ends: Record<typeof kind, string[]> = {
    timestamptz: [
      "'infinity'",
      "'-infinity'",
      "'0001-01-01 00:00:00+00'",
      "'0001-01-01 BC'",
      "'1970-01-01 00:00+00'",
    ],
    timestamp: [
      "'infinity'",
      "'-infinity'",
      "'0001-01-02 00:00:00'",
      "'0001-01-01 BC'",
      "'1970-01-01 00:00'",
    ],
    date: ["'infinity'", "'-infinity'", "'0001-01-01'", "'0001-01-01 BC'"],
  };
  if (edge <= 2) return rng.pick(ends[kind]);
  const day = -rng.int(30, 34);
  return asKind(instantSql(day, rng.pick([0, -1, 1, 86_399_999_999])));
}

/** One case from `seed`, for a server of `version` (14 or 18). */
export function generateCase(seed: number, version: number): FuzzCase {
  const rng = new Rng(seed);
  // The choices added later (encoding, role settings, inheritance, nested and re-attached partitions) draw from a
  // stream of their own, so a seed keeps the shape it had before them where they do not apply.
  const more = new Rng(seed * 7919 + 17);
  const encodingRoll = more.next();
  const encoding = encodingRoll < 0.12 ? 'LATIN1' : encodingRoll < 0.22 ? 'SQL_ASCII' : undefined;
  const mayRefuse: string[] = [];
  const taken = new Set<string>();
  const schema = rng.chance(0.4) ? 'public' : nameFrom(rng, new Set());
  const table = nameFrom(rng, new Set());
  const setup: string[] = schema === 'public' ? [] : [`CREATE SCHEMA ${q(schema)}`];
  const builtins = builtinTypes(version, encoding);
  const pickType = (n: number): FuzzType => {
    const roll = rng.next();
    if (roll < 0.2) return userType(rng, schema, builtins, n);
    if (roll < 0.35) return arrayOf(rng.pick(builtins));
    return rng.pick(builtins);
  };

  // The archive column, and the span of its archive objects (a month's rows wait for the month to end).
  const span = rng.chance(0.15) ? 'month' : 'day';
  const tsKind = rng.pick(['timestamptz', 'timestamptz', 'timestamp', 'timestamp', 'date'] as const);
  if (tsKind === 'date') mayRefuse.push('a date archive column');
  const zone = tsKind === 'timestamp' ? rng.pick(ZONES) : 'UTC';
  const tsName = nameFrom(rng, taken);
  const tsNullable = rng.chance(0.5);

  // The key: one to three columns of key types, the last one unique per row.
  const keyCount = rng.chance(0.6) ? 1 : rng.int(2, 3);
  const keyTypes = Array.from({ length: keyCount }, (_, i) => {
    for (;;) {
      const roll = rng.next();
      const type =
        roll < 0.2
          ? userType(rng, schema, builtins, 100 + i)
          : roll < 0.3
            ? arrayOf(rng.pick(builtins))
            : rng.pick(builtins);
      if (type.key && (i < keyCount - 1 || type.uniqueKeys !== false)) return type;
    }
  });
  const keyNames = keyTypes.map(() => nameFrom(rng, taken));
  /** The key columns of `keyTypes`, index for index (keyNames may take the archive column in among them). */
  const typedKeyNames = [...keyNames];
  const keyStyle = rng.pick(['primary', 'primary', 'unique', 'none', 'identity'] as const);
  if (keyStyle === 'none') mayRefuse.push('no key');
  if (keyStyle !== 'identity' && keyTypes.some((t) => /(^|over )text ci$/.test(t.label)))
    mayRefuse.push('a key under a nondeterministic collation');

  const columns: {
    name: string;
    ddl: string;
    value?: (rng: Rng, i: number) => string | null;
    /** Its cast to text is immutable: a generated column may compute from it. */
    immutableText?: boolean;
    /** A plain text column (of the default or the C collation). */
    plainText?: boolean;
  }[] = [];
  const IMMUTABLE_TEXT = new Set(['int2', 'int4', 'int8', 'text', 'text C', 'varchar(12)', 'uuid']);
  const extra = rng.int(0, 9);
  for (let n = 0; n < extra; n++) {
    const type = pickType(n);
    setup.push(...type.setup);
    if (version < 15 && type.label !== '"char"' && type.label.includes('"char"'))
      mayRefuse.push('"char" inside another type, before PostgreSQL 15');
    const name = nameFrom(rng, taken);
    columns.push({
      name,
      ddl: `${q(name)} ${type.sql}`,
      value: (r) => type.value(r),
      immutableText: IMMUTABLE_TEXT.has(type.label),
      plainText: type.label === 'text' || type.label === 'text C',
    });
  }
  keyTypes.forEach((type, k) => {
    setup.push(...type.setup);
    const last = k === keyTypes.length - 1;
    const name = keyNames[k] ?? '';
    columns.splice(rng.int(0, columns.length), 0, {
      name,
      ddl: `${q(name)} ${type.sql} NOT NULL`,
      value: (_r, i) => type.key?.(last ? i : i % 3) ?? null,
    });
  });
  let identity: string | undefined;
  if (keyStyle === 'identity') {
    identity = nameFrom(rng, taken);
    columns.splice(rng.int(0, columns.length), 0, {
      name: identity,
      ddl: `${q(identity)} int8 GENERATED ${rng.pick(['ALWAYS', 'BY DEFAULT'])} AS IDENTITY`,
    });
  }
  // Its type with a precision, or a domain over it; NOT NULL and part of the key, sometimes.
  // (`more` adds to how often, without changing the draws of seeds before it: rng draws first either way.)
  const tsInKey = keyStyle !== 'none' && keyStyle !== 'identity' && (rng.chance(0.2) || more.chance(0.15));
  let tsType = rng.chance(0.3) && tsKind !== 'date' ? `${tsKind}(${rng.int(0, 6)})` : tsKind;
  if (rng.chance(0.15)) {
    const domain = `${q(schema)}.${q(`ts domain ${rng.pick(['', 'É', '"'])}`)}`;
    setup.push(`CREATE DOMAIN ${domain} AS ${tsType}`);
    tsType = domain;
  }
  columns.splice(rng.int(0, columns.length), 0, {
    name: tsName,
    ddl: `${q(tsName)} ${tsType}${tsNullable && !tsInKey ? '' : ' NOT NULL'}`,
    value: (r) => timestampSql(r, tsKind, zone, tsNullable && !tsInKey, span === 'month' ? 100 : 35),
  });
  if (tsInKey) keyNames.splice(rng.int(0, keyNames.length - 1), 0, tsName);
  // A generated column of another column's text (its length), stored or (18) virtual.
  const source = columns.find((c) => c.immutableText);
  if (source && rng.chance(0.3)) {
    const name = nameFrom(rng, taken);
    const how = version >= 18 && rng.chance(0.5) ? 'VIRTUAL' : 'STORED';
    columns.push({
      name,
      ddl: `${q(name)} int4 GENERATED ALWAYS AS (octet_length(${q(source.name)}::text)) ${how}`,
    });
  }
  // Columns dropped after some rows were written, and a column added with a default after them (no row rewritten).
  const dropped = rng.chance(0.4) ? [nameFrom(rng, taken)] : [];
  for (const name of dropped)
    columns.splice(rng.int(0, columns.length), 0, { name, ddl: `${q(name)} text`, value: () => 'gone' });

  const ref = `${q(schema)}.${q(table)}`;
  const constraint =
    keyStyle === 'primary'
      ? `, PRIMARY KEY (${keyNames.map(q).join(', ')})`
      : keyStyle === 'unique'
        ? `, UNIQUE (${keyNames.map(q).join(', ')})${!tsInKey && rng.chance(0.3) ? ` INCLUDE (${q(tsName)})` : ''}`
        : keyStyle === 'identity'
          ? `, PRIMARY KEY (${q(identity ?? '')})`
          : '';
  // Partitioned by the archive column (its key holds it): a partition of old days, one across the cut-off's days, a
  // default one for the rest (the ends of time, NULL).
  const partitioned = tsInKey && (rng.chance(0.4) || more.chance(0.4));
  // Inheritance (a plain table only): the table inherits from a parent holding rows of its own (its column first in
  // the table, the archive column sometimes merged with the parent's), or gets a child (below) holding copies of its
  // rows, keys and all. The product reads and deletes the table ONLY: neither's rows may change.
  const inheritance = partitioned ? 'none' : more.pick(['none', 'none', 'none', 'parent', 'child'] as const);
  const untouched: string[] = [];
  let inherits = '';
  if (inheritance === 'parent') {
    const parent = `${q(schema)}.${q(`${table.slice(0, 20)} parent`)}`;
    const note = nameFrom(more, taken);
    const mergeTs = more.chance(0.5);
    setup.push(
      `CREATE TABLE ${parent} (${q(note)} text DEFAULT 'inherited'${mergeTs ? `, ${q(tsName)} ${tsType}` : ''})`,
      `INSERT INTO ${parent} (${q(note)}${mergeTs ? `, ${q(tsName)}` : ''}) VALUES ${Array.from(
        { length: more.int(1, 5) },
        (_, i) =>
          `(${lit(`parent's own ${i}`)}${mergeTs ? `, ${timestampSql(more, tsKind, zone, false, 40)}` : ''})`,
      ).join(', ')}`,
    );
    inherits = ` INHERITS (${parent})`;
    untouched.push(`ONLY ${parent}`);
  }
  setup.push(
    `CREATE TABLE ${ref} (${columns.map((c) => c.ddl).join(', ')}${constraint})${inherits}${partitioned ? ` PARTITION BY RANGE (${q(tsName)})` : ''}`,
  );
  /** Statements that run once every row is written. */
  const after: string[] = [];
  /**
   * A table made on its own, its columns in the reverse order of the table's (so other attribute numbers), rows
   * written into it (keys none of the table's rows take), then attached as the partition `name`.
   */
  const standalonePartition = (name: string, bounds: string, old: (r: Rng) => string): string[] => {
    const written = columns.filter((c) => c.value);
    const tuples = Array.from(
      { length: more.int(1, 12) },
      (_, j) =>
        `(${written
          .map((c) => {
            if (c.name === tsName) return old(more);
            const value = c.value?.(more, 200 + j) ?? null;
            return value === null ? 'NULL' : lit(value);
          })
          .join(', ')})`,
    );
    // Sometimes a column of its own, dropped once its rows are written: its rows' layout is not the table's. (Drawn
    // apart, so the seeds' other choices stay as they were.)
    const gone = new Rng(seed * 31 + 5).chance(0.5);
    return [
      `CREATE TABLE ${name} (${[...columns]
        .reverse()
        .map((c) => c.ddl)
        .join(', ')}${gone ? `, "fz gone" text DEFAULT 'dropped before it was attached'` : ''})`,
      `INSERT INTO ${name} (${written.map((c) => q(c.name)).join(', ')}) VALUES ${tuples.join(', ')}`,
      ...(gone ? [`ALTER TABLE ${name} DROP COLUMN "fz gone"`] : []),
      `ALTER TABLE ${ref} ATTACH PARTITION ${name} ${bounds}`,
    ];
  };
  if (partitioned) {
    const bound = (days: number) => {
      const instant = `(date_trunc('day', now(), 'UTC') - make_interval(days => ${days}))`;
      return tsKind === 'timestamptz' ? instant : `(${instant} AT TIME ZONE ${lit(zone)})`;
    };
    const part = (suffix: string) => `${q(schema)}.${q(`${table.slice(0, 20)} ${suffix}`)}`;
    const oldTo = rng.int(31, 34);
    const oldBound = `FOR VALUES FROM (MINVALUE) TO (${bound(oldTo)})`;
    const midTo = rng.int(0, 29);
    // The mid partition partitioned again: by range on the archive column, or by list or hash on a key column.
    const SUB_KEYS =
      /^(int[248]|text|text C|varchar\(12\)|uuid|date|bytea|numeric|enum|inet|oid|interval|time)$/;
    const subKey = keyTypes.findIndex((t) => SUB_KEYS.test(t.label));
    let sub = more.pick(['none', 'none', 'range', 'list', 'hash'] as const);
    if (sub !== 'none' && sub !== 'range' && subKey < 0) sub = 'range';
    const subColumn = q(typedKeyNames[subKey] ?? tsName);
    const subBy = {
      none: '',
      range: ` PARTITION BY RANGE (${q(tsName)})`,
      list: ` PARTITION BY LIST (${subColumn})`,
      hash: ` PARTITION BY HASH (${subColumn})`,
    }[sub];
    setup.push(
      ...(more.chance(0.35)
        ? standalonePartition(part('old'), oldBound, (r) =>
            instantAs(tsKind, zone, instantSql(-r.int(oldTo + 1, 40), r.int(0, 86_399_999_999))),
          )
        : [`CREATE TABLE ${part('old')} PARTITION OF ${ref} ${oldBound}`]),
      `CREATE TABLE ${part('mid')} PARTITION OF ${ref} FOR VALUES FROM (${bound(30)}) TO (${bound(midTo)})${subBy}`,
      `CREATE TABLE ${part('rest')} PARTITION OF ${ref} DEFAULT`,
    );
    const first = keyTypes[subKey]?.key?.(0) ?? '';
    if (sub === 'range')
      setup.push(
        `CREATE TABLE ${part('mid a')} PARTITION OF ${part('mid')} FOR VALUES FROM (MINVALUE) TO (${bound(more.int(midTo, 30))})`,
        `CREATE TABLE ${part('mid b')} PARTITION OF ${part('mid')} DEFAULT`,
      );
    if (sub === 'list')
      setup.push(
        `CREATE TABLE ${part('mid a')} PARTITION OF ${part('mid')} FOR VALUES IN (${lit(first)})`,
        `CREATE TABLE ${part('mid b')} PARTITION OF ${part('mid')} DEFAULT`,
      );
    if (sub === 'hash')
      setup.push(
        `CREATE TABLE ${part('mid a')} PARTITION OF ${part('mid')} FOR VALUES WITH (MODULUS 2, REMAINDER 0)`,
        `CREATE TABLE ${part('mid b')} PARTITION OF ${part('mid')} FOR VALUES WITH (MODULUS 2, REMAINDER 1)`,
      );
    // The old partition detached once its rows are written and attached again (ATTACH PARTITION scans its rows).
    if (more.chance(0.3))
      after.push(
        `ALTER TABLE ${ref} DETACH PARTITION ${part('old')}`,
        `ALTER TABLE ${ref} ATTACH PARTITION ${part('old')} ${oldBound}`,
      );
  }
  const rows = rng.int(10, 120);
  const insert = (from: number, to: number, cols: typeof columns) => {
    const written = cols.filter((c) => c.value);
    const tuples: string[] = [];
    for (let i = from; i < to; i++) {
      tuples.push(
        `(${written
          .map((c) => {
            const value = c.value?.(rng, i) ?? null;
            if (c.name === tsName) return value ?? 'NULL';
            return value === null ? 'NULL' : lit(value);
          })
          .join(', ')})`,
      );
    }
    if (tuples.length > 0)
      setup.push(
        `INSERT INTO ${ref} (${written.map((c) => q(c.name)).join(', ')}) VALUES ${tuples.join(', ')}`,
      );
  };
  const half = rng.int(0, rows);
  insert(0, half, columns);
  for (const name of dropped) setup.push(`ALTER TABLE ${ref} DROP COLUMN ${q(name)}`);
  const kept = columns.filter((c) => !dropped.includes(c.name));
  if (rng.chance(0.3)) {
    const name = nameFrom(rng, taken);
    setup.push(`ALTER TABLE ${ref} ADD COLUMN ${q(name)} text DEFAULT ${lit(rng.pick(TEXTS))}`);
  }
  insert(half, rows, kept);
  if (encoding === 'SQL_ASCII' && more.chance(0.6)) {
    let latin = kept.find((c) => c.plainText)?.name;
    if (latin === undefined) {
      latin = nameFrom(more, taken);
      setup.push(`ALTER TABLE ${ref} ADD COLUMN ${q(latin)} text DEFAULT 'latin1'`);
    }
    // A byte that is not UTF-8 in some values (a SQL_ASCII database stores any bytes it is given): documented to be
    // refused by name (SQLSTATE 22021) when export reads such a row, before anything of its batch moves.
    setup.push(
      `UPDATE ${ref} SET ${q(latin)} = ${q(latin)} || convert_from('\\xe9'::bytea, 'SQL_ASCII') WHERE octet_length(${q(latin)}) % 2 = 0`,
    );
    mayRefuse.push('bytes that are not UTF-8 in a SQL_ASCII database');
  }
  if (inheritance === 'child') {
    // A child with a column of its own, holding a copy of every row of the table (the same keys, old days too).
    const child = `${q(schema)}.${q(`${table.slice(0, 20)} child`)}`;
    const own = nameFrom(more, taken);
    setup.push(`CREATE TABLE ${child} (${q(own)} text DEFAULT 'child') INHERITS (${ref})`);
    const copied = kept.filter((c) => c.value || c.name === identity).map((c) => q(c.name));
    setup.push(
      `INSERT INTO ${child} (${copied.join(', ')}) SELECT ${copied.join(', ')} FROM ONLY ${ref}`,
      `UPDATE ${child} SET ${q(own)} = 'child ' || ${q(tsName)}::text`,
    );
    untouched.push(child);
  }
  setup.push(...after);

  const spec: TableSpec = {
    schema,
    name: table,
    timestampColumn: tsName,
    ...(tsKind === 'timestamp' ? { timestampTimeZone: zone } : {}),
    // keyColumns in another order than the index's: it is the order batches are cut by.
    ...(keyStyle === 'unique' ? { keyColumns: rng.chance(0.5) ? keyNames : [...keyNames].reverse() } : {}),
    ...(span === 'month' ? { objectSpan: span } : {}),
  };
  const databaseSettings = Array.from({ length: rng.int(0, 3) }, () => rng.pick(SETTINGS));
  const batchSize = rng.int(3, 40);
  const roleSettings = Array.from({ length: more.chance(0.4) ? more.int(1, 3) : 0 }, () =>
    more.pick(SETTINGS),
  );
  const made: FuzzCase = {
    seed,
    schema,
    table,
    spec,
    setup,
    databaseSettings,
    batchSize,
    mayRefuse,
    roleSettings,
    untouched,
  };
  if (!encoding) return made;
  // Names and values the encoding holds: each character it cannot hold replaced by one it can.
  const inEncoding = (text: string) => fitEncoding(text, encoding);
  return {
    ...made,
    encoding,
    schema: inEncoding(schema),
    table: inEncoding(table),
    setup: setup.map(inEncoding),
    untouched: untouched.map(inEncoding),
    spec: {
      ...spec,
      schema: inEncoding(schema),
      name: inEncoding(table),
      timestampColumn: inEncoding(tsName),
      ...(spec.keyColumns ? { keyColumns: spec.keyColumns.map(inEncoding) } : {}),
    },
  };
}
