import type pg from 'pg';
import type { TableIdentity } from '../config/resolved-table.js';
import { ConfigError, DatabaseAccessError, TableNotUsableError } from '../errors/step-errors.js';

/**
 * What the catalog says about a table, and whether the archiver may use it. The SQL the steps build from a shape is
 * in table-sql.ts.
 */

export interface ColumnInfo {
  name: string;
  /** format_type() output: a type name PostgreSQL itself quoted, safe to splice into a cast. */
  type: string;
  nullable: boolean;
  generated: boolean;
}

/**
 * A key column, with the type its bound values are cast to: its own type, or for a domain the type under it with
 * the domain's modifier. A bound cast to the domain would take the domain's CHECKs (one added NOT VALID refuses old
 * keys) and its collation (which may clash with the column's); under the domain it compares the same, by the same
 * operators, under the column's collation.
 */
export interface KeyColumn extends ColumnInfo {
  boundType: string;
}

export type TimestampKind = 'timestamptz' | 'timestamp';

/** What the steps need to know about a table, read from the catalog and checked once per step. */
export interface TableShape {
  schema: string;
  name: string;
  /** A partitioned table holds its rows in its partitions; a plain table's own rows are the ones it archives. */
  partitioned: boolean;
  /** Inheritance children of a plain table (schema-qualified): never read or deleted with it (rowSourceSql). */
  inheritanceChildren: string[];
  /** The partitioned tables a partition belongs to, nearest first; empty for any other table. */
  partitionOf: { schema: string; name: string }[];
  columns: ColumnInfo[];
  /**
   * Each column's number in the table (attnum), in `columns` order: a column dropped and added again under the same
   * name and type has another, though no row was rewritten.
   */
  columnNumbers: number[];
  keyColumns: KeyColumn[];
  timestampColumn: ColumnInfo;
  timestampKind: TimestampKind;
  timestampTimeZone: string;
  /**
   * `"char"` columns (or of a domain over it) whose text is the bare byte (PostgreSQL 14 and older; 15 writes a byte
   * above 0x7f as `\ooo`): such a byte is not UTF-8, so an archive holding it could never be restored. Export refuses
   * those values; a `"char"` deeper in a column's type (an array's element, a composite's attribute) refuses the table.
   */
  rawByteColumns: ColumnInfo[];
  /**
   * Columns of `character` without a length (`bpchar`, or a domain over it): `::text` drops their trailing blanks,
   * which the column keeps, so their text is their type's output (table-sql.ts valueTextSql). `character(n)` is not
   * among them: the column pads what `::text` trims again on restore.
   */
  blankKeepingColumns: string[];
  /**
   * Columns with a type under which lies one whose output its input may refuse (READ_BACK_SQL), with their type under
   * their domains: their text is read back through that type as it is written (table-sql.ts valueTextSql), so such a
   * value fails the export (the input's SQLSTATE, or 22P02 where it reads another value) rather than be archived,
   * deleted and never restored as it was.
   */
  readBackColumns: { name: string; type: string }[];
  /** VIRTUAL generated columns (PostgreSQL 18): computed as they are read, so an old row may fail to compute. */
  virtualColumns: string[];
  /** What decides how rows read and keys compare, beyond the columns' names and types (READING_DIGEST_SQL). */
  readingDigest: string;
  /** The definitions of the columns' types that are not PostgreSQL's own, by type name (typeDefinitionsSql). */
  typeDefinitions: Record<string, string>;
  /** The labels of the enums its columns are made of, by enum name (enumLabelsSql). */
  enumLabels: Record<string, string[]>;
}

const timestampTypes: Record<string, TimestampKind> = {
  'timestamp with time zone': 'timestamptz',
  'timestamp without time zone': 'timestamp',
};

/**
 * The primary key's column names of the relation `$1`, in key order: an empty array when it has none, or only a
 * deferrable one or a temporal one (`WITHOUT OVERLAPS`, PostgreSQL 18: an exclusion constraint), neither of which
 * INSERT ... ON CONFLICT can use (restore), so its rows could be archived and never restored.
 */
export const PRIMARY_KEY_SQL = `ARRAY(SELECT a.attname::text
       FROM pg_catalog.pg_index i
       CROSS JOIN LATERAL unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND i.indisprimary AND i.indisvalid AND i.indisready AND i.indislive AND i.indimmediate
        AND NOT i.indisexclusion
      ORDER BY k.ord)`;

/**
 * The relations holding the rows the archiver reads and deletes for the table `c`: every partition of a partitioned
 * table, else the table itself (pg_partition_tree() yields no row for a plain table). A plain table's inheritance
 * children are not among them: the archiver reads and deletes `ONLY` the table (rowSourceSql).
 */
export const TABLE_RELATIONS_SQL = `(CASE WHEN c.relkind = 'p'
        THEN ARRAY(SELECT p.relid FROM pg_catalog.pg_partition_tree(c.oid) AS p)
        ELSE ARRAY[c.oid] END)`;

/** The schema-qualified name of the relation `oid`, whatever the session's search_path. */
export const relationNameSql = (oid: string): string =>
  `(SELECT pg_catalog.format('%I.%I', n.nspname, k.relname) FROM pg_catalog.pg_class k
      JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace WHERE k.oid = ${oid})`;

/**
 * The types a type `y` is built from, one level down: a domain's base, an array's element, a range's subtype, a
 * multirange's range, a composite's attributes. A recursive walk over it reaches every type a column's values are made
 * of.
 */
const TYPE_PARTS_SQL = `LATERAL (SELECT y.typbasetype UNION ALL SELECT y.typelem
             UNION ALL SELECT g.rngsubtype FROM pg_catalog.pg_range g WHERE g.rngtypid = y.oid
             UNION ALL SELECT g.rngtypid FROM pg_catalog.pg_range g WHERE g.rngmultitypid = y.oid
             UNION ALL SELECT ta.atttypid FROM pg_catalog.pg_attribute ta
                        WHERE ta.attrelid = y.typrelid AND ta.attnum > 0 AND NOT ta.attisdropped) AS u(part)`;

/** `reach(root, modifier, oid)`: each column type of `relation` (with its modifier) and every type it is built from. */
const reachSql = (relation: string): string => `reach(root, modifier, oid) AS (
         SELECT DISTINCT a.atttypid, a.atttypmod, a.atttypid FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = ${relation} AND a.attnum > 0 AND NOT a.attisdropped
         UNION
         SELECT r.root, r.modifier, u.part FROM reach r JOIN pg_catalog.pg_type y ON y.oid = r.oid, ${TYPE_PARTS_SQL}
          WHERE u.part <> 0)`;

/** The name of the collation `oid` (NULL for none). */
const collationNameSql = (oid: string) =>
  `(SELECT co.collname FROM pg_catalog.pg_collation co WHERE co.oid = ${oid})`;

/**
 * A composite `y`'s attributes, each as its name, type and collation, in order (typeDefinitionsSql; the reading digest
 * reads them otherwise): as a JSON array, or, in archives written before 2026-12-07, joined as `name type collation`
 * with commas, which names holding spaces and commas can make two definitions read the same.
 */
const attributesSql = (form: TypeDefinitionForm) => {
  const attributes =
    form === 'json'
      ? `pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(ta.attname,
          pg_catalog.format_type(ta.atttypid, ta.atttypmod), ${collationNameSql('ta.attcollation')}) ORDER BY ta.attnum)`
      : `string_agg(pg_catalog.format('%s %s %s', ta.attname,
          pg_catalog.format_type(ta.atttypid, ta.atttypmod), ${collationNameSql('ta.attcollation')}),
        ',' ORDER BY ta.attnum)`;
  return `(SELECT ${attributes}
   FROM pg_catalog.pg_attribute ta
  WHERE y.typtype = 'c' AND ta.attrelid = y.typrelid AND ta.attnum > 0 AND NOT ta.attisdropped)`;
};

/**
 * A digest of what decides how the rows of `c` read as text and how their keys compare, beyond each column's name and
 * type name: each column's collation and generation expression, and, through every type a column's type is built
 * from, each enum's labels in order, each composite's attributes, each domain's base type and each range's subtype and
 * collation. None of these rewrites a row when it changes (`ALTER COLUMN … COLLATE`, `ALTER TYPE … RENAME VALUE`,
 * `ALTER TYPE … ADD ATTRIBUTE`, `SET EXPRESSION`), so the row versions the delete compares stay the same while the rows
 * read otherwise than their archive says, or a batch's key range selects other rows. Objects by oid: one dropped and
 * created again under its name is another; a composite's attributes by number too (one dropped and added again under
 * its name and type no longer holds the values it held). Read as JSON, so no name or label runs into the next (an
 * enum's labels `a` and `a,a`, swapped, would otherwise read the same). `ADD VALUE` changes it too: a batch in flight then is withdrawn and
 * exported again, which loses nothing.
 */
