import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import type { RestoredMark } from '../../lambdas/shared/lock-table/restore-records.js';
import { describeTarget } from '../../lambdas/shared/restore/restore-sql.js';
import {
  type LocalEnvironment,
  planStartedAt,
  runLocalArchive,
  runLocalRestore,
  type WorkflowOptions,
} from '../../local/run.js';
import {
  archiverTestbed,
  fixedCutoffSql,
  putObjects,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { writeLegacyArchive } from '../support/legacy-archive.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };
const events = resolvedTable(spec);
const copy = resolvedTable({ ...spec, name: 'events_copy' });

/** DynamoDB requests the local server answered so far, by operation. */
async function dynamoRequests(local: LocalEnvironment): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const c of await local.services.requestCounts())
    if (c.service === 'dynamodb') counts[c.operation] = (counts[c.operation] ?? 0) + c.count;
  return counts;
}

const requestsBetween = (before: Record<string, number>, after: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(after)
      .map(([operation, n]) => [operation, n - (before[operation] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  );

/** A Python tool's archive of public.audit_log (two rows) in the bucket, as that tool laid it out. */
async function putLegacyAuditLog(local: LocalEnvironment, database: string): Promise<void> {
  const archive = writeLegacyArchive({
    prefix: 'archive/',
    database,
    schema: 'public',
    table: 'audit_log',
    runStamp: '20250301T020304Z',
    batch: 1,
    rows: [
      { id: 1, created_at: '2025-01-02T03:04:05+00:00', actor: 'a' },
      { id: 2, created_at: '2025-01-02T03:04:06+00:00', actor: 'b' },
    ],
  });
  await putObjects(local, archive.files);
}

describe('the restore watermark of a table whose restored rows are archived again', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 120), [spec]);
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', ...request },
      { retryIntervalScale: 0 },
    );
  /** Rows older than `cutoff` (fixedCutoffSql, taken before the run). */
  const oldRows = async (cutoff: string) =>
    (await bed.db.client.query(`SELECT count(*)::int AS n FROM public.events WHERE created_at < ${cutoff}`))
      .rows[0].n as number;

  it('no longer counts those archives as restored into it: a later restore writes their rows again', async () => {
    // Prepare: archive; restore into the table itself and into a copy; the next scheduled run archives the
    // restored rows again, into the same content-addressed keys.
    const before = (await tableLines(bed.db.client, events)).sort();
    const cutoff = await fixedCutoffSql(bed.db.client);
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const archivedRows = before.length - (await tableLines(bed.db.client, events)).length;
    const keys = (await readLiveArchives(bed.local, 'public', 'events')).map((a) => a.key).sort();
    expect((await restore({})).execution.status).toBe('SUCCEEDED');
    expect((await restore({ targetTable: 'public.events_copy' })).execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, events)).sort()).toEqual(before);
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    expect(await oldRows(cutoff)).toBe(0);
    expect((await readLiveArchives(bed.local, 'public', 'events')).map((a) => a.key).sort()).toEqual(keys);

    // Act
    const again = await restore({});
    const copyAgain = await restore({ targetTable: 'public.events_copy' });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'a restore into the archived table, archived again by the next run, then restored again',
      held: (await tableLines(bed.db.client, events)).length === before.length,
    });

    // Assess: every archive is restored into the table again; the copy, whose rows no run archived, keeps its marks.
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results).toHaveLength(keys.length);
    expect(again.results.every((r) => r.status === 'restored')).toBe(true);
    expect(again.results.reduce((n, r) => n + r.inserted, 0)).toBe(archivedRows);
    expect((await tableLines(bed.db.client, events)).sort()).toEqual(before);
    expect(copyAgain.execution.status).toBe('SUCCEEDED');
    expect(copyAgain.results.every((r) => r.status === 'already-restored')).toBe(true);
    expect(await tableLines(bed.db.client, copy)).toHaveLength(archivedRows);
  });
});

