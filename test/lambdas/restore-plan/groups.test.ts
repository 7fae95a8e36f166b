import { describe, expect, it } from 'vitest';
import {
  groupArchives,
  type ListedArchive,
  MAX_ARCHIVES_PER_GROUP,
  MAX_GROUP_BYTES,
  RESTORE_PAGE_ARCHIVES,
} from '../../../lambdas/restore-plan/groups.js';

const archives = (sizes: number[]): ListedArchive[] =>
  sizes.map((size, i) => ({ key: `k/${String(i).padStart(4, '0')}`, format: 'native', size }));
const keysOf = (groups: ReturnType<typeof groupArchives>) =>
  groups.flatMap((g) => g.archives.map((a) => a.key));

describe('groupArchives: a page of archives cut into one invocation each', () => {
  it('keeps every archive once, in key order, and a multiple of the concurrency of groups', () => {
    // Prepare: a full page of day archives of about the same size.
    const page = archives(Array.from({ length: RESTORE_PAGE_ARCHIVES }, (_, i) => 190_000 + (i % 7) * 1000));

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