const READING_DIGEST_SQL = `(WITH RECURSIVE ${reachSql('c.oid')}
     SELECT pg_catalog.md5(pg_catalog.jsonb_build_array(
              (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(a.attname,
                        pg_catalog.format_type(a.atttypid, a.atttypmod), a.attcollation::int8, a.attgenerated::text,
                        pg_catalog.pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum), '[]')
                 FROM pg_catalog.pg_attribute a
                 LEFT JOIN pg_catalog.pg_attrdef d
                   ON d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.attgenerated <> ''
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
              (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(y.oid::int8, y.typtype::text,
                        pg_catalog.format_type(y.typbasetype, y.typtypmod), y.typcollation::int8,
                        (SELECT pg_catalog.jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e
                          WHERE e.enumtypid = y.oid),
                        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(ta.attnum, ta.attname,
                                  pg_catalog.format_type(ta.atttypid, ta.atttypmod), ta.attcollation::int8)
                                  ORDER BY ta.attnum)
                           FROM pg_catalog.pg_attribute ta
                          WHERE y.typtype = 'c' AND ta.attrelid = y.typrelid AND ta.attnum > 0 AND NOT ta.attisdropped),
                        (SELECT pg_catalog.jsonb_build_array(g.rngsubtype::int8, g.rngcollation::int8)
                           FROM pg_catalog.pg_range g WHERE g.rngtypid = y.oid)) ORDER BY y.oid), '[]')
                 FROM (SELECT DISTINCT oid FROM reach) AS t JOIN pg_catalog.pg_type y ON y.oid = t.oid))::text))`;

/** Whether a type `y` is PostgreSQL's own. */
const BUILTIN_TYPE_SQL = `y.typnamespace IN ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace)`;

/**
 * How a type's definition is written before its digest is taken: `json` since 2026-12-07, where no name can run into
 * the next; `text` (names joined with spaces, commas and bars) in archives written before, which a restore still
 * compares with.
 */
export type TypeDefinitionForm = 'json' | 'text';

/**
 * For each type a column of the relation `relation` has (as format_type names it, modifier included) that is or is
 * built from a type outside PostgreSQL's own (a domain, enum, composite or range, or an array of one): a digest of its
 * definition by names, through every type it is built from (composite attributes with their types and collations, a
 * domain's base type and collation, a range's subtype and collation; an enum's labels are in `enumLabelsSql`, since a
 * label added changes no archived value). Exports record it in the manifest; a restore refuses a column whose type,
 * under the same name, is defined otherwise now: an attribute dropped and another of its type added in its place
 * reads an archived value as something else, with the same text.
 */
export const typeDefinitionsSql = (relation: string, form: TypeDefinitionForm = 'json'): string => {
  const fields = [
    'pg_catalog.format_type(y.oid, NULL)',
    'y.typtype',
    "CASE WHEN y.typtype = 'd' THEN pg_catalog.format_type(y.typbasetype, y.typtypmod) END",
    `CASE WHEN y.typtype = 'd' THEN ${collationNameSql('y.typcollation')} END`,
    attributesSql(form),
  ];
  const range = (subtype: string) =>
    `(SELECT ${subtype} FROM pg_catalog.pg_range g WHERE g.rngtypid = y.oid)`;
  const ordered = 'ORDER BY pg_catalog.format_type(y.oid, NULL)';
  const definition =
    form === 'json'
      ? `pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(${fields.join(', ')}, ${range(
          `pg_catalog.jsonb_build_array(pg_catalog.format_type(g.rngsubtype, NULL), ${collationNameSql('g.rngcollation')})`,
        )}) ${ordered})::text`
      : `string_agg(pg_catalog.format('%s|%s|%s|%s|%s|%s', ${fields.join(', ')}, ${range(
          `pg_catalog.format('%s %s', pg_catalog.format_type(g.rngsubtype, NULL), ${collationNameSql('g.rngcollation')})`,
        )}), E'\\n' ${ordered})`;
  return `(WITH RECURSIVE ${reachSql(relation)}
     SELECT coalesce(pg_catalog.json_object_agg(d.name, d.definition), '{}')
       FROM (SELECT pg_catalog.format_type(r.root, r.modifier) AS name, pg_catalog.md5(${definition}) AS definition
               FROM reach r JOIN pg_catalog.pg_type y ON y.oid = r.oid
              GROUP BY r.root, r.modifier
             HAVING bool_or(NOT ${BUILTIN_TYPE_SQL})) AS d)`;
};

/** The most labels an enum may have for its labels to be recorded in a manifest (enumLabelsSql). */
const ENUM_LABELS_RECORDED = 64;

/**
 * The labels, in order, of each enum type a column of the relation `relation` is made of, by the enum's name: a
 * restore refuses a column of an enum whose archived labels are no longer all there in their order (one renamed, two
 * swapped), and takes one a label was added to. An export records only enums of up to ENUM_LABELS_RECORDED labels (a
 * manifest stays small); a restore target's are read whole (`{ all: true }`), since labels added since archiving may
 * take an enum past that, and its archived labels must still be checked.
 */
export function enumLabelsSql(relation: string, { all = false } = {}): string {
  const recorded = all
    ? ''
    : `AND (SELECT count(*) FROM pg_catalog.pg_enum e WHERE e.enumtypid = y.oid) <= ${ENUM_LABELS_RECORDED}`;
  return `(WITH RECURSIVE ${reachSql(relation)}
     SELECT coalesce(pg_catalog.json_object_agg(pg_catalog.format_type(y.oid, NULL),
              (SELECT pg_catalog.json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e
                WHERE e.enumtypid = y.oid)), '{}')
       FROM (SELECT DISTINCT oid FROM reach) AS t JOIN pg_catalog.pg_type y ON y.oid = t.oid
      WHERE y.typtype = 'e' ${recorded})`;
}

/**
 * Whether trigger `g` runs code of someone's making: any but those by which PostgreSQL enforces a constraint (a
 * foreign key's, a deferrable unique, primary-key or exclusion constraint's recheck). Not `NOT tgisinternal`: before
 * PostgreSQL 15 the clone of a partitioned table's trigger on each partition is internal too, and it fires there as
 * the partition's own, on a partition archived or restored by itself as well.
 */
export const userTriggerSql = (g: string): string =>
  `NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.oid = ${g}.tgconstraint AND k.contype IN ('f', 'p', 'u', 'x'))`;

/**
 * The relation trigger `g` was created on: a partitioned table's trigger is cloned onto each partition (under its
 * name), and only the partitioned table's can be disabled by a role that is not a superuser on PostgreSQL 14, where
 * the clone is a system trigger. Disabling it there disables its clones too.
 */
export const triggerDeclaredOnSql = (g: string): string =>
  relationNameSql(`(WITH RECURSIVE up (parent, rel) AS (
            SELECT ${g}.tgparentid, ${g}.tgrelid
            UNION ALL
            SELECT p.tgparentid, p.tgrelid FROM up JOIN pg_catalog.pg_trigger p ON p.oid = up.parent)
          SELECT rel FROM up WHERE parent = 0)`);

/**
 * PostgreSQL's own functions that change something but a sequence, or nothing at all, which an expression a statement
 * evaluates may call: the usual defaults (a sequence, a time, a random value or UUID, the transaction's id).
 */
const TRUSTED_VOLATILE_CATALOG_FUNCTIONS = [
  'nextval',
  'clock_timestamp',
  'timeofday',
  'random',
  'random_normal',
  'gen_random_uuid',
  'uuidv4',
  'uuidv7',
  'txid_current',
  'txid_current_if_assigned',
  'pg_current_xact_id',
  'pg_current_xact_id_if_assigned',
  'currval',
  'lastval',
  'current_query',
];

/** Whether the role `role` is a superuser. */
const superuserSql = (role: string) =>
  `coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = ${role}), false)`;

/** Whether the object `objid` of the catalog `catalog` is a member of an extension a superuser owns. */
const memberOfSuperusersExtensionSql = (catalog: string, objid: string) => `EXISTS (SELECT 1
       FROM pg_catalog.pg_depend m JOIN pg_catalog.pg_extension x ON x.oid = m.refobjid
      WHERE m.classid = '${catalog}'::pg_catalog.regclass AND m.objid = ${objid} AND m.deptype = 'e'
        AND m.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND ${superuserSql('x.extowner')})`;

/**
 * PostgreSQL's own functions that run a query named in their arguments (a table, view or cursor, a schema's or the
 * database's every table, or SQL text), whatever volatility they declare: a view may call any function. And
 * ts_rewrite(tsquery, text), by its signature: its other forms only rewrite the tsquery they are given.
 */