describe('removing the watermarks of committed archives', () => {
  const bed = archiverTestbed(async () => undefined, [spec]);
  const mark: RestoredMark = { restoreId: 'restore-1', restoredAt: '2026-01-01T00:00:00.000Z', rows: 3 };
  const keys = Array.from(
    { length: 60 },
    (_, i) => `archive/app/public.events/k${String(i).padStart(3, '0')}`,
  );

  it('takes the marks of exactly those keys, under every identity of the table, and nothing else', async () => {
    // Prepare: marks under two identities of the table (it was rewritten between two restores), in a table whose
    // name ends like an identity, and in another target.
    const deps = bed.local.deps();
    const marks = (archiveKeys: string[]) => archiveKeys.map((archiveKey) => ({ archiveKey, mark }));
    await deps.restoreRecords.markAllRestored('app', 'public.events@16384.16390', marks(keys));
    await deps.restoreRecords.markAllRestored('app', 'public.events@16384.20001', marks(keys.slice(0, 10)));
    await deps.restoreRecords.markAllRestored('app', 'public.events@16384.1@16500.16500', marks(keys));
    await deps.restoreRecords.markAllRestored('app', 'public.events_copy@16400.16400', marks(keys));
    const committed = keys.slice(0, 40);
    const held = keys.slice(40);

    // Act
    const before = await dynamoRequests(bed.local);
    await deps.inventory.forgetRestored('app', 'public.events', committed);
    const spent = requestsBetween(before, await dynamoRequests(bed.local));

    // Assess
    const left = async (target: string) =>
      [...(await deps.restoreRecords.restoredMarks('app', target, keys)).keys()].sort();
    expect(await left('public.events@16384.16390')).toEqual(held);
    expect(await left('public.events@16384.20001')).toEqual([]);
    expect(await left('public.events@16384.1@16500.16500')).toEqual(keys);
    expect(await left('public.events_copy@16400.16400')).toEqual(keys);
    // One query for the table's targets, one read of their 80 marks' keys, two deletes of the 50 found.
    expect(spent).toEqual({ Query: 1, BatchGetItem: 1, BatchWriteItem: 2 });
  });

  it('costs one query for a table that never was a restore target', async () => {
    // Prepare
    const deps = bed.local.deps();

    // Act
    const before = await dynamoRequests(bed.local);
    await deps.inventory.forgetRestored('app', 'public.never_restored', keys);
    const spent = requestsBetween(before, await dynamoRequests(bed.local));

    // Assess
    expect(spent).toEqual({ Query: 1 });
  });
});

describe('a key archived again after its object went', () => {
  const again = { ...spec, name: 'again' };
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'again', 200, 40), [again]);
  const fast = { retryIntervalScale: 0 };

  it('is restored as the object now under the key, not the one the inventory first recorded', async () => {
    // Prepare: archive; restore one archive's rows into the table; its object and manifest then go (expired, or
    // deleted); the next run archives those rows again, re-creating the same content-addressed key.
    const table = resolvedTable(again);
    const before = (await tableLines(bed.db.client, table)).sort();
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const kept = (await tableLines(bed.db.client, table)).sort();
    const [first] = (await bed.local.deps().inventory.list('app', 'public.again')).sort((a, b) =>
      a.archiveKey < b.archiveKey ? -1 : 1,
    );
    if (!first) throw new Error('setup: nothing archived');
    const back = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.again', mode: 'key', key: first.archiveKey },
      fast,
    );
    expect(back.execution.status).toBe('SUCCEEDED');
    await bed.local.deps().store.deleteKeys([first.archiveKey, manifestKeyFor(first.archiveKey)]);
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const entry = (await bed.local.deps().inventory.entries('app', 'public.again', [first.archiveKey])).get(
      first.archiveKey,
    );

    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.again', targetTable: 'public.again_copy' },
      fast,
    );

    // Assess: the entry is the second commit's, and every archived row comes back once.
    expect(entry?.batchId).not.toBe(first.batchId);
    expect(restored.results.filter((r) => r.error)).toEqual([]);
    expect(restored.execution.status).toBe('SUCCEEDED');
    const copied = await tableLines(bed.db.client, resolvedTable({ ...again, name: 'again_copy' }));
    expect([...copied, ...kept].sort()).toEqual(before);
  });
});

