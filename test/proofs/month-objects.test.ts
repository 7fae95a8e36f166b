import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { listCommand, validateCommand } from '../../cli/archives.js';
import { clearHold, setHold } from '../../cli/holds.js';
import { planLocally } from '../../cli/plan.js';
import { spanLastDay } from '../../lambdas/shared/archive/format.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  asBeforeTheInventory,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  getObject,
  readLiveArchives,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/** A low-volume table: 8 rows a day over 150 days, so 4 to 5 whole months lie before the cut-off's month. */
const ROWS = 1200;
const DAYS = 150;
const MONTH_KEY = /\/year=(\d{4})\/month=(\d{2})\/(\d{6})-[0-9a-f]{24}\.jsonl\.gz$/;

const linesOf = (client: Parameters<typeof tableLines>[0], name: string) =>
  tableLines(client, resolvedTable({ name, timestampColumn: 'created_at' })).then((l) => l.sort());

describe('month objects: a low-volume table archived one object per UTC month', () => {
  let archived: string[] = [];
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', ROWS, DAYS);
      await db.client.query('CREATE TABLE public.before_archive AS SELECT * FROM public.events');
      await db.client.query('ALTER TABLE public.before_archive ADD PRIMARY KEY (id)');
      await seedEvents(db.client, 'sparse', 300, DAYS);
    },
    [
      // A row every 3 hours from 3 h past the first midnight: the first month holds 8n - 1 rows and each later one 8n,
      // so a batch of 300 never ends at a month's end, whatever the date: the first batch ends inside a month.
      {
        schema: 'public',
        name: 'events',
        timestampColumn: 'created_at',
        objectSpan: 'month',
        batchSize: 300,
      },
      { schema: 'public', name: 'sparse', timestampColumn: 'created_at' },
    ],
  );
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', targetTable: 'public.restored', ...request },
      { retryIntervalScale: 0 },
    );

  it('plan counts only whole months past the cut-off, and suggests month objects for a table whose day objects are small', async () => {
    // Act
    const cutoff = await fixedCutoffSql(bed.db.client);
    const report = await planLocally(bed.local, {});

    // Assess
    const { rows } = await bed.db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM events WHERE created_at < date_trunc('month', ${cutoff}, 'UTC')`,
    );
    const events = report.tables.find((t) => t.table === 'public.events');
    const sparse = report.tables.find((t) => t.table === 'public.sparse');
    expect(events).toMatchObject({ objectSpan: 'month', eligibleRows: rows[0]?.n });
    expect(events?.objectSpanNote).toMatch(/^month objects of about \d+ KiB/);
    expect(sparse?.objectSpanNote).toMatch(
      /day objects of about 1 KiB \(2 rows a day\): objectSpan: month suggested/,
    );
  });

  it('archives each whole month before the cut-off’s month into month objects, deleting exactly their rows', async () => {
    // Act
    const cutoff = await fixedCutoffSql(bed.db.client);
    const run = await runLocalArchive(bed.local, { tables: ['public.events'] }, { retryIntervalScale: 0 });

    // Assess: what is left is the cut-off's month and later; what went is in the archives, once
    expect(run.execution.status).toBe('SUCCEEDED');
    const { client } = bed.db;
    const left = await client.query<{ early: number }>(
      `SELECT count(*) FILTER (WHERE created_at < date_trunc('month', ${cutoff}, 'UTC'))::int AS early FROM events`,
    );
    expect(left.rows[0]?.early).toBe(0);
    const kept = new Set(await linesOf(client, 'events'));
    archived = (await linesOf(client, 'before_archive')).filter((line) => !kept.has(line));
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    expect(archives.flatMap((a) => a.lines).sort()).toEqual(archived);
    expect(archived.length).toBeGreaterThan(600);
    for (const archive of archives) {
      const [, year, month, stamp] = MONTH_KEY.exec(archive.key) ?? [];
      expect(stamp).toBe(`${year}${month}`);
      expect(archive.manifest).toMatchObject({ span: 'month', day: `${year}-${month}-01` });
      // Each row in its object's month: the month partition is true.
      const days = archive.lines.map((line) =>
        (JSON.parse(line) as { created_at: string }).created_at.slice(0, 7),
      );
      expect(new Set(days)).toEqual(new Set([`${year}-${month}`]));
    }
    // The batch that ended inside a month left the rest of it to a second object of the same month.
    const months = archives.map((a) => a.manifest.day);
    expect(new Set(months).size).toBeLessThan(months.length);
  });

  it('validate finds the month objects whole, and list shows each under its month', async () => {
    // Prepare
    const run = async (command: typeof validateCommand, options: Record<string, unknown> = {}) => {
      const lines: string[] = [];
      const code = await command(
        bed.local.deps().store,
        bed.local.config,
        { table: ['public.events'], json: false, strict: true, ...options },
        (line) => lines.push(line),
      );
      return { code, text: lines.join('\n') };
    };

    // Act
    const validated = await run(validateCommand);
    const listed = await run(listCommand, { json: true });

    // Assess: no day gap reported inside a month object's month
    expect(validated.text).toMatch(/OK: no errors, 0 warning/);
    expect(validated.code).toBe(0);
    const [table] = JSON.parse(listed.text) as { archives: { key: string; day: string; rows: number }[] }[];
    expect(table?.archives.every((a) => a.day.endsWith('-01') && MONTH_KEY.test(a.key))).toBe(true);
    expect(table?.archives.reduce((n, a) => n + a.rows, 0)).toBe(archived.length);
  });

  it('a day range restores only the rows of those days from a month object, and a later range the rest', async () => {
    // Prepare: days 10 to 20 of the oldest archived month
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    const month = archives.map((a) => a.manifest.day).sort()[0] ?? '';
    const fromDay = `${month.slice(0, 8)}10`;
    const toDay = `${month.slice(0, 8)}20`;
    const dayOf = (line: string) => (JSON.parse(line) as { created_at: string }).created_at.slice(0, 10);
    const inMonth = archived.filter((line) => dayOf(line).startsWith(month.slice(0, 7)));
    const inRange = inMonth.filter((line) => dayOf(line) >= fromDay && dayOf(line) <= toDay);

    // Act
    const part = await restore({ mode: 'range', fromDay, toDay });
    const again = await restore({ mode: 'range', fromDay, toDay });
    const whole = await restore({ mode: 'range', fromDay: month, toDay: spanLastDay(month, 'month') });

    // Assess
    expect(part.execution.status).toBe('SUCCEEDED');
    expect(part.results.map((r) => [r.rows, r.inserted, r.skipped])).toEqual([
      [inRange.length, inRange.length, 0],
    ]);
    expect(part.results[0]?.warnings.join(' ')).toMatch(
      new RegExp(
        `${inMonth.length - inRange.length} of its ${inMonth.length} rows lie outside ${fromDay}..${toDay}`,
      ),
    );
    // Restored in part, so not marked restored: the same range finds its rows there, the whole month the rest.
    expect(again.results.map((r) => [r.status, r.inserted])).toEqual([['restored', 0]]);
    expect(whole.results.reduce((n, r) => n + r.inserted, 0)).toBe(inMonth.length - inRange.length);
    expect(await linesOf(bed.db.client, 'restored')).toEqual(inMonth);
  });

  it('a repeated day range under fail meets the rows it wrote (a month object restored in part is not marked) and says so, naming skip', async () => {
    // Prepare: days 5 and 6 of the second archived month (the first may begin after them), restored under fail into
    // a target of their own.
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    const month = [...new Set(archives.map((a) => a.manifest.day))].sort()[1] ?? '';
    const range = { mode: 'range', fromDay: `${month.slice(0, 8)}05`, toDay: `${month.slice(0, 8)}06` };
    const request = { ...range, strategy: 'fail', targetTable: 'public.restored_twice' };

    // Act
    const first = await restore(request);
    const second = await restore(request);
    const skipped = await restore({ ...request, strategy: 'skip' });

    // Assess: before, the second failed with the bare conflict, as if the target held rows of its own.
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(second.execution.status).toBe('FAILED');
    const sum = (results: { inserted: number; skipped: number }[], field: 'inserted' | 'skipped') =>
      results.reduce((n, r) => n + r[field], 0);
    expect(sum(first.results, 'inserted')).toBeGreaterThan(0);
    expect(second.results.filter((r) => r.status === 'failed').map((r) => r.error)).toEqual([
      expect.stringMatching(
        /already exist in the target \(strategy "fail"\); this is a month object: if an earlier day-range restore wrote some of its days into this target, .*restore with strategy "skip"/,
      ),
    ]);
    expect(skipped.execution.status).toBe('SUCCEEDED');
    expect([sum(skipped.results, 'inserted'), sum(skipped.results, 'skipped')]).toEqual([
      0,
      sum(first.results, 'inserted'),
    ]);
  });

  it('a day range that holds every row of a month object restores it whole: no rows called left out, and marked restored', async () => {
    // Prepare: a month object whose rows leave days of its month out (the oldest, or one a batch ended inside), and the
    // range of exactly its rows' days
    const dayOf = (line: string) => (JSON.parse(line) as { created_at: string }).created_at.slice(0, 10);
    const spans = (await readLiveArchives(bed.local, 'public', 'events')).map((a) => {
      const days = a.lines.map(dayOf).sort();
      return { archive: a, fromDay: days[0] ?? '', toDay: days.at(-1) ?? '' };
    });
    const inPart = spans.find(
      (s) => s.fromDay !== s.archive.manifest.day || s.toDay !== spanLastDay(s.archive.manifest.day, 'month'),
    );
    if (!inPart) throw new Error('setup: every month object holds rows of its whole month');
    const { archive, fromDay, toDay } = inPart;
    const request = { mode: 'range', fromDay, toDay, targetTable: 'public.restored_inside' };

    // Act
    const first = await restore(request);
    const again = await restore(request);

    // Assess: all its rows restored without the warning; the second restore answered by the first one's mark
    const resultOf = (run: typeof first) => run.results.find((r) => r.key === archive.key);
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(resultOf(first)).toMatchObject({ status: 'restored', rows: archive.lines.length });
    expect(resultOf(first)?.inserted).toBe(archive.lines.length);
    expect(resultOf(first)?.warnings.join(' ')).not.toMatch(/lie outside/);
    expect(resultOf(again)?.status).toBe('already-restored');
  });

  it.each(['fail', 'skip'] as const)(
    'a day range of a month object (a group that records no watermark) whose invocation dies after its COMMIT, under "%s": the retry reports what the group wrote, no conflict',
    async (strategy) => {
      // Prepare: days 10 to 20 of the oldest archived month, restored in part (so never marked); the first attempt
      // dies once its transaction has committed.
      const archives = await readLiveArchives(bed.local, 'public', 'events');
      const month = archives.map((a) => a.manifest.day).sort()[0] ?? '';
      const fromDay = `${month.slice(0, 8)}10`;
      const toDay = `${month.slice(0, 8)}20`;
      const dayOf = (line: string) => (JSON.parse(line) as { created_at: string }).created_at.slice(0, 10);
      const inRange = archived.filter((line) => dayOf(line) >= fromDay && dayOf(line) <= toDay);
      const target = `retried_${strategy}`;
      let crashes = 0;
      const fault = (point: FaultPoint) => {
        if (point === 'restore:afterCommit' && ++crashes === 1)
          throw new Error('invocation died after COMMIT');
      };

      // Act
      const run = await runLocalRestore(
        bed.local,
        {
          database: 'app',
          table: 'public.events',
          targetTable: `public.${target}`,
          strategy,
          mode: 'range',
          fromDay,
          toDay,
        },
        { retryIntervalScale: 0, fault },
      );

      // Assess: the retried group is answered by what its committed attempt wrote: each row inserted once, none met
      // as a conflict or counted as skipped.
      expect(crashes).toBeGreaterThan(1);
      expect(run.execution.status).toBe('SUCCEEDED');
      expect(run.results.map((r) => [r.status, r.rows, r.inserted, r.skipped])).toEqual([
        ['restored', inRange.length, inRange.length, 0],
      ]);
      expect(await linesOf(bed.db.client, target)).toEqual([...inRange].sort());
      recordProof({
        kind: 'fault',
        point: `restore: day range of a month object, crash after COMMIT (${strategy})`,
        iteration: 0,
      });
    },
  );

  it('rolls back a day-range overwrite of a month object (a group that records no watermark) held before its COMMIT', async () => {
    // Prepare: days 10 to 20 of the oldest archived month, restored in part (so never marked), into the archived table;
    // the hold lands once the group has checked and written, before it commits.
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    const month = archives.map((a) => a.manifest.day).sort()[0] ?? '';
    const before = await linesOf(bed.db.client, 'events');
    const deps = bed.local.deps();
    const context = {
      config: bed.local.config,
      holds: deps.holds,
      store: deps.store,
      actor: 'test-operator',
    };
    let held = false;
    const fault = async (point: FaultPoint) => {
      if (point !== 'restore:beforeCommit' || held) return;
      held = true;
      await setHold(context, 'app', 'public.events', 'case 2025-23');
    };

    // Act; the hold is cleared whatever happens, for the next test.
    let run: Awaited<ReturnType<typeof restore>>;
    let after: string[];
    try {
      run = await runLocalRestore(
        bed.local,
        {
          database: 'app',
          table: 'public.events',
          strategy: 'overwrite',
          mode: 'range',
          fromDay: `${month.slice(0, 8)}10`,
          toDay: `${month.slice(0, 8)}20`,
        },
        { retryIntervalScale: 0, fault },
      );
      after = await linesOf(bed.db.client, 'events');
    } finally {
      await clearHold(context, 'app', 'public.events');
    }

    // Assess: the group rolled back, naming the hold; the table is as it was.
    expect(held).toBe(true);
    expect(run.results).toEqual([
      expect.objectContaining({
        status: 'failed',
        error: expect.stringMatching(
          /under legal hold \(set .* by test-operator\): case 2025-23: strategy overwrite would change its rows.*rolled back/,
        ),
      }),
    ]);
    expect(after).toEqual(before);
  });

  it('refuses a month object a bucket writer moved into another month’s folder, with its manifest rewritten to match', async () => {
    // Prepare: the newest archive and its manifest copied under the month before its own, its dataKey rewritten
    const s3 = s3ClientFor(bed.local);
    const Bucket = bed.local.services.bucket;
    const [newest] = (await readLiveArchives(bed.local, 'public', 'events')).sort((a, b) =>
      b.manifest.day.localeCompare(a.manifest.day),
    );
    if (!newest) throw new Error('no archive');
    const [year = '', month = ''] = newest.manifest.day.split('-');
    const earlier = new Date(Date.UTC(Number(year), Number(month) - 2, 1)).toISOString();
    const moved = newest.key.replace(
      `year=${year}/month=${month}/${year}${month}-`,
      `year=${earlier.slice(0, 4)}/month=${earlier.slice(5, 7)}/${earlier.slice(0, 4)}${earlier.slice(5, 7)}-`,
    );
    expect(moved).not.toBe(newest.key);
    // Read as an archive from before the inventory, as restore reads those (since, it leaves out what none commits).
    await asBeforeTheInventory(bed.local, 'public.events');
    await s3.send(new PutObjectCommand({ Bucket, Key: moved, Body: await getObject(bed.local, newest.key) }));
    await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: moved.replace(/\/([^/]+)\.jsonl\.gz$/, '/_$1.manifest.json'),
        Body: JSON.stringify({ ...newest.manifest, dataKey: moved }),
      }),
    );

    // Act
    const lines: string[] = [];
    const code = await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { table: ['public.events'], json: false, strict: false },
      (line) => lines.push(line),
    );
    const restored = await restore({ mode: 'key', key: moved, targetTable: 'public.moved' });

    // Assess
    expect(code).toBe(1);
    expect(lines.join('\n')).toContain(`${moved}: its partition is not the manifest's month`);
    expect(restored.results.map((r) => r.status)).toEqual(['failed']);
    expect(restored.results[0]?.error).toMatch(
      /ArchiveIntegrityError: .*its partition is not the manifest's month/,
    );
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'month object moved to another month, its manifest rewritten to match',
      held: code === 1 && restored.results[0]?.status === 'failed',
    });
  });
});

