import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import { archiverTestbed, readLiveArchives, seedEvents, writeTestConfig } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const fast = { retryIntervalScale: 0 };

/**
 * Archives `public.<table>`, restores it into itself and redacts the row with the least id (the application's
 * change): that row's old version is now in a committed archive, its new one only in the table. Returns its id.
 */
async function archiveRestoreRedact(
  bed: Pick<ReturnType<typeof archiverTestbed>, 'db' | 'local'>,
  table: string,
): Promise<number> {
  if ((await runLocalArchive(bed.local, {}, fast)).execution.status !== 'SUCCEEDED')
    throw new Error('archive');
  const back = await runLocalRestore(bed.local, { database: 'app', table: `public.${table}` }, fast);
  if (back.execution.status !== 'SUCCEEDED') throw new Error('restore');
  const redacted = await bed.db.client.query<{ id: number }>(
    `UPDATE public.${table} SET actor = 'REDACTED', payload = NULL
      WHERE id = (SELECT min(id) FROM public.${table}) RETURNING id::int AS id`,
  );
  return redacted.rows[0]?.id ?? 0;
}

/**
 * A day archived, restored into the table, one of its rows redacted and the day archived again: two committed
 * archives of that day hold the row, the old version and the redacted one. Whatever their keys' order, a restore
 * brings back the version archived last (the newest committed), under every strategy.
 */
describe('restore of a row two committed archives hold in two versions', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'events', 60, 36),
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );
  let redactedId = 0;
  let oldKey = '';
  let newKey = '';

  beforeAll(async () => {
    // Prepare: archived, restored, redacted, archived again.
    redactedId = await archiveRestoreRedact(bed, 'events');
    if ((await runLocalArchive(bed.local, {}, fast)).execution.status !== 'SUCCEEDED')
      throw new Error('archive');
    const holding = (await readLiveArchives(bed.local, 'public', 'events')).filter((archive) =>
      archive.lines.some((line) => Number(JSON.parse(line).id) === redactedId),
    );
    const entries = await bed.local.deps().inventory.list('app', 'public.events');
    const committedAt = (key: string) => entries.find((entry) => entry.archiveKey === key)?.committedAt ?? '';
    const [older, newer] = holding
      .map((a) => a.key)
      .sort((a, b) => (committedAt(a) < committedAt(b) ? -1 : 1));
    if (holding.length !== 2 || !older || !newer) throw new Error('expected two archives holding the row');
    oldKey = older;
    newKey = newer;
  });

  const rowIn = async (target: string) =>
    (await bed.db.client.query(`SELECT actor, payload FROM public.${target} WHERE id = $1`, [redactedId]))
      .rows;

  it.each(['skip', 'overwrite'] as const)(
    'brings the row back as archived last under %s, every archive restored',
    async (strategy) => {
      // Act
      const target = `latest_${strategy}`;
      const result = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.events', targetTable: `public.${target}`, strategy },
        fast,
      );

      // Assess
      const row = await rowIn(target);
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `restores (${target}) a partition holding a row in two committed archives`,
        held: result.execution.status === 'SUCCEEDED' && row[0]?.actor === 'REDACTED',
      });
      expect(result.execution.status).toBe('SUCCEEDED');
      expect(row).toEqual([{ actor: 'REDACTED', payload: null }]);
      expect(result.results.find((r) => r.key === newKey)?.status).toBe('restored');
      expect(result.results.find((r) => r.key === oldKey)?.status).toBe('restored');
    },
  );

  it('under fail writes the newest version and refuses the older archive, whose rows are there already', async () => {
    // Act
    const result = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', targetTable: 'public.latest_fail', strategy: 'fail' },
      fast,
    );

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(await rowIn('latest_fail')).toEqual([{ actor: 'REDACTED', payload: null }]);
    expect(result.results.find((r) => r.key === newKey)?.status).toBe('restored');
    expect(result.results.find((r) => r.key === oldKey)?.status).toBe('failed');
  });
});

/**
 * The same with a layout switch between the two archive runs: the month's rows archived in month objects, restored,
 * one redacted, then `objectSpan: day` deployed and the rows archived again in day objects of that month. A listing
 * in key order gives the month object first; the restore still brings back the version archived last.
 */
describe('restore of a row archived in a month object, then again in a day object (objectSpan switched)', () => {
  const monthly = {
    schema: 'public',
    name: 'spans',
    timestampColumn: 'created_at',
    objectSpan: 'month' as const,
  };
  // 70 days: whatever the date, a whole month lies between the oldest rows and the cut-off (30 days), so the first
  // run writes month objects (export takes a month only once all of it is past the cut-off).
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'spans', 70, 70), [monthly]);
  let daily: ReturnType<typeof writeTestConfig>;
  let redactedId = 0;

  beforeAll(async () => {
    // Prepare: archived by month, restored, redacted, archived again by day
    redactedId = await archiveRestoreRedact(bed, 'spans');
    daily = writeTestConfig(bed.db, [{ ...monthly, objectSpan: 'day' }]);
    bed.redeployedWith(daily.configPath);
    const again = await runLocalArchive(
      bed.local,
      {},
      { ...fast, env: { ARCHIVER_CONFIG_PATH: daily.configPath } },
    );
    if (again.execution.status !== 'SUCCEEDED') throw new Error('archive again');
  });
  afterAll(() => daily?.cleanup());

  it.each(['skip', 'overwrite'] as const)(
    'brings the row back as archived last under %s',
    async (strategy) => {
      // Act
      const target = `spans_${strategy}`;
      const result = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.spans', targetTable: `public.${target}`, strategy },
        { ...fast, env: { ARCHIVER_CONFIG_PATH: daily.configPath } },
      );
      const row = await bed.db.client.query(`SELECT actor, payload FROM public.${target} WHERE id = $1`, [
        redactedId,
      ]);

      // Assess
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `switches objectSpan after a month was restored and changed, then restores (${strategy})`,
        held: result.execution.status === 'SUCCEEDED' && row.rows[0]?.actor === 'REDACTED',
      });
      expect(result.execution.status).toBe('SUCCEEDED');
      expect(row.rows).toEqual([{ actor: 'REDACTED', payload: null }]);
    },
  );
});
