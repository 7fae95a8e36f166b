import { describe, expect, it } from 'vitest';
import { measureTable } from '../../cli/cost-measure.js';
import { DEFAULT_ARCHIVE_BYTES_PER_ROW } from '../../cli/cost-model.js';
import { runLocalArchive } from '../../local/run.js';
import { archiverTestbed, seedEvents } from '../support/fixtures.js';

describe('audit-archiver cost: live tables from PostgreSQL statistics and measured archives', () => {
  const bed = archiverTestbed(
    async (db) => {
      // 640 rows over the 32 UTC days before today, one every 1.2 hours; with a 30-day retention the cut-off is the
      // midnight 30 days ago: the 39 rows of the two oldest days are eligible (the 40th sits on the cut-off itself).
      await seedEvents(db.client, 'events', 640, 32);
    },
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );

  it('counts rows when there are no statistics, reads the histogram once analyzed, then measures archives', async () => {
    // Act
    const counted = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events', {
      now: bed.db.now().getTime(),
    });
    await bed.db.client.query('ANALYZE public.events');
    const fromStats = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events', {
      now: bed.db.now().getTime(),
    });
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const store = bed.local.deps().store;
    const measured = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events', {
      store,
      now: bed.db.now().getTime(),
    });

    // Assess
    expect(counted).toMatchObject({ rows: 640, retentionDays: 30 });
    expect(counted.eligibleRows).toBe(39);
    expect(counted.monthlyRows).toBeGreaterThanOrEqual(600);
    expect(counted.eligibleDays).toBe(2);
    expect(fromStats.rows).toBe(640);
    expect(Math.abs(fromStats.eligibleRows - 40)).toBeLessThanOrEqual(10);
    expect(fromStats.bytesPerRowSource).toBe('row width');
    expect(measured.bytesPerRowSource).toBe('measured archives');
    expect(measured.archiveBytesPerRow).toBeGreaterThan(10);
    expect(measured.archiveBytesPerRow).not.toBe(DEFAULT_ARCHIVE_BYTES_PER_ROW);
    expect(counted.archived).toEqual({ bytes: 0, objects: 0 });
    expect([2, 3]).toContain(measured.archived.objects);
    expect(measured.archived.bytes).toBeCloseTo(measured.archiveBytesPerRow * counted.eligibleRows, -1);
    // The run deleted the eligible rows, and nothing analyzed the table since: its histogram still holds them. They
    // are archived (counted above as archives already), not rows to archive now, which `plan` counts as none.
    expect(measured.eligibleRows).toBe(0);
    expect(measured.eligibleDays).toBe(0);
  });
});

