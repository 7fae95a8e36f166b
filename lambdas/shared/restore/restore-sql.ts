import type pg from 'pg';
import { comparableType } from '../batch/schema-drift.js';
import {
  BASE_TYPE_SQL,
  BOUND_TYPE_SQL,
  baseTypeSql,
  catalogNameTypeSql,
  enumLabelsSql,
  NOT_NULL_SQL,
  PRIMARY_KEY_SQL,
  REPLICATION_ROLE_SQL,
  refuseReplicaSession,
  relationNameSql,
  TABLE_RELATIONS_SQL,
  type TypeDefinitionForm,
  triggerDeclaredOnSql,
  typeDefinitionsSql,
  userTriggerSql,
  WRITE_CALLS_SQL,
} from '../database/table-shape.js';
import { quoteIdent, quoteLiteral, rowSourceSql, timeWindowSql } from '../database/table-sql.js';
import { SchemaDriftError, TableNotUsableError } from '../errors/step-errors.js';

export interface TableName {
  schema: string;
  name: string;
}

export const qualified = (table: TableName): string =>
  `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
export const tableLabel = (table: TableName): string => `"${table.schema}"."${table.name}"`;

export interface TargetColumn {
  name: string;
  type: string;
  /**
   * The type under its domains, however deep, with the nearest modifier (a domain over a domain over bytea reads its
   * values as bytea does; one over unbounded `character` keeps its trailing blanks); else `type`.
   */
  baseType: string;
  /** `baseType` without its modifier (`varchar(3)` → `character varying`): what reads a value unchanged. */
  plainType: string;
  /**
   * An array's element type under its domains, however deep, without a modifier; undefined for a column that is not
   * an array. `plainType` stops at an array of a domain (`weight[]`), whose elements the legacy checks read by this.
   */
  plainElementType?: string;
  /**
   * Whether its type (or its arrays' element) is a domain, composite or range of the database's own, which can be
   * redefined under the same name to read a value otherwise (a domain made numeric(10,1), an attribute retyped): its
   * values are checked to read back as archived even when the name is the archived one. PostgreSQL's own types, enums
   * (a label reads as itself or not at all) and extensions' base types keep the COPY path.
   */
  redefinable: boolean;
  generated: boolean;
  /**
   * Whether values compare equal only when they are the same (false under a nondeterministic collation, say
   * case-insensitive ICU, which takes 'k1' and 'K1' for one key).
   */
  deterministic: boolean;
  /** Whether its values compare under a collation (text types): an order of them depends on it. */
  collatable: boolean;
  /** Whether it holds no NULL for certain (NOT NULL, validated). */
  notNull: boolean;
  /**
   * Whether its type holds oids written as catalog names (a `reg*` type or `aclitem`, anywhere in it): its input
   * looks each name up, and an unknown one fails outside the data exceptions, quoting the value.
   */
  catalogName: boolean;
}

/** A restore target as the catalog describes it. */
export interface RestoreTarget {
  table: TableName;
  oid: number;
  /** Changes when the table is dropped and created again, or truncated: a restore watermark belongs to one. */
  identity: string;
  /** A partitioned table, read through its parent; a plain one is read `ONLY`, without its inheritance children. */
  partitioned: boolean;
  columns: TargetColumn[];
  primaryKey: string[];
  /** No row-level security: COPY FROM, which refuses it, writes rows as INSERT would. */
  copyable: boolean;
  /** INSERT or UPDATE rules, which INSERT ... ON CONFLICT refuses and COPY would skip. */
  hasRules: boolean;
  /** Enabled user triggers on the table or its partitions that fire on INSERT or on UPDATE. */
  triggers: { name: string; on: string; insert: boolean; update: boolean }[];
  /**
   * The foreign keys of other tables (or of itself) onto the table or its partitions with an ON UPDATE action (CASCADE,
   * SET NULL, SET DEFAULT), with the columns they reference: an `overwrite` that changes a referenced column changes the
   * referencing rows (refuseUpdateCascade).
   */
  updateCascades: { name: string; on: string; columns: string[] }[];
  /**
   * Functions of other roles that writing its rows runs (WRITE_CALLS_SQL); `column` names the column a default
   * fills, which runs only when the restore leaves that column out.
   */
  writeCalls: WriteCall[];
  /**
   * The definitions of its columns' types that are not PostgreSQL's own, by type name (typeDefinitionsSql), in each
   * form an archive may record: the one exports write now, and the one of archives written before.
   */
  typeDefinitions: Record<TypeDefinitionForm, Record<string, string>>;
  /** The labels of the enums its columns are made of, by enum name, however many (enumLabelsSql). */
  enumLabels: Record<string, string[]>;
}

/** A function of another role (not a superuser's) that an expression of a restore target calls (WRITE_CALLS_SQL). */
export interface WriteCall {
  /** PostgreSQL's description of what calls it: `constraint sane on table t`, `default value for column c of …`. */
  object: string;
  /** The function, with its argument types. */
  function: string;
  /** The column whose default calls it. */
  column?: string;
}

/** The refusal of a target whose `call` a restore would run. */
function untrustedCallRefusal(target: RestoreTarget, call: WriteCall): TableNotUsableError {
  return new TableNotUsableError(
    `restore target ${tableLabel(target.table)}: ${call.object} calls ${call.function}, which may run code no superuser vouches for (a function of another role, or of an extension no superuser owns, or one of PostgreSQL's that runs a query it is given): a restore would run it with the archiver's privileges, under which it could change any archived table, as a trigger could; restore into a table without it (targetTable), or have a superuser own the function (ALTER FUNCTION ... OWNER TO) if it is trusted; nothing was written`,
  );
}

/**
 * A target must take a restore's rows as they were archived, and nothing else: refused before anything is written when
 * it has rules (INSERT ... ON CONFLICT refuses them, COPY skips them), a trigger that would fire on the rows written
 * (on INSERT; on UPDATE with strategy overwrite), which could change their values, drop them (counted as skipped) or
 * write other tables, or an expression evaluated on every row written (a CHECK, an index, a policy, a generated
 * column) that calls a function of another role, which could write other tables as well. A default that calls one is
 * refused where the restore leaves its column out (planColumns).
 */
export function assertWritable(target: RestoreTarget, strategy: 'fail' | 'skip' | 'overwrite'): void {
  if (target.hasRules)
    throw new TableNotUsableError(
      `restore target ${tableLabel(target.table)} has rules, which a restore cannot honour (INSERT ... ON CONFLICT refuses them, COPY skips them); restore into a table without rules (targetTable); nothing was written`,
    );
  const trigger = target.triggers.find((t) => t.insert || (strategy === 'overwrite' && t.update));
  if (trigger)
    throw new TableNotUsableError(
      `restore target ${tableLabel(target.table)}: trigger "${trigger.name}" on ${trigger.on} fires on ${trigger.insert ? 'INSERT' : 'UPDATE'}, and could change or drop the restored rows or write other tables; disable it for the restore (ALTER TABLE ... DISABLE TRIGGER) or restore into a table without it (targetTable); nothing was written`,
    );
  const call = target.writeCalls.find((c) => c.column === undefined);
  if (call) throw untrustedCallRefusal(target, call);
}

/**
 * Refuses an `overwrite` on `conflictKey` into a target another table references with an ON UPDATE action on columns
 * beyond that key: putting the archived values back would change the referencing rows. The key's own columns are
 * written with the values they are matched by, and PostgreSQL takes no action for a referenced value that stays.
 */
export function refuseUpdateCascade(target: RestoreTarget, conflictKey: readonly string[]): void {
  const cascade = target.updateCascades.find((f) => !f.columns.every((c) => conflictKey.includes(c)));
  if (cascade)
    throw new TableNotUsableError(
      `restore target ${tableLabel(target.table)} is referenced by foreign key "${cascade.name}" of ${cascade.on} with ON UPDATE CASCADE/SET NULL/SET DEFAULT on (${cascade.columns.join(', ')}): strategy overwrite, putting archived values back, would change the rows that reference them; restore with strategy skip, or into a table without it (targetTable); nothing of the archive was written`,
    );
}

/**
 * The target's identity for its restore watermark: its oid and its storage, which a new table, TRUNCATE or a rewrite
 * changes. A partitioned table has no storage of its own: its leaves' storage stands for it (a digest, to keep the key
 * short whatever the partitions), which TRUNCATE, ATTACH and DETACH change.
 */
const TARGET_IDENTITY_SQL = `c.oid::text || '.' || CASE WHEN c.relkind = 'p'
    THEN pg_catalog.md5(coalesce((SELECT pg_catalog.string_agg(p.relid::oid::text || ':' ||
           coalesce(pg_catalog.pg_relation_filenode(p.relid)::text, '0'), ',' ORDER BY p.relid::oid)
         FROM pg_catalog.pg_partition_tree(c.oid) p WHERE p.isleaf), ''))
    ELSE coalesce(pg_catalog.pg_relation_filenode(c.oid)::text, '0') END`;

/**
 * The target, described under a ROW EXCLUSIVE lock held to the end of the transaction (what its COPY or INSERT takes
 * anyway, so no writer waits): no ALTER TABLE, DROP TABLE or DROP INDEX can come between the description, the checks
 * made on it (its unique key) and the writes, even after an archive rolled back to its savepoint, which releases the
 * locks taken after it. ATTACH PARTITION is the exception (it takes SHARE UPDATE EXCLUSIVE, which lets ROW EXCLUSIVE
 * through; taking that mode here would make a restore's parallel groups wait on each other): the group checks its
 * target's triggers again before it commits. Undefined, with nothing locked, when the table does not exist.
 */
export async function lockAndDescribeTarget(
  client: pg.ClientBase,
  table: TableName,
): Promise<RestoreTarget | undefined> {
  const found = await client.query<{ present: boolean }>(
    'SELECT pg_catalog.to_regclass($1) IS NOT NULL AS present',
    [qualified(table)],
  );
  if (!found.rows[0]?.present) return undefined;
  await client.query(`LOCK TABLE ${qualified(table)} IN ROW EXCLUSIVE MODE`);
  return describeTarget(client, table);
}

/**
 * Reads the target's columns and primary key in one round trip (restore describes its target once per archive, in
 * the archive's transaction); undefined when there is no such table.
 */
export async function describeTarget(
  client: pg.ClientBase,
  table: TableName,
): Promise<RestoreTarget | undefined> {
  const result = await client.query<{
    oid: number;
    relkind: string;
    identity: string;
    columns: {
      name: string;
      type: string;
      base_type: string;
      plain_type: string;
      plain_element_type: string | null;
      redefinable: boolean;
      generated: string;
      deterministic: boolean | null;
      collatable: boolean;
      not_null: boolean;
      catalog_name: boolean;
    }[];
    primary_key: string[];
    copyable: boolean;
    has_rules: boolean;
    replication_role: string;
    triggers: { name: string; on: string; insert: boolean; update: boolean }[];
    update_cascades: { name: string; on: string; columns: string[] }[];
    write_calls: { object: string; function: string; column: string | null }[];
    type_definitions: Record<string, string>;
    text_type_definitions: Record<string, string>;
    enum_labels: Record<string, string[]>;
  }>(
    `SELECT c.oid, c.relkind, ${REPLICATION_ROLE_SQL} AS replication_role,
            ${TARGET_IDENTITY_SQL} AS identity,
            ${typeDefinitionsSql('c.oid')} AS type_definitions,
            ${typeDefinitionsSql('c.oid', 'text')} AS text_type_definitions,
            ${enumLabelsSql('c.oid', { all: true })} AS enum_labels,
            (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
                      'name', a.attname,
                      'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                      'base_type', ${BOUND_TYPE_SQL},
                      -- Under every domain, as baseType: one level down, a domain over a domain would be read by
                      -- the inner domain's name, which no check knows.
                      'plain_type', ${BASE_TYPE_SQL},
                      'plain_element_type', CASE WHEN ty.typcategory = 'A' AND ty.typelem <> 0
                                                 THEN ${baseTypeSql('ty.typelem')} END,
                      'redefinable', (SELECT el.typtype IN ('d', 'c', 'r', 'm')
                                             AND el.typnamespace <> 'pg_catalog'::pg_catalog.regnamespace
                                        FROM pg_catalog.pg_type el
                                       WHERE el.oid = CASE WHEN ty.typcategory = 'A' AND ty.typelem <> 0
                                                           THEN ty.typelem ELSE ty.oid END),
                      'generated', a.attgenerated::text,
                      'deterministic', (SELECT co.collisdeterministic FROM pg_catalog.pg_collation co
                                         WHERE co.oid = a.attcollation),
                      'collatable', a.attcollation <> 0,
                      'not_null', ${NOT_NULL_SQL},
                      'catalog_name', ${catalogNameTypeSql('a.atttypid')}) ORDER BY a.attnum), '[]')
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            ${PRIMARY_KEY_SQL.replace('$1', 'c.oid')} AS primary_key,
            NOT c.relrowsecurity AS copyable,
            -- Not relhasrules, which stays true after DROP RULE until a VACUUM. An INSERT or UPDATE rule that fires
            -- (a replica session, where 'R' rules would, is refused) is what ON CONFLICT refuses and COPY skips.
            EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r
                     WHERE r.ev_class = c.oid AND r.ev_type IN ('2', '3') AND r.ev_enabled IN ('O', 'A')) AS has_rules,
            (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('name', g.tgname,
                      'on', ${triggerDeclaredOnSql('g')},
                      'insert', (g.tgtype::int & 4) <> 0, 'update', (g.tgtype::int & 16) <> 0) ORDER BY g.tgname), '[]')
               FROM pg_catalog.pg_trigger g
              WHERE g.tgrelid = ANY (${TABLE_RELATIONS_SQL}) AND ${userTriggerSql('g')} AND g.tgenabled IN ('O', 'A')
                AND (g.tgtype::int & 20) <> 0) AS triggers, -- TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE
            -- conenforced through the row's JSON: the column exists from PostgreSQL 18 (NOT ENFORCED: no triggers).
            (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('name', f.conname,
                      'on', ${relationNameSql('f.conrelid')},
                      'columns', (SELECT pg_catalog.array_agg(ka.attname ORDER BY k.at)
                                    FROM pg_catalog.unnest(f.confkey) WITH ORDINALITY AS k(attnum, at)
                                    JOIN pg_catalog.pg_attribute ka ON ka.attrelid = f.confrelid AND ka.attnum = k.attnum))
                      ORDER BY f.conname), '[]')
               FROM pg_catalog.pg_constraint f
              WHERE f.contype = 'f' AND f.confrelid = ANY (${TABLE_RELATIONS_SQL}) AND f.confupdtype IN ('c', 'n', 'd')
                AND coalesce((pg_catalog.to_jsonb(f) ->> 'conenforced')::bool, true)) AS update_cascades,
            ${WRITE_CALLS_SQL} AS write_calls
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  const relation = result.rows[0];
  if (!relation) return undefined;
  if (relation.relkind !== 'r' && relation.relkind !== 'p') {
    throw new TableNotUsableError(`restore target ${tableLabel(table)} is not a table`);
  }
  refuseReplicaSession(relation.replication_role, `restore target ${tableLabel(table)}`);
  return {
    table,
    oid: relation.oid,
    identity: relation.identity,
    partitioned: relation.relkind === 'p',
    columns: relation.columns.map((c) => ({
      name: c.name,
      type: c.type,
      baseType: c.base_type,
      plainType: c.plain_type,
      ...(c.plain_element_type !== null ? { plainElementType: c.plain_element_type } : {}),
      redefinable: c.redefinable,
      generated: c.generated !== '',
      deterministic: c.deterministic !== false,
      collatable: c.collatable,
      notNull: c.not_null,
      catalogName: c.catalog_name,
    })),
    primaryKey: relation.primary_key,
    copyable: relation.copyable,
    hasRules: relation.has_rules,
    typeDefinitions: { json: relation.type_definitions, text: relation.text_type_definitions },
    enumLabels: relation.enum_labels,
    triggers: relation.triggers,
    updateCascades: relation.update_cascades,
    writeCalls: relation.write_calls.map(({ column, ...call }) =>
      column === null ? call : { ...call, column },
    ),
  };
}

