import { describe, expect, it } from 'vitest';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  listKeys,
  resolvedTable,
  seedEvents,
  seedPartitionedWhole,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const DAY_MS = 86_400_000;

describe('table kinds: partitioned tables through their parent, views refused', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      // Partitions: one ending 33 days ago, one from there to 20 days ago, and a default one for the rest, so the
      // eligible rows lie in two partitions and the cut-off falls inside the second.
      const today = Math.floor(db.now().getTime() / DAY_MS) * DAY_MS;
      const at = (days: number) => new Date(today - days * DAY_MS).toISOString();
      await db.client.query(`
        CREATE TABLE public.parted (id bigserial, created_at timestamptz NOT NULL, actor text NOT NULL,
                                    PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
        CREATE TABLE public.parted_old PARTITION OF public.parted FOR VALUES FROM (MINVALUE) TO ('${at(33)}');
        CREATE TABLE public.parted_mid PARTITION OF public.parted FOR VALUES FROM ('${at(33)}') TO ('${at(20)}');
        CREATE TABLE public.parted_new PARTITION OF public.parted DEFAULT;
        INSERT INTO public.parted (created_at, actor)
        SELECT '${at(0)}'::timestamptz - g * interval '1 hour', 'user_' || g % 7 FROM generate_series(1, 36 * 24) AS g;`);
      // 260 rows over 131 days (two a day, one on the first and last), keyed by 2,560 characters that do not compress:
      // more objects of such keys than one batch's record has room for, which failed every batch's record before.
      await db.client.query(`
        CREATE TABLE public.long_keys (id text PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL);
        INSERT INTO public.long_keys
        SELECT (SELECT string_agg(md5(g || ':' || i), '') FROM generate_series(1, 80) AS i),
               '${at(0)}'::timestamptz - make_interval(days => 40 + g / 2), 'user_' || g % 7
          FROM generate_series(1, 260) AS g`);
      await seedEvents(db.client, 'base', 90);
      await db.client.query('CREATE VIEW public.a_view AS SELECT * FROM public.base');
    },
    [spec('parted'), spec('a_view'), spec('long_keys')],
  );

  it('archives a partitioned table through its parent, from every partition, losing nothing', async () => {
    // Prepare
    const table = resolvedTable(spec('parted'));
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);

    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.parted'] }, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: counts.inArchives });
    const left = await bed.db.client.query(
      `SELECT tableoid::regclass::text AS part, count(*)::int AS n,
              count(*) FILTER (WHERE created_at < ${cutoff})::int AS old
         FROM public.parted GROUP BY 1 ORDER BY 1`,
    );
    // The oldest partition is empty now, the middle one kept its rows younger than the cut-off.
    expect(left.rows.map((r) => r.part)).toEqual(['parted_mid', 'parted_new']);
    expect(left.rows.every((r) => r.old === 0)).toBe(true);
    expect(counts.inArchives).toBeGreaterThan(5 * 24);
    const keys = await listKeys(bed.local, 'archive/app/');
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.startsWith('archive/app/public.parted/'))).toBe(true);
  });

  it('archives a table whose long keys fill a batch’s record before 100 days do, in more batches, losing nothing', async () => {
    // Prepare
    const table = resolvedTable(spec('long_keys'));
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.long_keys'] }, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(counts.inArchives).toBe(260);
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 260 });
  });

  it('refuses a view with a clear error and touches nothing', async () => {
    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.a_view'] }, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(/^TableNotUsableError: .*is a view; only tables can be archived/);
    const rows = await bed.db.client.query('SELECT count(*)::int AS n FROM public.base');
    expect(rows.rows[0].n).toBe(90);
    expect(await listKeys(bed.local, 'archive/app/public.a_view/')).toEqual([]);
  });
});