const QUERY_RUNNING_CATALOG_FUNCTIONS = ['query', 'table', 'cursor', 'schema', 'database']
  .flatMap((source) => ['xml', 'xmlschema', 'xml_and_xmlschema'].map((form) => `${source}_to_${form}`))
  .concat(['ts_stat']);

/** A SQL array of names. */
const nameArraySql = (names: readonly string[]) =>
  `ARRAY[${names.map((name) => `'${name}'`).join(', ')}]::name[]`;

/**
 * The functions of other roles that the expressions of `objects` call, which a statement of the archiver evaluating
 * them runs with the archiver's privileges (DELETE on every archived table): a row-level security policy, a column
 * default, a CHECK constraint (a domain's too), an index's expression or predicate, a partition key. Such a function
 * may write any table the archiver may, as a trigger could, whatever volatility it declares (an IMMUTABLE one may call
 * a VOLATILE one that writes). Trusted: PostgreSQL's own (pg_catalog) that change nothing or only a sequence, a
 * superuser's (what a trusted extension's script creates is its bootstrap superuser's), and a member of an extension a
 * superuser owns, called directly, through an operator or a cast. Membership alone is no warrant: a role that creates a
 * trusted extension owns it, and may add its own functions to it (ALTER EXTENSION … ADD FUNCTION). Nor is being
 * PostgreSQL's own, for the functions that run a query they are given (QUERY_RUNNING_CATALOG_FUNCTIONS): a view of the
 * role's may call its function. A call is found through pg_depend, or, for PostgreSQL's own functions (which
 * pg_depend never records: they are pinned), in the expression's stored tree. `objects` selects `(classid, objid,
 * filled, described, tree)`: the column a default fills (NULL for anything else), what to call the object (NULL:
 * PostgreSQL's description of it) and its expressions' stored trees as text; each call comes with them and the
 * function.
 */
const untrustedCallsSql = (objects: string): string => `(SELECT coalesce(pg_catalog.json_agg(
           DISTINCT pg_catalog.jsonb_build_object(
             'object', coalesce(o.described, c.what),
             'function', f.oid::pg_catalog.regprocedure::text,
             'column', o.filled)), '[]')
       FROM (${objects}) AS o(classid, objid, filled, described, tree)
      CROSS JOIN LATERAL (
             SELECT CASE d.refclassid
                      WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN d.refobjid
                      WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass
                        THEN (SELECT op.oprcode::oid FROM pg_catalog.pg_operator op WHERE op.oid = d.refobjid)
                      WHEN 'pg_catalog.pg_cast'::pg_catalog.regclass
                        THEN (SELECT ca.castfunc FROM pg_catalog.pg_cast ca WHERE ca.oid = d.refobjid) END,
                    pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
               FROM pg_catalog.pg_depend d WHERE d.classid = o.classid AND d.objid = o.objid
             UNION
             -- A function call, an operator's function, a hashed IN list's: how stored trees name a function.
             SELECT m[1]::pg_catalog.oid, pg_catalog.pg_describe_object(o.classid, o.objid, 0)
               FROM pg_catalog.regexp_matches(o.tree, ':(?:op|hash|neg)?funcid (\\d+)', 'g') AS m) AS c(fn, what)
       JOIN pg_catalog.pg_proc f ON f.oid = c.fn
      WHERE CASE WHEN f.pronamespace = 'pg_catalog'::pg_catalog.regnamespace
                 THEN (f.provolatile = 'v'
                       AND f.proname <> ALL (${nameArraySql(TRUSTED_VOLATILE_CATALOG_FUNCTIONS)}))
                      OR f.proname = ANY (${nameArraySql(QUERY_RUNNING_CATALOG_FUNCTIONS)})
                      OR f.oid = 'pg_catalog.ts_rewrite(pg_catalog.tsquery, pg_catalog.text)'::pg_catalog.regprocedure
                 ELSE NOT ${memberOfSuperusersExtensionSql('pg_catalog.pg_proc', 'f.oid')}
                      AND NOT ${superuserSql('f.proowner')}
            END)`;

/**
 * The functions of other roles (untrustedCallsSql) that writing rows into `c` runs: its defaults, generated columns,
 * constraints (its domains' too), indexes and partition keys, on the table and on each partition, and the row-level
 * security policies that apply to the session's role (none where it owns the table without FORCE, or has BYPASSRLS).
 */
export const WRITE_CALLS_SQL = untrustedCallsSql(`WITH RECURSIVE ${reachSql('c.oid')},
       -- The types whose domain constraints writing a row checks: the columns' (reach), those the table's expressions
       -- name (a cast to a domain in a CHECK), and, through every type they are built from, those the constraints of
       -- domains among them name in turn.
       named(oid) AS (
         SELECT r.oid FROM reach r
         UNION
         SELECT d.refobjid FROM pg_catalog.pg_depend d
          WHERE d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
            AND ((d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                  AND d.objid IN (SELECT co.oid FROM pg_catalog.pg_constraint co
                                   WHERE co.conrelid = ANY (${TABLE_RELATIONS_SQL})))
              OR (d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                  AND d.objid IN (SELECT ad.oid FROM pg_catalog.pg_attrdef ad
                                   WHERE ad.adrelid = ANY (${TABLE_RELATIONS_SQL})))
              OR (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND d.objid IN (SELECT i.indexrelid FROM pg_catalog.pg_index i
                                   WHERE i.indrelid = ANY (${TABLE_RELATIONS_SQL})))
              OR (d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass
                  AND d.objid IN (SELECT po.oid FROM pg_catalog.pg_policy po
                                   WHERE po.polrelid = ANY (${TABLE_RELATIONS_SQL}))))
         UNION
         SELECT x.oid FROM named n JOIN pg_catalog.pg_type y ON y.oid = n.oid
          CROSS JOIN LATERAL (SELECT u.part FROM ${TYPE_PARTS_SQL}
                              UNION ALL
                              SELECT d.refobjid FROM pg_catalog.pg_constraint dc
                                JOIN pg_catalog.pg_depend d
                                  ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid = dc.oid
                                 AND d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
                               WHERE dc.contypid = y.oid) AS x(oid)
          WHERE x.oid <> 0)
       SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, ad.oid,
              CASE WHEN a.attgenerated = '' THEN a.attname END, NULL, ad.adbin::text
         FROM pg_catalog.pg_attrdef ad
         JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
        WHERE ad.adrelid = ANY (${TABLE_RELATIONS_SQL})
       UNION ALL
       -- A domain's default fills a column of it (or of a domain over it) that has no default of its own.
       SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, dm.oid, a.attname,
              pg_catalog.format('default value of domain %s for column %s', dm.oid::pg_catalog.regtype, a.attname),
              dm.tree
         FROM pg_catalog.pg_attribute a
        CROSS JOIN LATERAL (WITH RECURSIVE chain(oid) AS (
                 SELECT a.atttypid
                  UNION
                 SELECT t.typbasetype FROM chain JOIN pg_catalog.pg_type t ON t.oid = chain.oid WHERE t.typtype = 'd')
               SELECT t.oid, t.typdefaultbin::text FROM chain JOIN pg_catalog.pg_type t ON t.oid = chain.oid
                WHERE t.typtype = 'd' AND t.typdefaultbin IS NOT NULL) AS dm(oid, tree)
        WHERE a.attrelid = ANY (${TABLE_RELATIONS_SQL}) AND a.attnum > 0 AND NOT a.attisdropped
          AND NOT a.atthasdef AND a.attgenerated = ''
       UNION ALL
       SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, co.oid, NULL, NULL, co.conbin::text
         FROM pg_catalog.pg_constraint co
        WHERE co.conrelid = ANY (${TABLE_RELATIONS_SQL}) OR co.contypid IN (SELECT n.oid FROM named n)
       UNION ALL
       SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, l.oid, NULL, NULL,
              (SELECT pt.partexprs::text FROM pg_catalog.pg_partitioned_table pt WHERE pt.partrelid = l.oid)
         FROM pg_catalog.unnest(${TABLE_RELATIONS_SQL}) AS l(oid)
       UNION ALL
       SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid, NULL, NULL,
              pg_catalog.concat_ws(' ', i.indexprs::text, i.indpred::text)
         FROM pg_catalog.pg_index i
        WHERE i.indrelid = ANY (${TABLE_RELATIONS_SQL})
       UNION ALL
       SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass, po.oid, NULL, NULL,
              pg_catalog.concat_ws(' ', po.polqual::text, po.polwithcheck::text)
         FROM pg_catalog.pg_policy po
        WHERE po.polrelid = ANY (${TABLE_RELATIONS_SQL}) AND pg_catalog.row_security_active(po.polrelid)
          AND (0::oid = ANY (po.polroles)
               OR EXISTS (SELECT 1 FROM pg_catalog.unnest(po.polroles) AS pr(role)
                           WHERE pg_catalog.pg_has_role(pr.role, 'MEMBER')))`);