class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

/** Crash points of a batch of month objects: between two of its months, and in and after its one delete transaction. */
const MONTH_FAULTS: FaultPoint[] = [
  'export:betweenObjects',
  'upload:afterManifest',
  'verify:afterRead',
  'delete:afterDelete',
  'delete:beforeCommit',
  'delete:afterCommit',
];

describe('month objects under faults: no row lost or doubled', () => {
  const name = (i: number) => `month_fault_${i}`;
  const bed = archiverTestbed(
    async (db) => {
      for (const [i] of MONTH_FAULTS.entries()) await seedEvents(db.client, name(i), 800, 120);
    },
    MONTH_FAULTS.map((_, i) => ({
      schema: 'public',
      name: name(i),
      timestampColumn: 'created_at',
      objectSpan: 'month' as const,
      // About 200 rows a month: a batch of 500 holds two months and part of a third.
      batchSize: 500,
    })),
  );

  for (const [i, point] of MONTH_FAULTS.entries()) {
    it(`a crash at ${point} in a batch of several months, then a re-run`, async () => {
      // Prepare
      const table = resolvedTable({ name: name(i), timestampColumn: 'created_at' });
      const original = await tableLines(bed.db.client, table);
      const cutoff = await fixedCutoffSql(bed.db.client);
      let fired = false;
      const fault = async (reached: FaultPoint) => {
        if (reached !== point || fired) return;
        fired = true;
        throw new InjectedCrash(`crash at ${reached}`);
      };

      // Act
      const crashed = await runLocalArchive(
        bed.local,
        { tables: [table.ref] },
        { fault, retryIntervalScale: 0 },
      );
      const between = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      const rerun = await runLocalArchive(bed.local, { tables: [table.ref] }, { retryIntervalScale: 0 });
      const after = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);

      // Assess
      expect(fired).toBe(true);
      expect(crashed.execution.status).toBe('FAILED');
      expect(rerun.execution.status).toBe('SUCCEEDED');
      expect(after.inArchives).toBeGreaterThanOrEqual(between.inArchives);
      const early = await bed.db.client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM public.${name(i)} WHERE created_at < date_trunc('month', ${cutoff}, 'UTC')`,
      );
      expect(early.rows[0]?.n).toBe(0);
      const archives = await readLiveArchives(bed.local, 'public', name(i));
      expect(archives.every((a) => MONTH_KEY.test(a.key) && a.manifest.span === 'month')).toBe(true);
      recordProof({ kind: 'fault', point: `${point} (month objects)`, iteration: 0 });
    });
  }
});