describe.each([
  {
    kind: '"char"',
    types: '',
    column: '"char"',
    value: "'é'",
    refusal: /a "char" column of public\.ops \(op\) holds a byte above 0x7f/,
  },
  {
    kind: 'a domain over "char"',
    types: 'CREATE DOMAIN public.op_code AS "char";',
    column: 'public.op_code',
    value: "'é'",
    refusal: /a "char" column of public\.ops \(op\) holds a byte above 0x7f/,
  },
  {
    kind: '"char"[]',
    types: '',
    column: '"char"[]',
    value: `ARRAY['é'::"char", 'I']`,
    refusal: /column "op" of .* is "char"\[\], which holds "char" values: PostgreSQL 14 and older write/,
  },
  {
    kind: 'a composite with a "char" attribute',
    types: 'CREATE TYPE public.op_pair AS (op "char", n int);',
    column: 'public.op_pair',
    value: `ROW('é', 1)`,
    refusal: /column "op" of .* is public\.op_pair, which holds "char" values: PostgreSQL 14 and older write/,
  },
])(
  'a column of $kind holding a byte above 0x7f (its text is that bare byte up to PostgreSQL 14)',
  ({ kind, types, column, value, refusal }) => {
    const spec = { schema: 'public', name: 'ops', timestampColumn: 'created_at' };
    const bed = archiverTestbed(
      async (db) => {
        // 'é'::"char" keeps the first byte of the character's UTF-8: 0xC3, half a character.
        await db.client.query(`${types}
        CREATE TABLE public.ops (id int PRIMARY KEY, created_at timestamptz NOT NULL, op ${column} NOT NULL);
        INSERT INTO public.ops VALUES (1, ${TODAY_UTC_SQL} - interval '40 days', ${value});
        CREATE TABLE public.ops_before AS SELECT * FROM public.ops;`);
      },
      [spec],
    );

    it('archives and restores it exactly where PostgreSQL writes it escaped (15+), and refuses it before anything moves where it writes it bare', async () => {
      // Prepare
      const version = (
        await bed.db.client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)
      ).rows[0]?.v;

      // Act
      const run = await runLocalArchive(bed.local, { tables: ['public.ops'] }, { retryIntervalScale: 0 });
      const left = await bed.db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM public.ops');
      const restored =
        run.execution.status === 'SUCCEEDED'
          ? await runLocalRestore(
              bed.local,
              { database: 'app', table: 'public.ops' },
              { retryIntervalScale: 0 },
            )
          : undefined;
      const compared = await compareRows(
        bed.db.client,
        'SELECT * FROM public.ops_before',
        'SELECT * FROM public.ops',
      );

      // Assess
      const bare = version === undefined || version < 150000;
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `archives a column of ${kind} holding a byte above 0x7f${bare ? ', which PostgreSQL 14 writes bare' : ''}`,
        held:
          compared.missing === 0 &&
          compared.extra === 0 &&
          (bare ? refusal.test(run.outcomes[0]?.error ?? '') : restored?.execution.status === 'SUCCEEDED'),
      });
      expect(compared).toEqual({ rows: 1, missing: 0, extra: 0 });
      if (bare) {
        expect(run.execution.status).toBe('FAILED');
        expect(run.outcomes[0]?.error).toMatch(/^TableNotUsableError: /);
        expect(run.outcomes[0]?.error).toMatch(refusal);
        expect(left.rows[0]?.n).toBe(1);
        expect(await listKeys(bed.local, 'archive/app/public.ops/')).toEqual([]);
      } else {
        expect(run.execution.status).toBe('SUCCEEDED');
        expect(left.rows[0]?.n).toBe(0);
        expect(restored?.execution.status).toBe('SUCCEEDED');
      }
    });
  },
);

describe('a "char" column holding ASCII bytes only, its rows on several days of one batch', () => {
  const spec = { schema: 'public', name: 'op_log', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      // An audit table's operation code ('I', 'U', 'D'): every byte ASCII, which every version writes as it is.
      await db.client.query(`
        CREATE TABLE public.op_log (id int PRIMARY KEY, created_at timestamptz NOT NULL, op "char" NOT NULL);
        INSERT INTO public.op_log
        SELECT g, ${TODAY_UTC_SQL} - make_interval(days => 40 + g % 3), (ARRAY['I', 'U', 'D'])[g % 3 + 1]::"char"
          FROM generate_series(1, 30) g;`);
    },
    [spec],
  );

  it('archives and restores it on every version: the check for bytes above 0x7f takes only the rows of a byte above it', async () => {
    // Prepare
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.op_log'] }, { retryIntervalScale: 0 });
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.op_log' },
      { retryIntervalScale: 0 },
    );

    // Assess: one batch of three days' objects, none refused.
    expect(run.outcomes[0]?.error).toBeUndefined();
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 30, batches: 1 });
    expect(counts).toEqual({ inDatabase: 0, inArchives: 30 });
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());
  });
});

