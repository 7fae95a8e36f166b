import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { z } from 'zod';
import { ArchiveIntegrityError, StorageUnavailableError } from '../errors/step-errors.js';
import { JsonLinesToCopyText, LineNotCopyableError } from './copy-text.js';
import {
  archivePath,
  isCalendarDay,
  keyNamesContent,
  type Manifest,
  ManifestSchema,
  manifestKeyFor,
  type ObjectSpan,
  spanEnd,
  spanLastDay,
  type TableLocation,
  tablePrefix,
} from './format.js';
import { type ArchiveExpectation, type MeasuredArchive, manifestExpectation } from './integrity.js';
import {
  LegacyFormatError,
  LegacyManifestSchema,
  LegacyMetadataSchema,
  legacyManifestKeyFor,
  legacyMetadataKeyFor,
  legacyTablePrefix,
  parseLegacyDataKey,
} from './legacy-format.js';
import { LegacyLinesToCanonical } from './legacy-rows.js';
import { RowDigest } from './row-digest.js';
import type { ArchiveStore, ListedObject, ObjectPin } from './store.js';
import { ByteFigures, type ContentFigures, createLinesGunzip, JsonLinesToCopy } from './stream.js';

/**
 * Where a table's archives are: written by this tool (`native`), or by the Python "Audit Table Archiver" it
 * succeeds (`legacy`: `{prefix}{pg database}/{table}/year=/month=/day=/{table}_{stamp}_batch_{NNN}.jsonl.gz`, whose
 * day folders are the run's date, not the rows'). The legacy layout names no schema: same-named tables of two
 * schemas share its folder, and `schema` picks this table's archives by their metadata.
 */
export type ArchiveSource =
  | { format: 'native'; location: TableLocation }
  | { format: 'legacy'; prefix: string; database: string; schema: string; table: string };

/** One archive data object of a source. */
export interface ArchiveRef {
  key: string;
  format: ArchiveSource['format'];
  /** The partition's first day, YYYY-MM-DD: its day, or the first of its month for a month object. */
  day: string;
  /** Native month objects (`objectSpan: month`) cover a month; every other archive one day partition. */
  span: ObjectSpan;
  size: number;
  storageClass: string;
  lastModified?: Date;
}

export function sourcePrefix(source: ArchiveSource): string {
  return source.format === 'native'
    ? tablePrefix(source.location)
    : legacyTablePrefix(source.prefix, source.database, source.table);
}

/** A native data object: in a day folder, or (a month object) in its month folder. */
const NATIVE_DATA =
  /^year=(\d{4})\/month=(0[1-9]|1[0-2])\/(?:day=(0[1-9]|[12]\d|3[01])\/)?(?!_)[^/]+\.jsonl\.gz$/;

/**
 * The partition of a data object of `source`, or undefined when `key` is not one (a manifest, a sidecar, a stray, or
 * an object in folders that name no calendar day, such as `month=00` or `day=30` of February: no archive is there).
 */
export function archivePartition(
  source: ArchiveSource,
  key: string,
): { day: string; span: ObjectSpan } | undefined {
  const prefix = sourcePrefix(source);
  if (!key.startsWith(prefix)) return undefined;
  let partition: { day: string; span: ObjectSpan } | undefined;
  if (source.format === 'legacy') {
    const day = parseLegacyDataKey(key, source.prefix)?.day;
    partition = day ? { day, span: 'day' } : undefined;
  } else {
    const match = NATIVE_DATA.exec(key.slice(prefix.length));
    partition = !match
      ? undefined
      : match[3] === undefined
        ? { day: `${match[1]}-${match[2]}-01`, span: 'month' }
        : { day: `${match[1]}-${match[2]}-${match[3]}`, span: 'day' };
  }
  return partition && isCalendarDay(partition.day) ? partition : undefined;
}

/** The first day of a data object of `source`, or undefined when `key` is not one. */
export function archiveDay(source: ArchiveSource, key: string): string | undefined {
  return archivePartition(source, key)?.day;
}

/** Whether an archive's partition (a day, or a month) shares a day with fromDay..toDay (either end open). */
export function partitionInRange(
  partition: { day: string; span: ObjectSpan },
  range: { fromDay?: string; toDay?: string },
): boolean {
  return (
    (!range.fromDay || spanLastDay(partition.day, partition.span) >= range.fromDay) &&
    (!range.toDay || partition.day <= range.toDay)
  );
}

