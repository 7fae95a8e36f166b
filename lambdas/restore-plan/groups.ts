import { ConfigError } from '../shared/errors/step-errors.js';
import type { ArchivePointer, RestoreTask } from '../shared/restore/restore-task.js';

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
/**
 * Bytes of keys one page lists at most: each key is in the page and in its archive's result, so keys of up to S3's
 * 1,024 bytes (a long s3.prefix, long names) would take a full page past 256 KiB. Keys of 512 bytes or less never
 * shorten a page (tested).
 */
export const RESTORE_PAGE_KEY_BYTES = 32 * 1024;
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
/**
 * The most of the Python tool's archives one execution restores: a page of them is one group of at most
 * MAX_ARCHIVES_PER_GROUP (pages.ts legacyPages). Listing newest first holds them all before the first page, so it
 * stops past this many: a bucket writer's tiny objects under the tool's layout must not fill the function first.
 */
export const MAX_LEGACY_ARCHIVES =
  Math.floor(MAX_PLANNED_HISTORY_EVENTS / (HISTORY_EVENTS_PER_PAGE + HISTORY_EVENTS_PER_GROUP)) *
  MAX_ARCHIVES_PER_GROUP;

/** More archives match than one execution's history can hold: `archives` of them listed so far. */
export function historyFullError(
  archives: number,
  task: Pick<RestoreTask, 'format' | 'strategy'>,
): ConfigError {
  return new ConfigError(
    `more archives match than one execution's history can hold (over ${archives.toLocaleString('en-US')} so far); restore them in several executions by day range (mode "range")${task.format === 'legacy' ? `, the Python tool's run dates ${task.strategy === 'overwrite' ? 'earliest' : 'latest'} first, so the version of a row archived last wins` : ''}`,
  );
}

/**
 * An archive as listed: its pointer, its size in bytes, and, when it must be restored in order with the archives of
 * its partition beside it (pages.ts), that partition's folder: no group is cut between them.
 */
export type ListedArchive = ArchivePointer & { size: number; ordered?: string };

export interface ArchiveGroup {
  archives: ArchivePointer[];
}

/**
 * Cuts a page's archives (in key order, so a group holds consecutive days) into groups: as few as the limits allow,
 * but a multiple of `concurrency` of them (at most one per archive), so every wave of the Map keeps each of the
 * database's connections busy, with about the same bytes each. Consecutive archives of one ordered partition stay in
 * one group (the page holds no more of them than a group may), which restores them one after the other.
 */
export function groupArchives(archives: ListedArchive[], concurrency: number): ArchiveGroup[] {
  if (archives.length === 0) return [];
  const runs = orderedRuns(archives);
  const bytes = archives.reduce((sum, archive) => sum + archive.size, 0);
  const fewest = Math.max(
    Math.ceil(archives.length / MAX_ARCHIVES_PER_GROUP),
    Math.ceil(bytes / MAX_GROUP_BYTES),
  );
  const count = Math.min(runs.length, Math.ceil(fewest / concurrency) * concurrency);
  const groups: ArchiveGroup[] = [];
  let current: ArchivePointer[] = [];
  let currentBytes = 0;
  let bytesLeft = bytes;
  for (const run of runs) {
    const size = run.reduce((sum, archive) => sum + archive.size, 0);
    // The current group's fair share of what is left, its own bytes included; a run joins it unless that
    // overshoots the share by more than half the run.
    const share = bytesLeft / Math.max(1, count - groups.length);
    const full =
      current.length > 0 &&
      (current.length + run.length > MAX_ARCHIVES_PER_GROUP ||
        currentBytes + size > MAX_GROUP_BYTES ||
        (groups.length < count - 1 && currentBytes + size / 2 > share));
    if (full) {
      groups.push({ archives: current });
      bytesLeft -= currentBytes;
      current = [];
      currentBytes = 0;
    }
    for (const { key, format } of run) current.push({ key, format });
    currentBytes += size;
  }
  groups.push({ archives: current });
  return groups;
}

/** The archives as runs that no group boundary may cut: consecutive archives of one ordered partition, else one each. */
function orderedRuns(archives: ListedArchive[]): ListedArchive[][] {
  const runs: ListedArchive[][] = [];
  for (const archive of archives) {
    const last = runs.at(-1);
    if (archive.ordered !== undefined && last?.[0]?.ordered === archive.ordered) last.push(archive);
    else runs.push([archive]);
  }
  return runs;
}