describe('a watermark whose rows the target no longer holds', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 120), [spec]);
  const fast = { retryIntervalScale: 0 };
  const forensics = resolvedTable({ ...spec, name: 'forensics' });
  const restore = () =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', targetTable: 'public.forensics' },
      fast,
    );

  it('rows deleted from the target (DELETE, its identity unchanged): the next restore writes their archive again and says why; the marks hold again afterwards', async () => {
    // Prepare: archive; restore into a forensics table; an investigator then deletes the rows of one archive.
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const archives = (await readLiveArchives(bed.local, 'public', 'events')).sort((a, b) =>
      a.key.localeCompare(b.key),
    );
    const [gone] = archives;
    if (!gone || archives.length < 3) throw new Error('setup: too few archives');
    expect((await restore()).execution.status).toBe('SUCCEEDED');
    const ids = gone.lines.map((line) => String(JSON.parse(line).id));
    await bed.db.client.query('DELETE FROM public.forensics WHERE id::text = ANY($1)', [ids]);

    // Act
    const again = await restore();
    const restoredLines = (await tableLines(bed.db.client, forensics)).sort();
    const third = await restore();
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'rows of a restore target deleted (not truncated), then the restore repeated',
      held: restoredLines.length === archives.flatMap((a) => a.lines).length,
    });

    // Assess: that archive alone is written again, with a warning naming counts only; every archived row is back.
    expect(again.execution.status).toBe('SUCCEEDED');
    const rewritten = again.results.find((r) => r.key === gone.key);
    expect(rewritten).toMatchObject({
      status: 'restored',
      rows: gone.lines.length,
      inserted: gone.lines.length,
    });
    expect(rewritten?.warnings[0]).toMatch(
      new RegExp(
        `^restored again: .* wrote its ${gone.lines.length} rows, but the target's rows where its rows lie changed since \\(${gone.lines.length} then, 0 now\\)`,
      ),
    );
    expect(
      again.results.filter((r) => r.key !== gone.key).every((r) => r.status === 'already-restored'),
    ).toBe(true);
    expect(restoredLines).toEqual(archives.flatMap((a) => a.lines).sort());
    expect(third.results.every((r) => r.status === 'already-restored')).toBe(true);
  });
});

describe('a watermark racing an archive run of the restored table', () => {
  const race = { ...spec, name: 'race' };
  const table = resolvedTable(race);
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'race', 120), [race]);
  const fast = { retryIntervalScale: 0 };
  const restore = (options: WorkflowOptions = {}) =>
    runLocalRestore(bed.local, { database: 'app', table: 'public.race' }, { ...fast, ...options });

  it('written after a run archived the restored rows again and removed the marks it found: the next restore writes them back', async () => {
    // Prepare: archive the old rows.
    const before = (await tableLines(bed.db.client, table)).sort();
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');

    // Act: restore into the table; between a group's COMMIT and its watermark write, a run archives the restored rows
    // again and deletes them (finding no mark to remove yet); then the operator restores again.
    let run: Awaited<ReturnType<typeof runLocalArchive>> | undefined;
    const first = await restore({
      fault: async (point) => {
        if (point === 'restore:afterCommit' && !run) run = await runLocalArchive(bed.local, {}, fast);
      },
    });
    const between = (await tableLines(bed.db.client, table)).length;
    const again = await restore();
    const after = (await tableLines(bed.db.client, table)).sort();
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: "a restore's watermark written after an archive run deleted the restored rows again",
      held: again.execution.status === 'SUCCEEDED' && after.length === before.length,
    });

    // Assess: the run took the rows; the repeated restore wrote every archive again, not "already restored".
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(run?.execution.status).toBe('SUCCEEDED');
    expect(between).toBeLessThan(before.length);
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results.some((r) => r.status === 'already-restored')).toBe(false);
    expect(after).toEqual(before);
  });
});

