import { createInterface } from 'node:readline';
import {
  type ArchiveRef,
  type ArchiveSource,
  archivePartition,
  legacyBatchCommitted,
  listArchives,
  OtherSchemaArchives,
  partitionInRange,
  readExpectation,
  sidecarKeyFor,
  sourcePrefix,
  streamArchive,
} from '../lambdas/shared/archive/catalog.js';
import { keySegment, type Manifest, spanLastDay } from '../lambdas/shared/archive/format.js';
import { archiveProblems } from '../lambdas/shared/archive/integrity.js';
import type { InventoryEntry } from '../lambdas/shared/archive/inventory.js';
import { UNCOMMITTED_LEGACY_BATCH } from '../lambdas/shared/archive/legacy-format.js';
import type { ArchiveStore, ObjectPin } from '../lambdas/shared/archive/store.js';
import { createLinesGunzip } from '../lambdas/shared/archive/stream.js';
import { ArchiveIntegrityError } from '../lambdas/shared/errors/step-errors.js';
import { unreadableColdArchives } from '../lambdas/shared/restore/cold-archives.js';

export type ProblemKind =
  | 'corrupt'
  | 'missing-sidecar'
  | 'orphan-sidecar'
  | 'wrong-table'
  | 'stale-staging'
  | 'in-flight'
  | 'cold'
  | 'quarantined'
  | 'day-gap'
  | 'not-as-committed'
  | 'missing-archive'
  | 'not-in-inventory'
  | 'not-an-archive'
  | 'not-configured'
  | 'uncommitted'
  | 'archived-twice';

export interface ValidationProblem {
  /** `error`: an archive cannot be trusted or is incomplete; `warning`: worth a look, nothing is lost. */
  severity: 'error' | 'warning';
  kind: ProblemKind;
  key: string;
  detail: string;
}

export interface ArchiveListing extends ArchiveRef {
  /** Rows the sidecar declares; undefined when the sidecar is missing or unreadable. */
  rows?: number;
}

export interface ValidationReport {
  archives: number;
  rows: number;
  bytes: number;
  problems: ValidationProblem[];
  /** What is worth knowing but no problem: legacy archives of another schema's same-named table, left out. */
  notes?: string[];
}

/** Staging objects older than this belong to no batch that can still be in flight (leases last at most hours). */
const STALE_STAGING_MS = 24 * 3600 * 1000;

/**
 * Lists a source's archives with the row counts their sidecars declare (one small read per archive); `others` counts
 * the legacy archives left out as another schema's.
 */
export async function listWithRows(
  store: ArchiveStore,
  source: ArchiveSource,
  range: { fromDay?: string; toDay?: string } = {},
  others?: OtherSchemaArchives,
): Promise<ArchiveListing[]> {
  const listing: ArchiveListing[] = [];
  for await (const ref of listArchives(store, source, { ...range, onOtherSchema: others?.add })) {
    const rows = await readExpectation(store, ref).then(
      (expected) => expected.rows,
      (error: unknown) => {
        if (error instanceof ArchiveIntegrityError) return undefined;
        throw error;
      },
    );
    listing.push({ ...ref, rows });
  }
  return listing;
}

/**
 * Re-reads every archive of a source in the range and checks it as restore would (checksums, sizes, row count,
 * digest, and that the sidecar names this table), then looks for what should not be there: sidecars without data,
 * data without sidecar, staging leftovers, quarantined archives, and days without an archive between the first
 * and the last. With the table's `inventory` (the lock table's record of committed archives, kept outside the bucket)
 * each archive must also be the object and figures committed, and every committed archive must be there; a day then
 * counts as a gap only where the inventory cannot speak (before its first entry: archives written before it).
 */