export interface ListOptions {
  /** First and last day to include, YYYY-MM-DD, inclusive: a month object is listed when its month meets them. */
  fromDay?: string;
  toDay?: string;
  /** Resume after this key (a previous page's last key). */
  startAfter?: string;
  /** This archive only (a restore of one key): listed from just before it, and no other legacy metadata read. */
  key?: string;
  /**
   * false: read no legacy metadata, and leave nothing out as another schema's (the caller knows of no same-named
   * table of another schema). Default true.
   */
  otherSchemas?: boolean;
  /** Told of each legacy archive left out as another schema's (`otherSchema`), with the schema it names. */
  onOtherSchema?: (ref: ArchiveRef, schema: string) => void;
}

/** Legacy archives whose metadata a listing reads at once (one small GET each), ahead of the one it yields next. */
export const LEGACY_METADATA_READS = 8;

/**
 * Data objects of a source in key order (so by month, then day), filtered by partition (and key). A legacy source
 * reads the metadata of each archive it selects (LEGACY_METADATA_READS at a time, yielding in key order) and leaves
 * out the archives of the same-named table of another schema.
 */
export async function* listArchives(
  store: ArchiveStore,
  source: ArchiveSource,
  options: ListOptions = {},
): AsyncGenerator<ArchiveRef> {
  const refs = selectedRefs(store, source, options);
  if (source.format === 'native' || options.otherSchemas === false) {
    yield* refs;
    return;
  }
  yield* withoutOtherSchemas(store, source, refs, options.onOtherSchema);
}

/**
 * The legacy archives of `refs` (in their order) but those whose metadata names the same-named table of another schema,
 * which `onOtherSchema` is told of: LEGACY_METADATA_READS read at once.
 */
export async function* withoutOtherSchemas<T extends Pick<ArchiveRef, 'key'>>(
  store: ArchiveStore,
  source: Extract<ArchiveSource, { format: 'legacy' }>,
  refs: AsyncIterator<T> | Iterator<T>,
  onOtherSchema?: (ref: T, schema: string) => void,
): AsyncGenerator<T> {
  const reading: { ref: T; schema: Promise<string | undefined> }[] = [];
  let listed = false;
  try {
    for (;;) {
      while (!listed && reading.length < LEGACY_METADATA_READS) {
        const item = await refs.next();
        if (item.done) {
          listed = true;
          break;
        }
        const schema = otherSchema(store, source, item.value);
        // Awaited in turn below; one left unread by a consumer that stopped early must not fail the process.
        schema.catch(() => undefined);
        reading.push({ ref: item.value, schema });
      }
      const head = reading.shift();
      if (!head) return;
      const other = await head.schema;
      if (other === undefined) yield head.ref;
      else onOtherSchema?.(head.ref, other);
    }
  } finally {
    await refs.return?.(undefined);
  }
}

/** The data objects a listing selects, before any legacy metadata is read. */
async function* selectedRefs(
  store: ArchiveStore,
  source: ArchiveSource,
  options: ListOptions,
): AsyncGenerator<ArchiveRef> {
  const only = options.key;
  // One key is listed from the key less its last character, which sorts just before it.
  const before = only?.slice(0, -1);
  const startAfter =
    before !== undefined && (options.startAfter === undefined || options.startAfter < before)
      ? before
      : options.startAfter;
  for await (const object of store.list(sourcePrefix(source), startAfter)) {
    if (only !== undefined && object.key !== only) continue;
    const ref = toRef(source, object);
    if (ref && partitionInRange(ref, options)) yield ref;
  }
}

/**
 * The schema a legacy archive's metadata names when it is the same-named table of another schema in the same
 * database: the layout cannot tell them apart, and that archive is no archive of this table. Undefined when it names
 * this table, or anything else (another database or table), or cannot be read: restore and validate refuse such an
 * archive themselves, naming it.
 */
async function otherSchema(
  store: ArchiveStore,
  source: Extract<ArchiveSource, { format: 'legacy' }>,
  ref: Pick<ArchiveRef, 'key'>,
): Promise<string | undefined> {
  const info = (await readParsed(store, legacyMetadataKeyFor(ref.key), LegacyMetadataSchema))?.batch_info;
  return info?.database === source.database && info.table === source.table && info.schema !== source.schema
    ? info.schema
    : undefined;
}

