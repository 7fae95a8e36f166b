import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ArchiveRef } from '../shared/archive/catalog.js';
import type { InventoryEntry } from '../shared/archive/inventory.js';
import type { RestoreTask } from '../shared/restore/restore-task.js';
import {
  historyFullError,
  type ListedArchive,
  MAX_ARCHIVES_PER_GROUP,
  MAX_GROUP_BYTES,
  MAX_LEGACY_ARCHIVES,
  RESTORE_PAGE_ARCHIVES,
  RESTORE_PAGE_KEY_BYTES,
} from './groups.js';

/**
 * The order a restore hands out its archives in, and where its pages end.
 *
 * The same row can be in two committed archives of one partition (its day, or its month): archived, restored into the
 * table, changed (a redaction), archived again. A month's month objects and its day objects are one partition: a
 * table switched between the two (`objectSpan`) archives the same rows again under the other layout. The newest committed version must win, whatever the strategy: `skip`
 * (and `fail`) restore the newest archive first, so an older version finds its row already there; `overwrite` the
 * oldest first, so the newest is written last. Two batches of one run can hold the same key too: a row one batch
 * deleted that the application inserts again under its key (or a restore puts back) while the run goes on, which a
 * later batch archives. So every partition of more than one archive is *ordered*. Groups of a page run at once, so a page holds at most one
 * group's worth of an ordered partition, in that group, in order; the rest of it follows in the next pages, which run
 * after. An archive the inventory does not list (written before it existed, or by a batch not committed) counts as
 * older than every committed one: a committed version wins over one nothing vouches for. Among themselves such
 * archives keep key order, having no time on record.
 *
 * A page ending inside an ordered partition names the archives of it handed out so far, not a place in that order: an
 * entry committed again meanwhile (the same rows archived again take the entry over, with a later commit time), or
 * committed since, moves in the order, and would otherwise cross the page's end (handed out twice, or never).
 */

/** What the order needs of a committed archive: its inventory entry's commit time. */
export type CommittedArchives = ReadonlyMap<string, Pick<InventoryEntry, 'committedAt'>>;

/** An archive's place in the order: its commit time (none when the inventory does not list it), then its key. */
const PositionSchema = z.object({ key: z.string(), committedAt: z.string().optional() }).strict();
type Position = z.infer<typeof PositionSchema>;

/**
 * A page ending inside an ordered partition: its folder, and the archives of it handed out (`handed`: HANDED_ID_LENGTH
 * characters per archive). Cursors made before carry the last archive handed out instead (`after`), still followed.
 */
const InsideSchema = z
  .object({ partition: z.string(), handed: z.string().optional(), after: PositionSchema.optional() })
  .strict()
  .refine((inside) => (inside.handed === undefined) !== (inside.after === undefined));
type Inside = z.infer<typeof InsideSchema>;

/**
 * Characters naming an archive of a partition in a cursor: 72 bits of the SHA-256 of its key, in base64url (the keys
 * themselves are up to a few hundred characters; a cursor must fit in the execution's state). The chance that an
 * archive not handed out shares the name of one that was is about n² / 2⁷³ for n archives of one partition.
 */
const HANDED_ID_LENGTH = 12;
const handedId = (key: string): string =>
  createHash('sha256').update(key).digest('base64url').slice(0, HANDED_ID_LENGTH);

/** Where a page resumes inside an ordered partition: the archives of it already handed out. */
interface Resumed {
  /** Their names (handedId), concatenated, as the cursor carries them; undefined for a cursor made before. */
  handed?: string;
  /** Whether an archive of the partition was handed out. */
  has: (at: Position) => boolean;
}

function resumedFrom(inside: Inside, order: (a: Position, b: Position) => number): Resumed {
  const { handed, after } = inside;
  if (handed === undefined) {
    // A cursor made before: the archives of its folder up to `after` in the order were handed out. Its partition was
    // that folder alone then: day folders below a month folder, now of its partition, were not handed out.
    return {
      has: (at) => after !== undefined && folderOf(at.key) === inside.partition && order(at, after) <= 0,
    };
  }
  const ids = new Set<string>();
  for (let at = 0; at < handed.length; at += HANDED_ID_LENGTH)
    ids.add(handed.slice(at, at + HANDED_ID_LENGTH));
  return { handed, has: (at) => ids.has(handedId(at.key)) };
}