/**
 * What acts on other tables when rows are deleted from `c`, beside the rows themselves (see refuseSideEffects). A
 * foreign key `NOT ENFORCED` (PostgreSQL 18) has no triggers, so it cascades nothing: its `conenforced` is read through
 * the row's JSON, because the column does not exist before 18. A foreign key's own triggers are judged by the cascade
 * above; every other trigger by userTriggerSql.
 */
const SIDE_EFFECTS_SQL = `(SELECT json_build_object('cascade', (
            SELECT json_build_object('name', f.conname, 'on', ${relationNameSql('f.conrelid')})
              FROM pg_catalog.pg_constraint f
             WHERE f.contype = 'f' AND f.confrelid = ANY (${TABLE_RELATIONS_SQL}) AND f.confdeltype IN ('c', 'n', 'd')
               AND coalesce((pg_catalog.to_jsonb(f) ->> 'conenforced')::bool, true)
             ORDER BY f.conname LIMIT 1),
          'trigger', (
            SELECT json_build_object('name', g.tgname, 'on', ${triggerDeclaredOnSql('g')}, 'cloned', g.tgparentid <> 0)
              FROM pg_catalog.pg_trigger g
             WHERE g.tgrelid = ANY (${TABLE_RELATIONS_SQL}) AND g.tgenabled <> 'D'
               AND ${userTriggerSql('g')}
               AND (g.tgtype::int & 8) <> 0 -- TRIGGER_TYPE_DELETE, row or statement level
             ORDER BY g.tgname LIMIT 1),
          'rule', (
            SELECT json_build_object('name', r.rulename, 'on', ${relationNameSql('r.ev_class')})
              FROM pg_catalog.pg_rewrite r
             WHERE r.ev_class = ANY (${TABLE_RELATIONS_SQL}) AND r.ev_type = '4' AND r.ev_enabled <> 'D'
             ORDER BY r.rulename LIMIT 1)))`;

/**
 * A relation of `c` holding rows in a table access method other than heap, with the method's name. The delete's proof
 * (rowVersionSql) rests on how heap stores row versions: an update writes a new version with its own xmin, and a live
 * version never changes slot. Another method (an extension's columnar store, or one declared with heap's handler under
 * another name) promises none of that, and its ctid may not even name a slot.
 */
const OTHER_ACCESS_METHOD_SQL = `(SELECT json_build_object('name', am.amname, 'on', ${relationNameSql('l.oid')})
       FROM pg_catalog.pg_class l JOIN pg_catalog.pg_am am ON am.oid = l.relam
      WHERE l.oid = ANY (${TABLE_RELATIONS_SQL}) AND l.relkind = 'r' AND am.amname <> 'heap'
      ORDER BY l.relname LIMIT 1)`;

/**
 * A relation of `c` that PostgreSQL refuses to delete from: a publication publishes its deletes (FOR ALL TABLES, for
 * its schema, for it or for a partitioned table above it; PostgreSQL publishes no unlogged or temporary table, whatever
 * the publication says) and it has no replica identity (REPLICA IDENTITY NOTHING, or DEFAULT without a primary key: a
 * key of a unique index alone does not count, nor a DEFERRABLE primary key, which PostgreSQL never takes as one, on any
 * version). Its DELETE would fail only after a batch was exported, uploaded and verified, every run.
 */
const UNIDENTIFIED_PUBLISHED_SQL = `(SELECT json_build_object('name', p.pubname, 'on', ${relationNameSql('l.oid')})
       FROM pg_catalog.pg_class l CROSS JOIN pg_catalog.pg_publication p
      WHERE l.oid = ANY (${TABLE_RELATIONS_SQL}) AND l.relkind = 'r' AND l.relpersistence = 'p' AND p.pubdelete
        AND l.relreplident <> 'f'
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i
                         WHERE i.indrelid = l.oid AND i.indisvalid AND i.indimmediate
                           AND CASE l.relreplident WHEN 'd' THEN i.indisprimary
                                                   WHEN 'i' THEN i.indisreplident ELSE false END)
        AND (p.puballtables OR EXISTS (
              SELECT FROM pg_catalog.pg_publication_tables pt
                JOIN pg_catalog.pg_namespace xn ON xn.nspname = pt.schemaname
                JOIN pg_catalog.pg_class x ON x.relnamespace = xn.oid AND x.relname = pt.tablename
               WHERE pt.pubname = p.pubname
                 AND (x.oid = l.oid OR x.oid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors(l.oid) AS a))))
      ORDER BY l.oid, p.pubname LIMIT 1)`;

interface SideEffect {
  name: string;
  on: string;
  /** A trigger cloned onto a partition from the table `on` names. */
  cloned?: boolean;
}

/**
 * The type `typeOid` (an SQL expression) under its domains, however deep, without a modifier: `timestamp(3) without
 * time zone` reads as `timestamp without time zone`.
 */
export const baseTypeSql = (typeOid: string): string => `(WITH RECURSIVE base AS (
     SELECT t.oid, t.typtype, t.typbasetype FROM pg_catalog.pg_type t WHERE t.oid = ${typeOid}
     UNION ALL
     SELECT t.oid, t.typtype, t.typbasetype FROM pg_catalog.pg_type t JOIN base b ON t.oid = b.typbasetype
      WHERE b.typtype = 'd')
   SELECT pg_catalog.format_type(b.oid, NULL) FROM base b WHERE b.typtype <> 'd')`;

/** The type of the column `a` under its domains (baseTypeSql). */
export const BASE_TYPE_SQL = baseTypeSql('a.atttypid');

/**
 * The type under the column `a`'s domains, with the modifier the nearest of them gives it (`numeric(12,4)`,
 * `character(6)`): KeyColumn.boundType. A column of a plain type is its own type, modifier included.
 */
export const BOUND_TYPE_SQL = `(WITH RECURSIVE base AS (
     SELECT t.oid, t.typtype, t.typbasetype, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod
       FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid
     UNION ALL
     SELECT t.oid, t.typtype, t.typbasetype,
            CASE WHEN b.typmod <> -1 THEN b.typmod WHEN t.typtype = 'd' THEN t.typtypmod ELSE -1 END
       FROM pg_catalog.pg_type t JOIN base b ON t.oid = b.typbasetype
      WHERE b.typtype = 'd')
   SELECT pg_catalog.format_type(b.oid, b.typmod) FROM base b WHERE b.typtype <> 'd')`;

/**
 * Whether the column `a` holds no NULL for certain. PostgreSQL 18 sets attnotnull for a NOT NULL constraint added NOT
 * VALID, which older rows may still break: only a validated one counts (before 18 such constraints are not in
 * pg_constraint, and attnotnull alone decides).
 */
export const NOT_NULL_SQL = `(a.attnotnull AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint n
     WHERE n.conrelid = a.attrelid AND n.contype = 'n' AND NOT n.convalidated AND n.conkey = ARRAY[a.attnum]))`;

/**
 * Whether the column `a` is ordered by PostgreSQL's built-in operators: its type (through any domains) is built in, or
 * an enum. A key is sorted by its type's default btree operators wherever they live, but compared in the batch's
 * predicates by the operators the pinned search_path (pg_catalog) finds: for an extension's type (citext) that is
 * another order (text's, through a cast), and the key ranges export chooses would select other rows than it counted,
 * leaving some never archived.
 */
const BUILTIN_ORDER_SQL = `(WITH RECURSIVE base AS (
     SELECT t.typtype, t.typnamespace, t.typbasetype FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid
     UNION ALL
     SELECT t.typtype, t.typnamespace, t.typbasetype FROM pg_catalog.pg_type t JOIN base b ON t.oid = b.typbasetype
      WHERE b.typtype = 'd')
   SELECT b.typtype = 'e' OR b.typnamespace = 'pg_catalog'::pg_catalog.regnamespace FROM base b WHERE b.typtype <> 'd')`;

/**
 * The type under the column `a`'s domains (`bt` below), joined beside it: PostgreSQL looks through domains for a
 * cast too, and a domain has its base type's output and input functions.
 */
const BASE_TYPE_JOIN_SQL = `JOIN pg_catalog.pg_type bt ON bt.oid = (WITH RECURSIVE base AS (
     SELECT t.oid, t.typtype, t.typbasetype FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid
     UNION ALL
     SELECT t.oid, t.typtype, t.typbasetype FROM pg_catalog.pg_type t JOIN base b ON t.oid = b.typbasetype
      WHERE b.typtype = 'd')
   SELECT b.oid FROM base b WHERE b.typtype <> 'd')`;

/** Whether the function `fn` is PostgreSQL's own C function `name` (language internal, which only a superuser uses). */
const isBuiltinFunction = (fn: string, name: string): string =>
  `EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.oid = ${fn} AND p.prolang = 12 AND p.prosrc = '${name}')`;

