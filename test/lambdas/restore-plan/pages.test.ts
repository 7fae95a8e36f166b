import { describe, expect, it } from 'vitest';
import {
  groupArchives,
  MAX_ARCHIVES_PER_GROUP,
  MAX_GROUP_BYTES,
} from '../../../lambdas/restore-plan/groups.js';
import {
  type ArchivePage,
  type CommittedArchives,
  cursorStart,
  partitionsOfSeveralRuns,
  restorePages,
} from '../../../lambdas/restore-plan/pages.js';
import type { ArchiveRef } from '../../../lambdas/shared/archive/catalog.js';
import { ConfigError } from '../../../lambdas/shared/errors/step-errors.js';

const DAY = 'archive/app/public.events/year=2025/month=01/day=07/';
const NEXT_DAY = 'archive/app/public.events/year=2025/month=01/day=08/';

const ref = (key: string, size = 1000): ArchiveRef => ({
  key,
  format: 'native',
  day: '2025-01-07',
  span: 'day',
  size,
  storageClass: 'STANDARD',
});

/** The listing as the store gives it: in key order, after `startAfter`. */
async function* listing(refs: ArchiveRef[], startAfter?: string): AsyncGenerator<ArchiveRef> {
  for (const r of [...refs].sort((a, b) => (a.key < b.key ? -1 : 1)))
    if (startAfter === undefined || r.key > startAfter) yield r;
}

/** Every page a restore lists, each from the cursor the one before it returned, as ListPage does. */
async function allPages(
  refs: ArchiveRef[],
  strategy: 'skip' | 'overwrite' | 'fail',
  committed: CommittedArchives,
  format: ArchiveRef['format'] = 'native',
): Promise<ArchivePage[]> {
  const pages: ArchivePage[] = [];
  let cursor = '';
  for (;;) {
    const next = await restorePages(listing(refs, cursorStart(cursor)), {
      strategy,
      cursor,
      committed: async () => committed,
      format,
    }).next();
    if (next.done) return pages;
    pages.push(next.value);
    cursor = next.value.cursor;
    if (!next.value.more) return pages;
  }
}

const keysOf = (pages: ArchivePage[]) => pages.flatMap((page) => page.archives.map((a) => a.key));

describe('restorePages: the newest committed version of a row wins', () => {
  // Prepare: a day archived (run-1), its rows restored, one changed and archived again (run-2, the key sorting first).
  const old = `${DAY}20250107-bbbbbbbbbbbbbbbbbbbbbbbb.jsonl.gz`;
  const redacted = `${DAY}20250107-aaaaaaaaaaaaaaaaaaaaaaaa.jsonl.gz`;
  const committed: CommittedArchives = new Map([
    [old, { committedAt: '2025-02-01T00:00:00.000Z' }],
    [redacted, { committedAt: '2025-03-01T00:00:00.000Z' }],
  ]);

  it('restores the newest first under skip and fail (older versions find their rows there), the oldest first under overwrite', async () => {
    // Act
    const skip = await allPages([ref(old), ref(redacted)], 'skip', committed);
    const fail = await allPages([ref(old), ref(redacted)], 'fail', committed);
    const overwrite = await allPages([ref(redacted), ref(old)], 'overwrite', committed);

    // Assess
    expect(keysOf(skip)).toEqual([redacted, old]);
    expect(keysOf(fail)).toEqual([redacted, old]);
    expect(keysOf(overwrite)).toEqual([old, redacted]);
  });

  it('puts the archives of such a day in one group, so one invocation restores them in that order', async () => {
    // Prepare: another day beside it, of three archives: ordered too, in a group of its own.
    const others = ['01', '02', '03'].map((n) => ref(`${NEXT_DAY}2025010${n}-${n.repeat(12)}.jsonl.gz`));

    // Act
    const [page] = await allPages([ref(old), ref(redacted), ...others], 'overwrite', committed);
    const groups = groupArchives(page?.archives ?? [], 4);

    // Assess
    expect(groups.map((g) => g.archives.map((a) => a.key))).toContainEqual([old, redacted]);
    expect(groups).toHaveLength(2);
  });

  it('counts an archive the inventory does not list as older than every committed one', async () => {
    // Prepare: written before the inventory existed, its key sorting between the two.
    const unlisted = `${DAY}20250107-abababababababababababab.jsonl.gz`;
    const refs = [ref(old), ref(redacted), ref(unlisted)];

    // Act
    const skip = await allPages(refs, 'skip', committed);
    const overwrite = await allPages(refs, 'overwrite', committed);

    // Assess
    expect(keysOf(skip)).toEqual([redacted, old, unlisted]);
    expect(keysOf(overwrite)).toEqual([unlisted, old, redacted]);
  });

  it('orders a day of one run too: a key one batch deleted can be inserted again and archived by a later batch', async () => {
    // Prepare: four batches of one run, committed in key order; the last holds the key's newest version.
    const keys = ['a', 'b', 'c', 'd'].map((c) => `${DAY}20250107-${c.repeat(24)}.jsonl.gz`);
    const oneRun: CommittedArchives = new Map(
      keys.map((key, i) => [key, { committedAt: `2025-02-01T00:00:0${i}.000Z` }]),
    );

    // Act
    const pages = await allPages(
      keys.map((key) => ref(key)),
      'skip',
      oneRun,
    );

    // Assess: newest first, in one group
    expect(keysOf(pages)).toEqual([...keys].reverse());
    expect(groupArchives(pages[0]?.archives ?? [], 4)).toHaveLength(1);
  });
});

