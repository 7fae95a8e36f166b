import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { exportBatch } from '../../../lambdas/export/core.js';
import { ManifestSchema, manifestKeyFor } from '../../../lambdas/shared/archive/format.js';
import { versionDigestFromSql } from '../../../lambdas/shared/archive/version-digest.js';
import { retentionCutoff } from '../../../lambdas/shared/config/governance.js';
import { describeTable } from '../../../lambdas/shared/database/table-shape.js';
import { rowVersionSql } from '../../../lambdas/shared/database/table-sql.js';
import type { StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import type { TableTask } from '../../../lambdas/shared/step/table-task.js';
import {
  archiverTestbed,
  cutoffSql,
  getObject,
  listKeys,
  resolvedTable,
  type TestDatabase,
  TODAY_UTC_SQL,
} from '../../support/fixtures.js';
import { archiveLineRows } from '../../support/sql.js';

const DAY_MS = 86_400_000;

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
      await db.client.query(`
        CREATE TABLE recent (id bigint PRIMARY KEY, created_at timestamptz, actor text NOT NULL);
        INSERT INTO recent VALUES (1, ${cutoffSql()}, 'at_cutoff'), (2, NULL, 'no_timestamp'), (3, ${TODAY_UTC_SQL}, 'today')`);
    },
    [spec('staged'), spec('retried'), spec('recent')],
  );

  async function leasedTask(deps: StepDeps, table: string): Promise<TableTask> {
    const acquired = await deps.locks.acquire('app', table, `exec-${table}`, 600);
    if (!acquired.acquired) throw new Error(`could not acquire ${table}`);
    return {
      runId: `exec-${table}`,
      database: 'app',
      table,
      cutoff: retentionCutoff(Date.now(), 30),
      lease: acquired.lease,
    };
  }

  const stagedLines = async (key: string) =>
    gunzipSync(await getObject(bed.local, key))
      .toString('utf8')
      .split('\n')
      .filter((line) => line.length > 0);

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
    expect(exported).toMatchObject({ day: oldestDay, rows: 4 });
    expect((await stagedLines(exported.stagingKey)).sort()).toEqual(expected.sort());
    const manifestText = (await getObject(bed.local, manifestKeyFor(exported.stagingKey))).toString('utf8');
    const manifest = ManifestSchema.parse(JSON.parse(manifestText));
    expect(manifest).toMatchObject({
      dataKey: exported.archiveKey,
      day: oldestDay,
      cutoff: task.cutoff,
      keyRange: { first: ['1'], last: ['4'] },
      figures: { rowCount: 4, compressedBytes: exported.compressedBytes },
    });
    expect(Date.parse(manifest.bounds.to)).toBeLessThanOrEqual(Date.parse(task.cutoff));
    const { inFlight } = await deps.locks.get('app', 'public.staged');
    const versionDigest = versionDigestFromSql(versions.rows[0]?.sum ?? '');
    expect(inFlight).toMatchObject({
      stage: 'exported',
      stagingKey: exported.stagingKey,
      archiveKey: exported.archiveKey,
      figures: manifest.figures,
      versionDigest,
    });
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
    const firstLines = await stagedLines(first.stagingKey);

    // Act
    const retried = await exportBatch(task, deps);

    // Assess
    if (retried.status !== 'exported') throw new Error(`expected a batch, got ${retried.status}`);
    expect(retried).toMatchObject({ day: first.day, rows: first.rows, archiveKey: first.archiveKey });
    expect(await stagedLines(retried.stagingKey)).toEqual(firstLines);
    const staged = (await listKeys(bed.local, '')).filter((key) => key.includes('_staging/'));
    expect(staged.filter((key) => key.includes('public.retried/')).sort()).toEqual(
      [retried.stagingKey, manifestKeyFor(retried.stagingKey)].sort(),
    );
    const { inFlight } = await deps.locks.get('app', 'public.retried');
    expect(inFlight).toMatchObject({ stage: 'exported', stagingKey: retried.stagingKey });
    expect(await countRows('retried')).toBe(13);
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
});
