import { describe, expect, it } from 'vitest';
import {
  groupArchives,
  HISTORY_EVENTS_PER_GROUP,
  HISTORY_EVENTS_PER_PAGE,
  type ListedArchive,
  MAX_ARCHIVES_PER_GROUP,
  MAX_GROUP_BYTES,
  MAX_LEGACY_ARCHIVES,
  MAX_PLANNED_HISTORY_EVENTS,
  RESTORE_PAGE_ARCHIVES,
} from '../../../lambdas/restore-plan/groups.js';

const archives = (sizes: number[]): ListedArchive[] =>
  sizes.map((size, i) => ({ key: `k/${String(i).padStart(4, '0')}`, format: 'native', size }));
const keysOf = (groups: ReturnType<typeof groupArchives>) =>
  groups.flatMap((g) => g.archives.map((a) => a.key));

describe('groupArchives: a page of archives cut into one invocation each', () => {
  it('keeps every archive once, in key order, and a multiple of the concurrency of groups', () => {
    // Prepare: 100 day archives of about the same size.
    const page = archives(Array.from({ length: 100 }, (_, i) => 190_000 + (i % 7) * 1000));

    // Act
    const groups = groupArchives(page, 4);

    // Assess
    expect(keysOf(groups)).toEqual(page.map((a) => a.key));
    expect(groups.length % 4).toBe(0);
    expect(groups.every((g) => g.archives.length <= MAX_ARCHIVES_PER_GROUP)).toBe(true);
    const sizes = groups.map((g) => g.archives.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(2);
  });

  it('gives each of a few archives its own invocation, so they run at once', () => {
    // Act
    const groups = groupArchives(archives([10, 10, 10]), 4);

    // Assess
    expect(groups.map((g) => g.archives.length)).toEqual([1, 1, 1]);
  });

  it('never puts more than MAX_GROUP_BYTES in a group of several; a larger archive goes alone', () => {
    // Prepare
    const big = MAX_GROUP_BYTES + 1;
    const page = archives([big, MAX_GROUP_BYTES / 2, MAX_GROUP_BYTES / 2, MAX_GROUP_BYTES / 2, 1, 1]);

    // Act
    const groups = groupArchives(page, 1);

    // Assess
    expect(keysOf(groups)).toEqual(page.map((a) => a.key));
    for (const group of groups) {
      const bytes = group.archives.reduce((n, a) => n + (page.find((p) => p.key === a.key)?.size ?? 0), 0);
      if (group.archives.length > 1) expect(bytes).toBeLessThanOrEqual(MAX_GROUP_BYTES);
    }
    expect(groups[0]?.archives).toHaveLength(1);
  });

  it('has nothing to cut in an empty page', () => {
    // Act, Assess
    expect(groupArchives([], 2)).toEqual([]);
  });
});

describe('a restore of 10M rows within the Step Functions limits', () => {
  it('plans far fewer history events than 25,000 and keeps a page of worst-case results under 256 KiB', () => {
    // Prepare: the bench's table, 2,500 rows (about 190 KB) an archive: 4,000 archives, at concurrency 2.
    const all = archives(Array.from({ length: 4000 }, () => 190_000));

    // Act: as the plan counts them, page by page.
    let events = 0;
    let largestPage = 0;
    for (let at = 0; at < all.length; at += RESTORE_PAGE_ARCHIVES) {
      const groups = groupArchives(all.slice(at, at + RESTORE_PAGE_ARCHIVES), 2);
      events += HISTORY_EVENTS_PER_PAGE + HISTORY_EVENTS_PER_GROUP * groups.length;
      // Every archive of the page failed with the longest error and the most warnings a result may carry.
      const page = groups.map((group) => ({
        results: group.archives.map((archive) => ({
          key: archive.key.padEnd(200, 'k'),
          status: 'failed',
          rows: 0,
          inserted: 0,
          skipped: 0,
          overwritten: 0,
          warnings: Array.from({ length: 5 }, () => 'w'.repeat(301)),
          error: 'e'.repeat(1000),
        })),
      }));
      largestPage = Math.max(largestPage, Buffer.byteLength(JSON.stringify(page)));
    }

    // Assess
    expect(events).toBeLessThan(MAX_PLANNED_HISTORY_EVENTS);
    expect(events).toBeLessThan(4000);
    expect(largestPage).toBeLessThan(256 * 1024);
  });
});

describe('the most legacy archives one execution restores', () => {
  it('is exactly what the plan admits, a page of one group of at most 16 each', () => {
    // Prepare
    const pageEvents = HISTORY_EVENTS_PER_PAGE + HISTORY_EVENTS_PER_GROUP;
    const events = (archives: number) => Math.ceil(archives / MAX_ARCHIVES_PER_GROUP) * pageEvents;

    // Act, Assess: listing stops past it, where the plan would refuse them anyway
    expect(events(MAX_LEGACY_ARCHIVES)).toBeLessThanOrEqual(MAX_PLANNED_HISTORY_EVENTS);
    expect(events(MAX_LEGACY_ARCHIVES + 1)).toBeGreaterThan(MAX_PLANNED_HISTORY_EVENTS);
  });
});