/** Counts the legacy archives a listing left out as another schema's, and says so. */
export class OtherSchemaArchives {
  private readonly bySchema = new Map<string, number>();

  readonly add = (_ref: ArchiveRef, schema: string): void => {
    this.bySchema.set(schema, (this.bySchema.get(schema) ?? 0) + 1);
  };

  get count(): number {
    return [...this.bySchema.values()].reduce((n, c) => n + c, 0);
  }

  /** One sentence naming them, or undefined when none was left out. */
  note(table: string): string | undefined {
    if (this.bySchema.size === 0) return undefined;
    const tables = [...this.bySchema].map(([schema, n]) => `${n} of "${schema}"."${table}"`).join(', ');
    return `left out legacy archives of the same-named table of another schema (the Python tool's layout names no schema; their metadata does): ${tables}`;
  }
}

function toRef(source: ArchiveSource, object: ListedObject): ArchiveRef | undefined {
  const partition = archivePartition(source, object.key);
  return partition
    ? {
        key: object.key,
        format: source.format,
        ...partition,
        size: object.size,
        storageClass: object.storageClass,
        lastModified: object.lastModified,
      }
    : undefined;
}

export function sidecarKeyFor(ref: Pick<ArchiveRef, 'key' | 'format'>): string {
  return ref.format === 'native' ? manifestKeyFor(ref.key) : legacyMetadataKeyFor(ref.key);
}

/** Reads and checks the sidecar of an archive; a missing or invalid one is an ArchiveIntegrityError. */
export async function readExpectation(
  store: ArchiveStore,
  ref: Pick<ArchiveRef, 'key' | 'format'>,
): Promise<ArchiveExpectation> {
  const sidecarKey = sidecarKeyFor(ref);
  const text = await store.getText(sidecarKey);
  if (text === undefined) throw new ArchiveIntegrityError(`archive ${ref.key} has no sidecar ${sidecarKey}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ArchiveIntegrityError(`sidecar ${sidecarKey} of archive ${ref.key} is not JSON`);
  }
  if (ref.format === 'native') {
    const parsed = ManifestSchema.safeParse(raw);
    if (!parsed.success)
      throw new ArchiveIntegrityError(`manifest ${sidecarKey} is not a valid format-1 manifest`);
    const manifest = parsed.data;
    const columnProblem = manifestColumnProblem(manifest);
    if (columnProblem) throw new ArchiveIntegrityError(`manifest ${sidecarKey} ${columnProblem}`);
    if (manifest.dataKey !== ref.key)
      throw new ArchiveIntegrityError(`manifest ${sidecarKey} names another object (${manifest.dataKey})`);
    // The key is content-addressed: a manifest (and bytes) rewritten to describe other rows no longer fits it.
    if (!keyNamesContent(ref.key, manifest.figures.contentSha256))
      throw new ArchiveIntegrityError(
        `archive ${ref.key}: its key names content other than the manifest's (${manifest.figures.contentSha256.slice(0, 24)}…)`,
      );
    // The partition folder is what Athena and every range filter trust: it must be the manifest's day or month.
    const span = manifest.span ?? 'day';
    const inPartition =
      ref.key.endsWith(`/${archivePath(manifest.day, manifest.figures.contentSha256, span)}`) &&
      Date.parse(manifest.bounds.from) >= Date.parse(`${manifest.day}T00:00:00Z`) &&
      Date.parse(manifest.bounds.to) <= Date.parse(spanEnd(manifest.day, span));
    if (!inPartition)
      throw new ArchiveIntegrityError(
        `archive ${ref.key}: its partition is not the manifest's ${span} (${span === 'day' ? manifest.day : manifest.day.slice(0, 7)}, rows ${manifest.bounds.from} to ${manifest.bounds.to})`,
      );
    return manifestExpectation(ref.key, manifest, text);
  }
  const parsed = LegacyMetadataSchema.safeParse(raw);
  if (!parsed.success) throw new ArchiveIntegrityError(`metadata ${sidecarKey} is not valid legacy metadata`);
  const metadata = parsed.data;
  return {
    key: ref.key,
    format: 'legacy',
    origin: {
      database: metadata.batch_info.database,
      schema: metadata.batch_info.schema,
      table: metadata.batch_info.table,
    },
    rows: metadata.data_info.record_count,
    contentSha256: metadata.checksums.jsonl_sha256,
    compressedSha256: metadata.checksums.compressed_sha256,
    uncompressedBytes: metadata.data_info.uncompressed_size_bytes,
    compressedBytes: metadata.data_info.compressed_size_bytes,
    legacyBatchId: metadata.batch_info.batch_id,
  };
}