/**
 * A type name from an archive's manifest, resolved by the server: a manifest is data, so its type text is never
 * spliced into SQL as written. Returns PostgreSQL's own (quoted) spelling, or undefined when the type is unknown. The
 * modifiers (`character(5)`, `numeric(10,2)`, `timestamp(3) with time zone`, `character varying(8)[]`) are kept when
 * the type's own modifier-input function, given the manifest's numbers, yields a type the server spells exactly as
 * the manifest does; otherwise the type is unbounded (`bpchar`, `"bit"`, `numeric`), which takes every archived value.
 * Kept modifiers give a table created from the manifest the source's columns, and a `character(n)` value its padding,
 * which its text form (what the archive holds) drops. An unqualified name that pg_catalog does not know is looked up
 * in `public`: archives written before sessions pinned the search_path name a type there without its schema (see
 * comparableType).
 */
export async function resolveTypeName(client: pg.ClientBase, type: string): Promise<string | undefined> {
  try {
    return await resolveTypeText(client, type);
  } catch (error) {
    // to_regtype reads the modifiers too, and the modifier-input function checks them: both refuse bad ones.
    throw new TableNotUsableError(
      `archived column type ${type} has modifiers this server refuses: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

async function resolveTypeText(client: pg.ClientBase, type: string): Promise<string | undefined> {
  const found = await client.query<{
    oid: number;
    unbounded: string;
    modifier_schema: string | null;
    modifier_input: string | null;
  }>(
    `SELECT t.oid, pg_catalog.format_type(t.oid, -1) AS unbounded,
            n.nspname AS modifier_schema, p.proname AS modifier_input
       FROM pg_catalog.pg_type t
       LEFT JOIN pg_catalog.pg_proc p ON p.oid = t.typmodin
       LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE t.oid = COALESCE(pg_catalog.to_regtype($1),
                    CASE WHEN pg_catalog.strpos($1, '.') = 0 THEN pg_catalog.to_regtype('public.' || $1) END)`,
    [type],
  );
  const resolved = found.rows[0];
  if (!resolved) return undefined;
  const modifiers = /\((\d{1,9}(?:,\d{1,9})*)\)/.exec(type)?.[1]?.split(',');
  if (!modifiers || !resolved.modifier_schema || !resolved.modifier_input) return resolved.unbounded;
  // The function's name comes from the catalog and is quoted; only the numbers travel, as a parameter.
  const modifierInput = `${quoteIdent(resolved.modifier_schema)}.${quoteIdent(resolved.modifier_input)}`;
  const bounded = await client.query<{ type: string }>(
    `SELECT pg_catalog.format_type($1::pg_catalog.oid, ${modifierInput}($2::pg_catalog.cstring[])) AS type`,
    [resolved.oid, modifiers],
  );
  const spelled = bounded.rows[0]?.type;
  return spelled === type ? spelled : resolved.unbounded;
}

/** The archive's timestamp column when it holds local times (`timestamp`), and their zone. */
export interface LocalTimeColumn {
  column: string;
  timeZone: string;
}

export interface ArchivedColumn {
  name: string;
  /** The column's type when it was archived; undefined when the archive does not record it (legacy). */
  type?: string;
  /** Its type's definition when archived, where the manifest records one (Manifest.typeDefinitions). */
  definition?: string;
}

/** How each archived value reaches the target: the columns written, the SQL that reads each, and what drifted. */
export interface ColumnPlan {
  /** Each column written from the archive, the target's type of it, and the SQL that reads its value. */
  columns: { name: string; type: string; expression: string }[];
  /**
   * Columns whose values must be checked to survive reading into the target (checkConversions): `changed` is true for
   * a value that does not. A native archive's column whose type changed since archiving, or can be redefined under
   * its name (TargetColumn.redefinable); a legacy archive's column (it records no types)
   * whose target type could take a value otherwise than it reads.
   */
  converted: { name: string; from: string; into: string; changed: string }[];
  /**
   * Generated columns of the target that the archive holds values of: the target computes them, and the INSERT
   * compares each value it computed with the archived one (insertSql, checkRecomputed). `archived` reads the
   * archived value's text from the staged row.
   */
  recomputed: { column: TargetColumn; archived: string }[];
  /**
   * Why columns would read as other values by the same text: their type is defined otherwise under its archived name
   * than the archive's manifest recorded (Manifest.typeDefinitions), or an enum they are made of lost or reordered its
   * archived labels (Manifest.enumLabels). checkConversions reports each where it found no changed value to report.
   */
  redefined: { column?: string; message: string }[];
  warnings: string[];
}

/**
 * A value's text as export wrote it (table-sql.ts valueTextSql): `::text`, but the output function for `character`
 * without a length, whose cast to text drops the trailing blanks the value holds.
 */
const archivedTextSql = (value: string, column: TargetColumn): string =>
  column.baseType === 'bpchar' ? `pg_catalog.textin(pg_catalog.bpcharout(${value}))` : `${value}::text`;

/** Integer and character types whose equality is the same whichever of them holds the value. */
const SAME_EQUALITY = [new Set(['smallint', 'integer', 'bigint']), new Set(['text', 'character varying'])];

/** A type's name without its modifiers and the `public.` older manifests lack. */
const bareType = (type: string): string => comparableType(type.replace(/\(\d+(?:,\d+)*\)/g, ''));

/**
 * Why the target's `conflictKey` cannot tell the archive's rows apart from each other and from rows already there, or
 * an empty list: each key column must be written from the archive (a key the archive does not supply gets new values,
 * and a repeated restore doubles every row) and must compare as the archived column did (a case-insensitive
 * collation, or a type such as citext or character(n), takes distinct archived keys for one, and `skip` would count
 * the rows after the first as already there). Legacy archives record no types; their key columns' types are not
 * compared.
 */
export function conflictKeyProblems(
  conflictKey: readonly string[],
  plan: ColumnPlan,
  archived: readonly ArchivedColumn[],
  target: RestoreTarget,
): string[] {
  return conflictKey.flatMap((name) => {
    if (!plan.columns.some((c) => c.name === name)) return [`"${name}" is not written from the archive`];
    const column = target.columns.find((c) => c.name === name);
    if (!column) return [`"${name}" is not a column of the target`];
    if (!column.deterministic) return [`"${name}" compares under a nondeterministic collation`];
    const was = archived.find((c) => c.name === name)?.type;
    if (was === undefined) return [];
    const before = bareType(was);
    const now = [bareType(column.type), column.plainType];
    const same =
      now.includes(before) ||
      SAME_EQUALITY.some((family) => now.some((t) => family.has(t)) && family.has(before));
    return same ? [] : [`"${name}" was ${was} when archived and is ${column.type} in the target`];
  });
}

/**
 * The enums the archive's columns are made of whose archived labels the target's enum of that name no longer has, all
 * and in their order (a label renamed, two swapped): an archived label would read as another value, or not at all.
 * Labels added since change nothing archived. Named by the columns of the enum (or an array of it), else by the enum.
 */
function relabelledEnums(
  archived: readonly ArchivedColumn[],
  target: RestoreTarget,
  archivedEnums: Record<string, string[]>,
): ColumnPlan['redefined'] {
  return Object.entries(archivedEnums).flatMap(([name, labels]) => {
    const now = target.enumLabels[name];
    if (!now) return [];
    let at = 0;
    for (const label of now) if (label === labels[at]) at += 1;
    if (at === labels.length) return [];
    const why = `enum ${name} no longer has the labels archived, in their order (one renamed, or two swapped), so archived values, read by the same text, would be other values`;
    const direct = archived.filter((c) => c.type === name || c.type === `${name}[]`);
    if (direct.length === 0) return [{ message: `a column's type is made of ${why}` }];
    // A column of another type now reads its values otherwise anyway: checkConversions compares them.
    const kept = direct.filter((c) => target.columns.some((t) => t.name === c.name && t.type === c.type));
    return kept.map((c) => ({ column: c.name, message: `column "${c.name}": ${why}` }));
  });
}