describe("a watermark met between a batch delete's COMMIT and its removal of the marks", () => {
  const crash = { ...spec, name: 'crash' };
  const table = resolvedTable(crash);
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'crash', 120), [crash]);
  const fast = { retryIntervalScale: 0 };
  const restore = () => runLocalRestore(bed.local, { database: 'app', table: 'public.crash' }, fast);

  it('(the invocation died there, the batch still in flight) does not stop the restore writing the rows back', async () => {
    // Prepare: archive; restore into the table (marks written); the next run archives the restored rows again, and
    // its first delete commits and its invocation dies before recording the commit: the marks are still there.
    const before = (await tableLines(bed.db.client, table)).sort();
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    expect((await restore()).execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, table)).sort()).toEqual(before);
    const crashed = await runLocalArchive(
      bed.local,
      {},
      {
        ...fast,
        fault: (point) => {
          if (point === 'delete:afterCommit') throw new Error('Lambda timed out');
        },
      },
    );
    expect(crashed.execution.status).not.toBe('SUCCEEDED');
    const missing = before.length - (await tableLines(bed.db.client, table)).length;

    // Act
    const restored = await restore();
    const after = (await tableLines(bed.db.client, table)).sort();
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: "a restore between a batch delete's COMMIT and the removal of the watermarks it makes stale",
      held: restored.execution.status === 'SUCCEEDED' && after.length === before.length,
    });

    // Assess
    expect(missing).toBeGreaterThan(0);
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(restored.results.reduce((n, r) => n + r.inserted, 0)).toBe(missing);
    expect(after).toEqual(before);
  });
});

describe('a watermark of rows archived again under other keys', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 60, 36);
      await db.client.query(
        `CREATE TABLE public.audit_log (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL)`,
      );
    },
    [spec, { ...spec, name: 'audit_log' }],
  );
  const fast = { retryIntervalScale: 0 };

  it('a column added between two runs (every line, so every key, differs): restoring a first archive writes its rows again', async () => {
    // Prepare: archive; restore into the table; add a column; the next run archives the same rows under new keys.
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const [first] = (await readLiveArchives(bed.local, 'public', 'events')).sort((a, b) =>
      a.key.localeCompare(b.key),
    );
    if (!first) throw new Error('setup: nothing archived');
    const ids = first.lines.map((line) => String(JSON.parse(line).id));
    const present = async () =>
      (
        await bed.db.client.query('SELECT count(*)::int AS n FROM public.events WHERE id::text = ANY($1)', [
          ids,
        ])
      ).rows[0].n as number;
    expect(
      (await runLocalRestore(bed.local, { database: 'app', table: 'public.events' }, fast)).execution.status,
    ).toBe('SUCCEEDED');
    await bed.db.client.query(`ALTER TABLE public.events ADD COLUMN region text NOT NULL DEFAULT 'eu'`);
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const between = await present();

    // Act
    const again = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', mode: 'key', key: first.key },
      fast,
    );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'a restore of an archive whose restored rows were archived again under other keys',
      held: again.execution.status === 'SUCCEEDED' && (await present()) === ids.length,
    });

    // Assess
    expect(between).toBe(0);
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results).toMatchObject([{ status: 'restored', inserted: ids.length }]);
    expect(await present()).toBe(ids.length);
  });

  it('a legacy archive restored, then archived again by this tool: its mark, which no key range backs, is not trusted', async () => {
    // Prepare: a Python tool's archive in the bucket.
    await putLegacyAuditLog(bed.local, bed.db.name);
    const request = { database: 'app', table: 'public.audit_log', legacy: { database: bed.db.name } };
    const count = async () =>
      (await bed.db.client.query('SELECT count(*)::int AS n FROM public.audit_log')).rows[0].n as number;
    expect((await runLocalRestore(bed.local, request, fast)).execution.status).toBe('SUCCEEDED');
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const between = await count();

    // Act
    const again = await runLocalRestore(bed.local, request, fast);
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'a legacy archive restored, archived again natively, then restored again',
      held: again.execution.status === 'SUCCEEDED' && (await count()) === 2,
    });

    // Assess
    expect(between).toBe(0);
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results).toMatchObject([{ status: 'restored', inserted: 2 }]);
    expect(again.results[0]?.warnings[0]).toMatch(/^restored again: .* cannot be checked against the target/);
    expect(await count()).toBe(2);
  });
});

