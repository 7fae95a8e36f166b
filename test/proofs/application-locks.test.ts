import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { describeTable } from '../../lambdas/shared/database/table-shape.js';
import { rowLineSql, rowSourceSql } from '../../lambdas/shared/database/table-sql.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  readLiveArchives,
  resolvedTable,
  seedEvents,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
/** Longer than the config's lock_timeout below: the delete's first attempt gives up and is retried. */
const HOLD_MS = 3000;

/**
 * The application locks a row of the batch (`SELECT … FOR UPDATE`) between verify and delete and holds it past the
 * delete's lock_timeout, then commits, with the row changed or not. The delete waits on the row; PostgreSQL hands a
 * DELETE that waited the row's newest version, so the RETURNING reports the version the application wrote.
 */
describe('a batch row the application holds locked through the delete', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'locked_changed', 200);
      await seedEvents(db.client, 'locked_released', 200);
    },
    [spec('locked_changed'), spec('locked_released')],
    { defaults: { lockTimeoutSeconds: 1 } },
  );

  it.each([
    { name: 'locked_changed', change: `UPDATE public.locked_changed SET actor = 'changed' WHERE id = 5` },
    { name: 'locked_released', change: undefined },
  ])(
    '$name: the delete waits for it and never removes a version no archive holds',
    async ({ name, change }) => {
      // Prepare: the lock taken once verify has read the batch, released HOLD_MS later
      const table = resolvedTable(spec(name));
      const shape = await describeTable(bed.db.client, table);
      const app = new pg.Client({ connectionString: bed.db.url });
      await app.connect();
      let expected: string[] = [];
      let locked: Promise<void> | undefined;
      let released: Promise<number> | undefined;
      let deletedAt: number | undefined;
      const fault = async (point: FaultPoint) => {
        if (point === 'delete:afterDelete') deletedAt ??= Date.now();
        if (point !== 'verify:afterRead') return;
        // verify reads its objects concurrently: the first read alone takes the lock, each waits until it is held.
        if (!locked) {
          locked = (async () => {
            await app.query('BEGIN');
            await app.query(`SELECT FROM public.${name} WHERE id = 5 FOR UPDATE`);
          })();
          released = locked
            .then(() => new Promise((resolve) => setTimeout(resolve, HOLD_MS)))
            .then(async () => {
              if (change) await app.query(change);
              // Read in the application's transaction (tableLines would commit it): what it commits.
              const lines = await app.query<{ line: string }>(
                `SELECT ${rowLineSql(shape)} AS line FROM ${rowSourceSql(shape)} AS t`,
              );
              expected = lines.rows.map((r) => r.line);
              // Taken before COMMIT is sent: the waiting DELETE may finish before its answer arrives here.
              const committing = Date.now();
              await app.query('COMMIT');
              return committing;
            });
        }
        await locked;
      };

      // Act
      const run = await runLocalArchive(
        bed.local,
        { tables: [`public.${name}`] },
        { fault, retryIntervalScale: 0 },
      );
      const committingAt = await released;
      await app.end();

      // Assess
      const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, expected).catch(
        (error: Error) => error,
      );
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `the application holds a batch row locked past the delete's lock_timeout, then commits it ${change ? 'changed' : 'unchanged'}`,
        held: !(counts instanceof Error),
      });
      if (counts instanceof Error) throw counts;
      expect(run.execution.status).toBe('SUCCEEDED');
      expect(deletedAt).toBeGreaterThanOrEqual(committingAt ?? Number.POSITIVE_INFINITY);
      expect(run.outcomes[0]?.withdrawnBatches).toBe(change ? 1 : undefined);
      const archived = (await readLiveArchives(bed.local, 'public', name, bed.db.client))
        .flatMap((a) => a.lines)
        .filter((line) => JSON.parse(line).id === '5');
      expect(archived).toEqual(expected.filter((line) => JSON.parse(line).id === '5'));
    },
  );
});