/**
 * Maps archived columns onto the target. Every value is read as `j ->> 'name'` (its text form) and goes through the
 * target column type's input function, which reproduces it exactly when the type is unchanged. Columns added since
 * archiving are left out of the INSERT, so they get their default (or NULL); generated columns are computed by the
 * target, which may compute other values than the archived ones (a function replaced since, a setting the application's
 * session had, a column plain when archived), so the INSERT compares them (checkRecomputed); a column the target no
 * longer has is an error in `strict` mode and dropped with a warning in `lenient` mode. A changed type, or one that can
 * be redefined under its name, is read by the target type's input function, and checkConversions then refuses values
 * that would change. The archived type names are only compared, never spliced into SQL: a manifest is data.
 */
export function planColumns(
  archived: ArchivedColumn[],
  target: RestoreTarget,
  drift: 'strict' | 'lenient',
  localTime?: LocalTimeColumn,
  archivedEnums: Record<string, string[]> = {},
): ColumnPlan {
  const byName = new Map(target.columns.map((c) => [c.name, c]));
  const archivedNames = new Set(archived.map((c) => c.name));
  const plan: ColumnPlan = { columns: [], converted: [], recomputed: [], redefined: [], warnings: [] };
  const removed: string[] = [];
  for (const column of archived) {
    const into = byName.get(column.name);
    if (!into) {
      removed.push(column.name);
      continue;
    }
    if (into.catalogName)
      throw new TableNotUsableError(
        `restore target ${tableLabel(target.table)}: column "${column.name}" is of type ${into.type}, which holds catalog objects by their names (a reg* type or aclitem, in it or under it): reading archived values as such looks each one up, and an error would quote the value; restore into a table without it (targetTable); nothing was written`,
      );
    const text = `(s.j ->> ${quoteLiteral(column.name)})`;
    if (into.generated) {
      // A legacy archive's text is the Python tool's, not PostgreSQL's: compared as the column's type reads it.
      const archivedText = column.type === undefined ? archivedTextSql(`${text}::${into.type}`, into) : text;
      plan.recomputed.push({ column: into, archived: archivedText });
      continue;
    }
    const toInstant =
      column.type !== undefined &&
      bareType(column.type) === 'timestamp without time zone' &&
      into.plainType === 'timestamp with time zone';
    if (toInstant && localTime?.column === column.name) {
      // The archive's timestamp column holds local times of the zone its manifest names: read there, each is the
      // instant it was. Only what the target then does to the instant (a precision that rounds) counts as a change.
      const instant = `(${text}::timestamp without time zone AT TIME ZONE ${quoteLiteral(localTime.timeZone)})`;
      plan.columns.push({ name: column.name, type: into.type, expression: `${instant}::${into.type}` });
      plan.converted.push({
        name: column.name,
        from: column.type ?? '',
        into: into.type,
        changed: `${instant}::${into.type} IS DISTINCT FROM ${instant}`,
      });
      plan.warnings.push(
        `column "${column.name}" converted from ${column.type} to ${into.type}: its local times read in ${localTime.timeZone}, the archive's timestampTimeZone`,
      );
      continue;
    }
    plan.columns.push({ name: column.name, type: into.type, expression: `${text}::${into.type}` });
    const renamed = column.type !== undefined && column.type !== into.type;
    if (
      !renamed &&
      column.definition !== undefined &&
      target.typeDefinitions.json[into.type] !== column.definition &&
      // An archive written before 2026-12-07 records the text form: the digest tells which it matches.
      target.typeDefinitions.text[into.type] !== column.definition
    )
      plan.redefined.push({
        column: column.name,
        message: `column "${column.name}": its type ${into.type} is defined otherwise than when archived (a composite's attributes, a domain's or range's base type), so its archived values, read by the same text, would be other values`,
      });
    if (renamed || (column.type !== undefined && into.redefinable)) {
      const changed = `${archivedTextSql(`${text}::${into.type}`, into)} IS DISTINCT FROM ${text}`;
      // Any other local time has no zone on record: the session's (UTC) would read it.
      const from = toInstant ? `${column.type} (local times, read as UTC)` : `${column.type}`;
      plan.converted.push({ name: column.name, from, into: into.type, changed });
      // The same name may stand for another definition now: only a value that changes is reported.
      if (renamed) plan.warnings.push(`column "${column.name}" converted from ${from} to ${into.type}`);
    }
    const legacyChange = column.type === undefined ? legacyValueChange(text, into) : undefined;
    if (legacyChange) {
      plan.converted.push({
        name: column.name,
        from: "the legacy archive's text",
        into: into.type,
        changed: legacyChange,
      });
    }
  }
  plan.redefined.push(...relabelledEnums(archived, target, archivedEnums));
  if (removed.length > 0) {
    const list = removed.map((name) => `"${name}"`).join(', ');
    if (drift === 'strict') {
      throw new SchemaDriftError(
        `the target ${tableLabel(target.table)} no longer has column(s) ${list}; restore with drift "lenient" to drop them`,
      );
    }
    plan.warnings.push(`column(s) ${list} dropped: the target no longer has them`);
  }
  const added = target.columns.filter((c) => !archivedNames.has(c.name) && !c.generated).map((c) => c.name);
  const defaultCall = target.writeCalls.find((c) => c.column !== undefined && added.includes(c.column));
  if (defaultCall) throw untrustedCallRefusal(target, defaultCall);
  if (added.length > 0) {
    plan.warnings.push(
      `column(s) ${added.map((name) => `"${name}"`).join(', ')} not in the archive: default used`,
    );
  }
  if (plan.columns.length === 0) throw new SchemaDriftError('no archived column exists in the target');
  return plan;
}

