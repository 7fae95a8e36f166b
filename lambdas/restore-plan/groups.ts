import type { ArchivePointer } from '../shared/restore/restore-task.js';

/**
 * How a restore's archives are cut into work. A page is what one Map runs; a group is what one restore-file
 * invocation restores, one transaction per archive. The bench's table has 2,500 rows a day: one archive per
 * invocation paid an invocation, seven history events and a state transition or three for each 190 KB archive, more
 * than its COPY. Groups pay them once for many archives.
 */

/**
 * Archives listed for one Map: a page of their results stays below 256 KiB even when each is the largest a result can
 * be (a 1,000-character error, five warnings of 300 characters, a long key: about 2.8 KB; tested).
 */
export const RESTORE_PAGE_ARCHIVES = 64;
/** Archives one invocation restores at most. */
export const MAX_ARCHIVES_PER_GROUP = 16;
/**
 * Compressed bytes one invocation restores at most (a larger archive is a group alone): about 640 MB of lines,
 * a minute or two of COPY at the measured rates, far inside the function's 900 s.
 */
export const MAX_GROUP_BYTES = 64 * 1024 * 1024;
/**
 * History events one restore execution may plan for: 7 per group (the Map iteration and its task) and 16 per page.
 * The other 10,000 of Step Functions' 25,000 are for retries.
 */
export const MAX_PLANNED_HISTORY_EVENTS = 15_000;
export const HISTORY_EVENTS_PER_GROUP = 7;
export const HISTORY_EVENTS_PER_PAGE = 16;

/** An archive as listed: its pointer and its size in bytes. */
export type ListedArchive = ArchivePointer & { size: number };

export interface ArchiveGroup {
  archives: ArchivePointer[];
}

/**
 * Cuts a page's archives (in key order, so a group holds consecutive days) into groups: as few as the limits allow,
 * but a multiple of `concurrency` of them (at most one per archive), so every wave of the Map keeps each of the
 * database's connections busy, with about the same bytes each.
 */
export function groupArchives(archives: ListedArchive[], concurrency: number): ArchiveGroup[] {
  if (archives.length === 0) return [];
  const bytes = archives.reduce((sum, archive) => sum + archive.size, 0);
  const fewest = Math.max(
    Math.ceil(archives.length / MAX_ARCHIVES_PER_GROUP),
    Math.ceil(bytes / MAX_GROUP_BYTES),
  );
  const count = Math.min(archives.length, Math.ceil(fewest / concurrency) * concurrency);
  const groups: ArchiveGroup[] = [];
  let current: ArchivePointer[] = [];
  let currentBytes = 0;
  let bytesLeft = bytes;
  for (const { size, ...pointer } of archives) {
    // The current group's fair share of what is left, its own bytes included; an archive joins it unless that
    // overshoots the share by more than half the archive.
    const share = bytesLeft / Math.max(1, count - groups.length);
    const full =
      current.length === MAX_ARCHIVES_PER_GROUP ||
      (current.length > 0 &&
        (currentBytes + size > MAX_GROUP_BYTES ||
          (groups.length < count - 1 && currentBytes + size / 2 > share)));
    if (full) {
      groups.push({ archives: current });
      bytesLeft -= currentBytes;
      current = [];
      currentBytes = 0;
    }
    current.push(pointer);
    currentBytes += size;
  }
  groups.push({ archives: current });
  return groups;
}