/** Compares two archives of one partition in the order `strategy` restores them. */
function restoreOrder(strategy: RestoreTask['strategy']): (a: Position, b: Position) => number {
  const newestFirst = strategy !== 'overwrite';
  return (a, b) => {
    if ((a.committedAt === undefined) !== (b.committedAt === undefined))
      return (a.committedAt === undefined) === newestFirst ? 1 : -1;
    if (a.committedAt !== undefined && b.committedAt !== undefined && a.committedAt !== b.committedAt)
      return a.committedAt < b.committedAt === newestFirst ? 1 : -1;
    return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  };
}

/**
 * A page of the Python tool's archives restored newest run first: every archive from `before` on in key order was
 * handed out (legacyPages).
 */
const BeforeSchema = z.object({ before: z.string() }).strict();

/**
 * A page's cursor is "" (the first page), a key (every archive up to it in key order was handed out), or, for a page
 * that ended inside an ordered partition, JSON naming that partition and the archives of it handed out, or, for the
 * Python tool's archives restored newest first, JSON naming the first archive handed out (listed from the start). No
 * archive key is a JSON object: keys end in `.jsonl.gz`.
 */
function parseCursor(cursor: string): { startAfter?: string; inside?: Inside; before?: string } {
  if (cursor === '') return {};
  if (cursor.startsWith('{')) {
    const json = safeJson(cursor);
    const inside = InsideSchema.safeParse(json);
    // Listing after the folder itself starts at the partition's first archive.
    if (inside.success) return { startAfter: inside.data.partition, inside: inside.data };
    const before = BeforeSchema.safeParse(json);
    if (before.success) return { before: before.data.before };
  }
  return { startAfter: cursor };
}

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/** The key to list after for the page that follows `cursor`. */
export const cursorStart = (cursor: string): string | undefined => parseCursor(cursor).startAfter;

/**
 * How many partitions have committed archives of more than one run: those most likely to hold a row in two versions
 * (archived, restored, changed, archived again), of which restore brings back the newest. A key the application
 * inserted again within one run can put a row twice in a partition of one run too; only the rows can tell.
 */
export function partitionsOfSeveralRuns(
  entries: Iterable<Pick<InventoryEntry, 'day' | 'span' | 'runId'>>,
): number {
  const all = [...entries];
  const monthsOfMonthObjects = new Set(
    all.filter((entry) => entry.span === 'month').map((entry) => entry.day.slice(0, 7)),
  );
  const runs = new Map<string, Set<string>>();
  for (const entry of all) {
    const month = entry.day.slice(0, 7);
    const partition = monthsOfMonthObjects.has(month) ? `month ${month}` : `day ${entry.day}`;
    runs.set(partition, (runs.get(partition) ?? new Set()).add(entry.runId));
  }
  return [...runs.values()].filter((ids) => ids.size > 1).length;
}

/** The folder of an archive: a day folder, or a month folder for month objects. */
const folderOf = (key: string): string => key.slice(0, key.lastIndexOf('/') + 1);

const MONTH_FOLDER = /\/year=\d{4}\/month=\d{2}\/$/;

/**
 * Whether the archive under `key` belongs to the partition whose archives are in `folder`: its own folder, and for a
 * month folder (month objects) also the day folders below it, which a key-ordered listing returns right after it.
 */
const inPartition = (folder: string, key: string): boolean =>
  key.startsWith(folder) && (key.indexOf('/', folder.length) === -1 || MONTH_FOLDER.test(folder));

export interface ArchivePage {
  /** In restore order; consecutive archives of an ordered partition carry its folder (`ordered`). */
  archives: ListedArchive[];
  cursor: string;
  more: boolean;
}

/**
 * What a page takes whole: one archive, or up to a group's worth of an ordered partition in restore order; `cursor` is
 * where the next page starts when this one ends after them.
 */
interface Chunk {
  archives: ListedArchive[];
  ordered: boolean;
  folder: string;
  cursor: string;
}

/**
 * The pages of a restore's archives, from `cursor` on: `refs` are the archives in key order, listed after
 * `cursorStart(cursor)`; `committed` gives the inventory's entries of one partition's archives, asked for only when
 * the partition holds several archives or a page ended inside it. Pages hold at most RESTORE_PAGE_ARCHIVES archives
 * and RESTORE_PAGE_KEY_BYTES of keys.
 */