/**
 * A plain type name that reads a value whole in a cast: `bit` and `character` without a modifier mean one bit or
 * character there (`'0101'::bit` is `'0'`), so a key bound is read as `bit varying` or `bpchar`, which keep every one.
 */
const unboundedType = (plainType: string): string =>
  plainType.replace(/^bit(?=(\[\])*$)/, 'bit varying').replace(/^character(?=(\[\])*$)/, 'bpchar');

/**
 * When a legacy archive's value (its text, typeless) would change on its way into `into`, which a cast does silently:
 * a modifier that truncates or rounds (`varchar(3)`, `numeric(10,2)`, `timestamp(0)`), an offset a `timestamp` or
 * `time` column drops, a time of day a `date` column drops, a naive time a `timestamptz` column would read as UTC,
 * digits a `real`, `double precision` or `money` column rounds away, text a `"char"` or `name` column cuts; and the
 * same of an array's elements. Undefined when the target reads every value as it is written.
 */
function legacyValueChange(text: string, into: TargetColumn): string | undefined {
  // An array of a domain reads its elements as the type under the domain: `weight[]` as `double precision[]`.
  const element = into.plainElementType ?? into.plainType;
  const plain = into.plainElementType === undefined ? into.plainType : `${element}[]`;
  // Compared as the unbounded type: `character` or `bit` alone would cut both sides to one character.
  const whole = unboundedType(plain);
  // An array's elements (of any dimension) are checked one by one, as text: legacy-rows.ts writes each element as
  // the scalar's text.
  const elementChange =
    element === plain ? legacyScalarChange(text, plain) : legacyScalarChange('e.v', element);
  const valueChange =
    element === plain || elementChange === undefined
      ? elementChange
      : `EXISTS (SELECT FROM pg_catalog.unnest(${text}::pg_catalog.text[]) AS e(v) WHERE ${elementChange})`;
  const changes = [
    ...(into.type !== plain ? [`(${text}::${into.type})::${whole} IS DISTINCT FROM ${text}::${whole}`] : []),
    ...(valueChange ? [valueChange] : []),
  ];
  return changes.length > 0 ? `(${changes.join(' OR ')})` : undefined;
}

