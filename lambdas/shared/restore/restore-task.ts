import { z } from 'zod';
import { isCalendarDay } from '../archive/format.js';
import { type DatabaseConfig, pgIdentifier } from '../config/schema.js';
import { ConfigError } from '../errors/step-errors.js';
import { PlannedKeysSchema } from '../lock-table/restore-records.js';

const TABLE_REF_MESSAGE = 'must be "schema.name" or {"schema": ..., "name": ...}';

// Names are held to PostgreSQL's 63 bytes as the config's are: a longer one would reach the table its first 63 bytes
// name, past checks (a legal hold) that look the typed name up.
const TableNameSchema = z
  .object({ schema: pgIdentifier, name: pgIdentifier }, { error: TABLE_REF_MESSAGE })
  .strict();

/** A table as operators write it: "schema.name" (split at the first dot) or `{ "schema": ..., "name": ... }`. */
export const TableRefSchema = z.preprocess((ref) => {
  if (typeof ref !== 'string') return ref;
  const dot = ref.indexOf('.');
  return dot > 0 ? { schema: ref.slice(0, dot), name: ref.slice(dot + 1) } : ref;
}, TableNameSchema);

const DAY = /^\d{4}-\d{2}-\d{2}$/;

const day = z
  .string()
  .regex(DAY, 'must be a day, YYYY-MM-DD')
  .refine(
    (text) => !DAY.test(text) || isCalendarDay(text),
    'must be a day of the calendar, YYYY-MM-DD: there is no such day',
  );

/**
 * The restore state machine's execution input, as an operator pastes it into the console or the CLI builds it.
 * Every field but `database` and `table` has a safe default: skip rows that exist, verify first, change nothing
 * that drifted.
 */
