import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestBatchInDatabase } from '../../../../lambdas/shared/batch/batch.js';
import { describeTable } from '../../../../lambdas/shared/database/table-shape.js';
import { DatabaseAccessError, TableNotUsableError } from '../../../../lambdas/shared/errors/step-errors.js';
import {
  createTestDatabase,
  resolvedTable,
  seedEvents,
  type TestDatabase,
} from '../../../support/fixtures.js';

describe('table checks', () => {
  let db: TestDatabase;
  const extensionOwner = `ext_owner_${randomUUID().replaceAll('-', '').slice(0, 8)}`;

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 300);
    await db.client.query(`
      CREATE TABLE nokey (created_at timestamptz, v text);
      CREATE VIEW events_view AS SELECT * FROM events;
      CREATE TABLE datecol (id int PRIMARY KEY, created_on date);
      CREATE TABLE nullable_key (id int UNIQUE, created_at timestamptz);
      CREATE TABLE not_unique (id int NOT NULL, created_at timestamptz);
      CREATE TABLE local_time (id int PRIMARY KEY, created_at timestamp);
      CREATE TABLE parent_table (id int PRIMARY KEY, created_at timestamptz);
      CREATE TABLE child_table (id int PRIMARY KEY, parent_id int REFERENCES parent_table ON DELETE CASCADE);
      CREATE TABLE included (id int, note text, created_at timestamptz, CONSTRAINT included_pk PRIMARY KEY (id) INCLUDE (note));
      CREATE TABLE parted (id int NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
      CREATE TABLE parted_all PARTITION OF parted DEFAULT;
      CREATE TABLE side (n int);
      CREATE TABLE set_null_parted (id int NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
      CREATE TABLE set_null_parted_all PARTITION OF set_null_parted DEFAULT;
      CREATE TABLE set_null_ref (id int PRIMARY KEY, p_id int, p_at timestamptz,
        CONSTRAINT set_null_ref_fk FOREIGN KEY (p_id, p_at) REFERENCES set_null_parted_all ON DELETE SET NULL);
      CREATE FUNCTION touch_side() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE side SET n = n + 1; RETURN NULL; END $$;
      CREATE TABLE statement_trigger (id int PRIMARY KEY, created_at timestamptz);
      CREATE TRIGGER on_delete_statement AFTER DELETE ON statement_trigger EXECUTE FUNCTION touch_side();
      CREATE TABLE disabled_trigger (id int PRIMARY KEY, created_at timestamptz);
      CREATE TRIGGER on_delete_off BEFORE DELETE ON disabled_trigger FOR EACH ROW EXECUTE FUNCTION touch_side();
      ALTER TABLE disabled_trigger DISABLE TRIGGER on_delete_off;
      CREATE TABLE insert_trigger (id int PRIMARY KEY, created_at timestamptz);
      CREATE TRIGGER on_insert AFTER INSERT ON insert_trigger FOR EACH ROW EXECUTE FUNCTION touch_side();
      CREATE TABLE instead_rule (id int PRIMARY KEY, created_at timestamptz);
      CREATE ACCESS METHOD heap_alias TYPE TABLE HANDLER heap_tableam_handler;
      CREATE TABLE other_method (id int PRIMARY KEY, created_at timestamptz) USING heap_alias;
      CREATE TABLE other_method_parted (id int, created_at timestamptz, PRIMARY KEY (id, created_at))
        PARTITION BY RANGE (created_at);
      CREATE TABLE other_method_heap_leaf PARTITION OF other_method_parted FOR VALUES FROM (MINVALUE) TO ('2000-01-01');
      CREATE TABLE other_method_leaf PARTITION OF other_method_parted DEFAULT USING heap_alias;
      CREATE RULE keep AS ON DELETE TO instead_rule DO INSTEAD NOTHING;
      -- Enabled for replica sessions only, or for every session: fired whatever session_replication_role says.
      CREATE TABLE replica_trigger (id int PRIMARY KEY, created_at timestamptz);
      CREATE TRIGGER on_delete_replica AFTER DELETE ON replica_trigger FOR EACH ROW EXECUTE FUNCTION touch_side();
      ALTER TABLE replica_trigger ENABLE REPLICA TRIGGER on_delete_replica;
      CREATE TABLE always_trigger (id int PRIMARY KEY, created_at timestamptz);
      CREATE TRIGGER on_delete_always AFTER DELETE ON always_trigger FOR EACH ROW EXECUTE FUNCTION touch_side();
      ALTER TABLE always_trigger ENABLE ALWAYS TRIGGER on_delete_always;
      CREATE TABLE replica_rule (id int PRIMARY KEY, created_at timestamptz);
      CREATE RULE keep_replica AS ON DELETE TO replica_rule DO INSTEAD NOTHING;
      ALTER TABLE replica_rule ENABLE REPLICA RULE keep_replica;
      CREATE TABLE always_rule (id int PRIMARY KEY, created_at timestamptz);
      CREATE RULE keep_always AS ON DELETE TO always_rule DO INSTEAD NOTHING;
      ALTER TABLE always_rule ENABLE ALWAYS RULE keep_always;
      CREATE TABLE deferrable_key (id int NOT NULL, created_at timestamptz,
        CONSTRAINT deferrable_key_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE EXTENSION citext;
      CREATE TABLE extension_key (email citext PRIMARY KEY, created_at timestamptz);
      CREATE DOMAIN domain_of_extension AS citext;
      CREATE TABLE extension_domain_key (email domain_of_extension PRIMARY KEY, created_at timestamptz);
      CREATE TYPE stage AS ENUM ('new', 'done');
      CREATE DOMAIN positive AS int CHECK (VALUE > 0);
      CREATE DOMAIN small_positive AS positive CHECK (VALUE < 1000000);
      CREATE TABLE built_in_orders (n small_positive, s stage, tags int[], created_at timestamptz,
        PRIMARY KEY (n, s, tags));
      CREATE TABLE deferrable_pk (id int, created_at timestamptz,
        CONSTRAINT deferrable_pk_id PRIMARY KEY (id) DEFERRABLE);
      CREATE DOMAIN event_time AS timestamptz(3);
      CREATE TABLE precise_times (id int PRIMARY KEY, rails timestamp(6), millis timestamptz(3), seconds timestamp(0),
        domained event_time);
      CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE case_insensitive_key (code text COLLATE case_insensitive PRIMARY KEY, created_at timestamptz);
      CREATE TABLE generated_key (created_at timestamptz NOT NULL, seq int NOT NULL,
        day date GENERATED ALWAYS AS ((created_at AT TIME ZONE 'UTC')::date) STORED, PRIMARY KEY (day, seq));
      CREATE TABLE case_insensitive_index (code text NOT NULL, created_at timestamptz);
      CREATE UNIQUE INDEX ON case_insensitive_index (code COLLATE case_insensitive);
      CREATE DOMAIN amount4 AS numeric(12,4);
      CREATE DOMAIN code6 AS character(6);
      CREATE DOMAIN short_code AS varchar(5) COLLATE "C";
      CREATE DOMAIN shorter_code AS short_code;
      CREATE TABLE modified_keys (m amount4, c code6, s shorter_code, created_at timestamptz,
        PRIMARY KEY (m, c, s));
      CREATE TABLE repeated_column_index (a int NOT NULL, b int NOT NULL, created_at timestamptz);
      CREATE UNIQUE INDEX ON repeated_column_index (a, a);
      CREATE TABLE superset_key (id int PRIMARY KEY, created_at timestamptz NOT NULL);
      CREATE TABLE invalid_key (id int NOT NULL, created_at timestamptz);
      INSERT INTO invalid_key VALUES (1, now()), (1, now());
      CREATE TYPE address AS (street text, city text);
      CREATE FUNCTION address_label(address) RETURNS text IMMUTABLE LANGUAGE sql
        AS $$ SELECT ($1).street || ', ' || ($1).city $$;
      CREATE CAST (address AS text) WITH FUNCTION address_label(address);
      CREATE DOMAIN shipping_address AS address;
      CREATE TABLE labelled (id int PRIMARY KEY, created_at timestamptz, dest address);
      CREATE TABLE labelled_domain (id int PRIMARY KEY, created_at timestamptz, dest shipping_address);
      CREATE TYPE place AS (street text, city text);
      CREATE FUNCTION place_parse(text) RETURNS place IMMUTABLE LANGUAGE sql
        AS $$ SELECT ROW(split_part($1, ', ', 1), split_part($1, ', ', 2))::place $$;
      CREATE CAST (text AS place) WITH FUNCTION place_parse(text);
      CREATE TABLE parsed (id int PRIMARY KEY, created_at timestamptz, visited place);
      CREATE TABLE relations (id int PRIMARY KEY, created_at timestamptz, rel regclass);
      CREATE DOMAIN routine AS regprocedure;
      CREATE TYPE lookup AS (note text, target regclass);
      CREATE TABLE lookups (id int PRIMARY KEY, created_at timestamptz, seen lookup[]);
      CREATE TABLE routines (id int PRIMARY KEY, created_at timestamptz, called routine[]);
      CREATE TABLE grants (id int PRIMARY KEY, created_at timestamptz, acl aclitem[]);
      CREATE TYPE permission AS (note text, grant_given aclitem);
      CREATE TABLE permissions (id int PRIMARY KEY, created_at timestamptz, given permission);
      CREATE TABLE defaults_seen (id int PRIMARY KEY, created_at timestamptz, tree pg_node_tree);
      CREATE TABLE search_keys (id int PRIMARY KEY, created_at timestamptz, k gtsvector);
      CREATE EXTENSION pg_trgm;
      CREATE TABLE trigram_keys (id int PRIMARY KEY, created_at timestamptz, k gtrgm[]);
      CREATE EXTENSION seg;
      CREATE TABLE measured (id int PRIMARY KEY, created_at timestamptz, span seg[]);
      CREATE DOMAIN blank_padded AS bpchar;
      CREATE TYPE ext_point AS (x int, y int);
      CREATE FUNCTION ext_point_text(ext_point) RETURNS text IMMUTABLE LANGUAGE sql
        AS $$ SELECT pg_catalog.textin(pg_catalog.record_out($1)) $$;
      CREATE CAST (ext_point AS text) WITH FUNCTION ext_point_text(ext_point);
      ALTER EXTENSION citext ADD TYPE ext_point;
      ALTER EXTENSION citext ADD FUNCTION ext_point_text(ext_point);
      ALTER EXTENSION citext ADD CAST (ext_point AS text);
      CREATE TABLE extension_cast (id int PRIMARY KEY, created_at timestamptz, at ext_point);
      CREATE TYPE badge AS (label text);
      CREATE FUNCTION badge_text(badge) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'badge: ' || ($1).label $$;
      CREATE CAST (badge AS text) WITH FUNCTION badge_text(badge);
      ALTER EXTENSION citext ADD FUNCTION badge_text(badge);
      ALTER EXTENSION citext ADD CAST (badge AS text);
      CREATE TABLE badged (id int PRIMARY KEY, created_at timestamptz, worn badge);
      -- A role (not a superuser) that creates a trusted extension owns it, and adds its own type, cast and function.
      CREATE ROLE ${extensionOwner} NOLOGIN;
      GRANT CREATE ON SCHEMA public TO ${extensionOwner};
      DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO ${extensionOwner}', current_database()); END $$;
      SET ROLE ${extensionOwner};
      CREATE EXTENSION pgcrypto;
      CREATE TYPE public.address_card AS (street text, city text);
      CREATE FUNCTION public.card_street(public.address_card) RETURNS text IMMUTABLE LANGUAGE sql
        AS $$ SELECT ($1).street $$;
      CREATE CAST (public.address_card AS text) WITH FUNCTION public.card_street(public.address_card);
      ALTER EXTENSION pgcrypto ADD TYPE public.address_card;
      ALTER EXTENSION pgcrypto ADD FUNCTION public.card_street(public.address_card);
      ALTER EXTENSION pgcrypto ADD CAST (public.address_card AS text);
      RESET ROLE;
      CREATE TABLE carded (id int PRIMARY KEY, created_at timestamptz, card address_card);
      CREATE TYPE audit_action AS ENUM ('insert', 'update', 'delete');
      CREATE CAST (text AS audit_action) WITH INOUT AS IMPLICIT;
      CREATE TABLE text_forms (id int PRIMARY KEY, created_at timestamptz, email citext, stops address[],
        code bpchar, padded blank_padded, fixed char(6), fixed_domain code6, names text[], action audit_action);`);
    await expect(
      db.client.query('CREATE UNIQUE INDEX CONCURRENTLY invalid_key_id ON invalid_key (id)'),
    ).rejects.toThrow(/could not create unique index/);
  });

  afterAll(async () => db?.drop());

  it.each([
    [
      'missing',
      { name: 'missing', timestampColumn: 'created_at' },
      /table "public"."missing" in database app does not exist/,
    ],
    [
      'a view',
      { name: 'events_view', timestampColumn: 'created_at' },
      /is a view; only tables can be archived/,
    ],
    [
      'no primary key',
      { name: 'nokey', timestampColumn: 'created_at' },
      /has no primary key .*; set keyColumns/,
    ],
    [
      'a deferrable primary key, which restore could not use',
      { name: 'deferrable_pk', timestampColumn: 'created_at' },
      /has no primary key \(a deferrable one or one WITHOUT OVERLAPS cannot serve: restore's INSERT ... ON CONFLICT refuses it\)/,
    ],
    [
      'a table of another access method, whose row versions the delete cannot prove',
      { name: 'other_method', timestampColumn: 'created_at' },
      /: public.other_method stores its rows with table access method "heap_alias", not heap; .*SET ACCESS METHOD heap/,
    ],
    [
      'a partitioned table with a partition of another access method',
      { name: 'other_method_parted', timestampColumn: 'created_at' },
      /: public.other_method_leaf stores its rows with table access method "heap_alias", not heap/,
    ],
    ['a missing column', { name: 'events', timestampColumn: 'nope' }, /has no column "nope"/],
    [
      'a date column',
      { name: 'datecol', timestampColumn: 'created_on' },
      /is date; it must be timestamptz or timestamp/,
    ],
    [
      'a nullable key',
      { name: 'nullable_key', timestampColumn: 'created_at', keyColumns: ['id'] },
      /key column "id" .* must be NOT NULL/,
    ],
    [
      'a key without unique index',
      { name: 'not_unique', timestampColumn: 'created_at', keyColumns: ['id'] },
      /are not exactly the columns of its primary key or of a valid, non-deferrable unique index/,
    ],
    [
      'a table whose deletes cascade',
      { name: 'parent_table', timestampColumn: 'created_at' },
      /is referenced by foreign key "child_table_parent_id_fkey" of public.child_table with ON DELETE CASCADE/,
    ],
    [
      'a table one of whose partitions a foreign key references with ON DELETE SET NULL',
      { name: 'set_null_parted', timestampColumn: 'created_at' },
      /is referenced by foreign key "set_null_ref_fk" of public.set_null_ref with ON DELETE CASCADE\/SET NULL/,
    ],
    [
      'a table with a statement trigger on DELETE',
      { name: 'statement_trigger', timestampColumn: 'created_at' },
      /trigger "on_delete_statement" on public.statement_trigger fires on DELETE/,
    ],
    [
      'a table with a DO INSTEAD rule on DELETE',
      { name: 'instead_rule', timestampColumn: 'created_at' },
      /rule "keep" on public.instead_rule acts on DELETE/,
    ],
    [
      'a table with a DELETE trigger enabled for replica sessions only (ENABLE REPLICA)',
      { name: 'replica_trigger', timestampColumn: 'created_at' },
      /trigger "on_delete_replica" on public.replica_trigger fires on DELETE/,
    ],
    [
      'a table with a DELETE trigger enabled for every session (ENABLE ALWAYS)',
      { name: 'always_trigger', timestampColumn: 'created_at' },
      /trigger "on_delete_always" on public.always_trigger fires on DELETE/,
    ],
    [
      'a table with a DELETE rule enabled for replica sessions only (ENABLE REPLICA)',
      { name: 'replica_rule', timestampColumn: 'created_at' },
      /rule "keep_replica" on public.replica_rule acts on DELETE/,
    ],
    [
      'a table with a DELETE rule enabled for every session (ENABLE ALWAYS)',
      { name: 'always_rule', timestampColumn: 'created_at' },
      /rule "keep_always" on public.always_rule acts on DELETE/,
    ],
    [
      'a key whose unique index is invalid (a failed concurrent build)',
      { name: 'invalid_key', timestampColumn: 'created_at', keyColumns: ['id'] },
      /are not exactly the columns of its primary key or of a valid, non-deferrable unique index/,
    ],
    [
      'a key whose unique constraint is deferrable',
      { name: 'deferrable_key', timestampColumn: 'created_at', keyColumns: ['id'] },
      /are not exactly the columns of its primary key or of a valid, non-deferrable unique index/,
    ],
    [
      'a key of an extension’s type, whose order the batch’s comparisons would not follow',
      { name: 'extension_key', timestampColumn: 'created_at' },
      /key column "email" .* is citext, which is not ordered by PostgreSQL's built-in operators for certain/,
    ],
    [
      'a key of a domain over an extension’s type',
      { name: 'extension_domain_key', timestampColumn: 'created_at' },
      /key column "email" .* is domain_of_extension, which is not ordered by PostgreSQL's built-in operators/,
    ],
    [
      'a key under a nondeterministic collation, whose archived rows restore could not recognise',
      { name: 'case_insensitive_key', timestampColumn: 'created_at' },
      /key column "code" .* compares under a nondeterministic collation/,
    ],
    [
      'a key with a generated column, which restore cannot write',
      { name: 'generated_key', timestampColumn: 'created_at' },
      /key column "day" .* is generated/,
    ],
    [
      'a key whose only unique index compares under a nondeterministic collation',
      { name: 'case_insensitive_index', timestampColumn: 'created_at', keyColumns: ['code'] },
      /key columns \(code\) .* are not exactly the columns of its primary key/,
    ],
    [
      'key columns whose only unique index repeats one of them instead of holding the other',
      { name: 'repeated_column_index', timestampColumn: 'created_at', keyColumns: ['a', 'b'] },
      /key columns \(a, b\) .* are not exactly the columns of its primary key/,
    ],
    [
      'key columns that contain a unique key without being one, on which restore could not arbitrate',
      { name: 'superset_key', timestampColumn: 'created_at', keyColumns: ['id', 'created_at'] },
      /key columns \(id, created_at\) .* are not exactly the columns of its primary key/,
    ],
    [
      'a composite column whose type has a user-defined cast to text, which export’s ::text would take',
      { name: 'labelled', timestampColumn: 'created_at' },
      /column "dest" .* is address, which has a cast to or from text that is not PostgreSQL's own: CAST \((public\.)?address AS text\) WITH FUNCTION (public\.)?address_label\((public\.)?address\)/,
    ],
    [
      'a column of a domain over such a type (a cast looks through domains)',
      { name: 'labelled_domain', timestampColumn: 'created_at' },
      /column "dest" .* is shipping_address, which has a cast to or from text that is not PostgreSQL's own: CAST \((public\.)?address AS text\)/,
    ],
    [
      'a composite column whose type has a user-defined cast from text, which restore’s reference path would take',
      { name: 'parsed', timestampColumn: 'created_at' },
      /column "visited" .* is place, which has a cast to or from text that is not PostgreSQL's own: CAST \(text AS (public\.)?place\) WITH FUNCTION (public\.)?place_parse\(text\)/,
    ],
    [
      'a display cast of a user’s type made a member of an extension (only the type’s own extension vouches for it)',
      { name: 'badged', timestampColumn: 'created_at' },
      /column "worn" .* is badge, which has a cast to or from text that is not PostgreSQL's own: CAST \((public\.)?badge AS text\)/,
    ],
    [
      'a display cast that a role added, with its type, to the trusted extension it created and so owns (the street alone would be archived)',
      { name: 'carded', timestampColumn: 'created_at' },
      /column "card" .* is address_card, which has a cast to or from text that is not PostgreSQL's own: CAST \((public\.)?address_card AS text\)/,
    ],
    [
      'a regclass column, whose text is a name a later restore would resolve to another relation',
      { name: 'relations', timestampColumn: 'created_at' },
      /column "rel" .* is regclass, which holds oids of catalog objects and writes them as the objects' names/,
    ],
    [
      'an array of a domain over regprocedure',
      { name: 'routines', timestampColumn: 'created_at' },
      /column "called" .* is routine\[\], which holds oids of catalog objects/,
    ],
    [
      'an array of a composite type with a regclass attribute',
      { name: 'lookups', timestampColumn: 'created_at' },
      /column "seen" .* is lookup\[\], which holds oids of catalog objects/,
    ],
    [
      'an aclitem[] column, whose grants name roles (a dropped role is written as a bare oid no restore reads)',
      { name: 'grants', timestampColumn: 'created_at' },
      /column "acl" .* is aclitem\[\], which holds oids of catalog objects/,
    ],
    [
      'a composite column with an aclitem attribute',
      { name: 'permissions', timestampColumn: 'created_at' },
      /column "given" .* is permission, which holds oids of catalog objects/,
    ],
    [
      'a gtsvector column (a full-text GiST key), which PostgreSQL writes but refuses to read',
      { name: 'search_keys', timestampColumn: 'created_at' },
      /column "k" .* is gtsvector, which PostgreSQL writes but never reads back/,
    ],
    [
      'an array of pg_trgm’s GiST key, which its extension writes but refuses to read',
      { name: 'trigram_keys', timestampColumn: 'created_at' },
      /column "k" .* is (public\.)?gtrgm\[\], which PostgreSQL writes but never reads back/,
    ],
    [
      'a seg[] column, whose text keeps 6 significant digits of its values (1.23456789 writes as 1.23457)',
      { name: 'measured', timestampColumn: 'created_at' },
      /column "span" .* is (public\.)?seg\[\], whose text keeps at most 6 significant digits of a value/,
    ],
    [
      'a pg_node_tree column, which PostgreSQL writes but refuses to read',
      { name: 'defaults_seen', timestampColumn: 'created_at' },
      /column "tree" .* is pg_node_tree, which PostgreSQL writes but never reads back/,
    ],
    ['an integer timestamp column', { name: 'datecol', timestampColumn: 'id' }, /is integer/],
    [
      'an unknown time zone',
      { name: 'local_time', timestampColumn: 'created_at', timestampTimeZone: 'Mars/Olympus' },
      /"Mars\/Olympus" is not a known time zone/,
    ],
  ])('refuses %s with a clear TableNotUsableError', async (_case, spec, message) => {
    // Act
    const attempt = describeTable(db.client, resolvedTable(spec));

    // Assess
    await expect(attempt).rejects.toThrow(TableNotUsableError);
    await expect(attempt).rejects.toThrow(message);
  });

  it('accepts keys ordered by built-in operators: a domain over a domain over int, an enum, an array', async () => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'built_in_orders', timestampColumn: 'created_at' }),
    );

    // Assess
    expect(shape.keyColumns.map((c) => c.type)).toEqual(['small_positive', 'stage', 'integer[]']);
  });

  it('casts a domain key column’s bounds to the type under it, with the modifier the domains give it', async () => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'modified_keys', timestampColumn: 'created_at' }),
    );

    // Assess
    expect(shape.keyColumns.map((c) => [c.type, c.boundType])).toEqual([
      ['amount4', 'numeric(12,4)'],
      ['code6', 'character(6)'],
      ['shorter_code', 'character varying(5)'],
    ]);
  });

  it('reads a table only to count its rows without the checks deleting and restoring them need', async () => {
    // Prepare: a DELETE trigger, and key columns no unique index covers: both refused for archiving.
    const triggered = resolvedTable({ name: 'statement_trigger', timestampColumn: 'created_at' });
    const unkeyed = resolvedTable({ name: 'not_unique', timestampColumn: 'created_at', keyColumns: ['id'] });

    // Act
    const counted = await Promise.all([
      describeTable(db.client, triggered, 'rows'),
      describeTable(db.client, unkeyed, 'rows'),
    ]);

    // Assess
    expect(counted.map((shape) => shape.keyColumns.map((c) => c.name))).toEqual([['id'], ['id']]);
    await expect(describeTable(db.client, triggered)).rejects.toThrow(TableNotUsableError);
    await expect(describeTable(db.client, unkeyed)).rejects.toThrow(TableNotUsableError);
  });

  it.each([
    ['rails', 'timestamp'],
    ['millis', 'timestamptz'],
    ['seconds', 'timestamp'],
    ['domained', 'timestamptz'],
  ])('takes a timestamp column of any precision or a domain over one (%s)', async (column, kind) => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'precise_times', timestampColumn: column }),
    );

    // Assess
    expect(shape.timestampKind).toBe(kind);
  });

  it('refuses a key column whose NOT NULL constraint is NOT VALID (PostgreSQL 18+), which older rows may break', async () => {
    // Prepare: the constraint's kind exists since 18, where attnotnull is set although it was never validated.
    const version = (
      await db.client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)
    ).rows[0]?.v;
    if (version === undefined || version < 180000) return;
    await db.client.query(`
      CREATE TABLE lax_key (id bigint, created_at timestamptz NOT NULL);
      CREATE UNIQUE INDEX lax_key_id ON lax_key (id);
      INSERT INTO lax_key VALUES (NULL, now()), (1, now());
      ALTER TABLE lax_key ADD CONSTRAINT lax_key_id_not_null NOT NULL id NOT VALID;`);
    const spec = { name: 'lax_key', timestampColumn: 'created_at', keyColumns: ['id'] };

    // Act
    const refused = describeTable(db.client, resolvedTable(spec));
    await expect(refused).rejects.toThrow(/key column "id" .* must be NOT NULL/);
    await db.client.query('DELETE FROM lax_key WHERE id IS NULL');
    await db.client.query('ALTER TABLE lax_key VALIDATE CONSTRAINT lax_key_id_not_null');
    const accepted = await describeTable(db.client, resolvedTable(spec));

    // Assess
    expect(accepted.keyColumns.map((c) => c.name)).toEqual(['id']);
  });

  it('accepts a type whose cast to text its own extension defines (as PostGIS defines geometry’s)', async () => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'extension_cast', timestampColumn: 'created_at' }),
    );

    // Assess
    expect(shape.columns.map((c) => c.name)).toContain('at');
  });

  it('accepts columns whose text the archive keeps: citext (its casts to text are text’s own I/O), an enum with a cast WITH INOUT (as ORMs add), an array of a type with a cast, unbounded character kept with its blanks', async () => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'text_forms', timestampColumn: 'created_at' }),
    );

    // Assess: an array's text is its elements' output, never a cast; only `character` without a length (directly or
    // through a domain) is written by its output function, `character(n)` by ::text as always.
    expect(shape.columns.map((c) => c.name)).toEqual(expect.arrayContaining(['stops', 'action']));
    expect(shape.blankKeepingColumns).toEqual(['code', 'padded']);
    expect(shape.virtualColumns).toEqual([]);
  });

  it('refuses a temporal primary key (PostgreSQL 18+, WITHOUT OVERLAPS), on which restore’s ON CONFLICT cannot arbitrate', async () => {
    // Prepare
    const version = (
      await db.client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)
    ).rows[0]?.v;
    if (version === undefined || version < 180000) return;
    await db.client.query(`
      CREATE EXTENSION btree_gist;
      CREATE TABLE tenancy (id int, valid tstzrange, created_at timestamptz NOT NULL,
        PRIMARY KEY (id, valid WITHOUT OVERLAPS));`);

    // Act
    const [byPrimaryKey, byKeyColumns] = await Promise.allSettled([
      describeTable(db.client, resolvedTable({ name: 'tenancy', timestampColumn: 'created_at' })),
      describeTable(
        db.client,
        resolvedTable({ name: 'tenancy', timestampColumn: 'created_at', keyColumns: ['id', 'valid'] }),
      ),
    ]);

    // Assess
    expect(byPrimaryKey).toMatchObject({
      status: 'rejected',
      reason: {
        message: expect.stringMatching(
          /has no primary key \(a deferrable one or one WITHOUT OVERLAPS cannot serve/,
        ),
      },
    });
    expect(byKeyColumns).toMatchObject({
      status: 'rejected',
      reason: { message: expect.stringMatching(/key columns \(id, valid\) .* are not exactly the columns/) },
    });
  });

  it('accepts a table referenced by a NOT ENFORCED foreign key with ON DELETE CASCADE (PostgreSQL 18+): it cascades nothing', async () => {
    // Prepare
    const version = (
      await db.client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)
    ).rows[0]?.v;
    if (version === undefined || version < 180000) return;
    await db.client.query(`
      CREATE TABLE unenforced_parent (id int PRIMARY KEY, created_at timestamptz NOT NULL);
      CREATE TABLE unenforced_child (id int PRIMARY KEY,
        parent int REFERENCES unenforced_parent ON DELETE CASCADE NOT ENFORCED);
      CREATE TABLE enforced_parent (id int PRIMARY KEY, created_at timestamptz NOT NULL);
      CREATE TABLE enforced_child (id int PRIMARY KEY, parent int REFERENCES enforced_parent ON DELETE CASCADE);`);

    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'unenforced_parent', timestampColumn: 'created_at' }),
    );

    // Assess: the same key enforced still cascades, and is refused.
    expect(shape.keyColumns.map((c) => c.name)).toEqual(['id']);
    await expect(
      describeTable(db.client, resolvedTable({ name: 'enforced_parent', timestampColumn: 'created_at' })),
    ).rejects.toThrow(/is referenced by foreign key "enforced_child_parent_fkey"/);
  });

  it('takes only the key columns of a primary key, not its INCLUDE columns', async () => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'included', timestampColumn: 'created_at' }),
    );

    // Assess
    expect(shape.keyColumns.map((c) => c.name)).toEqual(['id']);
  });

  it.each(['disabled_trigger', 'insert_trigger'])(
    'accepts %s: a trigger that does not fire on DELETE changes nothing a delete does',
    async (name) => {
      // Act
      const shape = await describeTable(db.client, resolvedTable({ name, timestampColumn: 'created_at' }));

      // Assess
      expect(shape.keyColumns.map((c) => c.name)).toEqual(['id']);
    },
  );

  it('accepts a partitioned table through its parent', async () => {
    // Act
    const shape = await describeTable(
      db.client,
      resolvedTable({ name: 'parted', timestampColumn: 'created_at' }),
    );

    // Assess
    expect(shape.keyColumns.map((c) => c.name)).toEqual(['id', 'created_at']);
  });

  it('refuses a table with columns the role may not read, naming them (never a value), to archive and to settle by rows', async () => {
    // Prepare: the role may read the key and the timestamp, not the two other columns.
    const role = `columns_${randomUUID().slice(0, 8)}`;
    await db.client.query(`
      CREATE TABLE column_grants (id int PRIMARY KEY, created_at timestamptz NOT NULL, note text, "Secret Col" text);
      INSERT INTO column_grants VALUES (1, now() - interval '400 days', 'note-value', 'secret-value');
      CREATE ROLE ${role};
      GRANT SELECT (id, created_at), DELETE ON column_grants TO ${role};`);
    const table = resolvedTable({ name: 'column_grants', timestampColumn: 'created_at' });
    const owners = await describeTable(db.client, table, 'rows');
    const bounds = {
      from: '0001-01-01T00:00:00.000Z',
      to: '9999-01-01T00:00:00.000Z',
      firstKey: ['1'],
      lastKey: ['1'],
    };

    try {
      // Act
      await db.client.query(`SET ROLE ${role}`);
      const refused = await Promise.all(
        (['archive', 'rows'] as const).map((purpose) =>
          describeTable(db.client, table, purpose).catch((error: unknown) => error),
        ),
      );
      // Settling a delete by its rows digests every column of each row, not only the key and the timestamp.
      const digest = await digestBatchInDatabase(db.client, owners, bounds).catch((error: unknown) => error);

      // Assess
      expect((digest as { code?: string }).code).toBe('42501');
      for (const error of refused) {
        expect(error).toBeInstanceOf(DatabaseAccessError);
        expect((error as Error).message).toMatch(
          /may not read columns "note", "Secret Col" of table "public"\."column_grants" .*GRANT SELECT/,
        );
        expect((error as Error).message).not.toMatch(/note-value|secret-value/);
      }
    } finally {
      await db.client.query(`RESET ROLE; REVOKE ALL ON column_grants FROM ${role}; DROP ROLE ${role}`);
    }
  });

  it('passes a role granted SELECT on the table, whose grant covers every column', async () => {
    // Prepare
    const role = `table_grant_${randomUUID().slice(0, 8)}`;
    await db.client.query(`
      CREATE TABLE table_grant (id int PRIMARY KEY, created_at timestamptz NOT NULL, note text);
      CREATE ROLE ${role};
      GRANT SELECT, DELETE ON table_grant TO ${role};`);
    const table = resolvedTable({ name: 'table_grant', timestampColumn: 'created_at' });

    try {
      // Act
      await db.client.query(`SET ROLE ${role}`);
      const shapes = [await describeTable(db.client, table), await describeTable(db.client, table, 'rows')];

      // Assess
      for (const shape of shapes)
        expect(shape.columns.map((c) => c.name)).toEqual(['id', 'created_at', 'note']);
    } finally {
      await db.client.query(`RESET ROLE; REVOKE ALL ON table_grant FROM ${role}; DROP ROLE ${role}`);
    }
  });
});
