/**
 * A table switched from `objectSpan: day` to `month` between runs, keyed by a random uuid: the days of a month
 * before the first run's cut-off are in day objects, the rest of that month in one month object. No row is in both,
 * and `validate` must not say otherwise (its "archived-twice" warning tells the operator rows are in two archives).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateArchives } from '../../cli/archive-validation.js';
import { type LocalEnvironment, openLocalEnvironment, runLocalArchive } from '../../local/run.js';
import {
  compareRows,
  createTestDatabase,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  type TestDatabase,
  tableLines,
  writeTestConfig,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const DAY_MS = 86_400_000;

describe('objectSpan switched from day to month between runs', () => {
  let db: TestDatabase;
  const cleanups: (() => void)[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'switched', 1500, 150);
    await db.client.query(
      `ALTER TABLE switched ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE`,
    );
  });
  afterAll(async () => {
    for (const cleanup of cleanups) cleanup();
    await db?.drop();
  });

  async function openWith(
    objectSpan: 'day' | 'month',
    retentionDays: number,
    stateDir?: string,
  ): Promise<{ local: LocalEnvironment; stateDir: string }> {
    const files = writeTestConfig(db, [
      { name: 'switched', timestampColumn: 'created_at', keyColumns: ['uid'], objectSpan, retentionDays },
    ]);
    cleanups.push(files.cleanup);
    const dir = stateDir ?? join(files.dir, 'state');
    return { local: await openLocalEnvironment(files.configPath, dir, { clock: db.now }), stateDir: dir };
  }

  it('puts no row in two archives, and validate calls none archived twice', async () => {
    // Prepare: the first run's cut-off is the 15th of a month about 75 days back, so that month's first 14 days go
    // into day objects; the second run's is 50 days later, past the end of that month, which then goes whole into a
    // month object.
    const today = Math.floor(db.now().getTime() / DAY_MS) * DAY_MS;
    const back = new Date(today - 75 * DAY_MS);
    const fifteenth = Date.UTC(back.getUTCFullYear(), back.getUTCMonth(), 15);
    const firstRetention = Math.round((today - fifteenth) / DAY_MS);
    const table = resolvedTable({ name: 'switched', timestampColumn: 'created_at', keyColumns: ['uid'] });
    const original = await tableLines(db.client, table);

    // Act
    const first = await openWith('day', firstRetention);
    const byDay = await runLocalArchive(first.local, {}, { retryIntervalScale: 0 });
    await first.local.close();
    const second = await openWith('month', firstRetention - 50, first.stateDir);
    const byMonth = await runLocalArchive(second.local, {}, { retryIntervalScale: 0 });
    const archives = await readLiveArchives(second.local, 'public', 'switched');
    const month = new Date(fifteenth).toISOString().slice(0, 8);
    const spans = archives
      .filter((a) => a.manifest.day.startsWith(month))
      .map((a) => a.manifest.span ?? 'day');
    const deps = second.local.deps();
    const report = await validateArchives(
      deps.store,
      {
        format: 'native',
        location: {
          prefix: second.local.config.s3.prefix,
          database: 'app',
          schema: 'public',
          table: 'switched',
        },
      },
      { database: 'app', schema: 'public', table: 'switched' },
      {},
      new Date(),
      await deps.inventory.list('app', 'public.switched'),
    );
    await second.local.close();

    // Assess: the month holds day objects and a month object; every row once; no archive called archived twice.
    expect([byDay.execution.status, byMonth.execution.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(new Set(spans)).toEqual(new Set(['day', 'month']));
    const left = await tableLines(db.client, table);
    const { lost, doubled } = compareRows(original, [...left, ...archives.flatMap((a) => a.lines)]);
    const twice = report.problems.filter((p) => p.kind === 'archived-twice');
    recordProof({ kind: 'invariant', rows: original.length, lost, doubled });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'switches a uuid-keyed table from day to month objects with a month partly archived by day, then validates',
      held: lost === 0 && doubled === 0 && twice.length === 0,
    });
    expect({ lost, doubled }).toEqual({ lost: 0, doubled: 0 });
    expect(twice).toEqual([]);
  });
});