export async function* restorePages(
  refs: AsyncIterable<ArchiveRef>,
  options: {
    strategy: RestoreTask['strategy'];
    cursor: string;
    committed: (keys: string[]) => Promise<CommittedArchives>;
    /** The archives' format: the Python tool's are paged by legacyPages. */
    format?: RestoreTask['format'];
  },
): AsyncGenerator<ArchivePage> {
  if (options.format === 'legacy') {
    yield* legacyPages(refs, options.strategy, options.cursor);
    return;
  }
  const { inside } = parseCursor(options.cursor);
  const order = restoreOrder(options.strategy);
  let page: Chunk[] = [];
  const finish = (more: boolean): ArchivePage => ({
    archives: page.flatMap((chunk) => chunk.archives),
    cursor: page.at(-1)?.cursor ?? options.cursor,
    more,
  });
  for await (const { folder, partition } of partitionsOf(refs, inside?.partition)) {
    const resumed = inside?.partition === folder ? resumedFrom(inside, order) : undefined;
    // However few of its archives are listed now (some may be gone since), a partition a page ended inside is ordered,
    // by the inventory's entries of them.
    const committed: CommittedArchives =
      partition.length > 1 || resumed !== undefined
        ? await options.committed(partition.map((ref) => ref.key))
        : new Map();
    // A page that ended inside this partition found it ordered: it stays so, or its cursor would mean nothing.
    const ordered = partition.length > 1 || resumed !== undefined;
    for (const chunk of chunksOf(partition, folder, ordered, committed, order, resumed)) {
      const archives = page.reduce((n, c) => n + c.archives.length, 0) + chunk.archives.length;
      const keyBytes = [...page, chunk].reduce(
        (n, c) => c.archives.reduce((m, archive) => m + Buffer.byteLength(archive.key), n),
        0,
      );
      const sharing = chunk.ordered && page.some((c) => c.ordered && c.folder === folder);
      const full = archives > RESTORE_PAGE_ARCHIVES || keyBytes > RESTORE_PAGE_KEY_BYTES;
      if (page.length > 0 && (full || sharing)) {
        yield finish(true);
        page = [];
      }
      page.push(chunk);
    }
  }
  if (page.length > 0) yield finish(false);
}

/**
 * Consecutive archives (in key order) of one partition, named by its folder: one folder, or a month's month and day
 * objects. The partition a cursor resumes inside keeps its name though its first archives are gone since (a month
 * object expired or withdrawn), so the archives its pages handed out are known still.
 */
async function* partitionsOf(
  refs: AsyncIterable<ArchiveRef>,
  resumedPartition: string | undefined,
): AsyncGenerator<{ folder: string; partition: ArchiveRef[] }> {
  let current: ArchiveRef[] = [];
  let folder = '';
  for await (const ref of refs) {
    if (current.length > 0 && !inPartition(folder, ref.key)) {
      yield { folder, partition: current };
      current = [];
    }
    if (current.length === 0)
      folder =
        resumedPartition !== undefined && inPartition(resumedPartition, ref.key)
          ? resumedPartition
          : folderOf(ref.key);
    current.push(ref);
  }
  if (current.length > 0) yield { folder, partition: current };
}

/**
 * A partition cut into chunks: one per archive, in key order, when it is not ordered; else in restore order (but for
 * those previous pages handed out, `resumed`), as many as a group may restore together (MAX_ARCHIVES_PER_GROUP,
 * MAX_GROUP_BYTES; a larger archive alone).
 */
function chunksOf(
  partition: ArchiveRef[],
  folder: string,
  ordered: boolean,
  committed: CommittedArchives,
  order: (a: Position, b: Position) => number,
  resumed: Resumed | undefined,
): Chunk[] {
  // Every archive of it in key order up to its last key: where a page ending with the partition resumes.
  const end = partition.at(-1)?.key ?? folder;
  const listed = (ref: ArchiveRef): ListedArchive => ({
    key: ref.key,
    format: ref.format,
    size: ref.size,
    ...(ordered ? { ordered: folder } : {}),
  });
  if (!ordered) {
    return partition.map((ref) => ({ archives: [listed(ref)], ordered, folder, cursor: ref.key }));
  }
  const all = partition.map((ref) => ({
    ref,
    at: { key: ref.key, committedAt: committed.get(ref.key)?.committedAt },
  }));
  const positioned = all.filter(({ at }) => !resumed?.has(at)).sort((a, b) => order(a.at, b.at));
  const chunks: Chunk[] = [];
  let current: typeof positioned = [];
  let bytes = 0;
  // The archives of the partition handed out up to the chunk being closed, previous pages' included.
  let handed =
    resumed?.handed ??
    all
      .filter(({ at }) => resumed?.has(at))
      .map(({ ref }) => handedId(ref.key))
      .join('');
  const close = (last: boolean) => {
    if (current.length === 0) return;
    handed += current.map(({ ref }) => handedId(ref.key)).join('');
    chunks.push({
      archives: current.map(({ ref }) => listed(ref)),
      ordered,
      folder,
      cursor: last ? end : JSON.stringify({ partition: folder, handed } satisfies Inside),
    });
    current = [];
    bytes = 0;
  };
  for (const item of positioned) {
    if (
      current.length === MAX_ARCHIVES_PER_GROUP ||
      (current.length > 0 && bytes + item.ref.size > MAX_GROUP_BYTES)
    )
      close(false);
    current.push(item);
    bytes += item.ref.size;
  }
  close(true);
  return chunks;
}