export async function validateArchives(
  store: ArchiveStore,
  source: ArchiveSource,
  expectedOrigin: { database: string; schema: string; table: string },
  range: { fromDay?: string; toDay?: string } = {},
  now: Date = new Date(),
  inventory?: InventoryEntry[],
): Promise<ValidationReport> {
  const report: ValidationReport = { archives: 0, rows: 0, bytes: 0, problems: [] };
  const problem = (severity: ValidationProblem['severity'], kind: ProblemKind, key: string, detail: string) =>
    report.problems.push({ severity, kind, key, detail });
  const days = new Set<string>();
  const keys = new Set<string>();
  const committed = new Map((inventory ?? []).map((entry) => [entry.archiveKey, entry]));
  const keyRanges: CommittedKeyRange[] = [];
  for await (const object of store.list(sourcePrefix(source))) keys.add(object.key);
  const others = new OtherSchemaArchives();

  for await (const ref of listArchives(store, source, { ...range, onOtherSchema: others.add })) {
    report.archives += 1;
    report.bytes += ref.size;
    for (const day of partitionDays(ref)) days.add(day);
    // A cold archive restored from cold storage reads like any other: only one S3 would refuse is left unchecked.
    const [cold] = await unreadableColdArchives(store, [ref]);
    if (cold) {
      problem(
        'warning',
        'cold',
        ref.key,
        `in ${ref.storageClass}, ${cold.state === 'restoring' ? 'its restore from cold storage still running' : 'not restored from cold storage'}: restore the object (RestoreObject) to verify it`,
      );
      continue;
    }
    const entry = committed.get(ref.key);
    const age = now.getTime() - (ref.lastModified?.getTime() ?? 0);
    if (!entry && !keys.has(sidecarKeyFor(ref)) && age < STALE_STAGING_MS) {
      // Upload publishes the data before its manifest: a young archive without one is a batch still in flight, unless
      // the inventory lists it (committed, so its manifest was written): age is no evidence there, as a bucket writer
      // makes an object young again by putting the same bytes.
      problem(
        'warning',
        'in-flight',
        ref.key,
        'no manifest yet: a batch in flight, or one a later run completes',
      );
      continue;
    }
    try {
      const expected = await readExpectation(store, ref);
      const { origin } = expected;
      if (
        origin.database !== expectedOrigin.database ||
        origin.schema !== expectedOrigin.schema ||
        origin.table !== expectedOrigin.table
      ) {
        problem(
          'error',
          'wrong-table',
          ref.key,
          `sidecar names "${origin.schema}"."${origin.table}" in ${origin.database}`,
        );
        continue;
      }
      if (expected.format === 'legacy' && !(await legacyBatchCommitted(store, expected)))
        problem('warning', 'uncommitted', ref.key, UNCOMMITTED_LEGACY_BATCH);
      const differs = entry
        ? archiveProblems(expected, { recorded: entry.figures, committed: entry }).sidecar
        : [];
      if (differs.length > 0) {
        problem('error', 'not-as-committed', ref.key, `differs from the inventory: ${differs.join('; ')}`);
        continue;
      }
      const measured = await streamArchive(store, ref, {
        pin: entry?.pin,
        expected,
        rowDigest: expected.rowDigest !== undefined,
      });
      const mismatches = archiveProblems(expected, { measured }).bytes;
      if (mismatches.length > 0) problem('error', 'corrupt', ref.key, mismatches.join('; '));
      else report.rows += expected.rows;
      if (entry && expected.manifest && mismatches.length === 0)
        keyRanges.push({
          key: ref.key,
          days: partitionDays(ref),
          committedAt: entry.committedAt,
          manifest: expected.manifest,
          pin: entry.pin,
        });
      if (inventory && !entry)
        problem(
          'warning',
          'not-in-inventory',
          ref.key,
          'not in the inventory: written before it existed, by a batch not yet committed, or not by this tool',
        );
    } catch (error) {
      if (!(error instanceof ArchiveIntegrityError)) throw error;
      const missing = !keys.has(sidecarKeyFor(ref));
      problem('error', missing ? 'missing-sidecar' : 'corrupt', ref.key, error.message);
    }
  }
  for (const { key, earlier } of archivedTwice(keyRanges)) {
    const shared = await rowsInBoth(store, keyRanges, key, earlier);
    if (shared.rows > 0)
      problem(
        'warning',
        'archived-twice',
        key,
        `${shared.rows} of its rows (by key) are also in ${shared.archives.join(', ')}, committed before it: rows restored into the table and archived again, counted twice here and by a query over the bucket, and a restore under "fail" refuses the older archive; its other rows are in it alone, so delete neither archive as a copy`,
      );
  }
  for (const entry of committed.values()) {
    const inRange = partitionInRange({ day: entry.day, span: entry.span ?? 'day' }, range);
    if (inRange && !keys.has(entry.archiveKey))
      problem(
        'error',
        'missing-archive',
        entry.archiveKey,
        `committed ${entry.committedAt} with ${entry.figures.rowCount} rows; ${whyMissing(source, entry.archiveKey)}`,
      );
  }

  for (const key of keys) {
    if (isStrayData(source, key))
      problem(
        'error',
        'not-an-archive',
        key,
        'outside the archive layout (a folder that is no calendar day, or no archive name): not written by this tool',
      );
    const data = dataKeyOfSidecar(source, key);
    if (data === undefined || keys.has(data)) continue;
    const partition = archivePartition(source, data);
    if (partition && partitionInRange(partition, range))
      problem('error', 'orphan-sidecar', key, `its data object ${data} is missing`);
  }
  if (source.format === 'native') {
    await findLeftovers(store, source, now, problem);
    // Native day folders are the rows' days, so a missing day inside the span means no archive holds that day. Where
    // the inventory speaks (from its first day on), a day without an entry had no rows, and a lost archive is an error.
    const firstInventoried = [...committed.values()].map((e) => e.day).sort()[0];
    // A run of missing days is one warning (a year-1 row before years of nothing would otherwise be 700,000).
    for (const gap of missingDayRuns([...days].sort(), firstInventoried)) {
      const span = gap.first === gap.last ? gap.first : `${gap.first}..${gap.last}`;
      const what = gap.first === gap.last ? span : `${span} (${gap.count} days)`;
      problem('warning', 'day-gap', `${sourcePrefix(source)}${span}`, `no archive for ${what}`);
    }
  }
  const note = source.format === 'legacy' ? others.note(source.table) : undefined;
  if (note) report.notes = [note];
  return report;
}