describe.each([
  { encoding: 'SQL_ASCII', sqlState: '22021', byte: 'e9', why: /holds bytes that are not valid UTF-8/ },
  {
    encoding: 'WIN1252',
    sqlState: '22P05',
    byte: '81',
    why: /holds a character that has no equivalent in UTF-8/,
  },
] as const)(
  'a $encoding database holding a byte UTF-8 cannot take (0x$byte)',
  ({ encoding, sqlState, byte, why }) => {
    const spec = { schema: 'public', name: 'notes', timestampColumn: 'created_at' };
    const bed = archiverTestbed(
      async (db) => {
        // The byte stored as the application's client gave it: SQL_ASCII keeps any byte, 0x81 is undefined in WIN1252.
        await db.client.query(`
        CREATE TABLE public.notes (id int PRIMARY KEY, created_at timestamptz NOT NULL, note text NOT NULL);
        INSERT INTO public.notes VALUES
          (1, ${TODAY_UTC_SQL} - interval '40 days', E'Jane Roe \\x${byte}'),
          (2, ${TODAY_UTC_SQL} - interval '40 days' + interval '1 hour', 'plain'),
          (3, ${TODAY_UTC_SQL} - interval '2 days', 'new');`);
      },
      [spec],
      { encoding },
    );

    it('refuses the table before anything moves, naming it and why (the value is not UTF-8), never the value', async () => {
      // Act
      const run = await runLocalArchive(bed.local, { tables: ['public.notes'] }, { retryIntervalScale: 0 });
      const left = await bed.db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM public.notes');

      // Assess
      expect(run.execution.status).toBe('FAILED');
      const error = run.outcomes[0]?.error ?? '';
      expect(error).toMatch(/^TableNotUsableError: .*a value of public\.notes /);
      expect(error).toMatch(why);
      expect(error).toMatch(
        new RegExp(
          `\\(SQLSTATE ${sqlState}[;)].*, so it cannot be archived: archives are UTF-8; nothing of this batch was archived or deleted`,
        ),
      );
      expect(error).not.toMatch(/Jane|Roe/);
      expect(left.rows[0]?.n).toBe(3);
      expect(await listKeys(bed.local, 'archive/app/public.notes/')).toEqual([]);
    });
  },
);