describe('restorePages: a month archived as a month object, then again as day objects (objectSpan switched)', () => {
  // Prepare: the month's rows archived in one month object (run-1), restored, one redacted, archived again by day
  // (run-2); another day of the month archived by run-2 only. A key-ordered listing gives the month object first.
  const MONTH = 'archive/app/public.events/year=2025/month=01/';
  const monthObject = `${MONTH}202501-ffffffffffffffffffffffff.jsonl.gz`;
  const redactedDay = `${DAY}20250107-aaaaaaaaaaaaaaaaaaaaaaaa.jsonl.gz`;
  const otherDay = `${NEXT_DAY}20250108-bbbbbbbbbbbbbbbbbbbbbbbb.jsonl.gz`;
  const committed: CommittedArchives = new Map([
    [monthObject, { committedAt: '2025-02-01T00:00:00.000Z' }],
    [redactedDay, { committedAt: '2025-03-01T00:00:00.000Z' }],
    [otherDay, { committedAt: '2025-03-01T00:00:01.000Z' }],
  ]);
  const refs = [ref(monthObject), ref(redactedDay), ref(otherDay)];

  it('orders the month object and the day objects of its month as one partition, newest first under skip', async () => {
    // Act
    const skip = await allPages(refs, 'skip', committed);
    const overwrite = await allPages(refs, 'overwrite', committed);

    // Assess
    expect(keysOf(skip)).toEqual([otherDay, redactedDay, monthObject]);
    expect(keysOf(overwrite)).toEqual([monthObject, redactedDay, otherDay]);
    expect(new Set(skip.flatMap((page) => page.archives.map((a) => a.ordered)))).toEqual(new Set([MONTH]));
  });

  it('counts such a month in the plan as a partition that may hold a row twice', () => {
    // Act, Assess
    expect(
      partitionsOfSeveralRuns([
        { day: '2025-01-01', span: 'month', runId: 'run-1' },
        { day: '2025-01-07', span: 'day', runId: 'run-2' },
        { day: '2025-01-08', span: 'day', runId: 'run-2' },
      ]),
    ).toBe(1);
  });
});

/** 40 archives of one day from two runs, a minute apart in commit order, with keys in another order. */
const TWO_RUN_DAY = (() => {
  const keys = Array.from(
    { length: 40 },
    (_, i) => `${DAY}20250107-${String((i * 7919) % 1000).padStart(24, '0')}.jsonl.gz`,
  );
  const committed: CommittedArchives = new Map(
    keys.map((key, i) => [
      key,
      {
        committedAt: `2025-02-01T00:${String(i).padStart(2, '0')}:00.000Z`,
      },
    ]),
  );
  return { keys, committed };
})();