/**
 * What no manifest export writes says of its columns: one listed twice (a COPY or INSERT naming it twice fails with
 * the database's own error), or a key or timestamp column it does not list (its rows could not be told apart or
 * placed). Undefined for a manifest without such a fault.
 */
function manifestColumnProblem(manifest: Manifest): string | undefined {
  const names = new Set<string>();
  for (const { name } of manifest.columns) {
    if (names.has(name)) return `lists column "${name}" twice`;
    names.add(name);
  }
  const missingKey = manifest.keyColumns.find((name) => !names.has(name));
  if (missingKey !== undefined) return `names key column "${missingKey}", which it does not list`;
  if (!names.has(manifest.timestampColumn))
    return `names timestamp column "${manifest.timestampColumn}", which it does not list`;
  return undefined;
}

/** A sidecar of the bucket as `schema` reads it; undefined when it is missing, too long, not JSON or not of it. */
async function readParsed<T>(store: ArchiveStore, key: string, schema: z.ZodType<T>): Promise<T | undefined> {
  const text = await store.getText(key).catch((error: unknown) => {
    if (error instanceof ArchiveIntegrityError) return undefined;
    throw error;
  });
  return parsedAs(text, schema);
}

function parsedAs<T>(text: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = schema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/** Bytes of a legacy manifest read to tell its batch: ample for its fields, which precede the list of keys. */
const LEGACY_MANIFEST_HEAD_BYTES = 64 * 1024;
/** Where the tool's manifest (json.dumps, indent=2) starts the list of every key it deleted. */
const LEGACY_MANIFEST_KEYS = '\n  "primary_keys": ';

/** A legacy manifest's text up to its list of keys (closed with an empty list), or whole when it was read whole. */
function legacyManifestFields(head: { text: string; whole: boolean }): string | undefined {
  if (head.whole) return head.text;
  const keysAt = head.text.indexOf(LEGACY_MANIFEST_KEYS);
  return keysAt === -1 ? undefined : `${head.text.slice(0, keysAt)}${LEGACY_MANIFEST_KEYS}[]\n}`;
}

/**
 * Whether the Python tool recorded the delete of a legacy archive's batch as committed: a `.manifest.json` beside it
 * that is a manifest of this batch (its table and batch id). Any other object there, or none, leaves the batch
 * uncommitted (UNCOMMITTED_LEGACY_BATCH).
 */
export async function legacyBatchCommitted(
  store: ArchiveStore,
  expected: ArchiveExpectation,
): Promise<boolean> {
  // Read up to its list of keys only: a batch of 100,000 keys makes a manifest of megabytes.
  const head = await store.getTextHead(legacyManifestKeyFor(expected.key), LEGACY_MANIFEST_HEAD_BYTES);
  const info = parsedAs(head && legacyManifestFields(head), LegacyManifestSchema)?.manifest_info;
  return (
    info !== undefined &&
    info.database === expected.origin.database &&
    info.schema === expected.origin.schema &&
    info.table === expected.origin.table &&
    info.batch_id === expected.legacyBatchId
  );
}

/** Gives the target column's type (format_type text) for a legacy value, or undefined for an unknown column. */
export type ColumnTypeOf = (column: string) => string | undefined;

const discard = () =>
  new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });

/**
 * Streams an archive once: S3 → hash of the compressed bytes → gunzip → (legacy rows converted to canonical lines)
 * → COPY rows → the sink `openSink` starts (a `COPY ... FROM STDIN` stream, or nothing to only measure). The rows
 * are binary tuples of the whole lines (`COPY staging (line) ... (FORMAT binary)`), or, given `copyColumns`, text
 * rows of those columns' values (`COPY target (copyColumns) FROM STDIN`; a line it cannot turn into a row fails the
 * stream with LineNotCopyableError). Memory stays bounded by one chunk and one line whatever the archive's size, and
 * so does the work a small object can ask for: the read stops with ArchiveIntegrityError as soon as the decompressed
 * bytes pass what the sidecar states, or a line passes MAX_ARCHIVE_LINE_BYTES (longer than export writes or restore
 * can load).
 * Returns what it measured; the caller compares it with the sidecar before trusting a single row.
 */