/**
 * Why a committed archive is not in the listing: a key outside the table's folder under the current prefix was
 * written under another prefix (or in another bucket), and is never listed here though it may be intact; one inside
 * it is gone from the bucket.
 */
function whyMissing(source: ArchiveSource, key: string): string {
  const folder = sourcePrefix(source);
  return key.startsWith(folder)
    ? 'the object is gone from this bucket (deleted or expired, or s3.bucket changed since it was written)'
    : `outside the current prefix (${folder}), so not read here: s3.prefix or the bucket changed since it was written; validate it with the old prefix in the config`;
}

/**
 * Whether `key` is named like a data object in the date folders (`year=…/….jsonl.gz`, not a `_` file) but is none of
 * `source`'s archives: in folders that name no calendar day (`month=00`, `day=31` of a 30-day month), at another
 * depth, or misnamed. List and restore never see it; validate names it so a planted object cannot hide there.
 */
function isStrayData(source: ArchiveSource, key: string): boolean {
  const prefix = sourcePrefix(source);
  const name = key.slice(key.lastIndexOf('/') + 1);
  return (
    key.startsWith(`${prefix}year=`) &&
    name.endsWith('.jsonl.gz') &&
    !name.startsWith('_') &&
    archivePartition(source, key) === undefined
  );
}

/** The data key a native manifest or a legacy sidecar belongs to, or undefined for any other object. */
function dataKeyOfSidecar(source: ArchiveSource, key: string): string | undefined {
  if (source.format === 'native') {
    const match = /^(.*\/)_([^/]+)\.manifest\.json$/.exec(key);
    return match ? `${match[1]}${match[2]}.jsonl.gz` : undefined;
  }
  const match = /^(.*)\.(metadata|manifest)\.json$/.exec(key);
  return match ? `${match[1]}.jsonl.gz` : undefined;
}

async function findLeftovers(
  store: ArchiveStore,
  source: Extract<ArchiveSource, { format: 'native' }>,
  now: Date,
  problem: (severity: 'warning', kind: ProblemKind, key: string, detail: string) => void,
): Promise<void> {
  const { location } = source;
  const tableFolder = `${keySegment(location.database)}/${keySegment(location.schema)}.${keySegment(location.table)}/`;
  for await (const object of store.list(`${location.prefix}_staging/${tableFolder}`)) {
    const age = now.getTime() - (object.lastModified?.getTime() ?? now.getTime());
    if (age > STALE_STAGING_MS)
      problem('warning', 'stale-staging', object.key, `staging object ${Math.floor(age / 3600000)} h old`);
  }
  for await (const object of store.list(`${location.prefix}_quarantine/`)) {
    if (object.key.includes(`/${tableFolder}`))
      problem('warning', 'quarantined', object.key, 'an archive that failed verification, kept as evidence');
  }
}