/**
 * A cast between the type `bt` and text that is not PostgreSQL's own (the cast or its function created after initdb:
 * oid 16384 and up, FirstNormalObjectId), spelled as CREATE CAST spells it; NULL when there is none. Export writes
 * `value::text` and restore's reference path reads `(line ->> 'c')::type`, and a cast takes such a cast over the type's
 * output and input functions: a composite's display text would be archived, the row deleted and never restored. A cast
 * the extension that defines the type defines too (PostGIS's geometry to and from text, its output and input in other
 * words) is its author's, as its output and input are, and is allowed when a superuser owns that extension or the cast's
 * function (what a trusted extension's script creates is its bootstrap superuser's): the role that creates a trusted
 * extension owns it and may add its own type, function and cast to it. Another extension's, or a user's, is not. A cast
 * between arrays' elements is not taken (an array's text is its elements' output). A cast WITH INOUT is the type's
 * output and input functions themselves (`CREATE CAST (text AS action) WITH INOUT` on an enum, as ORMs do), and a
 * binary-coercible cast over a type whose output or input is text's own (citext) writes and reads the very same text:
 * both are allowed.
 */
const USER_TEXT_CAST_SQL = `(SELECT pg_catalog.format('(%s AS %s) %s', pg_catalog.format_type(k.castsource, NULL),
            pg_catalog.format_type(k.casttarget, NULL),
            CASE k.castmethod WHEN 'f' THEN 'WITH FUNCTION ' || k.castfunc::pg_catalog.regprocedure::text
                              WHEN 'b' THEN 'WITHOUT FUNCTION' ELSE 'WITH INOUT' END)
       FROM pg_catalog.pg_cast k
      WHERE (k.oid >= 16384::pg_catalog.oid OR k.castfunc >= 16384::pg_catalog.oid) AND k.castmethod <> 'i'
        AND ((k.castsource = bt.oid AND k.casttarget = 'pg_catalog.text'::pg_catalog.regtype
              AND NOT (k.castmethod = 'b' AND ${isBuiltinFunction('bt.typoutput', 'textout')}))
          OR (k.casttarget = bt.oid AND k.castsource = 'pg_catalog.text'::pg_catalog.regtype
              AND NOT (k.castmethod = 'b' AND ${isBuiltinFunction('bt.typinput', 'textin')})))
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend c JOIN pg_catalog.pg_depend t ON t.refobjid = c.refobjid
                         WHERE c.classid = 'pg_catalog.pg_cast'::pg_catalog.regclass AND c.objid = k.oid
                           AND c.deptype = 'e' AND t.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                           AND t.objid = bt.oid AND t.deptype = 'e'
                           AND (${superuserSql('(SELECT x.extowner FROM pg_catalog.pg_extension x WHERE x.oid = c.refobjid)')}
                                OR ${superuserSql('(SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.oid = k.castfunc)')}))
      ORDER BY k.oid LIMIT 1)`;

/**
 * Whether the type `start` (by default `bt`, the column's type under its domains), or a type anywhere under it, meets
 * `condition` (on `e`, a pg_type row): as its arrays' element, its domain's base type, a composite type's attribute, a
 * range's subtype or a multirange's range, at any depth (record_out and array_out write each part by its own output
 * function, and the input functions read them the same way).
 */
const typeUnderSql = (condition: string, start = 'bt.oid') => `EXISTS (WITH RECURSIVE under(oid) AS (
       SELECT ${start}
        UNION
       SELECT x.oid FROM under JOIN pg_catalog.pg_type t ON t.oid = under.oid
        CROSS JOIN LATERAL (
          SELECT t.typelem WHERE t.typcategory = 'A' AND t.typelem <> 0
          UNION ALL SELECT t.typbasetype WHERE t.typtype = 'd'
          UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE t.typtype = 'r' AND r.rngtypid = t.oid
          UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE t.typtype = 'm' AND r.rngmultitypid = t.oid
          UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
                     WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
        ) AS x(oid))
     SELECT FROM under JOIN pg_catalog.pg_type e ON e.oid = under.oid WHERE ${condition})`;

/**
 * Types that hold oids of catalog objects and write them as the objects' names: regclass, regtype, regproc and the
 * others, and aclitem (a grant names its roles; a dropped role's oid is written bare and never read back).
 */
export const catalogNameTypeSql = (start: string): string =>
  typeUnderSql(
    `e.typoutput = ANY ('{pg_catalog.regprocout, pg_catalog.regprocedureout,
              pg_catalog.regoperout, pg_catalog.regoperatorout, pg_catalog.regclassout, pg_catalog.regtypeout,
              pg_catalog.regroleout, pg_catalog.regnamespaceout, pg_catalog.regconfigout,
              pg_catalog.regdictionaryout, pg_catalog.regcollationout, pg_catalog.aclitemout}'::pg_catalog.regproc[])`,
    start,
  );
const CATALOG_NAME_SQL = catalogNameTypeSql('bt.oid');

/**
 * Whether column `a` holds the `lo` extension's type anywhere in its type (itself, a domain over it, an array's element,
 * an attribute), a domain over oid naming a large object: the object lives in pg_largeobject, not in the row, and
 * vacuumlo (which every application using lo runs) unlinks it once the archived row is deleted. Walked from the
 * column's own type: `bt` is under the domains, where `lo` itself is.
 */
const LARGE_OBJECT_SQL = typeUnderSql(
  `e.typname = 'lo' AND e.typtype = 'd' AND e.typbasetype = 'pg_catalog.oid'::pg_catalog.regtype`,
  'a.atttypid',
);

/**
 * Whether one of the types below is the column's type under its domains, or anywhere under that: types whose values
 * PostgreSQL builds and writes but whose input refuses some of them, or reads them as other values. A circle of
 * negative radius (`circle(point, -1)`, a scaling by a negative factor), and the box `box()` makes of one (its corners
 * swapped, which input puts back); xml its functions (`xmlelement`, `xmlagg`, `table_to_xml`, …) built around a
 * character XML 1.0 forbids (a control character such as an ANSI colour code's ESC); a timetz whose offset, from `AT
 * TIME ZONE` or a session's zone, lies past the ±15:59:59 input takes (`+16`, or `+1000`, read as `+10`); a tsquery
 * whose phrase distances around removed stop words add up past 16384; a tsvector `array_to_tsvector` made of words
 * longer than input takes; the smallest interval (PostgreSQL 18 writes `-2562047788:00:54.775808`, reads no such).
 */
const READ_BACK_SQL = typeUnderSql(
  `e.oid = ANY ('{pg_catalog.circle, pg_catalog.box, pg_catalog.xml, pg_catalog.timetz, pg_catalog.tsquery,
                  pg_catalog.tsvector, pg_catalog.interval}'::pg_catalog.regtype[])`,
);

/** Whether `"char"` is the column's type under its domains, or anywhere under that (an array's element, an attribute). */
const NESTED_CHAR_SQL = typeUnderSql(`e.oid = 'pg_catalog."char"'::pg_catalog.regtype`);

/**
 * Types PostgreSQL writes but whose input function refuses every value: the planner's own stored trees and
 * statistics, BRIN summaries, and the GiST index keys of full-text search and of contrib extensions (pg_trgm, hstore,
 * btree_gist, intarray, ltree), those only as members of their extension.
 */
const WRITE_ONLY_SQL = typeUnderSql(`e.typinput IN (SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE (p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace
                     AND p.proname = ANY ('{pg_node_tree_in, pg_ndistinct_in, pg_dependencies_in, pg_mcv_list_in,
                                           brin_bloom_summary_in, brin_minmax_multi_summary_in, gtsvectorin}'))
                 OR (p.proname = ANY ('{gtrgm_in, ghstore_in, gbtreekey2_in, gbtreekey4_in, gbtreekey8_in,
                                       gbtreekey16_in, gbtreekey32_in, gbtreekey_var_in, _intbig_in, ltree_gist_in}')
                     AND EXISTS (SELECT FROM pg_catalog.pg_depend d
                                  WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                    AND d.objid = p.oid AND d.deptype = 'e')))`);

/**
 * Types whose output keeps less than the value: the `seg` extension's writes at most 6 significant digits
 * (`1.23456789` as `1.23457`), which its input reads as another value. Only as a member of its extension.
 */
const LOSSY_OUTPUT_SQL = typeUnderSql(`e.typinput IN (SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.proname = 'seg_in'
                AND EXISTS (SELECT FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                               AND d.objid = p.oid AND d.deptype = 'e'))`);

/**
 * Server encodings whose conversion to UTF-8 and back is not the identity for every character (PostgreSQL maps several
 * of their byte sequences to one Unicode character). The others were each found to convert every character to UTF-8
 * and back exactly, or to refuse it (SQLSTATE 22P05, which export names).
 */
const LOSSY_ENCODINGS = new Set(['EUC_JP', 'EUC_JIS_2004', 'EUC_TW']);