describe('a watermark checked against the rows of its time window', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        `CREATE TABLE public.late_day (id int PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL);
         INSERT INTO public.late_day
         SELECT id, ${TODAY_UTC_SQL} - interval '40 days' + id * interval '1 hour', 'on time'
           FROM unnest(ARRAY[1, 3, 5]) AS id;
         CREATE TABLE public.audit_log (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL);
         CREATE TABLE public.swapped_day (id int PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL);
         INSERT INTO public.swapped_day
         SELECT id, ${TODAY_UTC_SQL} - interval '40 days' + id * interval '1 hour', 'archived'
           FROM unnest(ARRAY[1, 3, 5]) AS id;
         CREATE TABLE public.busy_day (id int PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL);
         INSERT INTO public.busy_day
         SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 minute', 'user_' || g
           FROM generate_series(1, 60) AS g`,
      );
    },
    [
      { ...spec, name: 'late_day' },
      { ...spec, name: 'audit_log' },
      { ...spec, name: 'swapped_day' },
      { ...spec, name: 'busy_day', batchSize: 10 },
    ],
  );
  const fast = { retryIntervalScale: 0 };

  it('two archives of one day whose key ranges overlap: rows of one deleted from the target are written back, though the other’s fill its range', async () => {
    // Prepare: ids 1, 3 and 5 archived; late rows 2 and 4 of the same day archived by the next run; both restored into
    // a copy, then 1 and 3 deleted there. A count of A's key range (1..5) would still find three rows.
    expect((await runLocalArchive(bed.local, { tables: ['public.late_day'] }, fast)).execution.status).toBe(
      'SUCCEEDED',
    );
    await bed.db.client.query(
      `INSERT INTO public.late_day SELECT id, ${TODAY_UTC_SQL} - interval '40 days' + id * interval '1 hour', 'late'
         FROM unnest(ARRAY[2, 4]) AS id`,
    );
    expect((await runLocalArchive(bed.local, { tables: ['public.late_day'] }, fast)).execution.status).toBe(
      'SUCCEEDED',
    );
    expect(await readLiveArchives(bed.local, 'public', 'late_day')).toHaveLength(2);
    const request = { database: 'app', table: 'public.late_day', targetTable: 'public.late_day_copy' };
    expect((await runLocalRestore(bed.local, request, fast)).execution.status).toBe('SUCCEEDED');
    await bed.db.client.query('DELETE FROM public.late_day_copy WHERE id IN (1, 3)');

    // Act
    const again = await runLocalRestore(bed.local, request, fast);

    // Assess
    const ids = await bed.db.client.query<{ id: number }>('SELECT id FROM public.late_day_copy ORDER BY id');
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'deletes restored rows of one of two archives of a day whose key ranges overlap, then restores again',
      held: again.execution.status === 'SUCCEEDED' && ids.rows.length === 5,
    });
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(ids.rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
    expect(again.results.reduce((n, r) => n + r.inserted, 0)).toBe(2);
  });

  it('a restored row replaced in the target by another of its key range and day: as many rows there, but not the archive’s, so it is written again', async () => {
    // Prepare: ids 1, 3 and 5 of one day archived and restored into a copy; there, 3 is deleted and 4 inserted in the
    // same day. A count of the archive's key range (1..5) and window still finds three rows.
    expect(
      (await runLocalArchive(bed.local, { tables: ['public.swapped_day'] }, fast)).execution.status,
    ).toBe('SUCCEEDED');
    expect(await readLiveArchives(bed.local, 'public', 'swapped_day')).toHaveLength(1);
    const request = { database: 'app', table: 'public.swapped_day', targetTable: 'public.swapped_day_copy' };
    expect((await runLocalRestore(bed.local, request, fast)).execution.status).toBe('SUCCEEDED');
    await bed.db.client.query(
      `DELETE FROM public.swapped_day_copy WHERE id = 3;
       INSERT INTO public.swapped_day_copy
       SELECT 4, ${TODAY_UTC_SQL} - interval '40 days' + interval '4 hours', 'investigator'`,
    );

    // Act
    const again = await runLocalRestore(bed.local, request, fast);

    // Assess: the archive's mark no longer answers (its keys' digest differs); row 3 is back beside the new row 4.
    const ids = await bed.db.client.query<{ id: number }>(
      'SELECT id FROM public.swapped_day_copy ORDER BY id',
    );
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results).toHaveLength(1);
    expect(again.results[0]).toMatchObject({ status: 'restored', inserted: 1 });
    expect(again.results[0]?.warnings[0]).toMatch(/^restored again: .*changed since \(3 then, 3 now\)/);
    expect(ids.rows.map((r) => r.id)).toEqual([1, 3, 4, 5]);
  });

  it('archives of one day restored by several groups: a repeat is answered from their marks, none written again', async () => {
    // Prepare: one day in six archives of one run (batches of 10), restored into a copy by more than one group, so a
    // group measures its day while another's rows of the day are, or are not yet, there.
    expect((await runLocalArchive(bed.local, { tables: ['public.busy_day'] }, fast)).execution.status).toBe(
      'SUCCEEDED',
    );
    expect(await readLiveArchives(bed.local, 'public', 'busy_day')).toHaveLength(6);
    const request = { database: 'app', table: 'public.busy_day', targetTable: 'public.busy_day_copy' };
    const first = await runLocalRestore(bed.local, request, fast);

    // Act
    const again = await runLocalRestore(bed.local, request, fast);

    // Assess
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results.map((r) => r.status)).toEqual(Array(6).fill('already-restored'));
  });

  it('under strategy fail, a re-run over a legacy archive whose rows are all there succeeds: its mark vouches for them', async () => {
    // Prepare: a Python tool's archive restored with strategy fail.
    await putLegacyAuditLog(bed.local, bed.db.name);
    const request = {
      database: 'app',
      table: 'public.audit_log',
      legacy: { database: bed.db.name },
      strategy: 'fail' as const,
    };
    expect((await runLocalRestore(bed.local, request, fast)).execution.status).toBe('SUCCEEDED');

    // Act
    const again = await runLocalRestore(bed.local, request, fast);

    // Assess: written again as under skip, nothing refused.
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results).toMatchObject([{ status: 'restored', inserted: 0, skipped: 2 }]);
  });
});