/**
 * Whether the Python tool's archives are handed out newest run first (legacyPages): under `skip` and `fail`, unless the
 * cursor is a key, which an execution started before they were (it paged in key order) hands on: it goes on as it
 * began, rather than hand out again the archives up to that key.
 */
export const legacyNewestFirst = (strategy: RestoreTask['strategy'], cursor: string): boolean =>
  strategy !== 'overwrite' && parseCursor(cursor).startAfter === undefined;

/** The `ordered` mark of the Python tool's archives: all of a table's are one sequence (legacyPages). */
const LEGACY_SEQUENCE = 'legacy';

/**
 * The pages of the Python tool's archives. Every run of that tool archived every row past its cut-off, rows it had
 * restored too, and its date folders are the run's date, not the rows': a row archived, restored, changed and archived
 * again lies in two folders, and the archives of any two runs may hold it in two versions. So the version archived last
 * wins only if the archives are restored one after the other in run order (key order: the run's date folders, then
 * its `{table}_{YYYYMMDDTHHMMSSZ}_batch_{NNN}` name): newest first under `skip` and `fail`, oldest first under
 * `overwrite`. Each page holds one group's worth, in that order (a group restores its archives one after the other, and
 * pages run one after the other). Oldest first pages on by key; newest first lists the archives up to the previous
 * page's first one (`before`) from the start, once per page.
 */
async function* legacyPages(
  refs: AsyncIterable<ArchiveRef>,
  strategy: RestoreTask['strategy'],
  cursor: string,
): AsyncGenerator<ArchivePage> {
  const listed = (ref: ArchiveRef): ListedArchive => ({
    key: ref.key,
    format: ref.format,
    size: ref.size,
    ordered: LEGACY_SEQUENCE,
  });
  const full = (chunk: ArchiveRef[], bytes: number, next: ArchiveRef) =>
    chunk.length > 0 && (chunk.length === MAX_ARCHIVES_PER_GROUP || bytes + next.size > MAX_GROUP_BYTES);
  if (!legacyNewestFirst(strategy, cursor)) {
    let chunk: ArchiveRef[] = [];
    let bytes = 0;
    const page = (more: boolean): ArchivePage => ({
      archives: chunk.map(listed),
      cursor: chunk.at(-1)?.key ?? cursor,
      more,
    });
    for await (const ref of refs) {
      if (full(chunk, bytes, ref)) {
        yield page(true);
        chunk = [];
        bytes = 0;
      }
      chunk.push(ref);
      bytes += ref.size;
    }
    if (chunk.length > 0) yield page(false);
    return;
  }
  const { before } = parseCursor(cursor);
  const all: ArchiveRef[] = [];
  for await (const ref of refs) {
    if (before !== undefined && ref.key >= before) break;
    if (all.length === MAX_LEGACY_ARCHIVES)
      throw historyFullError(all.length, { format: 'legacy', strategy });
    all.push(ref);
  }
  for (let end = all.length; end > 0; ) {
    const chunk: ArchiveRef[] = [];
    let bytes = 0;
    for (let at = end - 1; at >= 0; at--) {
      const ref = all[at] as ArchiveRef;
      if (full(chunk, bytes, ref)) break;
      chunk.push(ref);
      bytes += ref.size;
    }
    end -= chunk.length;
    const first = chunk.at(-1) as ArchiveRef;
    yield { archives: chunk.map(listed), cursor: JSON.stringify({ before: first.key }), more: end > 0 };
  }
}
