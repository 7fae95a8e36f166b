import { BatchWriteCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { RestoreRecords } from '../../../../lambdas/shared/lock-table/restore-records.js';
import { LockTableClient } from '../../../../lambdas/shared/lock-table/table-client.js';
import { localLockTable } from '../../../support/fixtures.js';

describe('RestoreRecords on a local DynamoDB', () => {
  const local = localLockTable('restore-records-test');
  let records: RestoreRecords;
  beforeAll(() => {
    records = new RestoreRecords(local.lockTable);
  });

  it('writes watermarks 25 to a request and reads them 100 keys to a request: each archive marked for this target, and only those', async () => {
    // Prepare: 150 archives, every third one restored into the target, one of them into another target too.
    const keys = Array.from(
      { length: 150 },
      (_, i) => `archive/app/public.t/day=${String(i).padStart(3, '0')}.jsonl.gz`,
    );
    const marked = keys.filter((_, i) => i % 3 === 0);
    await records.markAllRestored(
      'app',
      'public.r@1.2',
      marked.map((archiveKey, i) => ({
        archiveKey,
        mark: {
          restoreId: 'r1',
          restoredAt: '2026-12-01T00:00:00.000Z',
          rows: i,
          written: { inserted: i, skipped: 0, overwritten: 0 },
        },
      })),
    );
    await records.markAllRestored('app', 'public.other@3.4', [
      {
        archiveKey: keys[1] ?? '',
        mark: { restoreId: 'r0', restoredAt: '2026-12-01T00:00:00.000Z', rows: 1 },
      },
    ]);

    // Act
    const marks = await records.restoredMarks('app', 'public.r@1.2', keys);

    // Assess
    expect([...marks.keys()].sort()).toEqual(marked);
    expect(marks.get(marked[4] ?? '')).toMatchObject({ restoreId: 'r1', rows: 4, written: { inserted: 4 } });
  });

  it('lists the target before writing its marks: a write of 30 marks cut short before its last request leaves none that a commit cannot remove', async () => {
    // Prepare: a lock table client whose BatchWriteItem with the last mark never arrives (the invocation dies there).
    const keys = Array.from(
      { length: 30 },
      (_, i) => `archive/app/public.cut/k${String(i).padStart(2, '0')}`,
    );
    const carriesLast = (command: BatchWriteCommand) =>
      (command.input.RequestItems?.[local.lockTable.tableName] ?? []).some(
        (request) => request.PutRequest?.Item?.sk === keys.at(-1),
      );
    const dying = new LockTableClient(
      {
        send: async (command: BatchWriteCommand) => {
          if (command instanceof BatchWriteCommand && carriesLast(command))
            throw new Error('invocation died');
          return local.ddb.send(command);
        },
      } as never,
      local.lockTable.tableName,
    );
    const mark = { restoreId: 'r2', restoredAt: '2026-12-01T00:00:00.000Z', rows: 1 };
    const cut = new RestoreRecords(dying).markAllRestored(
      'app',
      'public.cut@5.6',
      keys.map((archiveKey) => ({ archiveKey, mark })),
    );
    await expect(cut).rejects.toThrow();
    const left = (await records.restoredMarks('app', 'public.cut@5.6', keys)).size;

    // Act: a batch commits these archives again.
    await records.forgetRestored('app', 'public.cut', keys);

    // Assess: the first 25 marks were written, and the commit found and removed them.
    expect(left).toBe(25);
    expect((await records.restoredMarks('app', 'public.cut@5.6', keys)).size).toBe(0);
  });

  it('records a page of results 25 to a request, every one listed afterwards, a repeated key once', async () => {
    // Prepare: 60 results (three requests), the last one repeating an earlier key with a later outcome.
    const result = (i: number, status: 'restored' | 'failed') => ({
      key: `archive/app/public.t/day=${String(i).padStart(3, '0')}.jsonl.gz`,
      status,
      rows: i,
      inserted: status === 'restored' ? i : 0,
      skipped: 0,
      overwritten: 0,
      warnings: [],
    });
    const page = [...Array.from({ length: 59 }, (_, i) => result(i, 'failed')), result(7, 'restored')];

    // Act
    await records.recordResults('page-test', page);

    // Assess
    const listed = await records.listResults('page-test');
    expect(listed).toHaveLength(59);
    expect(listed.find((r) => r.rows === 7)).toMatchObject({ status: 'restored', inserted: 7 });
  });

  it("keeps a restore's group writes apart: read by that restore alone, never among its results or any watermark", async () => {
    // Prepare: a group write of restore `gw` for one archive, with its results and a watermark of another restore.
    const key = 'archive/app/public.t/month=2026-01.jsonl.gz';
    const mark = {
      restoreId: 'gw',
      restoredAt: '2026-12-01T00:00:00.000Z',
      rows: 3,
      written: { inserted: 3, skipped: 0, overwritten: 0 },
      commit: { xid: '1234', server: 'server-a' },
    };
    await records.recordResults('gw', [
      { key, status: 'restored', rows: 3, inserted: 3, skipped: 0, overwritten: 0, warnings: [] },
    ]);

    // Act
    await records.recordGroupWrites('gw', [{ archiveKey: key, mark }]);

    // Assess
    expect(await records.groupWrites('gw', [key, 'archive/other'])).toEqual(new Map([[key, mark]]));
    expect(await records.groupWrites('gw2', [key])).toEqual(new Map());
    expect(await records.listResults('gw')).toEqual([expect.objectContaining({ key, status: 'restored' })]);
    expect(await records.restoredMarks('app', 'public.t@1.2', [key])).toEqual(new Map());
  });

  it("reads back the keys a restore's plan found, from items as large as DynamoDB takes, apart from another attempt's; and fails when one is gone", async () => {
    // Prepare: 4,000 keys of some 260 bytes (more than two items hold), and a retried plan of the same restore that
    // found one key fewer.
    const keys = Array.from(
      { length: 4000 },
      (_, i) => `archive/${'p'.repeat(220)}/app/public.t/day=${String(i).padStart(4, '0')}/b.jsonl.gz`,
    );
    const first = await records.recordPlan('rp', [...keys].reverse());
    const retried = await records.recordPlan('rp', keys.slice(1));

    // Act
    const read = await records.plannedKeys('rp', first);
    const readRetried = await records.plannedKeys('rp', retried);
    await local.lockTable.deleteItems([{ pk: 'RESTORE-PLAN#rp', sk: `${first.digest}#1` }]);
    const incomplete = records.plannedKeys('rp', first);

    // Assess
    expect(first.parts).toBe(3);
    expect(read).toEqual(keys);
    expect(readRetried).toEqual(keys.slice(1));
    await expect(incomplete).rejects.toMatchObject({ name: 'RestoreIncompleteError' });
    expect(await records.listResults('rp')).toEqual([]);
  });

  it('lists the results of one execution of a name: its own, and those without a start written since it began (an earlier version’s)', async () => {
    // Prepare: under one name, an execution 91 days ago (undated results, as an earlier version wrote them) and
    // this one, started an hour ago, with a result of its own and an undated one written since it began.
    const day = 24 * 3600 * 1000;
    const startedAt = new Date(Date.now() - 3600 * 1000).toISOString();
    const result = (key: string) => ({
      key,
      status: 'restored' as const,
      rows: 1,
      inserted: 1,
      skipped: 0,
      overwritten: 0,
      warnings: [],
    });
    const earlier = new RestoreRecords(
      new LockTableClient(local.ddb, local.lockTable.tableName, () => Date.now() - 91 * day),
    );
    await earlier.recordResults('reused', [result('old-undated')]);
    await records.recordResults(
      'reused',
      [result('old-dated')],
      new Date(Date.now() - 91 * day).toISOString(),
    );
    await records.recordResults('reused', [result('own')], startedAt);
    await records.recordResults('reused', [result('own-undated')]);

    // Act
    const listed = await records.listResults('reused', startedAt);

    // Assess
    expect(listed.map((r) => r.key).sort()).toEqual(['own', 'own-undated']);
    expect(await records.listResults('reused')).toHaveLength(4);
  });
});

/**
 * DynamoDB may leave part of a BatchWriteItem unprocessed under load; the local DynamoDB never does, so this one
 * case fakes the client's answer (the rest of the request is real).
 */
describe('LockTableClient.putItems when DynamoDB leaves items unprocessed', () => {
  it('sends the unprocessed items again until all are written, and gives up as unavailable after five rounds', async () => {
    // Prepare
    const sent: number[] = [];
    /** Leaves all but the first item unprocessed for `rounds` rounds; `keep`: leaves every item. */
    const client = (rounds: number, keep = false) =>
      new LockTableClient(
        {
          send: async (command: { input: { RequestItems: Record<string, unknown[]> } }) => {
            const items = command.input.RequestItems.locks ?? [];
            sent.push(items.length);
            if (sent.length > rounds) return {};
            return { UnprocessedItems: { locks: keep ? items : items.slice(1) } };
          },
        } as never,
        'locks',
      );
    const items = Array.from({ length: 3 }, (_, i) => ({
      pk: 'RESTORE#r',
      sk: `k${i}`,
      attributes: { n: i },
    }));

    // Act
    await client(2).putItems(items);
    const rounds = sent.splice(0);
    const giveUp = client(Infinity, true).putItems(items);

    // Assess
    expect(rounds).toEqual([3, 2, 1]);
    await expect(giveUp).rejects.toMatchObject({ name: 'LockStoreUnavailableError' });
  });
});