describe('audit-archiver cost: counts the rows a run takes, of a table with sentinels and of a month table', () => {
  const bed = archiverTestbed(
    async (db) => {
      // 100 rows, one every 9.6 hours over the 40 days before now, and -infinity, infinity and a BC date: a run
      // archives none of those three (no calendar day of year 1 AD or later), so they count neither as eligible rows
      // nor as days of objects to write.
      await db.client.query(`
        CREATE TABLE public.sentinel_events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, note text);
        CREATE INDEX ON public.sentinel_events (created_at);
        INSERT INTO public.sentinel_events
          SELECT g, now() - g * interval '9 hours 36 minutes', 'row ' || g FROM generate_series(1, 100) g;
        INSERT INTO public.sentinel_events VALUES
          (1001, '-infinity', 'always'), (1002, 'infinity', 'never'), (1003, '0044-03-15 12:00:00+00 BC', 'ides');
        CREATE TABLE public.month_events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, note text);
        INSERT INTO public.month_events
          SELECT g, now() - g * interval '1 day', 'row ' || g FROM generate_series(1, 120) g;`);
    },
    [
      { schema: 'public', name: 'sentinel_events', timestampColumn: 'created_at' },
      { schema: 'public', name: 'month_events', timestampColumn: 'created_at', objectSpan: 'month' },
    ],
  );

  it('counts of a month table only the months that ended before the cut-off, as plan and the run take them', async () => {
    // Prepare: a run takes a month once all of it is past the cut-off (the first of the cut-off's month).
    const now = bed.db.now().getTime();
    const cutoff = new Date(Math.floor(now / 86_400_000) * 86_400_000 - 30 * 86_400_000);
    const monthStart = new Date(Date.UTC(cutoff.getUTCFullYear(), cutoff.getUTCMonth(), 1)).toISOString();
    const taken = await bed.db.client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.month_events WHERE created_at < $1::timestamptz',
      [monthStart],
    );

    // Act
    const counted = await measureTable(bed.db.client, bed.local.config, 'app', 'public.month_events', {
      now,
    });

    // Assess
    expect(counted.objectSpan).toBe('month');
    expect(counted.eligibleRows).toBe(taken.rows[0]?.n);
  });

  it('counts neither the sentinels’ rows nor days back to them, with statistics or without', async () => {
    // Prepare
    const now = bed.db.now().getTime();
    const eligible = await bed.db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.sentinel_events
        WHERE created_at >= '0001-01-01T00:00:00Z' AND created_at < $1::timestamptz`,
      [new Date(Math.floor(now / 86_400_000) * 86_400_000 - 30 * 86_400_000).toISOString()],
    );

    // Act
    const counted = await measureTable(bed.db.client, bed.local.config, 'app', 'public.sentinel_events', {
      now,
    });
    await bed.db.client.query('ANALYZE public.sentinel_events');
    const fromStats = await measureTable(bed.db.client, bed.local.config, 'app', 'public.sentinel_events', {
      now,
    });

    // Assess: the oldest archivable row is 40 days old, so its objects span 10 or 11 days before the cut-off.
    expect(counted.eligibleRows).toBe(eligible.rows[0]?.n);
    expect(counted.eligibleDays).toBeGreaterThanOrEqual(10);
    expect(counted.eligibleDays).toBeLessThanOrEqual(11);
    expect(fromStats.eligibleDays).toBeGreaterThanOrEqual(10);
    expect(fromStats.eligibleDays).toBeLessThanOrEqual(12);
  });
});

describe('audit-archiver cost: a table with an inheritance child, which a run archives ONLY', () => {
  const bed = archiverTestbed(
    async (db) => {
      // Two tables with the same 640 rows over the 32 UTC days before today; the second has an inheritance child of
      // 6,400 older, wider rows, which a run never reads (a plain table is archived ONLY). ANALYZE gathers the parent's
      // statistics twice then: of its own rows, and of its rows and its child's (pg_stats.inherited).
      await seedEvents(db.client, 'events', 640, 32);
      await seedEvents(db.client, 'parent_events', 640, 32);
      await db.client.query(`
        CREATE TABLE public.parent_events_old (extra text) INHERITS (public.parent_events);
        INSERT INTO public.parent_events_old (created_at, actor, payload, extra)
          SELECT now() - interval '200 days' + g * interval '10 minutes', repeat('a', 200),
                 jsonb_build_object('note', repeat(md5(g::text), 8)), repeat('x', 500)
            FROM generate_series(1, 6400) g;
        CREATE TABLE public.partitioned_events (LIKE public.events) PARTITION BY RANGE (created_at);
        CREATE TABLE public.partitioned_events_all PARTITION OF public.partitioned_events DEFAULT;
        ALTER TABLE public.partitioned_events ADD PRIMARY KEY (id, created_at);
        CREATE INDEX ON public.partitioned_events (created_at);
        INSERT INTO public.partitioned_events SELECT * FROM public.events;
        ANALYZE public.events;
        ANALYZE public.parent_events;
        ANALYZE public.partitioned_events;`);
    },
    [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
      { schema: 'public', name: 'parent_events', timestampColumn: 'created_at' },
      { schema: 'public', name: 'partitioned_events', timestampColumn: 'created_at' },
    ],
  );

  it.each([
    // A plain table with an inheritance child has statistics of its own rows and of the whole family (pg_stats.inherited):
    // a run archives its own only.
    ['the parent of an inheritance child as its own rows', 'public.parent_events'],
    // A partitioned table has statistics over its partitions only.
    ['a partitioned table over its partitions', 'public.partitioned_events'],
  ])('measures %s, as the same rows in a plain table measure', async (_case, name) => {
    // Prepare
    const now = bed.db.now().getTime();
    const alone = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events', { now });

    // Act
    const measured = await measureTable(bed.db.client, bed.local.config, 'app', name, { now });

    // Assess: the same rows, so the same figures.
    expect(measured.bytesPerRowSource).toBe('row width');
    expect(measured.archiveBytesPerRow).toBeCloseTo(alone.archiveBytesPerRow, 6);
    expect(measured.rows).toBe(alone.rows);
    expect(measured.eligibleRows).toBe(alone.eligibleRows);
    expect(measured.monthlyRows).toBe(alone.monthlyRows);
    expect(measured.eligibleDays).toBe(alone.eligibleDays);
  });
});

describe('audit-archiver cost: a timestamp column holding the ends of its range, read in zones west and east of UTC', () => {
  // 294276 AD read west of UTC and 4714 BC read east of it have no instant in timestamptz's range: a run never takes
  // them (one is in the future, the other before year 1), and nothing that measures the table may fail on them.
  const zones = { far_west: 'America/New_York', far_east: 'Asia/Tokyo' };
  const bed = archiverTestbed(
    async (db) => {
      for (const name of Object.keys(zones))
        await db.client.query(`
          CREATE TABLE public.${name} (id bigint PRIMARY KEY, at_local timestamp NOT NULL, note text);
          CREATE INDEX ON public.${name} (at_local);
          INSERT INTO public.${name}
            SELECT g, (now() AT TIME ZONE 'UTC') - make_interval(days => g), 'row ' || g FROM generate_series(1, 40) g;
          INSERT INTO public.${name} VALUES
            (1001, '294276-12-31 23:59:59.999999', 'max'), (1002, '4714-11-24 00:00:00 BC', 'min'),
            (1003, 'infinity', 'never'), (1004, '-infinity', 'always');`);
    },
    Object.entries(zones).map(([name, timestampTimeZone]) => ({
      schema: 'public',
      name,
      timestampColumn: 'at_local',
      timestampTimeZone,
    })),
  );

  it.each(Object.keys(zones))('measures %s with statistics and without', async (name) => {
    // Prepare
    const now = bed.db.now().getTime();
    const measure = () => measureTable(bed.db.client, bed.local.config, 'app', `public.${name}`, { now });

    // Act
    const counted = await measure();
    await bed.db.client.query(`ANALYZE public.${name}`);
    const fromStats = await measure();

    // Assess: the rows 31 to 40 days old are eligible (within a day, by the zone's offset), over as many days.
    expect(counted.rows).toBe(44);
    expect(counted.eligibleRows).toBeGreaterThanOrEqual(9);
    expect(counted.eligibleRows).toBeLessThanOrEqual(11);
    expect(counted.eligibleDays).toBeLessThanOrEqual(12);
    expect(fromStats.rows).toBe(44);
    expect(fromStats.eligibleDays).toBeLessThanOrEqual(12);
  });
});