describe('restorePages: a day with two versions and more archives than a group takes', () => {
  const { keys, committed } = TWO_RUN_DAY;
  const others = Array.from({ length: 30 }, (_, i) =>
    ref(`${NEXT_DAY}20250108-${String(i).padStart(24, '0')}.jsonl.gz`),
  );

  it.each(['skip', 'overwrite'] as const)(
    'hands out each archive once, in the order %s restores them, no page running two groups of that day at once',
    async (strategy) => {
      // Act
      const pages = await allPages([...keys.map((key) => ref(key)), ...others], strategy, committed);

      // Assess
      const newestFirst = [...keys].reverse();
      const day = keysOf(pages).filter((key) => key.startsWith(DAY));
      expect(day).toEqual(strategy === 'skip' ? newestFirst : keys);
      expect(keysOf(pages).filter((key) => key.startsWith(NEXT_DAY))).toEqual(others.map((o) => o.key));
      for (const page of pages) {
        const groups = groupArchives(page.archives, 4);
        const holding = groups.filter((g) => g.archives.some((a) => a.key.startsWith(DAY)));
        expect(holding.length).toBeLessThanOrEqual(1);
        expect(groups.every((g) => g.archives.length <= MAX_ARCHIVES_PER_GROUP)).toBe(true);
      }
      expect(pages.at(-1)?.more).toBe(false);
    },
  );
});

/**
 * The Python tool's archives of 40 batches over three runs, in date folders of the runs' days: any two runs may hold a
 * row in two versions, whatever their folders.
 */
