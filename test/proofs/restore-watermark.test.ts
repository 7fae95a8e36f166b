import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import type { RestoredMark } from '../../lambdas/shared/lock-table/restore-records.js';
import { type LocalEnvironment, runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  cutoffSql,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
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

describe('the restore watermark of a table whose restored rows are archived again', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 120), [spec]);
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', ...request },
      { retryIntervalScale: 0 },
    );
  const oldRows = async () =>
    (
      await bed.db.client.query(
        `SELECT count(*)::int AS n FROM public.events WHERE created_at < ${cutoffSql()}`,
      )
    ).rows[0].n as number;

  it('no longer counts those archives as restored into it: a later restore writes their rows again', async () => {
    // Prepare: archive; restore into the table itself and into a copy; the next scheduled run archives the
    // restored rows again, into the same content-addressed keys.
    const before = (await tableLines(bed.db.client, events)).sort();
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
    expect(await oldRows()).toBe(0);
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