export async function streamArchive(
  store: ArchiveStore,
  ref: Pick<ArchiveRef, 'key' | 'format'>,
  options: {
    /**
     * Starts the sink once the body is open: a `COPY ... FROM STDIN` started before an await would meet a connection
     * lost meanwhile with an error event no one listens to yet, and wait forever for the rows it never gets.
     */
    openSink?: () => Writable;
    columnType?: ColumnTypeOf;
    pin?: ObjectPin;
    rowDigest?: boolean;
    copyColumns?: string[];
    /** The object's body, already opened (pinned) by the caller; otherwise it is opened here. */
    body?: Readable;
    /** The archive's sidecar as the caller read it (readExpectation): its `uncompressedBytes` bound the read. */
    expected: Pick<ArchiveExpectation, 'uncompressedBytes'>;
  },
): Promise<MeasuredArchive> {
  // Pinned to the object the inventory recorded, where known: another object under the key is refused.
  let body: Readable | undefined;
  try {
    body = options.body ?? (await store.getStream(ref.key, options.pin));
    if (!body) throw new ArchiveIntegrityError(`archive ${ref.key} is missing`);
  } catch (error) {
    options.body?.destroy();
    throw error;
  }
  const compressed = new ByteFigures();
  // An MD5 of every line only where the sidecar states a row digest to compare it with (archives written before batches spanned days).
  const digest = options.rowDigest ? new RowDigest() : undefined;
  // The sidecar measures the bytes as stored: a legacy archive's before conversion, so its converter checks them; the
  // encoder then bounds the converted lines.
  const bounds = { key: ref.key, uncompressedBytes: options.expected.uncompressedBytes };
  const legacy =
    ref.format === 'legacy'
      ? new LegacyLinesToCanonical(options.columnType ?? (() => undefined), bounds)
      : undefined;
  const lineBounds = legacy ? { key: ref.key } : bounds;
  const encoder = options.copyColumns
    ? new JsonLinesToCopyText(options.copyColumns, digest, lineBounds)
    : new JsonLinesToCopy(digest, lineBounds);
  const stages: (Readable | Writable)[] = [body, compressed, createLinesGunzip()];
  if (legacy) stages.push(legacy);
  const sink = options.openSink?.();
  stages.push(encoder, sink ?? discard());
  // The stage whose error came first failed the pipeline (the others are destroyed with it): the sink's is the
  // database's, its driver's "Connection terminated" included, and keeps the database's classification.
  let first: { stage: Readable | Writable; error: unknown } | undefined;
  for (const stage of stages)
    stage.once('error', (error) => {
      first ??= { stage, error };
    });
  try {
    await (pipeline as (...streams: (Readable | Writable)[]) => Promise<void>)(...stages);
  } catch (error) {
    if (sink && first?.stage === sink) throw first.error;
    throw classifyReadError(error, ref.key);
  }
  const lines: ContentFigures = legacy ? legacy.figures() : encoder.figures();
  const { rowDigest } = encoder.figures();
  return {
    rows: lines.rows,
    contentSha256: lines.contentSha256,
    uncompressedBytes: lines.uncompressedBytes,
    ...(rowDigest ? { rowDigest } : {}),
    compressedSha256: compressed.sha256(),
    compressedBytes: compressed.bytes,
  };
}

/** zlib errors mean damaged bytes; a legacy row that cannot be converted is damage too; the rest is transport. */
function classifyReadError(error: unknown, key: string): Error {
  if (
    error instanceof ArchiveIntegrityError ||
    error instanceof StorageUnavailableError ||
    error instanceof LineNotCopyableError
  )
    return error;
  const code = (error as { code?: string }).code ?? '';
  if (code.startsWith('Z_'))
    return new ArchiveIntegrityError(`archive ${key} cannot be decompressed (${code})`, { cause: error });
  if (error instanceof LegacyFormatError)
    return new ArchiveIntegrityError(`archive ${key}: ${(error as Error).message}`, { cause: error });
  return new StorageUnavailableError(`reading ${key} failed: ${(error as Error).message}`, { cause: error });
}