/** A committed archive's key range, for archivedTwice. */
interface CommittedKeyRange {
  key: string;
  days: string[];
  committedAt: string;
  manifest: Manifest;
  pin?: ObjectPin;
}

/**
 * Committed archives whose key ranges overlap an earlier committed archive's of a day they share, by the order of keys
 * whose columns are integers or uuids (text orders by a collation the manifest does not record: not compared). Batches
 * cut a day by key, so only rows archived again (restored into the table) are in two.
 */
function archivedTwice(ranges: readonly CommittedKeyRange[]): { key: string; earlier: string[] }[] {
  // Compared only with archives of the days it covers: a table's archives are many, a day's few.
  const byDay = new Map<string, CommittedKeyRange[]>();
  const found: { key: string; earlier: string[] }[] = [];
  for (const range of [...ranges].sort((a, b) => a.committedAt.localeCompare(b.committedAt))) {
    const earlier = new Set<string>();
    for (const day of range.days) {
      const ofDay = byDay.get(day) ?? [];
      for (const other of ofDay)
        if (keysOverlap(other.manifest, range.manifest) && timesOverlap(other.manifest, range.manifest))
          earlier.add(other.key);
      ofDay.push(range);
      byDay.set(day, ofDay);
    }
    if (earlier.size > 0) found.push({ key: range.key, earlier: [...earlier] });
  }
  return found;
}

/**
 * The rows of archive `key` also in `earlier` ones, by their key columns' values, and the archives that hold them: key
 * ranges that overlap also hold rows inserted late with keys inside an earlier range, which are in the later archive
 * alone. Only the archives a warning would name are read again, pinned to the object just verified.
 */
async function rowsInBoth(
  store: ArchiveStore,
  ranges: readonly CommittedKeyRange[],
  key: string,
  earlier: readonly string[],
): Promise<{ rows: number; archives: string[] }> {
  const byKey = new Map(ranges.map((range) => [range.key, range]));
  const later = byKey.get(key);
  if (!later) return { rows: 0, archives: [] };
  const keys = await rowKeys(store, later);
  const shared = { rows: 0, archives: [] as string[] };
  for (const other of earlier) {
    const range = byKey.get(other);
    if (!range) continue;
    let rows = 0;
    for (const rowKey of await rowKeys(store, range)) if (keys.delete(rowKey)) rows += 1;
    if (rows > 0) shared.archives.push(other);
    shared.rows += rows;
  }
  return shared;
}