/**
 * Reads and checks the table: it exists and is a table, the timestamp column is a timestamp, the key columns are
 * NOT NULL and unique (a primary key or a valid, immediate unique index without predicate or expressions, see
 * isUnique), and deleting its rows changes nothing else (refuseSideEffects).
 */
export async function describeTable(
  client: pg.ClientBase,
  table: TableIdentity,
  /**
   * `rows`: the caller only reads rows, by the key and day windows, counting and digesting them (settling a delete by
   * its rows): what deleting and restoring them needs (a unique key restore can arbitrate on, a DELETE without side
   * effects) is not checked; that every column is readable is.
   */
  purpose: 'archive' | 'rows' = 'archive',
): Promise<TableShape> {
  const archiving = purpose === 'archive';
  const where = `table "${table.schema}"."${table.name}" in database ${table.database}`;
  // One round trip for everything the checks below need: describeTable runs in every step that touches rows.
  const described = await client.query<{
    oid: number;
    relkind: string;
    columns: {
      name: string;
      number: number;
      type: string;
      base_type: string;
      notnull: boolean;
      generated: string;
      builtin_order: boolean;
      deterministic: boolean | null;
      bound_type: string;
      text_cast: string | null;
      catalog_name: boolean;
      write_only: boolean;
      lossy_output: boolean;
      large_object: boolean;
      nested_char: boolean;
      read_back: boolean;
      readable: boolean;
    }[];
    primary_key: string[];
    side_effects: { cascade: SideEffect | null; trigger: SideEffect | null; rule: SideEffect | null };
    unidentified_published: SideEffect | null;
    other_access_method: { name: string; on: string } | null;
    children: string[];
    ancestors: { schema: string; name: string }[];
    replication_role: string;
    row_security: boolean;
    server_version: number;
    in_recovery: boolean;
    server_encoding: string;
    reading: string;
    type_definitions: Record<string, string>;
    enum_labels: Record<string, string[]>;
  }>(
    `SELECT c.oid, c.relkind, ${REPLICATION_ROLE_SQL} AS replication_role,
            pg_catalog.current_setting('server_version_num')::int4 AS server_version,
            pg_catalog.pg_is_in_recovery() AS in_recovery,
            pg_catalog.current_setting('server_encoding') AS server_encoding,
            pg_catalog.row_security_active(c.oid) AS row_security,
            ${READING_DIGEST_SQL} AS reading,
            ${typeDefinitionsSql('c.oid')} AS type_definitions,
            ${enumLabelsSql('c.oid')} AS enum_labels,
            (SELECT coalesce(json_agg(json_build_object('name', a.attname, 'number', a.attnum,
                      'type', pg_catalog.format_type(a.atttypid, a.atttypmod), 'base_type', ${BASE_TYPE_SQL},
                      'notnull', ${NOT_NULL_SQL},
                      'generated', a.attgenerated::text, 'builtin_order', ${BUILTIN_ORDER_SQL},
                      'deterministic', (SELECT co.collisdeterministic FROM pg_catalog.pg_collation co
                                         WHERE co.oid = a.attcollation),
                      'bound_type', ${BOUND_TYPE_SQL}, 'text_cast', ${USER_TEXT_CAST_SQL},
                      'catalog_name', ${CATALOG_NAME_SQL}, 'write_only', ${WRITE_ONLY_SQL}, 'lossy_output', ${LOSSY_OUTPUT_SQL},
                      'large_object', ${LARGE_OBJECT_SQL}, 'nested_char', ${NESTED_CHAR_SQL},
                      'read_back', ${READ_BACK_SQL},
                      'readable', pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT')) ORDER BY a.attnum), '[]')
               FROM pg_catalog.pg_attribute a ${BASE_TYPE_JOIN_SQL}
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            ${PRIMARY_KEY_SQL.replace('$1', 'c.oid')} AS primary_key,
            ${SIDE_EFFECTS_SQL} AS side_effects,
            ${UNIDENTIFIED_PUBLISHED_SQL} AS unidentified_published,
            ${OTHER_ACCESS_METHOD_SQL} AS other_access_method,
            ARRAY(SELECT ${relationNameSql('h.inhrelid')} FROM pg_catalog.pg_inherits h
                   WHERE h.inhparent = c.oid AND c.relkind <> 'p' ORDER BY 1) AS children,
            (SELECT coalesce(json_agg(json_build_object('schema', an.nspname, 'name', ak.relname) ORDER BY a.level), '[]')
               FROM pg_catalog.pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, level)
               JOIN pg_catalog.pg_class ak ON ak.oid = a.relid
               JOIN pg_catalog.pg_namespace an ON an.oid = ak.relnamespace
              WHERE a.relid <> c.oid) AS ancestors
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  const relation = described.rows[0];
  if (!relation) throw new TableNotUsableError(`${where} does not exist`);
  if (archiving && LOSSY_ENCODINGS.has(relation.server_encoding)) {
    throw new TableNotUsableError(
      `database ${table.database} is encoded ${relation.server_encoding}, some of whose characters come back from UTF-8 (the archives' encoding) as other bytes (NEC's duplicates of JIS X 0208 symbols; in EUC_JIS_2004, a letter with a combining mark; in EUC_TW, a CNS 11643 plane-1 character in its four-byte form): a restore could not give them back, and keys and bounds would select other rows; nothing was archived or deleted`,
    );
  }
  // A standby (a read replica's endpoint) reads fine: without this, export, upload and verify would run for a batch
  // no delete can ever remove, every run.
  if (archiving && relation.in_recovery) {
    throw new ConfigError(
      `database ${table.database} is a hot standby (a read replica): its rows can be read but never deleted; point its host at the primary`,
    );
  }
  if (relation.relkind !== 'r' && relation.relkind !== 'p') {
    const kinds: Record<string, string> = { v: 'a view', m: 'a materialized view', f: 'a foreign table' };
    throw new TableNotUsableError(
      `${where} is ${kinds[relation.relkind] ?? 'not a table'}; only tables can be archived`,
    );
  }
  const columns: ColumnInfo[] = relation.columns.map((c) => ({
    name: c.name,
    type: c.type,
    nullable: !c.notnull,
    generated: c.generated !== '',
  }));
  const byName = new Map(columns.map((c) => [c.name, c]));
  if (archiving) refuseUnrestorableValues(relation.columns, where);
  const nestedChar = relation.columns.find((c) => c.nested_char && c.base_type !== '"char"');
  if (archiving && nestedChar && relation.server_version < 150000) {
    throw new TableNotUsableError(
      `column "${nestedChar.name}" of ${where} is ${nestedChar.type}, which holds "char" values: PostgreSQL 14 and older write a "char" byte above 0x7f bare, which is not UTF-8, so an archive holding one could never be restored; archive the table on PostgreSQL 15 or later, or change the column's type`,
    );
  }

  const timestampColumn = byName.get(table.timestampColumn);
  if (!timestampColumn) throw new TableNotUsableError(`${where} has no column "${table.timestampColumn}"`);
  // By the type under its domains, whatever its precision (Rails' created_at is timestamp(6)).
  const baseType = relation.columns.find((c) => c.name === table.timestampColumn)?.base_type ?? '';
  const timestampKind = timestampTypes[baseType];
  if (!timestampKind) {
    throw new TableNotUsableError(
      `column "${table.timestampColumn}" of ${where} is ${timestampColumn.type}; it must be timestamptz or timestamp`,
    );
  }
  if (timestampKind === 'timestamp') await checkTimeZone(client, table.timestampTimeZone);

  const keyNames = table.keyColumns ?? relation.primary_key;
  if (keyNames.length === 0) {
    throw new TableNotUsableError(
      `${where} has no primary key (a deferrable one or one WITHOUT OVERLAPS cannot serve: restore's INSERT ... ON CONFLICT refuses it); set keyColumns to the NOT NULL columns of a unique, non-deferrable index`,
    );
  }
  const keyColumns = keyNames.map((name) => {
    const column = byName.get(name);
    if (!column) throw new TableNotUsableError(`${where} has no key column "${name}"`);
    if (column.nullable) throw new TableNotUsableError(`key column "${name}" of ${where} must be NOT NULL`);
    const described = relation.columns.find((c) => c.name === name);
    // Restore recognises the archived rows by their key (restore-sql.ts conflictKeyProblems): a key it would refuse
    // is refused here, before any row is deleted, or the rows could not come back into a table like this one.
    if (archiving && column.generated) {
      throw new TableNotUsableError(
        `key column "${name}" of ${where} is generated: a restore writes each archived row's key, and PostgreSQL computes a generated column itself; set keyColumns to the stored columns of a unique index`,
      );
    }
    if (archiving && described?.deterministic === false) {
      throw new TableNotUsableError(
        `key column "${name}" of ${where} compares under a nondeterministic collation (equal values may differ in their text): a restore could not tell archived rows from rows already there by it; set keyColumns to the columns of a unique index under deterministic collations`,
      );
    }
    if (!described?.builtin_order) {
      throw new TableNotUsableError(
        `key column "${name}" of ${where} is ${column.type}, which is not ordered by PostgreSQL's built-in operators for certain (an extension's type such as citext; or a composite, array or range type of a schema of its own); set keyColumns to columns of built-in types, enums or domains over them, the columns of a unique index`,
      );
    }
    return { ...column, boundType: described.bound_type };
  });
  // Export reads every column, and so does settling a delete by its rows (each row's digest holds every column):
  // without this, the SELECT is refused (42501) naming the table only, and the operator has to find the columns a
  // column-level grant left out.
  const unreadable = relation.columns.filter((c) => !c.readable).map((c) => `"${c.name}"`);
  if (unreadable.length > 0) {
    throw new DatabaseAccessError(
      `the archiver's role may not read ${unreadable.length === 1 ? 'column' : 'columns'} ${unreadable.join(', ')} of ${where}: an archive holds every column, and its rows are compared by every column; GRANT SELECT on the table (or on ${unreadable.length === 1 ? 'that column' : 'those columns'}) to the role`,
    );
  }
  if (archiving) {
    const method = relation.other_access_method;
    if (method) {
      throw new TableNotUsableError(
        `${where}: ${method.on} stores its rows with table access method "${method.name}", not heap; the delete proves it removes exactly the archived row versions by how heap keeps them, so only heap tables can be archived (rewrite it as one: ALTER TABLE ${method.on} SET ACCESS METHOD heap, on PostgreSQL 15 and later)`,
      );
    }
    refuseSideEffects(relation.side_effects, where);
    refuseReplicaSession(relation.replication_role, where);
    const published = relation.unidentified_published;
    if (published) {
      throw new TableNotUsableError(
        `${where}: publication "${published.name}" publishes deletes from ${published.on}, which has no replica identity, so PostgreSQL refuses to delete its rows; give it one (ALTER TABLE ${published.on} REPLICA IDENTITY USING INDEX on the key's unique index, or REPLICA IDENTITY FULL), or leave it out of the publication`,
      );
    }
  }
  // Through a partitioned table only its own policies apply, and a plain table is read ONLY: the table's own decide.
  if (relation.row_security) {
    throw new TableNotUsableError(
      `${where} has row-level security that applies to the archiver's role: its policies could hide rows from export or keep the delete from rows it archived; grant the role BYPASSRLS, or archive as the table's owner (without FORCE ROW LEVEL SECURITY)`,
    );
  }
  if (archiving && table.keyColumns && !(await isUnique(client, relation.oid, keyNames))) {
    throw new TableNotUsableError(
      `key columns (${keyNames.join(', ')}) of ${where} are not exactly the columns of its primary key or of a valid, non-deferrable unique index (restore recognises rows already there by such an index only)`,
    );
  }
  return {
    schema: table.schema,
    name: table.name,
    partitioned: relation.relkind === 'p',
    inheritanceChildren: relation.children,
    partitionOf: relation.ancestors,
    columns,
    columnNumbers: relation.columns.map((c) => c.number),
    keyColumns,
    timestampColumn,
    timestampKind,
    timestampTimeZone: table.timestampTimeZone,
    rawByteColumns:
      relation.server_version < 150000
        ? columns.filter((_, i) => relation.columns[i]?.base_type === '"char"')
        : [],
    // format_type spells `character` without a length `bpchar`, whatever the settings.
    blankKeepingColumns: relation.columns.filter((c) => c.bound_type === 'bpchar').map((c) => c.name),
    readBackColumns: relation.columns
      .filter((c) => c.read_back)
      .map((c) => ({ name: c.name, type: c.bound_type })),
    virtualColumns: relation.columns.filter((c) => c.generated === 'v').map((c) => c.name),
    readingDigest: relation.reading,
    typeDefinitions: relation.type_definitions,
    enumLabels: relation.enum_labels,
  };
}