describe("restorePages: the Python tool's archives, one sequence in run order", () => {
  const LEGACY = 'archive/app/audit_log/';
  const legacyRef = (day: string, stamp: string, batch: number, size = 1000): ArchiveRef => ({
    key: `${LEGACY}year=2025/month=03/day=${day}/audit_log_${stamp}_batch_${String(batch).padStart(3, '0')}.jsonl.gz`,
    format: 'legacy',
    day: `2025-03-${day}`,
    span: 'day',
    size,
    storageClass: 'STANDARD',
  });
  const refs = [
    ...Array.from({ length: 15 }, (_, i) => legacyRef('01', '20250301T020000Z', i + 1)),
    ...Array.from({ length: 20 }, (_, i) => legacyRef('02', '20250302T020000Z', i + 1)),
    ...Array.from({ length: 5 }, (_, i) => legacyRef('02', '20250302T140000Z', i + 1)),
  ];
  const runOrder = refs.map((r) => r.key);

  it.each([
    ['skip', [...runOrder].reverse()],
    ['fail', [...runOrder].reverse()],
    ['overwrite', runOrder],
  ] as const)(
    'hands out each archive once under %s, in its order, one group a page',
    async (strategy, order) => {
      // Act
      const pages = await allPages(refs, strategy, new Map(), 'legacy');

      // Assess: newest run first under skip and fail, oldest first under overwrite; pages run one after the other, so
      // one group each keeps the order.
      expect(keysOf(pages)).toEqual(order);
      for (const page of pages) expect(groupArchives(page.archives, 4)).toHaveLength(1);
      expect(pages.map((page) => page.archives.length)).toEqual([16, 16, 8]);
      expect(pages.map((page) => page.more)).toEqual([true, true, false]);
    },
  );

  it('goes on in key order from a key cursor, which an execution started before newest-first paging hands on', async () => {
    // Prepare: the cursor of a page that ended at the 10th archive in key order
    const cursor = runOrder[9] ?? '';

    // Act
    const next = await restorePages(listing(refs, cursorStart(cursor)), {
      strategy: 'skip',
      cursor,
      committed: async () => new Map(),
      format: 'legacy',
    }).next();

    // Assess: the archives after it, none at or before it again
    const page = next.done ? undefined : next.value;
    expect(page?.archives.map((a) => a.key)).toEqual(runOrder.slice(10, 26));
  });

  it('cuts a page before an archive that would take its group past the bytes a group restores', async () => {
    // Prepare: the newest archive takes most of a group's bytes alone
    const big = legacyRef('03', '20250303T020000Z', 1, MAX_GROUP_BYTES - 10);
    const older = [legacyRef('01', '20250301T020000Z', 1, 20), legacyRef('02', '20250302T020000Z', 1, 20)];

    // Act
    const pages = await allPages([...older, big], 'skip', new Map(), 'legacy');

    // Assess
    expect(pages.map((page) => page.archives.map((a) => a.key))).toEqual([
      [big.key],
      [older[1]?.key, older[0]?.key],
    ]);
  });
  it('refuses newest first once more archives are listed than one execution restores, holding no more of them', async () => {
    // Prepare: a bucket writer's tiny objects under the tool's layout, endless as far as the listing goes (a million
    // of them held as refs took some 490 MB, nearly all of the plan function's 512).
    let listed = 0;
    async function* planted(): AsyncGenerator<ArchiveRef> {
      for (; listed < 200_000; listed++) yield legacyRef('01', '20250301T020000Z', listed + 1);
    }

    // Act
    const first = restorePages(planted(), {
      strategy: 'skip',
      cursor: '',
      committed: async () => new Map(),
      format: 'legacy',
    }).next();

    // Assess: refused by name as the plan refuses what the history cannot hold, the listing stopped soon after
    await expect(first).rejects.toThrow(ConfigError);
    await expect(first).rejects.toThrow(/more archives match than one execution's history can hold/);
    expect(listed).toBeLessThanOrEqual(20_000);
  });
});

describe('partitionsOfSeveralRuns: what the plan tells of days that may hold a row twice', () => {
  it('counts the days and months whose committed archives come from more than one run', () => {
    // Prepare: a day of two batches of one run, a day archived again by a later run, a month object of two runs.
    const entries = [
      { day: '2025-01-07', runId: 'run-1' },
      { day: '2025-01-07', runId: 'run-1' },
      { day: '2025-01-08', runId: 'run-1' },
      { day: '2025-01-08', runId: 'run-2' },
      { day: '2025-02-01', span: 'month' as const, runId: 'run-1' },
      { day: '2025-02-01', span: 'month' as const, runId: 'run-3' },
      { day: '2025-02-01', span: 'day' as const, runId: 'run-4' },
    ];

    // Act, Assess
    expect(partitionsOfSeveralRuns(entries)).toBe(2);
  });
});

/**
 * Every page a restore lists, each from the cursor the one before it returned, with the bucket and the inventory as
 * they are when that page is listed (`page` counts from 0).
 */
async function pagesOver(
  strategy: 'skip' | 'overwrite' | 'fail',
  refsAt: (page: number) => ArchiveRef[],
  committedAt: (page: number) => CommittedArchives,
  cursor = '',
): Promise<ArchivePage[]> {
  const pages: ArchivePage[] = [];
  for (;;) {
    const at = pages.length;
    const next = await restorePages(listing(refsAt(at), cursorStart(cursor)), {
      strategy,
      cursor,
      committed: async () => committedAt(at),
    }).next();
    if (next.done) return pages;
    pages.push(next.value);
    cursor = next.value.cursor;
    if (!next.value.more) return pages;
  }
}

describe('restorePages: a day cut over several pages while its inventory or its archives change', () => {
  const { keys, committed } = TWO_RUN_DAY;
  /** The inventory once `key`'s rows were archived again: its entry taken over by a later commit. */
  const committedAgain = (key: string): CommittedArchives =>
    new Map([...committed, [key, { committedAt: '2025-03-01T00:00:00.000Z' }]]);
  const refs = keys.map((key) => ref(key));

  it.each([
    // The newest first: the first page takes the 16 newest; an older one not yet handed out becomes the newest.
    ['skip', 5],
    // The oldest first: the first page takes the 16 oldest; one of them becomes the newest.
    ['overwrite', 3],
  ] as const)(
    'under %s hands out each archive once though an entry is committed again between pages',
    async (strategy, moved) => {
      // Act
      const pages = await pagesOver(
        strategy,
        () => refs,
        (page) => (page === 0 ? committed : committedAgain(keys[moved] ?? '')),
      );

      // Assess
      const handed = keysOf(pages);
      expect(pages).toHaveLength(3);
      expect([...handed].sort()).toEqual([...keys].sort());
      // What the first page handed out stays before the rest, and the archive that moved goes where it is now.
      const first = strategy === 'skip' ? [...keys].reverse().slice(0, 16) : keys.slice(0, 16);
      expect(keysOf(pages.slice(0, 1))).toEqual(first);
      if (strategy === 'skip') expect(keysOf(pages.slice(1, 2))[0]).toBe(keys[moved]);
    },
  );

  it.each([
    // Its one archive left was handed out by the first page: it is not again.
    ['skip', 20, []],
    // Its one archive left was not: it is now.
    ['overwrite', 27, [27]],
  ] as const)(
    'under %s resumes a day that ended a page with one archive of it left in the bucket',
    async (strategy, left, expected) => {
      // Prepare: 20 of the archives (two runs); after the first page, all but one of them are gone (expired).
      const day = refs.slice(10, 30);

      // Act
      const pages = await pagesOver(
        strategy,
        (page) => (page === 0 ? day : day.filter((r) => r.key === keys[left])),
        () => committed,
      );

      // Assess
      expect(keysOf(pages.slice(0, 1))).toHaveLength(16);
      expect(keysOf(pages.slice(1))).toEqual(expected.map((i) => keys[i]));
    },
  );

  it('follows a cursor made before cursors named the archives handed out, and hands out the rest once', async () => {
    // Prepare: a first page that handed out the 16 newest under skip, its cursor naming the last of them.
    const oldCursor = JSON.stringify({
      partition: DAY,
      after: { key: keys[24], committedAt: committed.get(keys[24] ?? '')?.committedAt },
    });

    // Act
    const pages = await pagesOver(
      'skip',
      () => refs,
      () => committed,
      oldCursor,
    );

    // Assess
    expect(keysOf(pages)).toEqual([...keys].reverse().slice(16));
    expect(pages.at(-1)?.more).toBe(false);
  });
});

const SWITCHED_MONTH = 'archive/app/public.events/year=2025/month=01/';

/**
 * A month archived as one month object (run-1), then, objectSpan switched to day, its rows restored and archived
 * again as 40 day objects over 4 days (run-2). The month object is the oldest object: a lifecycle expiry
 * (aws.storage.expireAfterDays) removes it first, possibly while a restore is between two pages.
 */
const SWITCHED = (() => {
  const monthObject = `${SWITCHED_MONTH}202501-${'f'.repeat(24)}.jsonl.gz`;
  const dayKeys = Array.from({ length: 40 }, (_, i) => {
    const dd = String(7 + Math.floor(i / 10)).padStart(2, '0');
    return `${SWITCHED_MONTH}day=${dd}/202501${dd}-${String(i).padStart(24, '0')}.jsonl.gz`;
  });
  const committed: CommittedArchives = new Map([
    [monthObject, { committedAt: '2025-02-01T00:00:00.000Z' }],
    ...dayKeys.map(
      (key, i) => [key, { committedAt: `2025-03-01T00:${String(i).padStart(2, '0')}:00.000Z` }] as const,
    ),
  ]);
  return { monthObject, dayKeys, committed };
})();

describe('restorePages: a month of month and day objects whose month object goes between two pages', () => {
  const { monthObject, dayKeys, committed } = SWITCHED;
  const all = [monthObject, ...dayKeys].map((key) => ref(key));
  const withoutMonth = dayKeys.map((key) => ref(key));

  it.each(['skip', 'overwrite', 'fail'] as const)(
    'under %s hands out every day object once though the month object expired after the first page',
    async (strategy) => {
      // Act: the first page ends inside the month partition (cursor names MONTH); the month object is gone after it.
      const pages = await pagesOver(
        strategy,
        (page) => (page === 0 ? all : withoutMonth),
        () => committed,
      );

      // Assess
      expect(JSON.parse(pages[0]?.cursor ?? '{}').partition).toBe(SWITCHED_MONTH);
      const handed = keysOf(pages).filter((key) => key !== monthObject);
      const twice = handed.filter((key, i) => handed.indexOf(key) !== i);
      expect(twice).toEqual([]);
      expect([...new Set(handed)].sort()).toEqual([...dayKeys].sort());
    },
  );
});

describe('restorePages: a cursor made before cursors named the archives handed out (`after`), over a month folder', () => {
  const { monthObject, dayKeys, committed } = SWITCHED;
  // A second month object of a later run, so the month folder was an ordered partition for the code that made the
  // cursor (then: the month folder alone, day folders being partitions of their own).
  const monthAgain = `${SWITCHED_MONTH}202501-${'e'.repeat(24)}.jsonl.gz`;
  const committedBoth: CommittedArchives = new Map([
    ...committed,
    [monthAgain, { committedAt: '2025-02-15T00:00:00.000Z' }],
  ]);
  const all = [monthObject, monthAgain, ...dayKeys].map((key) => ref(key));

  it('hands out the day objects of that month, which the old page never did', async () => {
    // Prepare: under skip the old code handed out the newest month object first (monthAgain) and ended the page there.
    const oldCursor = JSON.stringify({
      partition: SWITCHED_MONTH,
      after: { key: monthAgain, committedAt: committedBoth.get(monthAgain)?.committedAt },
    });

    // Act
    const pages = await pagesOver(
      'skip',
      () => all,
      () => committedBoth,
      oldCursor,
    );

    // Assess: the rest of the month object folder (monthObject) and every day object, each once.
    expect([...keysOf(pages)].sort()).toEqual([monthObject, ...dayKeys].sort());
  });
});

describe('restorePages: the longest keys', () => {
  /** One archive a day from 2025-01-01, each key `bytes` long. */
  const dayKeys = (days: number, bytes: number) =>
    Array.from({ length: days }, (_, at) => {
      const [y, m, d] = new Date(Date.UTC(2025, 0, 1 + at)).toISOString().slice(0, 10).split('-');
      return `/year=${y}/month=${m}/day=${d}/${y}${m}${d}-${'a'.repeat(24)}.jsonl.gz`.padStart(bytes, 'p');
    });

  it("ends a page before its keys and their worst-case results could pass Step Functions' 256 KiB", async () => {
    // Prepare: 200 day archives of 1,024-byte keys, the longest config validation lets a table's keys be (S3's).
    const keys = dayKeys(200, 1024);

    // Act
    const pages = await allPages(
      keys.map((key) => ref(key)),
      'skip',
      new Map(),
    );

    // Assess: the state after a page's Map holds its groups and an outcome per archive, as long as one can be: longer
    // than a failed result (a 1,000-character error, five warnings of 300: 2.6 KB and its key) is the outcome of an
    // archive whose restore threw (its pointer and the Lambda error's cause: the message, which the step handler
    // clips to 1,000 bytes of JSON, twice, and the stack's frames: 4 KB allowed).
    expect(keysOf(pages)).toEqual(keys);
    for (const page of pages) {
      const groups = groupArchives(page.archives, 2);
      const results = groups.map((group) => ({
        outcomes: group.archives.map(({ key, format }) => ({
          archives: [{ key, format }],
          status: 'failed',
          error: 'StorageUnavailableError',
          cause: 'c'.repeat(4000),
        })),
      }));
      const state = JSON.stringify({ page: { groups, cursor: page.cursor, more: page.more }, results });
      expect(Buffer.byteLength(state)).toBeLessThan(240 * 1024);
    }
  });

  it('keeps 64 archives a page for keys of up to 512 bytes', async () => {
    // Prepare
    const keys = dayKeys(128, 512);

    // Act
    const pages = await allPages(
      keys.map((key) => ref(key)),
      'skip',
      new Map(),
    );

    // Assess
    expect(pages.map((page) => page.archives.length)).toEqual([64, 64]);
  });
});
