import { describe, expect, it } from 'vitest';
import { compareRows } from '../../local/compare-rows.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, putObjects, TODAY_UTC_SQL } from '../support/fixtures.js';
import { writeLegacyArchive } from '../support/legacy-archive.js';
import { recordProof } from '../support/proof-ledger.js';

/** A day well past the 30-day retention, at a UTC midnight: the rows are archived whatever the hour. */
const OLD = `${TODAY_UTC_SQL} - interval '100 days'`;

/**
 * A restore that succeeds gives every value back as archived, also where the target computes a column (generated) or
 * reads it by a type redefined under its name since archiving; otherwise the archive is refused naming the column,
 * and nothing of it is written.
 */
describe('restore fidelity: generated columns and types redefined under their names', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE FUNCTION public.norm_email(e text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(e) $$;
        CREATE TABLE public.users_log (id int PRIMARY KEY, created_at timestamptz NOT NULL, email text,
          email_norm text GENERATED ALWAYS AS (public.norm_email(email)) STORED,
          email_length int GENERATED ALWAYS AS (length(email)) STORED);
        INSERT INTO public.users_log (id, created_at, email) VALUES
          (1, ${OLD}, 'Ann.Lee+promo@Example.COM'), (2, ${OLD}, 'Bob@Example.COM'), (3, ${OLD}, 'x+y@Example.COM');
        CREATE TABLE public.users_original AS SELECT * FROM public.users_log;

        CREATE TABLE public.orders (id int PRIMARY KEY, created_at timestamptz NOT NULL,
          price numeric NOT NULL, qty int NOT NULL, total numeric NOT NULL);
        INSERT INTO public.orders VALUES (1, ${OLD}, 10, 3, 25), (2, ${OLD}, 7, 2, 14);
        CREATE TABLE public.orders_computed (LIKE public.orders);
        ALTER TABLE public.orders_computed ADD PRIMARY KEY (id), DROP COLUMN total,
          ADD COLUMN total numeric GENERATED ALWAYS AS (price * qty) STORED;

        CREATE TABLE public.doubled (id int PRIMARY KEY, created_at timestamptz NOT NULL, a int,
          twice int GENERATED ALWAYS AS (a * 2) STORED);
        INSERT INTO public.doubled (id, created_at, a) VALUES (1, ${OLD}, 4), (2, ${OLD}, NULL);
        CREATE TABLE public.doubled_original AS SELECT * FROM public.doubled;

        CREATE DOMAIN public.amount AS numeric;
        CREATE TYPE public.pair AS (x numeric, label text);
        CREATE TABLE public.ledger (id int PRIMARY KEY, created_at timestamptz NOT NULL, amt public.amount,
          p public.pair);
        INSERT INTO public.ledger VALUES (1, ${OLD}, 1.25, ROW(2.75, 'a')), (2, ${OLD}, 123.456, ROW(0.05, 'b')),
          (3, ${OLD}, 7.5, ROW(1.5, 'c'));

        CREATE TYPE public.mood AS ENUM ('happy', 'sad');
        CREATE TABLE public.feelings (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, note text,
          m public.mood);

        CREATE DOMAIN public.blanks AS bpchar;
        CREATE DOMAIN public.padded_code AS public.blanks;
        CREATE TABLE public.padded (id int PRIMARY KEY, created_at timestamptz NOT NULL, code public.padded_code);
        INSERT INTO public.padded VALUES (1, ${OLD}, 'ab  '), (2, ${OLD}, ' c ');

        CREATE TYPE public.level AS ENUM ('low', 'high');
        CREATE TYPE public.fee AS (value int, cents int);
        CREATE TABLE public.charges (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, lvl public.level,
          f public.fee);
        INSERT INTO public.charges VALUES (1, ${OLD}, 'low', ROW(1, 99)), (2, ${OLD}, 'high', ROW(2, 50));

        CREATE TYPE public.phase AS ENUM ('open', 'closed');
        CREATE TABLE public.phases (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, p public.phase);
        INSERT INTO public.phases VALUES (1, ${OLD}, 'open'), (2, ${OLD}, 'closed');

        CREATE TYPE public.tone AS ENUM ('calm', 'loud');
        CREATE TABLE public.voices (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, note text, t public.tone);
        INSERT INTO public.voices VALUES (1, ${OLD}, 'Jane Roe', 'calm'), (2, ${OLD}, 'fine', 'loud');

        CREATE TYPE public.span AS (x int, "y text default,z" int, w text);
        CREATE TABLE public.spans (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, s public.span);
        INSERT INTO public.spans VALUES (1, ${OLD}, ROW(5, 7, 'a')), (2, ${OLD}, ROW(6, 8, 'b'));

        CREATE TYPE public.severity AS ENUM ('info', 'alert');
        CREATE TABLE public.alerts (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, s public.severity);
        INSERT INTO public.alerts VALUES (1, ${OLD}, 'info'), (2, ${OLD}, 'alert');`);
    },
    [
      'users_log',
      'orders',
      'doubled',
      'ledger',
      'feelings',
      'voices',
      'padded',
      'charges',
      'phases',
      'alerts',
      'spans',
    ].map((name) => ({
      schema: 'public',
      name,
      timestampColumn: 'created_at',
    })),
  );
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(bed.local, { database: 'app', ...request }, { retryIntervalScale: 0 });
  const count = async (table: string) =>
    (await bed.db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n;

  it('archives the old rows of every table first', async () => {
    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    for (const table of ['users_log', 'orders', 'doubled', 'ledger']) expect(await count(table)).toBe(0);
  });

  it('a generated column whose function was replaced since: strict refuses naming the table, column and count; lenient writes with that warning', async () => {
    // Prepare: CREATE OR REPLACE does not rewrite the stored values; the archive holds the old function's.
    await bed.db.client.query(`CREATE OR REPLACE FUNCTION public.norm_email(e text) RETURNS text LANGUAGE sql
      IMMUTABLE AS $$ SELECT regexp_replace(lower(e), '\\+[^@]*', '') $$`);

    // Act
    const strict = await restore({ table: 'public.users_log' });
    const afterStrict = await count('public.users_log');
    const lenient = await restore({ table: 'public.users_log', drift: 'lenient' });
    const written = await bed.db.client.query(`SELECT id, email_norm FROM public.users_log ORDER BY id`);
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'restores a table whose generated column computes other values than the archived ones now',
      held: strict.execution.status === 'FAILED' && afterStrict === 0,
    });

    // Assess
    const what =
      /"public"\."users_log" column "email_norm": 2 value\(s\) the target computes \(generated\) differ from the archived ones/;
    expect(strict.execution.status).toBe('FAILED');
    expect(strict.results.map((r) => r.status)).toEqual(['failed']);
    expect(strict.results[0]?.error).toMatch(/^SchemaDriftError: /);
    expect(strict.results[0]?.error).toMatch(what);
    expect(strict.results[0]?.error).not.toMatch(/email_length/);
    expect(afterStrict).toBe(0);
    expect(lenient.execution.status).toBe('SUCCEEDED');
    expect(lenient.results[0]?.warnings.some((w) => what.test(w))).toBe(true);
    expect(written.rows).toEqual([
      { id: 1, email_norm: 'ann.lee@example.com' },
      { id: 2, email_norm: 'bob@example.com' },
      { id: 3, email_norm: 'x@example.com' },
    ]);
  });

  it('a column plain when archived and generated in the target: strict refuses when a computed value differs, nothing written', async () => {
    // Act
    const result = await restore({
      table: 'public.orders',
      targetTable: 'public.orders_computed',
      drift: 'strict',
    });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'restores into a target that generates a column the archived table held plain',
      held: result.execution.status === 'FAILED' && (await count('public.orders_computed')) === 0,
    });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results[0]?.error).toMatch(
      /^SchemaDriftError: "public"\."orders_computed" column "total": 1 value\(s\) the target computes \(generated\) differ from the archived ones; restore with drift "lenient"/,
    );
    expect(await count('public.orders_computed')).toBe(0);
  });

  it('a generated column that computes the archived values restores exactly under strict', async () => {
    // Act
    const result = await restore({ table: 'public.doubled' });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.results.map((r) => [r.status, r.inserted, r.warnings])).toEqual([['restored', 2, []]]);
    expect(
      await compareRows(
        bed.db.client,
        'SELECT * FROM public.doubled_original',
        'SELECT * FROM public.doubled',
      ),
    ).toEqual({ rows: 2, missing: 0, extra: 0 });
  });

  it('a domain and a composite type redefined under their names with a modifier that rounds: strict refuses naming the column; lenient counts each column', async () => {
    // Prepare: the table dropped, its types redefined; the restore creates it again from the manifest.
    await bed.db.client.query(`DROP TABLE public.ledger;
      DROP DOMAIN public.amount; CREATE DOMAIN public.amount AS numeric(10,1);
      ALTER TYPE public.pair ALTER ATTRIBUTE x TYPE numeric(10,1)`);

    // Act
    const strict = await restore({ table: 'public.ledger', targetTable: 'public.ledger_copy' });
    const afterStrict = await count('public.ledger_copy');
    const lenient = await restore({
      table: 'public.ledger',
      targetTable: 'public.ledger_copy',
      drift: 'lenient',
    });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores after a domain or composite type was redefined under its name with a modifier that rounds',
      held: strict.execution.status === 'FAILED' && afterStrict === 0,
    });

    // Assess
    expect(strict.execution.status).toBe('FAILED');
    expect(strict.results[0]?.error).toMatch(
      /^SchemaDriftError: column "amt": 2 value\(s\) change when read as public\.amount \(redefined since archiving\); restore with drift "lenient"/,
    );
    expect(afterStrict).toBe(0);
    expect(lenient.execution.status).toBe('SUCCEEDED');
    expect(lenient.results[0]?.warnings).toEqual([
      'column "amt": 2 value(s) change when read as public.amount (redefined since archiving)',
      'column "p": 2 value(s) change when read as public.pair (redefined since archiving)',
    ]);
    expect(await count('public.ledger_copy')).toBe(3);
  });

  it('an enum label renamed since a legacy archive: the archive fails naming the column and its type, never the value, nothing written', async () => {
    // Prepare: the Python tool's archive records no types, so its values meet the target's type in the INSERT.
    await bed.db.client.query(`ALTER TYPE public.mood RENAME VALUE 'happy' TO 'glad'`);
    const archive = writeLegacyArchive({
      prefix: 'archive/',
      database: bed.db.name,
      schema: 'public',
      table: 'feelings',
      runStamp: '20250301T010000Z',
      batch: 1,
      rows: [
        { id: 1, created_at: '2025-01-02T03:04:05+00:00', note: 'fine', m: 'sad' },
        { id: 2, created_at: '2025-01-02T03:04:06+00:00', note: 'Jane Roe', m: 'happy' },
      ],
    });
    await putObjects(bed.local, archive.files);

    // Act
    const result = await restore({
      table: 'public.feelings',
      legacy: { database: bed.db.name },
      mode: 'key',
      key: archive.dataKey,
    });
    const error = result.results[0]?.error ?? '';
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'restores after an enum label was renamed: an error naming the column, never the value',
      held: /column "m" \(public\.mood\)/.test(error) && !/happy|Jane/.test(error),
    });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results[0]?.error).toMatch(
      /^SchemaDriftError: the target "public"\."feelings" refused the archived rows: its column "m" \(public\.mood\) cannot read the archived values of at least one row \(SQLSTATE 22P02/,
    );
    expect(result.results[0]?.error).not.toMatch(/happy|Jane/);
    expect(await count('public.feelings')).toBe(0);
  });

  it('an enum label renamed since a native archive: the archive fails naming the column and the enum, never the value, nothing written', async () => {
    // Prepare
    await bed.db.client.query(`ALTER TYPE public.tone RENAME VALUE 'calm' TO 'quiet'`);

    // Act
    const result = await restore({ table: 'public.voices' });
    const errors = result.results.map((r) => r.error ?? '').join('\n');
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores a native archive after an enum label was renamed: an error naming the column, never the value',
      held:
        /column "t": enum public\.tone no longer has the labels archived/.test(errors) &&
        !/calm|Jane/.test(errors),
    });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(errors).toMatch(
      /^SchemaDriftError: column "t": enum public\.tone no longer has the labels archived/,
    );
    expect(errors).not.toMatch(/calm|Jane/);
    expect(await count('public.voices')).toBe(0);
  });

  it('enum labels swapped and a composite attribute replaced since archiving, every text the same: strict refuses naming the column; lenient warns', async () => {
    // Prepare: 'low' now names the member that was 'high'; the archived (1,99) would put 99 into tax_rate.
    await bed.db.client.query(`ALTER TYPE public.level RENAME VALUE 'low' TO 'tmp';
      ALTER TYPE public.level RENAME VALUE 'high' TO 'low'; ALTER TYPE public.level RENAME VALUE 'tmp' TO 'high';
      ALTER TYPE public.fee DROP ATTRIBUTE cents, ADD ATTRIBUTE tax_rate int`);

    // Act
    const strict = await restore({ table: 'public.charges' });
    const afterStrict = await count('public.charges');
    const lenient = await restore({ table: 'public.charges', drift: 'lenient' });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores after enum labels were swapped or a composite attribute replaced under its type name (values read the same text as other values)',
      held: strict.execution.status === 'FAILED' && afterStrict === 0,
    });

    // Assess
    expect(strict.execution.status).toBe('FAILED');
    expect(strict.results[0]?.error).toMatch(
      /^SchemaDriftError: column "f": its type public\.fee is defined otherwise than when archived .*; restore with drift "lenient"/,
    );
    expect(afterStrict).toBe(0);
    expect(lenient.execution.status).toBe('SUCCEEDED');
    expect(lenient.results[0]?.warnings).toEqual([
      expect.stringMatching(/^column "f": its type public\.fee is defined otherwise/),
      expect.stringMatching(/^column "lvl": enum public\.level no longer has the labels archived/),
    ]);
  });

  it('a composite redefined with attribute names that spell the old definition ("x integer ,y" text, z int, w text for x int, "y text default,z" int, w text): strict refuses naming the column', async () => {
    // Prepare: the attributes as names, types and collations joined with spaces and commas read the same before and
    // after; the archived (5,7,a) would read 5 as text.
    await bed.db.client.query(`ALTER TYPE public.span DROP ATTRIBUTE x, DROP ATTRIBUTE "y text default,z", DROP ATTRIBUTE w,
      ADD ATTRIBUTE "x integer ,y" text, ADD ATTRIBUTE z int, ADD ATTRIBUTE w text`);

    // Act
    const result = await restore({ table: 'public.spans' });
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack:
        'redefines a composite type under its name with attribute names that spell its old attributes, so a text join of its definition reads the same',
      held: result.execution.status === 'FAILED',
    });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results[0]?.error).toMatch(
      /^SchemaDriftError: column "s": its type public\.span is defined otherwise than when archived/,
    );
    expect(await count('public.spans')).toBe(0);
  });

  it('an enum that gained labels since archiving (ADD VALUE, before and after the archived ones) restores under strict', async () => {
    // Prepare: a routine migration that changes no archived value.
    await bed.db.client.query(`ALTER TYPE public.phase ADD VALUE 'draft' BEFORE 'open';
      ALTER TYPE public.phase ADD VALUE 'archived'`);

    // Act
    const result = await restore({ table: 'public.phases' });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.results.flatMap((r) => r.warnings)).toEqual([]);
    const rows = await bed.db.client.query<{ p: string }>('SELECT p::text FROM public.phases ORDER BY id');
    expect(rows.rows.map((r) => r.p)).toEqual(['open', 'closed']);
  });

  it('enum labels swapped in an enum that grew past the labels a manifest records: strict refuses naming the column', async () => {
    // Prepare: the archive recorded the enum's two labels; a migration added 63 more, then 'info' and 'alert' swapped.
    await bed.db.client.query(`DO $$ BEGIN
        FOR i IN 1..63 LOOP EXECUTE pg_catalog.format('ALTER TYPE public.severity ADD VALUE %L', 'level' || i); END LOOP;
      END $$`);
    await bed.db.client.query(`ALTER TYPE public.severity RENAME VALUE 'info' TO 'tmp';
      ALTER TYPE public.severity RENAME VALUE 'alert' TO 'info'; ALTER TYPE public.severity RENAME VALUE 'tmp' TO 'alert'`);

    // Act
    const result = await restore({ table: 'public.alerts' });
    const written = await count('public.alerts');
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores after two labels of an enum were swapped and the enum grew past the labels a manifest records (65 labels)',
      held: result.execution.status === 'FAILED' && written === 0,
    });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results[0]?.error).toMatch(
      /^SchemaDriftError: column "s": enum public\.severity no longer has the labels archived/,
    );
    expect(written).toBe(0);
  });

  it('a domain over a domain over unbounded character restores its trailing blanks under strict, checked unchanged', async () => {
    // Act
    const result = await restore({ table: 'public.padded' });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.results.flatMap((r) => r.warnings ?? [])).toEqual([]);
    const { rows } = await bed.db.client.query<{ code: string }>(
      'SELECT pg_catalog.textin(pg_catalog.bpcharout(code)) AS code FROM public.padded ORDER BY id',
    );
    expect(rows.map((r) => r.code)).toEqual(['ab  ', ' c ']);
  });
});