/**
 * Every archived value must come back as it was: a column whose values the archive's text would not bring back (see
 * USER_TEXT_CAST_SQL and CATALOG_NAME_SQL) is refused before any row moves, naming it and why.
 */
function refuseUnrestorableValues(
  columns: {
    name: string;
    type: string;
    text_cast: string | null;
    catalog_name: boolean;
    write_only: boolean;
    lossy_output: boolean;
    large_object: boolean;
  }[],
  where: string,
): void {
  for (const column of columns) {
    const named = `column "${column.name}" of ${where} is ${column.type}`;
    if (column.text_cast) {
      throw new TableNotUsableError(
        `${named}, which has a cast to or from text that is not PostgreSQL's own: CAST ${column.text_cast}. The archive holds each value as its type's text, and the archiver's casts to and from text would take that cast instead, so values could be archived that no restore brings back; drop the cast (or make it WITH INOUT), or leave the table out of the config (an extension's cast cannot be dropped)`,
      );
    }
    if (column.catalog_name) {
      throw new TableNotUsableError(
        `${named}, which holds oids of catalog objects and writes them as the objects' names: a restore after such an object was renamed or replaced would bring back another oid silently, and one after it was dropped would fail; change the column's type to oid, or leave the table out of the config`,
      );
    }
    if (column.large_object) {
      throw new TableNotUsableError(
        `${named}, a large object's oid: an archive would hold the oid, not the object, which vacuumlo unlinks once the row is deleted, and a restored row would name an object that is gone; leave the table out of the config, or keep the objects' content in the row (bytea)`,
      );
    }
    if (column.write_only) {
      throw new TableNotUsableError(
        `${named}, which PostgreSQL writes but never reads back (its input function refuses every value): archived rows could never be restored; store the column as text, or leave the table out of the config`,
      );
    }
    if (column.lossy_output) {
      throw new TableNotUsableError(
        `${named}, whose text keeps at most 6 significant digits of a value (seg writes 1.23456789 as 1.23457): a restore would bring back another value; store the column as numrange or two numeric columns, or leave the table out of the config`,
      );
    }
  }
}

/**
 * Deleting archived rows must change nothing but those rows. A foreign key that cascades or sets values, a trigger
 * that fires on DELETE (whatever its body does) or a rule on DELETE, on the table or on any of its partitions, could
 * change tables that nothing archives: such a table is refused, naming what would act and where.
 */
function refuseSideEffects(
  effects: {
    cascade: SideEffect | null;
    trigger: SideEffect | null;
    rule: SideEffect | null;
  },
  where: string,
): void {
  const { cascade, trigger, rule } = effects;
  const why = 'deleting archived rows would change rows that are not archived';
  if (cascade) {
    throw new TableNotUsableError(
      `${where} is referenced by foreign key "${cascade.name}" of ${cascade.on} with ON DELETE CASCADE/SET NULL/SET DEFAULT; ${why}`,
    );
  }
  if (trigger) {
    throw new TableNotUsableError(
      `${where}: trigger "${trigger.name}" on ${trigger.on} fires on DELETE; ${why} (disable the trigger or archive another way${trigger.cloned ? `; disabled on ${trigger.on}, it is disabled on every partition of it` : ''})`,
    );
  }
  if (rule) {
    throw new TableNotUsableError(`${where}: rule "${rule.name}" on ${rule.on} acts on DELETE; ${why}`);
  }
}

/** The session's `session_replication_role`, read with a relation's description (see refuseReplicaSession). */
export const REPLICATION_ROLE_SQL = `pg_catalog.current_setting('session_replication_role')`;

/**
 * Under `session_replication_role = replica`, which a superuser may set for the archiver's role or its database (as
 * logical replication setups do), PostgreSQL skips foreign-key checks and fires replica-only triggers and rules: a
 * delete that must fail (rows still referenced) would succeed and orphan the referencing rows, and restored rows
 * could reference rows that do not exist. The archiver cannot pin the setting without superuser rights, so it
 * refuses such a session before any row moves.
 */
export function refuseReplicaSession(role: string, where: string): void {
  if (role !== 'replica') return;
  throw new TableNotUsableError(
    `${where}: the session runs with session_replication_role = replica (set for the archiver's role or the database), under which PostgreSQL skips foreign-key checks, so rows could be left referencing rows that do not exist; reset it to origin`,
  );
}