/**
 * Whether a number's text reads as another number in `type`: the tool kept every digit (a numeric column's
 * `"1.500000"`), and a column made `real`, `double precision` or `money` since rounds what it cannot hold. Compared as
 * decimals (`"1.500000"` is 1.5, `1e+20` is 100000000000000000000): a float through its shortest exact text
 * (extra_float_digits, db.ts; its cast to numeric keeps 15 digits), money by its cast. Only text that is a decimal
 * number is compared: NaN and the infinities read as themselves, and money's own text (`$1,234.56`) as it did.
 */
const numberRoundsSql = (text: string, type: 'real' | 'double precision' | 'money'): string =>
  `CASE WHEN ${text} OPERATOR(pg_catalog.~) '${DECIMAL_NUMBER}'
        THEN ${text}::${type}${type === 'money' ? '' : '::text'}::numeric IS DISTINCT FROM ${text}::numeric
        ELSE false END`;
const DECIMAL_NUMBER = '^[[:space:]]*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?[[:space:]]*$';

/**
 * numberRoundsSql for a `real`, which also takes the text of a double that is exactly a real. The tool's driver
 * (asyncpg) handed it a real column's value as the double of it, which Python wrote in full (0.1 as
 * `0.10000000149011612`): no decimal text of the real, yet exactly the real, which the comparison as decimals alone
 * took for a value rounded (every real but the few whose decimal is short, refused under strict). Such a text is a
 * double's own (its decimal reads back from the double) and the real holds that double.
 */
const realRoundsSql = (text: string): string =>
  `(${numberRoundsSql(text, 'real')} AND (${numberRoundsSql(text, 'double precision')}
     OR CASE WHEN ${text} OPERATOR(pg_catalog.~) '${DECIMAL_NUMBER}'
          THEN ${text}::real::double precision IS DISTINCT FROM ${text}::double precision
          ELSE false END))`;

/**
 * What a date, time, number or short text type drops or makes up of a legacy value's text, a scalar's or an array
 * element's.
 */
function legacyScalarChange(text: string, type: string): string | undefined {
  switch (type) {
    case 'real':
      return realRoundsSql(text);
    case 'double precision':
    case 'money':
      return numberRoundsSql(text, type);
    case '"char"':
    case 'name':
      // Types that cut a longer text without a word (no modifier says so): "char" to its first byte, name to 63.
      return `${text}::${type}::text IS DISTINCT FROM ${text}`;
    case 'timestamp without time zone':
      return `${text}::${type} IS DISTINCT FROM (${text}::timestamp with time zone AT TIME ZONE 'UTC')`;
    case 'date':
      return `${text}::date IS DISTINCT FROM ${text}::timestamp without time zone`;
    case 'time without time zone':
      // A time column drops an offset (a timetz's `03:04:05+02:00`) without a word; read with it, the time differs
      // from the one read without (the transaction's zone is UTC).
      return `${text}::time with time zone IS DISTINCT FROM ${text}::time without time zone::time with time zone`;
    case 'timestamp with time zone':
      // The tool appended `Z` to naive values (a `timestamp` column then): their zone is unknown, and reading them
      // as UTC would make up an instant. An aware value carries its offset (`+00:00`).
      return `${text} OPERATOR(pg_catalog.~) '[0-9]Z$'`;
    default:
      return undefined;
  }
}

/**
 * For each column whose type changed or can be redefined under its name, reads every staged value with the target's
 * type and compares its text form with the archived one (for a legacy archive, its reading by the target type with its
 * plain reading, see legacyValueChange): a conversion that would truncate, round or reinterpret a value (say text into
 * varchar(3), numeric into numeric(10,2), timestamptz into date, or a domain redefined as numeric(10,1)) fails in
 * `strict` mode and is reported in `lenient` mode; a value the target type cannot read at all (an enum label renamed, a
 * domain's CHECK made stricter) always fails, naming the column, never the value. A changed value of a column in
 * `keyColumns` fails under either mode: rows are recognised by it, so two archived rows could become one key (the
 * second skipped as already there) or meet a row of the target they are not.
 */
