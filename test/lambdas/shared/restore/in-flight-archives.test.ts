import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Database } from '../../../../lambdas/shared/database/db.js';
import {
  BatchOutcomeUnknownError,
  DeleteInProgressError,
} from '../../../../lambdas/shared/errors/step-errors.js';
import type { ArchiveInventory } from '../../../../lambdas/shared/lock-table/archive-inventory.js';
import type { LeaseStore } from '../../../../lambdas/shared/lock-table/lease-store.js';
import { uncommittedInFlight } from '../../../../lambdas/shared/restore/in-flight-archives.js';

/**
 * The lease item, the inventory and the source database as fakes: which archives a restore leaves out follows from
 * the record and from what the server says of its delete transaction (its outcomes are what no local database can be
 * made to give on demand; proofs/restore-in-flight drives the real ones).
 */
function depsWith(options: {
  inFlightKeys?: string[];
  deleteXid?: string;
  committedKeys?: string[];
  xactStatus?: string | null;
}) {
  const asked: string[] = [];
  const inFlight = options.inFlightKeys && {
    objects: options.inFlightKeys.map((archiveKey) => ({ archiveKey })),
    ...(options.deleteXid ? { deleteXid: options.deleteXid } : {}),
  };
  const client = {
    query: async (sql: string) => {
      asked.push(sql);
      return { rows: [{ status: options.xactStatus ?? null }] };
    },
  } as unknown as pg.ClientBase;
  const database = {
    withConnection: (work: (c: pg.ClientBase) => Promise<unknown>) => work(client),
  } as unknown as Database;
  return {
    asked,
    deps: {
      locks: { get: async () => ({ inFlight }) } as unknown as LeaseStore,
      inventory: {
        entries: async (_db: string, _table: string, keys: string[]) =>
          new Map(keys.filter((k) => options.committedKeys?.includes(k)).map((k) => [k, {}])),
      } as unknown as ArchiveInventory,
      sourceDatabase: async () => database,
    },
  };
}

const listed = ['a', 'b', 'c'];

describe('archives of the batch in flight', () => {
  it('leaves nothing out when the table has no batch in flight, without asking the database', async () => {
    // Prepare
    const { deps, asked } = depsWith({});

    // Act & Assess
    expect(await uncommittedInFlight(deps, 'app', { schema: 'public', name: 't' }, listed)).toEqual(
      new Set(),
    );
    expect(asked).toEqual([]);
  });

  it('leaves out the listed archives of a batch not yet deleting, except those a committed batch wrote too', async () => {
    // Prepare
    const { deps, asked } = depsWith({ inFlightKeys: ['b', 'c', 'z'], committedKeys: ['c'] });

    // Act & Assess
    expect(await uncommittedInFlight(deps, 'app', { schema: 'public', name: 't' }, listed)).toEqual(
      new Set(['b']),
    );
    expect(asked).toEqual([]);
  });

  it('asks nothing of a deleting batch whose archives a committed batch wrote too (the same rows archived again)', async () => {
    // Prepare
    const { deps, asked } = depsWith({
      inFlightKeys: ['b', 'c'],
      deleteXid: '742',
      committedKeys: ['b', 'c'],
      xactStatus: 'committed',
    });

    // Act & Assess
    expect(await uncommittedInFlight(deps, 'app', { schema: 'public', name: 't' }, listed)).toEqual(
      new Set(),
    );
    expect(asked).toEqual([]);
  });

  it('leaves out those of a batch whose delete the server says aborted', async () => {
    // Prepare
    const { deps, asked } = depsWith({ inFlightKeys: ['b'], deleteXid: '742', xactStatus: 'aborted' });

    // Act & Assess
    expect(await uncommittedInFlight(deps, 'app', { schema: 'public', name: 't' }, listed)).toEqual(
      new Set(['b']),
    );
    expect(asked).toHaveLength(1);
  });

  it.each([
    ['committed', DeleteInProgressError, /ended before recording its archives as committed/],
    ['in progress', DeleteInProgressError, /still open/],
    [null, BatchOutcomeUnknownError, /the server cannot tell whether that delete committed/],
  ] as const)('stops the restore when the server says the delete is %s', async (status, type, message) => {
    // Prepare
    const { deps } = depsWith({ inFlightKeys: ['b'], deleteXid: '742', xactStatus: status });

    // Act
    const left = uncommittedInFlight(deps, 'app', { schema: 'public', name: 't' }, listed);

    // Assess
    await expect(left).rejects.toThrow(type);
    await expect(left).rejects.toThrow(message);
  });
});