describe.each([
  ['a watermark', false],
  ['an older watermark (no window recorded)', true],
])('%s of a target with an inheritance child', (_, older) => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 120);
      await db.client.query(
        `CREATE TABLE public.forensics (LIKE public.events INCLUDING ALL);
         CREATE TABLE public.forensics_kept () INHERITS (public.forensics)`,
      );
    },
    [spec],
  );
  const fast = { retryIntervalScale: 0 };
  const request = { database: 'app', table: 'public.events', targetTable: 'public.forensics' };

  it("is checked against the target's own rows: an archive whose rows only the child holds is restored again", async () => {
    // Prepare: archive; restore into forensics (its marks as a version before window digests wrote them, for an older
    // watermark); then an investigator moves one archive's rows from forensics into its inheritance child.
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const archives = (await readLiveArchives(bed.local, 'public', 'events')).sort((a, b) =>
      a.key.localeCompare(b.key),
    );
    const [moved] = archives;
    if (!moved || archives.length < 2) throw new Error('setup: too few archives');
    expect((await runLocalRestore(bed.local, request, fast)).execution.status).toBe('SUCCEEDED');
    if (older) {
      const deps = bed.local.deps();
      const described = await describeTarget(bed.db.client, { schema: 'public', name: 'forensics' });
      const target = `public.forensics@${described?.identity}`;
      const keys = archives.map((a) => a.key);
      const marks = await deps.restoreRecords.restoredMarks('app', target, keys);
      expect(marks.size).toBe(keys.length);
      await deps.restoreRecords.markAllRestored(
        'app',
        target,
        [...marks].map(([archiveKey, { window: _, ...mark }]) => ({ archiveKey, mark })),
      );
    }
    const ids = moved.lines.map((line) => String(JSON.parse(line).id));
    await bed.db.client.query(
      `WITH gone AS (DELETE FROM ONLY public.forensics WHERE id::text = ANY($1) RETURNING *)
       INSERT INTO public.forensics_kept SELECT * FROM gone`,
      [ids],
    );

    // Act
    const again = await runLocalRestore(bed.local, request, fast);

    // Assess: the moved archive is written again into forensics itself; the others' marks hold.
    const own = await bed.db.client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM ONLY public.forensics',
    );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        "a restore target's rows moved into its inheritance child, then the restore repeated over older watermarks",
      held: own.rows[0]?.n === archives.flatMap((a) => a.lines).length,
    });
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results.find((r) => r.key === moved.key)).toMatchObject({
      status: 'restored',
      inserted: moved.lines.length,
    });
    expect(own.rows[0]?.n).toBe(archives.flatMap((a) => a.lines).length);
  });
});