export async function checkConversions(
  client: pg.ClientBase,
  plan: ColumnPlan,
  drift: 'strict' | 'lenient',
  keyColumns: readonly string[] = [],
): Promise<void> {
  const reported = new Set<string>();
  await countConversions(client, plan, drift, reported, keyColumns);
  for (const { column, message } of plan.redefined)
    if (!column || !reported.has(column)) reportChanged(plan, drift, message);
}

/** checkConversions' count of changed values per converted column; `reported` collects the columns it reported. */
async function countConversions(
  client: pg.ClientBase,
  plan: ColumnPlan,
  drift: 'strict' | 'lenient',
  reported: Set<string>,
  keyColumns: readonly string[],
): Promise<void> {
  if (plan.converted.length === 0) return;
  // One pass over the staged rows counts the changed values of every column (each pass parses every line); only a
  // value some column's type cannot read at all sends the check back to one column at a time, to name the column.
  const counts = plan.converted.map((column, i) => `count(*) FILTER (WHERE ${column.changed})::int AS c${i}`);
  let changed: (number | undefined)[] = [];
  await client.query(`SAVEPOINT ${CONVERSIONS_SAVEPOINT}`);
  try {
    const result = await client.query<Record<string, number>>(
      `SELECT ${counts.join(', ')} FROM ${stagedRows}`,
    );
    changed = plan.converted.map((_, i) => result.rows[0]?.[`c${i}`] ?? 0);
    await client.query(`RELEASE SAVEPOINT ${CONVERSIONS_SAVEPOINT}`);
  } catch (error) {
    if (!refusesValueOrDomain((error as { code?: string }).code ?? '')) throw error;
    await client.query(`ROLLBACK TO SAVEPOINT ${CONVERSIONS_SAVEPOINT}`);
  }
  for (const [i, column] of plan.converted.entries()) {
    const redefined = column.from === column.into;
    const read = `read as ${column.into}${redefined ? ' (redefined since archiving)' : ''}`;
    const count = changed[i] ?? (await changedValues(client, column, read));
    if (count === 0) continue;
    if (keyColumns.includes(column.name))
      throw new SchemaDriftError(
        `key column "${column.name}": ${count} value(s) change when ${redefined ? read : `converted from ${column.from} to ${column.into}`}, and the restore recognises rows by it (two archived rows could become one, the second skipped as already there); restore into a table whose key takes the archived values (targetTable), nothing was written`,
      );
    reported.add(column.name);
    reportChanged(
      plan,
      drift,
      `column "${column.name}": ${count} value(s) change when ${redefined ? read : `converted from ${column.from} to ${column.into}`}`,
    );
  }
}

const CONVERSIONS_SAVEPOINT = 'audit_archiver_conversions';

/**
 * Whether a SQLSTATE says a value could not be read by its column's type: a data exception (22), or what some input
 * functions raise instead, a syntax error (42601: tsquery, jsonpath; the message quotes the value) or a limit
 * exceeded (54: an array of too many dimensions, a document nested past the stack).
 */
export const refusesValue = (code: string): boolean =>
  code.startsWith('22') || code === '42601' || code.startsWith('54');

/** refusesValue, or a domain's constraint (23514, 23502). */
const refusesValueOrDomain = (code: string): boolean => refusesValue(code) || code.startsWith('23');

/** One column's changed values, or the SchemaDriftError that names it when its type cannot read one. */
async function changedValues(
  client: pg.ClientBase,
  column: ColumnPlan['converted'][number],
  read: string,
): Promise<number> {
  try {
    const result = await client.query<{ changed: number }>(
      `SELECT count(*)::int AS changed FROM ${stagedRows} WHERE ${column.changed}`,
    );
    return result.rows[0]?.changed ?? 0;
  } catch (error) {
    // A value refused, or a domain's constraint: reported by SQLSTATE and constraint, never by value.
    const { code = '', constraint } = error as { code?: string; constraint?: string };
    if (!refusesValueOrDomain(code)) throw error;
    const by = constraint ? `, constraint ${quoteIdent(constraint)}` : '';
    throw new SchemaDriftError(
      `column "${column.name}": archived ${column.from} values cannot be ${read} (SQLSTATE ${code}${by})`,
    );
  }
}

/**
 * Checks what the INSERT found of the generated columns it computed (insertSql's `recomputed`, one count per column of
 * plan.recomputed): a value other than the archived one fails the archive in `strict` mode (it rolls back to its
 * savepoint, nothing of it written) and is reported in `lenient` mode, as a conversion that changes values is.
 */
export function checkRecomputed(
  plan: ColumnPlan,
  differing: readonly number[],
  drift: 'strict' | 'lenient',
  target: TableName,
): void {
  for (const [i, { column }] of plan.recomputed.entries()) {
    const changed = differing[i] ?? 0;
    if (changed > 0)
      reportChanged(
        plan,
        drift,
        `${tableLabel(target)} column "${column.name}": ${changed} value(s) the target computes (generated) differ from the archived ones`,
      );
  }
}

/** Values that change fail the archive under `strict` drift; under `lenient` they are written, with a warning. */
function reportChanged(plan: ColumnPlan, drift: 'strict' | 'lenient', what: string): void {
  if (drift === 'strict') throw new SchemaDriftError(`${what}; restore with drift "lenient" to accept that`);
  plan.warnings.push(what);
}

/**
 * The staged archive lines, one jsonb parse per row: without `OFFSET 0` PostgreSQL pulls the subquery up and parses
 * the line once for every column that reads it, holding each parse until the row is done (a 200 MB line took 5 GB
 * and 28 s over six columns).
 */
const STAGING_TABLE = 'pg_temp.audit_archiver_restore';
const stagedRows = `(SELECT line::jsonb AS j FROM ${STAGING_TABLE} OFFSET 0) AS s`;

export const createStagingSql = `CREATE TEMP TABLE audit_archiver_restore (line text) ON COMMIT DROP`;
export const dropStagingSql = `DROP TABLE ${STAGING_TABLE}`;
export const copyIntoStagingSql = `COPY ${STAGING_TABLE} (line) FROM STDIN (FORMAT binary)`;

/**
 * The fast path's COPY: the plan's columns of the target, in text format (copy-text.ts writes the rows). Like
 * INSERT's OVERRIDING SYSTEM VALUE, COPY FROM keeps archived identity values.
 */
export const copyIntoTargetSql = (target: RestoreTarget, plan: ColumnPlan): string =>
  `COPY ${qualified(target.table)} (${plan.columns.map((c) => quoteIdent(c.name)).join(', ')}) FROM STDIN`;

export type ConflictStrategy = 'skip' | 'overwrite' | 'fail';