describe('timestamp columns of any precision, or of a domain over one (Rails writes timestamp(6))', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE DOMAIN event_time AS timestamptz(3);
        CREATE TABLE public.rails_events (id bigserial PRIMARY KEY, created_at timestamp(6) NOT NULL, actor text);
        CREATE TABLE public.domain_events (id bigserial PRIMARY KEY, created_at event_time NOT NULL, actor text);
        INSERT INTO public.rails_events (created_at, actor)
        SELECT (${TODAY_UTC_SQL} - make_interval(days => 45) + g * interval '7 hours 0.123456 seconds') AT TIME ZONE 'UTC',
               'user_' || g FROM generate_series(1, 200) AS g;
        INSERT INTO public.domain_events (created_at, actor)
        SELECT ${TODAY_UTC_SQL} - make_interval(days => 45) + g * interval '7 hours 0.123 seconds', 'user_' || g
          FROM generate_series(1, 200) AS g;`);
    },
    [spec('rails_events'), spec('domain_events')],
  );

  it.each(['rails_events', 'domain_events'])(
    'archives %s, losing nothing, and restores it exactly',
    async (name) => {
      // Prepare
      const table = resolvedTable(spec(name));
      const original = await tableLines(bed.db.client, table);

      // Act
      const run = await runLocalArchive(bed.local, { tables: [`public.${name}`] }, { retryIntervalScale: 0 });
      const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      const restored = await runLocalRestore(
        bed.local,
        { database: 'app', table: `public.${name}` },
        { retryIntervalScale: 0 },
      );

      // Assess
      expect(run.execution.status).toBe('SUCCEEDED');
      expect(counts.inArchives).toBeGreaterThan(0);
      expect(restored.execution.status).toBe('SUCCEEDED');
      expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());
    },
  );
});

describe('a partition configured beside the partitioned table it belongs to', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed((db) => seedPartitionedWhole(db.client), [spec('whole'), spec('whole_old')]);

  it('is refused by name, while the partitioned table archives every partition’s old rows once', async () => {
    // Prepare
    const table = resolvedTable(spec('whole'));
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    const byTable = Object.fromEntries(run.outcomes.map((o) => [o.table, o]));
    expect(byTable['public.whole']).toMatchObject({ status: 'succeeded' });
    expect(byTable['public.whole_old']?.error).toMatch(
      /^TableNotUsableError: table "public"."whole_old" in database app is a partition of "public"."whole", which the config archives too/,
    );
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(counts.inArchives).toBeGreaterThan(0);
    expect(await listKeys(bed.local, 'archive/app/public.whole_old/')).toEqual([]);
  });
});

describe('a key column of a domain: its bounds compare as the column does', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at', batchSize: 5 });
  const bed = archiverTestbed(
    async (db) => {
      // Twelve keys over two old days, six a day, so batches of five end mid-day, at a key.
      const keyed = (table: string, keys: string) => `
        INSERT INTO public.${table} (k, created_at)
        SELECT k, ${TODAY_UTC_SQL} - interval '40 days' - (n % 2) * interval '1 day'
          FROM unnest(${keys}) WITH ORDINALITY AS u(k, n);`;
      await db.client.query(`
        CREATE DOMAIN public.code AS text COLLATE "en-x-icu";
        CREATE TABLE public.recollated (k public.code COLLATE "C" PRIMARY KEY, created_at timestamptz NOT NULL);
        ${keyed('recollated', `ARRAY['a', 'B', 'c', 'D', '_e', 'é', 'Z', 'zz', '10', '9', 'a-b', 'ab']`)}
        CREATE DOMAIN public.ticket AS int;
        CREATE TABLE public.tickets (k public.ticket PRIMARY KEY, created_at timestamptz NOT NULL);
        ${keyed('tickets', 'ARRAY[-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6]')}
        ALTER DOMAIN public.ticket ADD CONSTRAINT ticket_positive CHECK (VALUE > 0) NOT VALID;`);
    },
    [spec('recollated'), spec('tickets')],
  );

  it.each([
    ['a domain whose collation the column overrides', 'recollated'],
    ['a domain given a CHECK, NOT VALID, that old keys break', 'tickets'],
  ])('archives a table keyed by %s, every old row once', async (_case, name) => {
    // Prepare
    const table = resolvedTable(spec(name));
    const original = await tableLines(bed.db.client, table);

    // Act
    const run = await runLocalArchive(bed.local, { tables: [`public.${name}`] }, { retryIntervalScale: 0 });

    // Assess
    expect(run.outcomes[0]?.error).toBeUndefined();
    expect(run.execution.status).toBe('SUCCEEDED');
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(counts).toEqual({ inDatabase: 0, inArchives: 12 });
  });
});

describe('a character column without a length (bpchar) holding trailing blanks, which its ::text drops', () => {
  const spec = { schema: 'public', name: 'padded', timestampColumn: 'created_at' };
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE DOMAIN public.padded_code AS bpchar;
        CREATE TABLE public.padded (id int PRIMARY KEY, created_at timestamptz NOT NULL, code bpchar NOT NULL,
                                    domained public.padded_code, fixed char(5));
        INSERT INTO public.padded VALUES
          (1, ${TODAY_UTC_SQL} - interval '40 days', 'AB  ', ' x ', 'ab'),
          (2, ${TODAY_UTC_SQL} - interval '40 days' + interval '1 hour', '  ', '', NULL),
          (3, ${TODAY_UTC_SQL} - interval '40 days' + interval '2 hours', 'z', NULL, 'abcde'),
          (4, ${TODAY_UTC_SQL} - interval '2 days', 'new ', 'new ', 'new');
        CREATE TABLE public.padded_before AS SELECT * FROM public.padded;`);
    },
    [spec],
  );

  it('archives and restores every value with its blanks, by COPY and, with one row already back, row by row', async () => {
    // Prepare
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);
    const run = await runLocalArchive(bed.local, { tables: ['public.padded'] }, { retryIntervalScale: 0 });
    expect(run.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    await bed.db.client.query(
      `CREATE TABLE public.padded_copy (LIKE public.padded INCLUDING ALL);
       INSERT INTO public.padded_copy SELECT * FROM public.padded_before WHERE id = 2`,
    );

    // Act: into the emptied table (its COPY path), and into a copy holding one of the rows (the reference path).
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.padded' },
      { retryIntervalScale: 0 },
    );
    const copied = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.padded', targetTable: 'public.padded_copy' },
      { retryIntervalScale: 0 },
    );

    // Assess: compared by each row's text, which keeps a bpchar's blanks.
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(copied.execution.status).toBe('SUCCEEDED');
    expect(copied.execution.output).toMatchObject({ totals: { inserted: 2, skipped: 1 } });
    for (const target of ['public.padded', 'public.padded_copy']) {
      expect(
        await compareRows(
          bed.db.client,
          'SELECT * FROM public.padded_before WHERE id < 4',
          `SELECT * FROM ${target} WHERE id < 4`,
        ),
      ).toEqual({ rows: 3, missing: 0, extra: 0 });
    }
  });
});