/** The key of each row of a committed archive: its key columns' values, as JSON. */
async function rowKeys(store: ArchiveStore, range: CommittedKeyRange): Promise<Set<string>> {
  const body = await store.getStream(range.key, range.pin);
  if (!body) throw new ArchiveIntegrityError(`archive ${range.key} is missing`);
  const keys = new Set<string>();
  const gunzip = createLinesGunzip();
  // pipe() hands on no error: a read cut short would leave the lines waiting for an end that never comes.
  body.on('error', (error) => gunzip.destroy(error));
  const lines = createInterface({ input: body.pipe(gunzip), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (line.length === 0) continue;
    const row = JSON.parse(line) as Record<string, unknown>;
    keys.add(JSON.stringify(range.manifest.keyColumns.map((column) => row[column])));
  }
  return keys;
}

/**
 * Whether two archives' timestamp ranges meet (to the millisecond, ends included), for a day object and a month object
 * of one month: a table switched from day to month objects has both there, whose key ranges a random key (uuid) makes
 * overlap though they share no row, and a row in both lies in both ranges. Between archives of one span the key ranges
 * alone decide: a row restored, then moved to another time by the application and archived again, is in two archives
 * whose timestamp ranges need not meet. True where it cannot tell: a range it cannot read, or archives that read the
 * timestamp otherwise (another column, type or zone makes one row's instants differ).
 */
function timesOverlap(a: Manifest, b: Manifest): boolean {
  const local = a.timestampType === 'timestamp' || b.timestampType === 'timestamp';
  if (
    (a.span ?? 'day') === (b.span ?? 'day') ||
    a.timestampColumn !== b.timestampColumn ||
    a.timestampType !== b.timestampType ||
    (local && a.timestampTimeZone !== b.timestampTimeZone)
  )
    return true;
  const [aMin, aMax] = [Date.parse(a.timestampRange.min), Date.parse(a.timestampRange.max)];
  const [bMin, bMax] = [Date.parse(b.timestampRange.min), Date.parse(b.timestampRange.max)];
  if (![aMin, aMax, bMin, bMax].every(Number.isFinite)) return true;
  return aMin <= bMax && bMin <= aMax;
}

/** Whether two archives' key ranges overlap; false where their key columns cannot be ordered here. */
function keysOverlap(a: Manifest, b: Manifest): boolean {
  const columns = a.keyColumns.length;
  const types = a.keyColumns.map((name) => a.columns.find((c) => c.name === name)?.type);
  const comparable =
    JSON.stringify(a.keyColumns) === JSON.stringify(b.keyColumns) &&
    types.every((type, i) => type !== undefined && KEY_FORMS[type] !== undefined && type === typeOf(b, i)) &&
    [a.keyRange.first, a.keyRange.last, b.keyRange.first, b.keyRange.last].every(
      (values) =>
        values.length === columns && values.every((value, i) => KEY_FORMS[types[i] ?? '']?.test(value)),
    );
  if (!comparable) return false;
  const compare = (x: readonly string[], y: readonly string[]) => {
    for (const [i, type] of types.entries()) {
      const [u = '', v = ''] = [x[i], y[i]];
      const order = type === 'uuid' ? (u < v ? -1 : u > v ? 1 : 0) : Math.sign(Number(BigInt(u) - BigInt(v)));
      if (order !== 0) return order;
    }
    return 0;
  };
  return compare(a.keyRange.first, b.keyRange.last) <= 0 && compare(b.keyRange.first, a.keyRange.last) <= 0;
}

const typeOf = (manifest: Manifest, i: number) =>
  manifest.columns.find((c) => c.name === manifest.keyColumns[i])?.type;

/** Key column types whose text orders here as PostgreSQL orders their values, and the text PostgreSQL writes. */
const INTEGER_TEXT = /^-?\d+$/;
const KEY_FORMS: Record<string, RegExp> = {
  smallint: INTEGER_TEXT,
  integer: INTEGER_TEXT,
  bigint: INTEGER_TEXT,
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
};

/** Every day an archive's partition covers: its day, or each day of its month. */
function partitionDays(ref: Pick<ArchiveRef, 'day' | 'span'>): string[] {
  const last = spanLastDay(ref.day, ref.span);
  const days = [ref.day];
  for (let day = ref.day; day < last; ) {
    day = dayAfter(day);
    days.push(day);
  }
  return days;
}

const DAY_MS = 86_400_000;
const dayAfter = (day: string) =>
  new Date(Date.parse(`${day}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
const dayBefore = (day: string) =>
  new Date(Date.parse(`${day}T00:00:00Z`) - DAY_MS).toISOString().slice(0, 10);

/**
 * The runs of days between the first and the last of `sortedDays` that are not in it, before `until` (the first day
 * the inventory covers) where given: from the gaps between neighbours, without naming each missing day.
 */
function missingDayRuns(
  sortedDays: string[],
  until?: string,
): { first: string; last: string; count: number }[] {
  const runs: { first: string; last: string; count: number }[] = [];
  sortedDays.forEach((day, i) => {
    const next = sortedDays[i + 1];
    if (next === undefined) return;
    const first = dayAfter(day);
    const last = until !== undefined && until <= next ? dayBefore(until) : dayBefore(next);
    if (first > last) return;
    const count = (Date.parse(`${last}T00:00:00Z`) - Date.parse(`${first}T00:00:00Z`)) / DAY_MS + 1;
    runs.push({ first, last, count });
  });
  return runs;
}