/**
 * One set-based INSERT from the staged lines with the conflict strategy, counting inserted and replaced rows
 * (`xmax = 0` marks a freshly inserted row, and only an ON CONFLICT DO UPDATE returns others: PostgreSQL cannot return
 * a system column of a row it routes into a partition made with PARTITION OF, so a partitioned target takes no
 * DO UPDATE, SchemaDriftError). OVERRIDING SYSTEM VALUE keeps archived identity values. With generated
 * columns the archive holds values of (plan.recomputed), also counts per column the rows written whose computed value
 * is not the archived one (`recomputed`), by their key, the rows skipped left out: only the statement knows which rows
 * it wrote.
 */
export function insertSql(
  target: RestoreTarget,
  plan: ColumnPlan,
  strategy: ConflictStrategy,
  conflictKey: string[],
  rows?: RowWindow,
): string {
  const names = plan.columns.map((c) => quoteIdent(c.name)).join(', ');
  const values = plan.columns.map((c) => c.expression).join(', ');
  // Only the key arbitrates: a clash on any other unique constraint fails the archive instead of hiding a row.
  const key = conflictKey.map(quoteIdent).join(', ');
  const updates = plan.columns
    .filter((c) => !conflictKey.includes(c.name))
    .map((c) => `${quoteIdent(c.name)} = EXCLUDED.${quoteIdent(c.name)}`);
  const updating = strategy === 'overwrite' && updates.length > 0;
  if (updating && target.partitioned) {
    throw new SchemaDriftError(
      `strategy "overwrite" cannot restore rows already there into the partitioned table ${tableLabel(target.table)} (PostgreSQL cannot tell an ON CONFLICT DO UPDATE's replaced rows from its new ones there); nothing of the archive was written: restore with strategy "skip" into it, or with "overwrite" into a plain table`,
    );
  }
  let conflict = '';
  if (updating) conflict = `ON CONFLICT (${key}) DO UPDATE SET ${updates.join(', ')}`;
  else if (strategy !== 'fail') conflict = `ON CONFLICT (${key}) DO NOTHING`;
  // Positional names (k0…, g0…): no column of the table can shadow another, or `inserted`.
  const keys = conflictKey.map((name, i) => `${quoteIdent(name)} AS k${i}`);
  const computed = plan.recomputed.map(({ column }, i) => `${quoteIdent(column.name)} AS g${i}`);
  const returned = plan.recomputed.length > 0 ? [...keys, ...computed].map((c) => `, ${c}`).join('') : '';
  const keyJoin = conflictKey
    .map((name, i) => `w.k${i} = ${plan.columns.find((c) => c.name === name)?.expression}`)
    .join(' AND ');
  const differing = plan.recomputed.map(
    ({ column, archived }, i) =>
      `count(*) FILTER (WHERE ${archivedTextSql(`w.g${i}`, column)} IS DISTINCT FROM ${archived})::int`,
  );
  const recomputed =
    plan.recomputed.length > 0
      ? `, (SELECT ARRAY[${differing.join(', ')}] FROM written AS w JOIN ${stagedRows} ON ${keyJoin}) AS recomputed`
      : '';
  return `WITH written AS (
      INSERT INTO ${qualified(target.table)} (${names}) OVERRIDING SYSTEM VALUE
      SELECT ${values} FROM ${stagedRows}${rows ? ` WHERE ${rowWindowSql(rows)}` : ''}
      ${conflict}
      RETURNING ${updating ? '(xmax = 0)' : 'true'} AS inserted${returned})
    SELECT count(*) FILTER (WHERE inserted)::int AS inserted, count(*) FILTER (WHERE NOT inserted)::int AS updated${recomputed}
      FROM written`;
}

/**
 * Reads every staged value of one column as the INSERT does (with a day-range's window): fails where the INSERT
 * failed on that column's values, so a refusal can name the column (PostgreSQL 14 has no pg_input_is_valid).
 */
export const columnReadSql = (column: { expression: string }, rows?: RowWindow): string =>
  `SELECT count(${column.expression})::int AS read FROM ${stagedRows}${rows ? ` WHERE ${rowWindowSql(rows)}` : ''}`;

/**
 * The rows of a month archive a day-range restore takes (`from` inclusive, `to` exclusive, ISO-8601 UTC), read by
 * the archived timestamp column as its manifest describes it: a `timestamp` is local time in its zone, compared as
 * the instant PostgreSQL reads it as, as export's day windows do (table-sql.ts dayWindowSql).
 */
export interface RowWindow {
  column: string;
  type: 'timestamptz' | 'timestamp';
  timeZone: string;
  from: string;
  to: string;
}

/** `value` (of the window's type) inside the window. */
const windowSql = (value: string, rows: RowWindow): string =>
  timeWindowSql(value, rows.type, rows.timeZone, rows.from, rows.to);

const rowWindowSql = (rows: RowWindow): string =>
  windowSql(`(s.j ->> ${quoteLiteral(rows.column)})::${rows.type}`, rows);

/** How many staged rows lie inside the window. */
export const windowRowsSql = (rows: RowWindow): string =>
  `SELECT count(*)::int AS rows FROM ${stagedRows} WHERE ${rowWindowSql(rows)}`;

/**
 * Where a native archive's rows lie, by its manifest: between its first and last key (text forms, in key order) and
 * inside its bounds of the timestamp column, as export read them.
 */
export interface ArchivedRowRange {
  keyColumns: string[];
  firstKey: string[];
  lastKey: string[];
  window: RowWindow;
}

/**
 * The target's rows inside an archive's time window, read as the target's timestamp column is now (a `timestamp`
 * migrated to `timestamptz` compares instants): `{ column, type, timeZone }` for windowSql, or undefined when the
 * target has no such column to compare.
 */
function targetWindow(target: RestoreTarget, range: ArchivedRowRange): RowWindow | undefined {
  const time = target.columns.find((c) => c.name === range.window.column);
  const type =
    time?.plainType === 'timestamp with time zone'
      ? 'timestamptz'
      : time?.plainType === 'timestamp without time zone'
        ? 'timestamp'
        : undefined;
  if (!type) return undefined;
  // An archived timestamptz read into a `timestamp` column keeps its UTC wall-clock time (the sessions' TimeZone).
  const timeZone = range.window.type === 'timestamp' ? range.window.timeZone : 'UTC';
  return { ...range.window, type, timeZone };
}

/**
 * The target's own rows, as rowSourceSql reads an archived table's: an inheritance child's rows (which may fill an
 * archive's range) were never restored into the target, and a restore writes only into it.
 */
const targetRows = (target: RestoreTarget): string =>
  rowSourceSql({ ...target.table, partitioned: target.partitioned });

/**
 * Counts the target's rows inside an archive's key range and time window, served by the target's key (or timestamp)
 * index: fewer than the archive holds means the target lacks some of its rows. Each bound is read by the target
 * column's type. Undefined when the target has no such columns to compare: the range cannot be counted there. What
 * a watermark written before it recorded its window's digest is checked by.
 */
export function rowsInRangeSql(target: RestoreTarget, range: ArchivedRowRange): string | undefined {
  const place = archivedPlace(target, range);
  if (!place?.keyRange) return undefined;
  return `SELECT count(*)::int AS rows FROM ${targetRows(target)} WHERE ${place.window} AND ${place.keyRange}`;
}