describe('a restore execution started under the name of an earlier one (Step Functions allows it after 90 days)', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 60), [spec]);

  it('overwrites as asked: the earlier restore’s marks are not taken for a retried group’s own', async () => {
    // Prepare: archive; restore into the table under a name; the application then changes restored rows.
    const workflow = bed.local.workflow({ retryIntervalScale: 0 });
    const request = { database: 'app', table: 'public.events', strategy: 'overwrite' };
    const cutoff = await fixedCutoffSql(bed.db.client);
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const left = (await tableLines(bed.db.client, events)).length;
    const first = await workflow.runRestore(request, 'restore-events');
    expect(first.status).toBe('SUCCEEDED');
    const restored = (await tableLines(bed.db.client, events)).sort();
    expect(restored.length).toBeGreaterThan(left);
    await bed.db.client.query(`UPDATE public.events SET actor = 'changed' WHERE created_at < ${cutoff}`);

    // Act: the same restore under the same name, once that name may be used again.
    const again = await workflow.runRestore(request, 'restore-events');

    // Assess: the archived versions are back, every archive written again.
    expect(again.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, events)).sort()).toEqual(restored);
    const results = await bed.local.deps().restoreRecords.listResults('restore-events');
    expect(results.every((r) => r.status === 'restored')).toBe(true);
    expect(results.reduce((n, r) => n + r.overwritten, 0)).toBe(restored.length - left);
  });

  it('reports only its own results: the earlier restore’s failures under the name are not listed as this one’s', async () => {
    // Prepare: archive; restore everything back (another name); then, under the name, a restore that fails every
    // archive (its rows are there, strategy `fail`).
    const finished: unknown[] = [];
    const starts: string[] = [];
    const workflow = bed.local.workflow({
      retryIntervalScale: 0,
      onStep: (event) => {
        const start = planStartedAt(event);
        if (start) starts.push(start);
        if (
          event.functionName === 'restore-summary' &&
          (event.payload as { action?: string }).action === 'finish'
        )
          finished.push(event.result);
      },
    });
    const request = { database: 'app', table: 'public.events', strategy: 'fail', ignoreWatermark: true };
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    expect((await workflow.runRestore({ ...request, strategy: 'skip' }, 'restore-all')).status).toBe(
      'SUCCEEDED',
    );
    const first = await workflow.runRestore(request, 'restore-reused');
    const earlier = await bed.local.deps().restoreRecords.listResults('restore-reused', starts.at(-1));
    expect(first.status).toBe('FAILED');
    expect(earlier.length).toBeGreaterThan(1);
    const key = earlier[0]?.key ?? '';

    // Act: the name again, for one of those archives.
    const again = await workflow.runRestore({ ...request, mode: 'key', key }, 'restore-reused');

    // Assess: its summary and its results name that archive alone.
    const results = await bed.local.deps().restoreRecords.listResults('restore-reused', starts.at(-1));
    expect(again.status).toBe('FAILED');
    expect((finished.at(-1) as { failures: { key: string }[] }).failures.map((f) => f.key)).toEqual([key]);
    expect(results.map((r) => [r.key, r.status])).toEqual([[key, 'failed']]);
  });
});