export const RestoreRequestSchema = z
  .object({
    /** The database as named in the config: its credentials, and the first segment of the archive keys. */
    database: z.string().min(1),
    /** The archived table: where the archives are. */
    table: TableRefSchema,
    /** `key`: one archive; `table`: every archive of the table; `range`: the day partitions fromDay..toDay. */
    mode: z.enum(['key', 'table', 'range']).default('table'),
    key: z.string().min(1).optional(),
    fromDay: day.optional(),
    toDay: day.optional(),
    /** Rows whose key exists in the target: keep the existing row, replace it, or fail that archive. */
    strategy: z.enum(['skip', 'overwrite', 'fail']).default('skip'),
    /** Restore into another table (created like the source when missing) instead of the original. */
    targetTable: TableRefSchema.optional(),
    /** Read and verify every archive and report what would be restored; write nothing. */
    dryRun: z.boolean().default(false),
    /** Restore archives the watermark lists as already restored into this target. */
    ignoreWatermark: z.boolean().default(false),
    /** A column removed since archiving: `strict` fails the archive, `lenient` drops the column with a warning. */
    drift: z.enum(['strict', 'lenient']).default('strict'),
    /**
     * Refuse native archives the inventory of committed archives does not list (those written before it existed
     * are otherwise restored, with a warning). One the inventory lists is always checked against it.
     */
    requireInventory: z.boolean().default(false),
    /**
     * Native archives the inventory does not list though S3 dates them after the table's archives began to be
     * recorded there (in-flight-archives.ts unlistedSince): a withdrawn batch's object that an invocation which had
     * lost its lease completed late (restoring it could bring back rows the application erased since), an object
     * written outside the archiver, or a committed archive whose inventory entry is gone (a lock table restored to an
     * earlier time). `refuse` fails the plan naming them, before anything is written; `skip` leaves them out and
     * counts them in the summary; `restore` restores them with a warning.
     */
    unlistedArchives: z.enum(['refuse', 'skip', 'restore']).default('refuse'),
    /**
     * Restore what the bucket still holds when committed archives of the request (the inventory lists them) are not
     * in the listing under the current `s3.prefix`: the prefix or bucket changed since they were written, or they
     * were deleted. By default the plan then fails, naming them, before anything is written; with this set it logs a
     * warning, and the summary and the `restore-finished` audit event count the archives and rows left out.
     */
    allowMissingArchives: z.boolean().default(false),
    /**
     * Read archives written by the Python "Audit Table Archiver" instead: `database` is the PostgreSQL database
     * name its keys start with; `prefix` defaults to the config's s3.prefix, below which it must lie (the restore
     * functions read nothing else).
     */
    legacy: z
      .object({ database: z.string().min(1), prefix: z.string().optional() })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((request, ctx) => {
    if (request.mode === 'key' && !request.key)
      ctx.addIssue({ code: 'custom', path: ['key'], message: 'mode "key" needs the archive key' });
    if (request.mode !== 'key' && request.key)
      ctx.addIssue({ code: 'custom', path: ['key'], message: 'only mode "key" takes a key' });
    if (request.mode === 'range' && !request.fromDay && !request.toDay)
      ctx.addIssue({
        code: 'custom',
        path: ['fromDay'],
        message: 'mode "range" needs fromDay, toDay or both',
      });
    if (request.mode !== 'range' && (request.fromDay || request.toDay))
      ctx.addIssue({ code: 'custom', path: ['mode'], message: 'fromDay/toDay need mode "range"' });
    if (request.fromDay && request.toDay && request.fromDay > request.toDay)
      ctx.addIssue({ code: 'custom', path: ['toDay'], message: 'must not be before fromDay' });
  });
export type RestoreRequest = z.infer<typeof RestoreRequestSchema>;
export type RestoreRequestInput = z.input<typeof RestoreRequestSchema>;

/** What every restore step receives: the validated request, resolved once by the plan step. */
export const RestoreTaskSchema = z
  .object({
    restoreId: z.string().min(1),
    /**
     * When the execution started (`$$.Execution.StartTime`). The restore id is the execution's name, which Step
     * Functions gives again 90 days after an execution: a watermark of this id written before this start is an earlier
     * restore's, not a retried group's of this one. Absent from executions of an earlier definition.
     */
    startedAt: z.iso.datetime({ offset: true }).optional(),
    database: z.string().min(1),
    source: TableNameSchema,
    target: TableNameSchema,
    format: z.enum(['native', 'legacy']),
    /** Where legacy archives live (prefix and PostgreSQL database name of their keys). */
    legacy: z.object({ database: z.string(), prefix: z.string() }).strict().optional(),
    strategy: z.enum(['skip', 'overwrite', 'fail']),
    dryRun: z.boolean(),
    ignoreWatermark: z.boolean(),
    drift: z.enum(['strict', 'lenient']),
    requireInventory: z.boolean(),
    unlistedArchives: z.enum(['refuse', 'skip', 'restore']),
    fromDay: day.optional(),
    toDay: day.optional(),
    key: z.string().optional(),
    /**
     * Committed archives of the request the plan did not find in the bucket and left out (`allowMissingArchives`),
     * and their rows by the inventory: the summary reports them. Absent when none was missing.
     */
    missingArchives: z
      .object({ archives: z.number().int().positive(), rows: z.number().int().nonnegative() })
      .strict()
      .optional(),
    /**
     * Archives of the source table's batch in flight the plan left out (their rows are still in the table, not yet
     * deleted): the summary reports them. Absent when none was.
     */
    inFlightArchives: z.number().int().positive().optional(),
    /** Unlisted archives the plan left out (`unlistedArchives: skip`): the summary reports them. Absent when none was. */
    unlistedArchivesLeftOut: z.number().int().positive().optional(),
    /**
     * Where the plan recorded the keys of the archives it found (RestoreRecords.recordPlan): the summary fails every
     * one no page reached, by key. Absent from executions planned by an earlier version, whose summary counts them.
     */
    plannedKeys: PlannedKeysSchema.optional(),
    /**
     * The table a missing target is created as when the source is gone too, from the manifests of every archive
     * the request selects (the plan reads them): a table whose columns changed over the years has archives of
     * several shapes, and the target must take them all. Absent when the target exists or the source does.
     */
    template: z
      .object({
        columns: z.array(z.object({ name: z.string(), type: z.string(), nullable: z.boolean() }).strict()),
        keyColumns: z.array(z.string()).min(1),
      })
      .strict()
      .optional(),
  })
  .strict();
export type RestoreTask = z.infer<typeof RestoreTaskSchema>;
export type TargetTemplate = NonNullable<RestoreTask['template']>;

export const ArchivePointerSchema = z
  .object({ key: z.string().min(1), format: z.enum(['native', 'legacy']) })
  .strict();
export type ArchivePointer = z.infer<typeof ArchivePointerSchema>;

/** Running totals of a restore, carried between pages in the state (counts only). */
export const RestoreTotalsSchema = z
  .object({
    files: z.number().int().nonnegative(),
    restoredFiles: z.number().int().nonnegative(),
    alreadyRestoredFiles: z.number().int().nonnegative(),
    failedFiles: z.number().int().nonnegative(),
    rows: z.number().int().nonnegative(),
    inserted: z.number().int().nonnegative(),
    skipped: z.number().int().nonnegative(),
    overwritten: z.number().int().nonnegative(),
  })
  .strict();
export type RestoreTotals = z.infer<typeof RestoreTotalsSchema>;

export const restoreTargetLabel = (task: Pick<RestoreTask, 'target'>): string =>
  `${task.target.schema}.${task.target.name}`;

/** Whether a restore writes back into the table its archives came from. */
export const restoresIntoArchivedTable = (task: Pick<RestoreTask, 'source' | 'target'>): boolean =>
  task.target.schema === task.source.schema && task.target.name === task.source.name;

/**
 * A restore writes into the archived table itself, when the config archives it, or into a table the config's
 * `restoreTargets` names ("schema.name" or "schema.*"): the execution input names the source and the target, and
 * whoever can start an execution can name any table, as either. Checked by the plan and again by each archive's step
 * before it writes.
 */
export function assertRestoreTargetAllowed(
  db: DatabaseConfig,
  task: Pick<RestoreTask, 'source' | 'target'>,
): void {
  const configured = db.tables.some(
    (table) => table.schema === task.source.schema && table.name === task.source.name,
  );
  if (restoresIntoArchivedTable(task) && configured) return;
  const allowed = db.restoreTargets ?? [];
  const listed = allowed.some((ref) => {
    const dot = ref.indexOf('.');
    const name = ref.slice(dot + 1);
    return ref.slice(0, dot) === task.target.schema && (name === '*' || name === task.target.name);
  });
  if (!listed) {
    throw new ConfigError(
      `restore target "${task.target.schema}"."${task.target.name}" is neither a table the config archives (restored into itself) nor in restoreTargets of database ${db.name} (${allowed.join(', ') || 'none'}); nothing was written`,
    );
  }
}