/** The reading digest (READING_DIGEST_SQL) of the table `schema`.`name` as it is now; undefined when it is gone. */
export async function readingDigestNow(
  client: pg.ClientBase,
  table: { schema: string; name: string },
): Promise<string | undefined> {
  const result = await client.query<{ reading: string }>(
    `SELECT ${READING_DIGEST_SQL} AS reading FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  return result.rows[0]?.reading;
}

/** The relation named `schema`.`name` (its oid and kind), or undefined when there is none. */
export async function findRelation(
  client: pg.ClientBase,
  table: { schema: string; name: string },
): Promise<{ oid: number; relkind: string } | undefined> {
  const rel = await client.query<{ oid: number; relkind: string }>(
    `SELECT c.oid, c.relkind FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  return rel.rows[0];
}

/** The primary key's column names in key order; empty when the table has none. */
export async function primaryKey(client: pg.ClientBase, oid: number): Promise<string[]> {
  const result = await client.query<{ names: string[] }>(`SELECT ${PRIMARY_KEY_SQL} AS names`, [oid]);
  return result.rows[0]?.names ?? [];
}

/**
 * A unique index `i` that can serve as an archived table's key: non-partial, non-expression (restore's
 * `ON CONFLICT (names)` arbitrates only on such an index, and refuses a key that merely contains one) and enforcing
 * uniqueness now: valid and live (a failed `CREATE UNIQUE INDEX CONCURRENTLY` leaves an invalid one over duplicate
 * keys) and not deferrable (ON CONFLICT cannot arbitrate on a deferrable one, and it allows duplicates inside a
 * transaction) nor temporal (`WITHOUT OVERLAPS`, PostgreSQL 18, an exclusion constraint: ON CONFLICT refuses it too),
 * and comparing each column under a deterministic collation (an index `COLLATE` a case-insensitive one takes distinct
 * keys for one: restore would count archived rows as already there). Key columns are NOT NULL, so NULLS [NOT]
 * DISTINCT does not matter. The wizard suggests keys by it too.
 */
export const keyIndexSql = (i: string): string =>
  `${i}.indisunique AND ${i}.indpred IS NULL AND ${i}.indexprs IS NULL
          AND ${i}.indisvalid AND ${i}.indisready AND ${i}.indislive AND ${i}.indimmediate AND NOT ${i}.indisexclusion
          AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.unnest(${i}.indcollation) AS k(coll)
              JOIN pg_catalog.pg_collation co ON co.oid = k.coll
             WHERE NOT co.collisdeterministic)`;

/** True when some index that can serve as a key (keyIndexSql) has exactly the columns `names`, in any order. */
export async function isUnique(client: pg.ClientBase, oid: number, names: string[]): Promise<boolean> {
  const result = await client.query<{ ok: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_catalog.pg_index i
        WHERE i.indrelid = $1 AND ${keyIndexSql('i')}
          AND ARRAY(SELECT a.attname::text COLLATE "C" FROM pg_catalog.unnest(i.indkey[0:i.indnkeyatts - 1]) AS k(attnum)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY 1)
              = ARRAY(SELECT n COLLATE "C" FROM pg_catalog.unnest($2::text[]) AS n ORDER BY 1)
     ) AS ok`,
    [oid, names],
  );
  return result.rows[0]?.ok === true;
}

/**
 * A unique index of `oid` on exactly the columns `names` that compares one of them otherwise than its type's own
 * equality: under a nondeterministic collation (`CREATE UNIQUE INDEX ON t (tag COLLATE case_insensitive)`, beside
 * the key's own index), or through an operator class of another type or another equality (`(tag bpchar_ops)` on a
 * text column, blind to trailing blanks). Its name and which of the two, else undefined. `INSERT ... ON CONFLICT
 * (names)` takes every valid unique index on those columns as an arbiter, whatever its collation or operator class,
 * so such an index would make a restore take an archived row for another one already there ('Alice' for 'alice', 'k1'
 * for 'k1 '): skipped as restored under `skip`, written over that other row under `overwrite`. An operator class
 * counts as the type's own when it is for the column's type (under all its domains; a polymorphic one, as for enums;
 * for a type without one of its own, the preferred type's it is binary-coercible to: `text` for `varchar`, `inet` for `cidr`) and is its default or shares the default's equality (`text_pattern_ops`).
 */
export async function looseUniqueIndex(
  client: pg.ClientBase,
  oid: number,
  names: string[],
): Promise<{ name: string; by: 'collation' | 'operator class' } | undefined> {
  const result = await client.query<{ name: string; by: 'collation' | 'operator class' }>(
    `SELECT c.relname AS name,
            CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indcollation) AS k(coll)
                                JOIN pg_catalog.pg_collation co ON co.oid = k.coll
                               WHERE NOT co.collisdeterministic)
                 THEN 'collation' ELSE 'operator class' END AS by
       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
        AND ARRAY(SELECT a.attname::text COLLATE "C" FROM pg_catalog.unnest(i.indkey[0:i.indnkeyatts - 1]) AS k(attnum)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY 1)
            = ARRAY(SELECT n COLLATE "C" FROM pg_catalog.unnest($2::text[]) AS n ORDER BY 1)
        AND (EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indcollation) AS k(coll)
                       JOIN pg_catalog.pg_collation co ON co.oid = k.coll
                      WHERE NOT co.collisdeterministic)
             OR EXISTS (
               SELECT 1
                 FROM ROWS FROM (pg_catalog.unnest(i.indclass[0:i.indnkeyatts - 1]::pg_catalog.oid[]),
                                 pg_catalog.unnest(i.indkey[0:i.indnkeyatts - 1]::pg_catalog.int2[])) AS k(opclass, attnum)
                 JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opclass
                 JOIN pg_catalog.pg_type it ON it.oid = oc.opcintype
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 CROSS JOIN LATERAL (WITH RECURSIVE chain AS (
                     SELECT t.oid, t.typtype, t.typbasetype FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid
                     UNION ALL
                     SELECT t.oid, t.typtype, t.typbasetype
                       FROM pg_catalog.pg_type t JOIN chain ON t.oid = chain.typbasetype WHERE chain.typtype = 'd')
                   SELECT chain.oid AS base FROM chain WHERE chain.typtype <> 'd') b
                WHERE NOT (
                  (oc.opcintype = b.base OR it.typtype = 'p'
                   -- A type without operator classes of its own takes those of the preferred type it is binary-coercible
                   -- to, as PostgreSQL picks one: text's for varchar, inet's for cidr (not bpchar's, blind to blanks).
                   OR (it.typispreferred
                       AND EXISTS (SELECT 1 FROM pg_catalog.pg_cast ca WHERE ca.castsource = b.base
                                      AND ca.casttarget = oc.opcintype AND ca.castmethod = 'b')
                       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_opclass own
                                        WHERE own.opcmethod = oc.opcmethod AND own.opcintype = b.base AND own.opcdefault)))
                  AND (oc.opcdefault OR (
                    SELECT o.amopopr FROM pg_catalog.pg_amop o
                     WHERE o.amopfamily = oc.opcfamily AND o.amopstrategy = 3
                       AND o.amoplefttype = oc.opcintype AND o.amoprighttype = oc.opcintype)
                    = (SELECT o.amopopr FROM pg_catalog.pg_opclass d JOIN pg_catalog.pg_amop o ON o.amopfamily = d.opcfamily
                        WHERE d.opcmethod = oc.opcmethod AND d.opcdefault AND d.opcintype = oc.opcintype
                          AND o.amopstrategy = 3 AND o.amoplefttype = oc.opcintype AND o.amoprighttype = oc.opcintype)))))
      ORDER BY c.relname LIMIT 1`,
    [oid, names],
  );
  return result.rows[0];
}

/**
 * A DEFERRABLE unique index of `oid` (a unique or primary-key constraint's) on exactly the columns `names`, by name,
 * else undefined. `INSERT ... ON CONFLICT (names)` takes every valid unique index on those columns as an arbiter,
 * beside the immediate one isUnique found, and PostgreSQL refuses a deferrable arbiter (SQLSTATE 55000) as soon as a
 * row meets no conflict before it. COPY arbitrates on nothing, and is not affected.
 */
export async function deferrableUniqueIndex(
  client: pg.ClientBase,
  oid: number,
  names: string[],
): Promise<string | undefined> {
  const result = await client.query<{ name: string }>(
    `SELECT c.relname AS name
       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1 AND i.indisunique AND NOT i.indimmediate AND i.indisvalid
        AND i.indpred IS NULL AND i.indexprs IS NULL AND NOT i.indisexclusion
        AND ARRAY(SELECT a.attname::text COLLATE "C" FROM pg_catalog.unnest(i.indkey[0:i.indnkeyatts - 1]) AS k(attnum)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY 1)
            = ARRAY(SELECT n COLLATE "C" FROM pg_catalog.unnest($2::text[]) AS n ORDER BY 1)
      ORDER BY c.relname LIMIT 1`,
    [oid, names],
  );
  return result.rows[0]?.name;
}

async function checkTimeZone(client: pg.ClientBase, zone: string): Promise<void> {
  const result = await client.query('SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = $1', [zone]);
  if (result.rowCount === 0)
    throw new TableNotUsableError(`timestampTimeZone "${zone}" is not a known time zone`);
}