/**
 * Where an archive's rows lie in the target, as predicates: its time window, read by the target's timestamp column,
 * and its key range, each bound read by its key column's plain type (a modifier would cut a bound, varchar(3), where
 * the column's values never were). Undefined when the target cannot read the window or lacks a key column; no key
 * range when the manifest's bounds do not match the key.
 */
function archivedPlace(
  target: RestoreTarget,
  range: ArchivedRowRange,
): { window: string; keyRange?: string; names: string; collatable: boolean } | undefined {
  const window = targetWindow(target, range);
  const keys = range.keyColumns.map((name) => target.columns.find((c) => c.name === name));
  if (!window || keys.some((key) => !key)) return undefined;
  const names = range.keyColumns.map(quoteIdent).join(', ');
  const bound = (values: string[]) =>
    values.map((value, i) => `${quoteLiteral(value)}::${unboundedType(keys[i]?.plainType ?? '')}`).join(', ');
  const bounded = range.firstKey.length === keys.length && range.lastKey.length === keys.length;
  return {
    window: windowSql(quoteIdent(window.column), window),
    names,
    collatable: keys.some((key) => key?.collatable),
    ...(bounded
      ? {
          keyRange: `ROW(${names}) >= ROW(${bound(range.firstKey)}) AND ROW(${names}) <= ROW(${bound(range.lastKey)})`,
        }
      : {}),
  };
}

/**
 * The target's rows where an archive's rows lie, and an order-independent digest of their keys, in one index range
 * scan: inside its time window, and, when no key column compares under a collation, its key range too (another
 * archive of the day, restored by a group running beside this one, then counts apart). A text key range is left out:
 * the target's collation may order keys otherwise than the archived table did, and leave archived rows outside it. A
 * watermark records both when its group commits; while they are unchanged, nothing there came or went since, so the
 * archive's rows, there then, still are. Undefined when the target cannot read the window or lacks a key column.
 */
export function windowDigestSql(target: RestoreTarget, range: ArchivedRowRange): string | undefined {
  const place = archivedPlace(target, range);
  if (!place) return undefined;
  const byKey = place.keyRange && !place.collatable ? ` AND ${place.keyRange}` : '';
  return `SELECT count(*)::int AS rows,
                 coalesce(sum(pg_catalog.hashtextextended(ROW(${place.names})::text, 0)), 0)::text AS digest
            FROM ${targetRows(target)} WHERE ${place.window}${byKey}`;
}

/** The sequences advanceSequences moved, and those it could not move with the SQLSTATE that stopped each. */
export interface SequenceAdvance {
  advanced: { column: string; sequence: string; value: string }[];
  failed: { column: string; sequence: string; code: string }[];
}

/**
 * Moves every ascending sequence that feeds an integer column of the target past the highest value now in that column,
 * never backwards, so new rows do not collide with restored ones: the sequence the column owns (serial or identity)
 * (the partitioned table's, for a partition's identity column) and any its default depends on
 * (`DEFAULT nextval('some_seq')` on a sequence made by hand, owned by no column or by
 * another table's). Returns the sequences it advanced. A sequence that feeds a column of another type (a text key
 * 'evt_' || nextval(...), owned by it) has no highest value to follow. "Backwards" is judged against the value the
 * sequence would give next: a sequence never called yet gives its start (or restart) value, say 1,000,000 for a table
 * recreated so new ids cannot reuse archived ones; moving it down to the highest restored id would hand the
 * application the ids of archived rows not restored yet, which a later restore would then skip as already there.
 */
export async function advanceSequences(client: pg.ClientBase, table: TableName): Promise<SequenceAdvance> {
  const sequences = await client.query<{
    column: string;
    sequence: string;
    schema: string;
    name: string;
    increment: string;
    readable: boolean;
  }>(
    `SELECT f.column, c.oid::regclass::text AS sequence, n.nspname AS schema, c.relname AS name,
            s.seqincrement::text AS increment, pg_catalog.has_sequence_privilege(c.oid, 'SELECT') AS readable
       FROM (SELECT a.attname AS column, a.attnum, fed.sequence
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
               CROSS JOIN LATERAL (
                     SELECT pg_catalog.pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), a.attname)::regclass::oid
                            AS sequence
                     UNION
                     -- A partition's identity column takes its values from its partitioned table's sequence (17+).
                     SELECT pg_catalog.pg_get_serial_sequence(
                              pg_catalog.pg_partition_root(a.attrelid)::pg_catalog.regclass::text, a.attname)::regclass::oid
                     UNION
                     SELECT p.refobjid
                       FROM pg_catalog.pg_attrdef d
                       JOIN pg_catalog.pg_depend p ON p.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                            AND p.objid = d.oid AND p.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum
                        -- Only a default that is the sequence's next value itself: one that computes with it
                        -- (nextval('s') * 1000 + shard) would send the sequence to its column's values, far past.
                        AND pg_catalog.pg_get_expr(d.adbin, d.adrelid)
                            = pg_catalog.format('nextval(%L::regclass)', p.refobjid::pg_catalog.regclass::text)) AS fed
              WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped
                AND (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)
                    IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                        'pg_catalog.int8'::pg_catalog.regtype)) f
       JOIN pg_catalog.pg_class c ON c.oid = f.sequence AND c.relkind = 'S'
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
      WHERE s.seqincrement > 0
      ORDER BY f.attnum, c.oid`,
    [table.schema, table.name],
  );
  const outcome: SequenceAdvance = { advanced: [], failed: [] };
  for (const { column, sequence, schema, name, increment, readable } of sequences.rows) {
    // The sequence's own row says what it gives next; a role granted only USAGE and UPDATE (the role SQL of versions
    // before SELECT was granted) cannot read it, and then a sequence never called counts from its START value.
    const next = readable
      ? `SELECT CASE WHEN is_called THEN last_value::numeric + $2::numeric ELSE last_value::numeric END AS v
           FROM ${quoteIdent(schema)}.${quoteIdent(name)}`
      : `SELECT coalesce(pg_catalog.pg_sequence_last_value($1::regclass)::numeric + $2::numeric, s.seqstart::numeric) AS v
           FROM pg_catalog.pg_sequence s WHERE s.seqrelid = $1::regclass`;
    // Each under a savepoint: one that cannot move leaves the others, and the transaction, usable.
    await client.query('SAVEPOINT advance_sequence');
    try {
      const result = await client.query<{ value: string }>(
        `SELECT pg_catalog.setval($1::regclass, highest.m)::text AS value
           FROM (SELECT max(${quoteIdent(column)})::bigint AS m FROM ${qualified(table)}) AS highest, (${next}) AS next
          WHERE highest.m IS NOT NULL AND highest.m >= next.v`,
        [sequence, increment],
      );
      await client.query('RELEASE SAVEPOINT advance_sequence');
      const value = result.rows[0]?.value;
      if (value !== undefined) outcome.advanced.push({ column, sequence, value });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      // Data (a MAXVALUE below the restored values), privilege or object state: this sequence's, not the session's.
      if (typeof code !== 'string' || !/^(22|42501$|55000$)/.test(code)) throw error;
      await client.query('ROLLBACK TO SAVEPOINT advance_sequence');
      outcome.failed.push({ column, sequence, code });
    }
  }
  return outcome;
}
