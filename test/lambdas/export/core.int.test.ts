import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { exportBatch, SPANS_PER_COPY } from '../../../lambdas/export/core.js';
import { manifestKeyFor, writeOnceProbeKey } from '../../../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../../../lambdas/shared/archive/store.js';
import { versionDigestFromSql } from '../../../lambdas/shared/archive/version-digest.js';
import { manifestOf } from '../../../lambdas/shared/batch/batch-manifest.js';
import { MAX_OBJECTS_PER_BATCH } from '../../../lambdas/shared/batch/batch-objects.js';
import { describeTable } from '../../../lambdas/shared/database/table-shape.js';
import { rowVersionSql } from '../../../lambdas/shared/database/table-sql.js';
import { StorageUnavailableError } from '../../../lambdas/shared/errors/step-errors.js';
import type { StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../../lambdas/shared/step/table-task.js';
import {
  archiverTestbed,
  cutoffSql,
  fixtureCutoff,
  getObject,
  listKeys,
  metricRecorder,
  resolvedTable,
  type TestDatabase,
  TODAY_UTC_SQL,
} from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';
import { archiveLineRows } from '../../support/sql.js';

const DAY_MS = 86_400_000;
/** Days of went_away: the whole days of one COPY and two more. */
const WENT_AWAY_DAYS = SPANS_PER_COPY + 2;
/** The uploads that fail in the upload-failure tests: in the first COPY, and the last object of the first COPY. */
const FAILING_UPLOADS = [2, SPANS_PER_COPY];
/** Days of long_keys and long_keys_local: more than one batch takes. */
const LONG_KEY_DAYS = MAX_OBJECTS_PER_BATCH + 20;

/**
 * Thirteen rows around the cut-off: ids 1-6 on the oldest eligible UTC day (ten days before the cut-off, later ids
 * earlier in the day), 7-8 on a later eligible day, 9 exactly at the cut-off, 10 without a timestamp, 11-13 today.
 */
async function seedAroundCutoff(db: TestDatabase, name: string): Promise<void> {
  await db.client.query(`
    CREATE TABLE ${name} (id bigint PRIMARY KEY, created_at timestamptz, actor text NOT NULL);
    INSERT INTO ${name}
    SELECT g, ${cutoffSql()} - interval '10 days' + (7 - g) * interval '1 hour', 'oldest_' || g FROM generate_series(1, 6) AS g
    UNION ALL SELECT g, ${cutoffSql()} - interval '5 days', 'later_' || g FROM generate_series(7, 8) AS g
    UNION ALL SELECT 9, ${cutoffSql()}, 'at_cutoff'
    UNION ALL SELECT 10, NULL, 'no_timestamp'
    UNION ALL SELECT g, ${TODAY_UTC_SQL}, 'recent_' || g FROM generate_series(11, 13) AS g`);
}

describe('export step', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at', batchSize: 4 });

  const bed = archiverTestbed(
    async (db) => {
      await seedAroundCutoff(db, 'staged');
      await seedAroundCutoff(db, 'retried');
      await seedAroundCutoff(db, 'many_days');
      await seedAroundCutoff(db, 'mid_day');
      await seedAroundCutoff(db, 'overlapped');
      await seedAroundCutoff(db, 'upload_failed');
      await seedAroundCutoff(db, 'backlog');
      await seedAroundCutoff(db, 'within_budget');
      // Two rows on each of WENT_AWAY_DAYS eligible days, every other day: more days than one COPY reads.
      await db.client.query(`
        CREATE TABLE went_away (id bigint PRIMARY KEY, created_at timestamptz, actor text NOT NULL);
        INSERT INTO went_away
        SELECT g, ${cutoffSql()} - make_interval(days => 2 * ${WENT_AWAY_DAYS} + 2 - 2 * ((g - 1) / 2)), 'row_' || g
          FROM generate_series(1, 2 * ${WENT_AWAY_DAYS}) AS g`);
      // Two rows on each of WENT_AWAY_DAYS eligible days, as went_away, for the upload failures.
      for (const failing of FAILING_UPLOADS)
        await db.client.query(`
          CREATE TABLE failed_upload_${failing} (id bigint PRIMARY KEY, created_at timestamptz, actor text NOT NULL);
          INSERT INTO failed_upload_${failing}
          SELECT g, ${cutoffSql()} - make_interval(days => 2 * ${WENT_AWAY_DAYS} + 2 - 2 * ((g - 1) / 2)), 'row_' || g
            FROM generate_series(1, 2 * ${WENT_AWAY_DAYS}) AS g`);
      // A composite column named t whose fields carry the table's own column names.
      await db.client.query(`
        CREATE TYPE shadow AS (id bigint, created_at timestamptz, t text);
        CREATE TABLE shadowed (id bigint PRIMARY KEY, created_at timestamptz, t shadow);
        INSERT INTO shadowed
        SELECT g, ${cutoffSql()} - interval '3 days' + g * interval '1 minute', ROW(g + 1000, '1999-01-01', 'inner')::shadow
          FROM generate_series(1, 3) AS g`);
      // Local times in Asia/Jerusalem, whose clocks jumped from 02:00 to 03:00 at UTC midnight on 2024-03-29: 02:30
      // lies in the gap: PostgreSQL reads it as 00:30 UTC on the 29th, after 03:00 local (00:00 UTC).
      await db.client.query(`
        CREATE TABLE spring_gap (id bigint PRIMARY KEY, at timestamp NOT NULL);
        INSERT INTO spring_gap VALUES (1, '2024-03-28 10:00'), (2, '2024-03-28 12:00'), (3, '2024-03-29 01:00'),
                                      (4, '2024-03-29 02:30'), (5, '2024-03-29 05:00'), (6, '2024-03-29 06:00');
        CREATE TABLE gap_alone (id bigint PRIMARY KEY, at timestamp NOT NULL);
        INSERT INTO gap_alone VALUES (4, '2024-03-29 02:30')`);
      // A day of one ordinary row, then a day whose one row's line is over 256 MiB once escaped (45 MB of U+0001,
      // six bytes each in JSON), more than restore can load, then another ordinary day (whose COPY must not be queued
      // behind the failed one, which never ends).
      await db.client.query(`
        CREATE TABLE unrestorable (id bigint PRIMARY KEY, created_at timestamptz, note text);
        INSERT INTO unrestorable VALUES (1, ${cutoffSql()} - interval '3 days', 'ordinary'),
                                        (2, ${cutoffSql()} - interval '2 days', repeat(chr(1), 45000000)),
                                        (3, ${cutoffSql()} - interval '1 day', 'ordinary')`);
      // One row on each of LONG_KEY_DAYS eligible days, keyed by 2,560 characters that do not compress: the batch's
      // record holds each object's first and last key, and 100 such objects would not fit in one DynamoDB item.
      await db.client.query(`
        CREATE TABLE long_keys (id text PRIMARY KEY, created_at timestamptz NOT NULL);
        INSERT INTO long_keys
        SELECT (SELECT string_agg(md5(g || ':' || i), '') FROM generate_series(1, 80) AS i),
               ${cutoffSql()} - make_interval(days => g)
          FROM generate_series(1, ${LONG_KEY_DAYS}) AS g;
        CREATE TABLE long_keys_local (id text PRIMARY KEY, at timestamp NOT NULL);
        INSERT INTO long_keys_local SELECT id, created_at AT TIME ZONE 'UTC' FROM long_keys`);
      // PostgreSQL 18: a VIRTUAL generated column, computed as rows are read, that fails on the middle day's one row.
      const version = (
        await db.client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)
      ).rows[0]?.v;
      if (version !== undefined && version >= 180000)
        await db.client.query(`
          CREATE TABLE ratios (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, total int NOT NULL,
                               parts int NOT NULL, share int GENERATED ALWAYS AS (total / parts) VIRTUAL);
          INSERT INTO ratios (id, created_at, total, parts)
          SELECT g, ${cutoffSql()} - make_interval(days => 4 - g / 3), 100, CASE WHEN g = 4 THEN 0 ELSE 4 END
            FROM generate_series(1, 8) AS g`);
      await db.client.query(`
        CREATE TABLE recent (id bigint PRIMARY KEY, created_at timestamptz, actor text NOT NULL);
        INSERT INTO recent VALUES (1, ${cutoffSql()}, 'at_cutoff'), (2, NULL, 'no_timestamp'), (3, ${TODAY_UTC_SQL}, 'today')`);
    },
    [
      spec('staged'),
      spec('retried'),
      spec('recent'),
      { ...spec('many_days'), batchSize: 100 },
      { ...spec('mid_day'), batchSize: 7 },
      { ...spec('overlapped'), batchSize: 100 },
      { ...spec('upload_failed'), batchSize: 100 },
      spec('backlog'),
      spec('within_budget'),
      spec('shadowed'),
      { ...spec('unrestorable'), batchSize: 100 },
      { ...spec('ratios'), batchSize: 100 },
      { ...spec('went_away'), batchSize: 100 },
      { ...spec('long_keys'), batchSize: 1000 },
      {
        schema: 'public',
        name: 'long_keys_local',
        timestampColumn: 'at',
        timestampTimeZone: 'UTC',
        batchSize: 1000,
      },
      ...FAILING_UPLOADS.map((failing) => ({ ...spec(`failed_upload_${failing}`), batchSize: 100 })),
      {
        schema: 'public',
        name: 'spring_gap',
        timestampColumn: 'at',
        timestampTimeZone: 'Asia/Jerusalem',
        batchSize: 100,
      },
      {
        schema: 'public',
        name: 'gap_alone',
        timestampColumn: 'at',
        timestampTimeZone: 'Asia/Jerusalem',
        batchSize: 100,
      },
    ],
  );

  async function leasedTask(deps: StepDeps, table: string): Promise<TableTask> {
    const acquired = await deps.locks.acquire('app', table, `exec-${table}`, 600);
    if (!acquired.acquired) throw new Error(`could not acquire ${table}`);
    return {
      runId: `exec-${table}`,
      database: 'app',
      table,
      cutoff: await fixtureCutoff(deps),
      lease: acquired.lease,
    };
  }

  const stagedLines = async (key: string) =>
    gunzipSync(await getObject(bed.local, key))
      .toString('utf8')
      .split('\n')
      .filter((line) => line.length > 0);

  /** The batch in flight and its oldest object. */
  const staged = async (deps: StepDeps, table: string) => {
    const { inFlight } = await deps.locks.get('app', table);
    const object = inFlight?.objects[0];
    if (!inFlight || !object) throw new Error(`no batch in flight for ${table}`);
    return { inFlight, object };
  };

  const countRows = async (table: string) =>
    Number((await bed.db.client.query(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n);

  it('stages the first batchSize keys of the oldest eligible day, with its manifest and in-flight record', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.staged');
    const shape = await describeTable(bed.db.client, resolvedTable(spec('staged')));
    const expected = await archiveLineRows(bed.db.client, shape, 'id BETWEEN 1 AND 4');
    const versions = await bed.db.client.query<{ sum: string }>(
      `SELECT sum(${rowVersionSql()})::text AS sum FROM staged AS t WHERE id BETWEEN 1 AND 4`,
    );
    const oldestDay = new Date(Date.parse(task.cutoff) - 10 * DAY_MS).toISOString().slice(0, 10);

    // Act
    const exported = await exportBatch(task, deps);

    // Assess
    if (exported.status !== 'exported') throw new Error(`expected a batch, got ${exported.status}`);
    expect(exported).toMatchObject({ firstDay: oldestDay, lastDay: oldestDay, objects: 1, rows: 4 });
    const { inFlight, object } = await staged(deps, 'public.staged');
    expect((await stagedLines(object.stagingKey)).sort()).toEqual(expected.sort());
    // The manifest upload will write comes from the in-flight record: none is staged.
    expect(await listKeys(bed.local, manifestKeyFor(object.stagingKey))).toEqual([]);
    const manifest = manifestOf(inFlight, 0);
    if (!manifest) throw new Error('the in-flight record holds no manifest');
    const manifestText = JSON.stringify(manifest);
    expect(manifest).toMatchObject({
      dataKey: object.archiveKey,
      day: oldestDay,
      cutoff: task.cutoff,
      keyRange: { first: ['1'], last: ['4'] },
      figures: { rowCount: 4, compressedBytes: exported.compressedBytes },
    });
    expect(Date.parse(manifest.bounds.to)).toBeLessThanOrEqual(Date.parse(task.cutoff));
    const versionDigest = versionDigestFromSql(versions.rows[0]?.sum ?? '');
    expect(inFlight).toMatchObject({ stage: 'exported', versionDigest });
    expect(object.figures).toEqual(manifest.figures);
    // Upload copies only the object staged: by the ETag S3 gave export for it.
    expect(object.stagedEtag).toBe((await deps.store.head(object.stagingKey))?.pin?.etag);
    // The row versions say nothing about the archive's content: they stay with the batch in flight.
    expect(manifestText).not.toContain(versionDigest);
    expect(await countRows('staged')).toBe(13);
  });

  it('stages the same rows under the same archive key when retried, leaving one staged copy', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.retried');
    const first = await exportBatch(task, deps);
    if (first.status !== 'exported') throw new Error(`expected a batch, got ${first.status}`);
    const firstObject = (await staged(deps, 'public.retried')).object;
    const firstLines = await stagedLines(firstObject.stagingKey);

    // Act
    const retried = await exportBatch(task, deps);

    // Assess
    if (retried.status !== 'exported') throw new Error(`expected a batch, got ${retried.status}`);
    expect(retried).toEqual(first);
    const { inFlight, object } = await staged(deps, 'public.retried');
    expect(object.archiveKey).toBe(firstObject.archiveKey);
    expect(await stagedLines(object.stagingKey)).toEqual(firstLines);
    const stagedKeys = (await listKeys(bed.local, '')).filter((key) => key.includes('_staging/'));
    expect(stagedKeys.filter((key) => key.includes('public.retried/')).sort()).toEqual(
      [object.stagingKey, writeOnceProbeKey(object.stagingKey)].sort(),
    );
    expect(inFlight.stage).toBe('exported');
    expect(await countRows('retried')).toBe(13);
  });

  it('stages consecutive days in one batch, one object per day, with one version digest over all rows', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.many_days');
    const shape = await describeTable(bed.db.client, resolvedTable(spec('many_days')));
    const versions = await bed.db.client.query<{ sum: string }>(
      `SELECT sum(${rowVersionSql()})::text AS sum FROM many_days AS t WHERE id BETWEEN 1 AND 8`,
    );
    const oldestDay = new Date(Date.parse(task.cutoff) - 10 * DAY_MS).toISOString().slice(0, 10);
    const laterDay = new Date(Date.parse(task.cutoff) - 5 * DAY_MS).toISOString().slice(0, 10);

    // Act
    const exported = await exportBatch(task, deps);

    // Assess
    expect(exported).toEqual(
      expect.objectContaining({
        status: 'exported',
        firstDay: oldestDay,
        lastDay: laterDay,
        objects: 2,
        rows: 8,
      }),
    );
    const { inFlight } = await staged(deps, 'public.many_days');
    expect(inFlight.objects.map((o) => [o.day, o.figures.rowCount])).toEqual([
      [oldestDay, 6],
      [laterDay, 2],
    ]);
    expect(inFlight.versionDigest).toBe(versionDigestFromSql(versions.rows[0]?.sum ?? ''));
    for (const [index, ids] of [
      [0, 'id BETWEEN 1 AND 6'],
      [1, 'id BETWEEN 7 AND 8'],
    ] as const) {
      const object = inFlight.objects[index];
      if (!object) throw new Error('missing object');
      expect((await stagedLines(object.stagingKey)).sort()).toEqual(
        (await archiveLineRows(bed.db.client, shape, ids)).sort(),
      );
      const manifest = manifestOf(inFlight, index);
      // An object never spans two days: its bounds are its own day's.
      expect(manifest).toMatchObject({ day: object.day, bounds: object.bounds, figures: object.figures });
      expect(object.bounds.from.slice(0, 10)).toBe(object.day);
    }
  });

  it.each([
    ['a timestamptz column (whole days in one query)', 'long_keys'],
    ['a timestamp column (day by day)', 'long_keys_local'],
  ])('ends a batch of long keys at the objects its record has room for, by %s', async (_case, name) => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, `public.${name}`);
    const oldestDay = new Date(Date.parse(task.cutoff) - LONG_KEY_DAYS * DAY_MS).toISOString().slice(0, 10);

    // Act
    const exported = await exportBatch(task, deps);

    // Assess
    const { inFlight } = await staged(deps, `public.${name}`);
    expect(exported).toEqual(expect.objectContaining({ status: 'exported', firstDay: oldestDay }));
    expect(inFlight.objects.length).toBeGreaterThan(1);
    expect(inFlight.objects.length).toBeLessThan(MAX_OBJECTS_PER_BATCH);
    // Consecutive days, one row each: the batch was cut between two whole days.
    expect(inFlight.objects.every((o) => o.figures.rowCount === 1)).toBe(true);
    expect(inFlight.objects.slice(1).map((o) => o.bounds.from)).toEqual(
      inFlight.objects.slice(0, -1).map((o) => o.bounds.to),
    );
  });

  /** The deps with a store whose staging uploads go through `putStream`. */
  const withUploads = (
    deps: StepDeps,
    putStream: (...args: Parameters<ArchiveStore['putStream']>) => ReturnType<ArchiveStore['putStream']>,
  ): StepDeps => {
    const store = Object.create(deps.store) as ArchiveStore;
    store.putStream = putStream;
    return { ...deps, store };
  };

  it('reads the next day while the previous day’s upload is finishing', async () => {
    // Prepare: the first upload's end is held until the second day's upload has begun (or 5 s have passed).
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.overlapped');
    let secondUploadBegan: () => void = () => undefined;
    const secondUpload = new Promise<void>((resolve) => {
      secondUploadBegan = resolve;
    });
    let overlapped = false;
    let uploads = 0;
    const held = withUploads(deps, async (...args) => {
      const upload = ++uploads;
      if (upload === 2) secondUploadBegan();
      const result = await deps.store.putStream(...args);
      if (upload === 1) {
        overlapped = await Promise.race([
          secondUpload.then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000)),
        ]);
      }
      return result;
    });

    // Act
    const exported = await exportBatch(task, held);

    // Assess
    expect(overlapped).toBe(true);
    expect(exported).toMatchObject({ status: 'exported', objects: 2, rows: 8 });
    const { inFlight } = await staged(deps, 'public.overlapped');
    for (const object of inFlight.objects) {
      expect((await getObject(bed.local, object.stagingKey)).length).toBe(object.figures.compressedBytes);
    }
  });

  it('fails, recording no batch, when an upload finishing behind the next day’s rows fails; a retry stages the batch', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.upload_failed');
    let uploads = 0;
    const failing = withUploads(deps, async (...args) => {
      const result = await deps.store.putStream(...args);
      if (++uploads === 1) throw new StorageUnavailableError('S3 unavailable (injected)');
      return result;
    });

    // Act
    const first = exportBatch(task, failing);
    await expect(first).rejects.toBeInstanceOf(StorageUnavailableError);
    const between = await deps.locks.get('app', 'public.upload_failed');
    const retried = await exportBatch(task, deps);

    // Assess
    expect(between.inFlight).toBeUndefined();
    expect(retried).toMatchObject({ status: 'exported', objects: 2, rows: 8 });
  });

  it.each(FAILING_UPLOADS)(
    'when upload %i fails while it still sends, starts no upload after it and fails only once none is in flight',
    async (failing) => {
      // Prepare: every upload takes 20 ms more. The failing one, as lib-storage does when a part fails, destroys its
      // body 10 ms after it began (the object's stream fails at once), still sends for 100 ms, then rejects. Upload 2
      // fails while the first COPY streams; upload 8, its last object, while the second COPY streams.
      const deps = bed.local.deps();
      const task = await leasedTask(deps, `public.failed_upload_${failing}`);
      const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      let started = 0;
      let inFlight = 0;
      let startedWhenFailed: number | undefined;
      const slow = withUploads(deps, async (...args) => {
        const upload = ++started;
        inFlight += 1;
        try {
          if (upload === failing) {
            await wait(10);
            startedWhenFailed = started;
            args[1].destroy(new StorageUnavailableError('S3 unavailable (injected)'));
            await wait(100);
            throw new StorageUnavailableError('S3 unavailable (injected)');
          }
          const result = await deps.store.putStream(...args);
          await wait(20);
          return result;
        } finally {
          inFlight -= 1;
        }
      });

      // Act
      const outcome = await exportBatch(task, slow).then(
        () => ({ inFlight, error: undefined }),
        (error: unknown) => ({ inFlight, error }),
      );

      // Assess
      expect(outcome.error).toBeInstanceOf(StorageUnavailableError);
      expect(outcome.inFlight).toBe(0);
      expect(started).toBe(startedWhenFailed);
      expect((await deps.locks.get('app', `public.failed_upload_${failing}`)).inFlight).toBeUndefined();
    },
  );

  it('skips a day whose rows went away between choosing and copying them, and goes on with the next day', async () => {
    // Prepare: the application deletes the rows of the first day of the second COPY just before export starts it
    // (the fault point before each object but the batch's first; within a COPY, its own snapshot holds the rows).
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.went_away');
    // Each day's UTC date as seeded (read back, so a run across midnight agrees with the seed).
    const seeded = await bed.db.client.query<{ day: string }>(
      `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day FROM went_away WHERE id % 2 = 1 ORDER BY id`,
    );
    expect(seeded.rows).toHaveLength(WENT_AWAY_DAYS);
    const day = (index: number) => seeded.rows[index]?.day ?? '';
    const goneDay = SPANS_PER_COPY;
    let faults = 0;
    const fault = async (point: string) => {
      if (point === 'export:betweenObjects' && ++faults === SPANS_PER_COPY)
        await bed.db.client.query('DELETE FROM went_away WHERE id IN ($1, $2)', [
          2 * goneDay + 1,
          2 * goneDay + 2,
        ]);
    };

    // Act
    const exported = await exportBatch(task, { ...deps, fault });

    // Assess
    const kept = Array.from({ length: WENT_AWAY_DAYS }, (_, index) => index).filter(
      (index) => index !== goneDay,
    );
    expect(exported).toMatchObject({ status: 'exported', objects: kept.length, rows: 2 * kept.length });
    const { inFlight } = await staged(deps, 'public.went_away');
    expect(inFlight.objects.map((o) => [o.day, o.figures.rowCount])).toEqual(
      kept.map((index) => [day(index), 2]),
    );
    const stagedKeys = (await listKeys(bed.local, '')).filter((key) => key.includes('public.went_away/'));
    expect(stagedKeys.filter((key) => key.includes(day(goneDay)))).toEqual([]);
  });

  it('ends a batch mid-day, at the key that fills it', async () => {
    // Prepare: batch size 7, six rows on the oldest day.
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.mid_day');

    // Act
    const exported = await exportBatch(task, deps);

    // Assess
    expect(exported).toMatchObject({ status: 'exported', objects: 2, rows: 7 });
    const { inFlight } = await staged(deps, 'public.mid_day');
    expect(inFlight.objects[1]?.bounds).toMatchObject({ firstKey: ['7'], lastKey: ['7'] });
    expect(await countRows('mid_day')).toBe(13);
  });

  it('stages nothing when no row lies before the cut-off', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.recent');

    // Act
    const exported = await exportBatch(task, deps);

    // Assess
    expect(exported).toEqual({ status: 'empty' });
    expect((await listKeys(bed.local, '')).filter((key) => key.includes('public.recent/'))).toEqual([]);
    expect((await deps.locks.get('app', 'public.recent')).inFlight).toBeUndefined();
  });

  it('reports the eligible rows a run leaves when its batch budget ends it, and 0 once none are left', async () => {
    // Prepare: eight eligible rows, batches of four; the config allows 200 batches a run, the second run's plan one.
    const recorder = metricRecorder();
    const deps = recorder.wrap(bed.local.deps());
    const progress = (batches: number) => ({ batches, rows: 0, bytes: 0, rowsPerSecond: 0, pauseSeconds: 0 });
    const backlog = () =>
      recorder.metrics.filter((m) => m.name === 'BacklogRows').map((m) => [m.table, m.value]);

    // Act: a batch within the config's budget, the plan's last one, then a table with nothing eligible.
    await exportBatch({ ...(await leasedTask(deps, 'public.within_budget')), progress: progress(0) }, deps);
    const withinBudget = backlog();
    await exportBatch(
      { ...(await leasedTask(deps, 'public.backlog')), progress: progress(0), maxBatches: 1 },
      deps,
    );
    const atBudget = backlog();
    const recentTask = await leasedTask(deps, 'public.recent');
    await exportBatch(recentTask, deps);

    // Assess: the four rows past this batch; none for a table with nothing eligible.
    expect(withinBudget).toEqual([]);
    expect(atBudget).toEqual([['public.backlog', 4]]);
    expect(backlog()).toEqual([
      ['public.backlog', 4],
      ['public.recent', 0],
    ]);
  });

  it('archives each row’s own columns, not the fields of a composite column named t', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.shadowed');
    const shape = await describeTable(bed.db.client, resolvedTable(spec('shadowed')));
    const expected = await archiveLineRows(bed.db.client, shape, 'true');

    // Act
    const exported = await exportBatch(task, deps);

    // Assess
    expect(exported).toMatchObject({ status: 'exported', rows: 3 });
    const { object } = await staged(deps, 'public.shadowed');
    const lines = await stagedLines(object.stagingKey);
    expect(lines).toEqual(expected);
    expect(lines[0]).toContain('"id" : "1"');
  });

  it('refuses a row whose line restore could not load, naming its day and key, and records no batch', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.unrestorable');

    // Act
    const attempt = exportBatch(task, deps);

    // Assess
    await expect(attempt).rejects.toMatchObject({
      name: 'TableNotUsableError',
      message: expect.stringMatching(
        /^app\/public\.unrestorable, day \d{4}-\d{2}-\d{2}: row 1 of the object has an archive line of over 268434432 bytes/,
      ),
    });
    expect((await deps.locks.get('app', 'public.unrestorable')).inFlight).toBeUndefined();
    expect(await countRows('public.unrestorable')).toBe(3);
  });

  it('refuses a row whose VIRTUAL generated column fails to compute (PostgreSQL 18+), naming the table, the column and the day, never a value', async () => {
    // Prepare: rows on three days; the one whose parts is 0 lies on the middle one.
    const version = (
      await bed.db.client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)
    ).rows[0]?.v;
    if (version === undefined || version < 180000) return;
    const failing = (
      await bed.db.client.query<{ day: string }>(
        `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day FROM ratios WHERE parts = 0`,
      )
    ).rows[0]?.day;
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.ratios');

    // Act
    const attempt = exportBatch(task, deps);

    // Assess: the days named hold the failing row's.
    const error = await attempt.then(
      () => undefined,
      (thrown: unknown) => thrown as Error,
    );
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'a row whose VIRTUAL generated column fails to compute',
      held: error?.name === 'TableNotUsableError',
    });
    expect(error?.name).toBe('TableNotUsableError');
    const named = error?.message.match(
      /^app\/public\.ratios, (?:day (\S+)|a day from (\S+) to (\S+)): a value of public\.ratios could not be read \(SQLSTATE 22012, a data exception; its VIRTUAL generated columns \(share\) are computed as rows are read/,
    );
    expect(named).not.toBeNull();
    const [from, to] = named?.[1] ? [named[1], named[1]] : [named?.[2] ?? '', named?.[3] ?? ''];
    expect(failing !== undefined && from <= failing && failing <= to).toBe(true);
    expect(error?.message).not.toMatch(/division by zero|100/);
    expect((await deps.locks.get('app', 'public.ratios')).inFlight).toBeUndefined();
    expect(await countRows('public.ratios')).toBe(8);
  });

  it('takes a timestamp column’s rows by the UTC days of their instants, a local time in a spring-forward gap too', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.spring_gap');

    // Act
    const exported = await exportBatch(task, deps);

    // Assess: all six rows, the one at 02:30 with the 29th, the day PostgreSQL reads it on, though its local time
    // comes before 03:00, the 29th's first.
    expect(exported).toMatchObject({ status: 'exported', rows: 6, objects: 2 });
    const { inFlight } = await staged(deps, 'public.spring_gap');
    expect(inFlight.objects.map((o) => [o.day, o.bounds.firstKey, o.bounds.lastKey])).toEqual([
      ['2024-03-28', ['1'], ['3']],
      ['2024-03-29', ['4'], ['6']],
    ]);
  });

  it('takes a row at a local time in a spring-forward gap when it is the oldest left, with the day of its instant', async () => {
    // Prepare
    const deps = bed.local.deps();
    const task = await leasedTask(deps, 'public.gap_alone');

    // Act
    const exported = await exportBatch(task, deps);

    // Assess
    expect(exported).toMatchObject({ status: 'exported', rows: 1, firstDay: '2024-03-29' });
  });
});