describe('columns whose archived text a restore would not turn back into the value', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      // An application's display cast (its text is not the type's), and the relation a change touched as regclass
      // (its text is a name, which a later restore resolves to whatever has that name then).
      await db.client.query(`
        CREATE TYPE public.address AS (street text, city text);
        CREATE FUNCTION public.address_label(public.address) RETURNS text IMMUTABLE LANGUAGE sql
          AS $$ SELECT ($1).street || ', ' || ($1).city $$;
        CREATE CAST (public.address AS text) WITH FUNCTION public.address_label(public.address);
        CREATE TABLE public.moves (id int PRIMARY KEY, created_at timestamptz NOT NULL, dest public.address NOT NULL);
        INSERT INTO public.moves VALUES (1, ${TODAY_UTC_SQL} - interval '40 days', ROW('1 Main St', 'Springfield'));
        CREATE TABLE public.changes (id int PRIMARY KEY, created_at timestamptz NOT NULL, rel regclass NOT NULL);
        INSERT INTO public.changes VALUES (1, ${TODAY_UTC_SQL} - interval '40 days', 'public.moves');`);
    },
    [spec('moves'), spec('changes')],
  );

  it.each([
    [
      'moves',
      /^TableNotUsableError: column "dest" of table "public"."moves" in database app is public\.address, which has a cast to or from text that is not PostgreSQL's own: CAST \(public\.address AS text\) WITH FUNCTION public\.address_label\(public\.address\)/,
    ],
    [
      'changes',
      /^TableNotUsableError: column "rel" of table "public"."changes" in database app is regclass, which holds oids of catalog objects and writes them as the objects' names/,
    ],
  ])('refuses %s by column, type and why before anything moves', async (name, why) => {
    // Act
    const run = await runLocalArchive(bed.local, { tables: [`public.${name}`] }, { retryIntervalScale: 0 });

    // Assess
    const left = await bed.db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.${name}`);
    recordProof({
      kind: 'threat',
      actor: name === 'moves' ? 'database role' : 'operator',
      attack:
        name === 'moves'
          ? "creates a cast to text for a column's type, which ::text would take"
          : 'archives a table with a regclass column',
      held: why.test(run.outcomes[0]?.error ?? '') && left.rows[0]?.n === 1,
    });
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(why);
    expect(left.rows[0]?.n).toBe(1);
    expect(await listKeys(bed.local, `archive/app/public.${name}/`)).toEqual([]);
  });
});
