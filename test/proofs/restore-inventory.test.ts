import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateCommand } from '../../cli/archives.js';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import type { InventoryEntry } from '../../lambdas/shared/archive/inventory.js';
import { loadDeploymentConfigFile } from '../../lambdas/shared/config/deployment-schema.js';
import { listAuditEvents } from '../../lambdas/shared/telemetry/audit-trail.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
  writeTestConfig,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at', batchSize: 100 });
const TABLES = [spec('moved'), spec('erased')];
const day = (key: string) => /year=(\d+)\/month=(\d+)\/day=(\d+)/.exec(key)?.slice(1).join('-') ?? '';
const rowsOf = (entries: InventoryEntry[]) => entries.reduce((n, e) => n + e.figures.rowCount, 0);
const byKey = (a: InventoryEntry, b: InventoryEntry) => (a.archiveKey < b.archiveKey ? -1 : 1);

/**
 * Restore compares what it lists in the bucket with the inventory of committed archives (kept outside the bucket):
 * a committed archive it cannot reach, because `s3.prefix` changed since it was written or a bucket writer deleted
 * it, fails the plan before anything is written, unless the request knowingly allows it.
 */
describe('restore against the inventory of committed archives', () => {
  // One batch a run under the first config (prefix archive/); the second config (prefix moved/) has no such limit.
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'moved', 600, 60);
      await seedEvents(db.client, 'erased', 200, 40);
    },
    TABLES,
    { defaults: { maxBatchesPerRun: 1 } },
  );
  /** The config after the operator changed `s3.prefix` from archive/ to moved/; the same bucket and lock table. */
  let moved: ReturnType<typeof writeTestConfig>;
  beforeAll(() => {
    moved = writeTestConfig(bed.db, TABLES, { prefix: 'moved/' });
    bed.redeployedWith(moved.configPath);
  });
  afterAll(() => moved?.cleanup());
  /** The functions read the moved config (the same state: local S3 server, lock table). */
  const withMovedConfig = () => ({ retryIntervalScale: 0, env: { ARCHIVER_CONFIG_PATH: moved.configPath } });
  const committed = (table: string) => bed.local.deps().inventory.list('app', `public.${table}`);
  const exists = async (table: string) =>
    (await bed.db.client.query(`SELECT to_regclass($1) AS t`, [`public.${table}`])).rows[0].t !== null;
  const validate = async (config: Parameters<typeof validateCommand>[1], table: string) => {
    const lines: string[] = [];
    const code = await validateCommand(
      bed.local.deps().store,
      config,
      { table: [`public.${table}`], json: false, strict: false },
      (line) => lines.push(line),
      bed.local.deps().inventory,
    );
    return { code, text: lines.join('\n') };
  };

  /** Committed archives of `moved` written under archive/ (before the prefix changed) and under moved/ (after). */
  let before: InventoryEntry[] = [];
  let after: InventoryEntry[] = [];

  it('archives one batch under archive/, then the rest after s3.prefix changed to moved/ (the material below)', async () => {
    // Act
    const first = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    const rest = await runLocalArchive(bed.local, { tables: ['public.moved'] }, withMovedConfig());

    // Assess
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(rest.execution.status).toBe('SUCCEEDED');
    const entries = (await committed('moved')).sort(byKey);
    before = entries.filter((e) => e.archiveKey.startsWith('archive/'));
    after = entries.filter((e) => e.archiveKey.startsWith('moved/'));
    expect(before.length).toBeGreaterThan(1);
    expect(after.length).toBeGreaterThan(1);
    expect(rowsOf(before)).toBe(100);
    expect(before.length + after.length).toBe(entries.length);
  });

  it('after the prefix changed, a restore (and its dry run) fails before writing anything, naming the committed archives it cannot reach and why', async () => {
    // Act
    const request = { database: 'app', table: 'public.moved', targetTable: 'public.moved_copy' };
    const restored = await runLocalRestore(bed.local, request, withMovedConfig());
    const dryRun = await runLocalRestore(bed.local, { ...request, dryRun: true }, withMovedConfig());
    const oneKey = await runLocalRestore(
      bed.local,
      { ...request, mode: 'key', key: before[0]?.archiveKey },
      withMovedConfig(),
    );
    const oneKeyAllowed = await runLocalRestore(
      bed.local,
      { ...request, mode: 'key', key: before[0]?.archiveKey, allowMissingArchives: true },
      withMovedConfig(),
    );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 's3.prefix changed after archives were committed, then a whole-table restore',
      held: restored.execution.status === 'FAILED' && restored.results.length === 0,
    });

    // Assess
    for (const run of [restored, dryRun]) {
      expect(run.execution.status).toBe('FAILED');
      expect(run.execution.error?.name).toBe('ConfigError');
      const message = run.execution.error?.message ?? '';
      expect(message).toContain(`${before.length} committed archive(s) of "public"."moved"`);
      expect(message).toContain(`${rowsOf(before)} rows`);
      for (const entry of before.slice(0, 5)) expect(message).toContain(entry.archiveKey);
      expect(message).toContain('outside the current s3.prefix "moved/" (written under "archive/")');
      expect(message).toMatch(/restore them with the old prefix .* in the config/);
      expect(message).toContain('allowMissingArchives');
      expect(run.results).toEqual([]);
    }
    // By key, allowing missing archives leaves nothing to restore: the same reason, not "does not exist".
    for (const run of [oneKey, oneKeyAllowed]) {
      expect(run.execution.error?.name).toBe('ConfigError');
      expect(run.execution.error?.message).toContain(`1 committed archive(s) of "public"."moved"`);
      expect(run.execution.error?.message).toContain('outside the current s3.prefix');
    }
    expect(await exists('moved_copy')).toBe(false);
  });

  it('with allowMissingArchives it restores what the bucket holds, and the summary and audit event count what it left out', async () => {
    // Act
    const restored = await runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.moved',
        targetTable: 'public.moved_rest',
        allowMissingArchives: true,
      },
      withMovedConfig(),
    );
    const [event] = await listAuditEvents(bed.local.deps().store, 'moved/', { kinds: ['restore-finished'] });

    // Assess
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(restored.results.map((r) => r.key).sort()).toEqual(after.map((e) => e.archiveKey));
    expect(restored.execution.output).toMatchObject({
      status: 'succeeded',
      totals: { files: after.length, inserted: rowsOf(after) },
      warnings: [
        `${before.length} committed archive(s) with ${rowsOf(before)} rows were not in the bucket and were left out (allowMissingArchives): this target lacks their rows unless other archives hold them too`,
      ],
    });
    const back = await tableLines(
      bed.db.client,
      resolvedTable({ name: 'moved_rest', timestampColumn: 'created_at' }),
    );
    expect(back).toHaveLength(rowsOf(after));
    expect(event?.details).toMatchObject({
      status: 'succeeded',
      missingArchives: before.length,
      missingRows: rowsOf(before),
    });
    expect(event?.details.sequencesNotAdvanced).toBeUndefined();
  });

  it('validate after the prefix changed says the committed archives are outside the current prefix, not gone', async () => {
    // Act
    const validated = await validate(loadDeploymentConfigFile(moved.configPath), 'moved');

    // Assess
    expect(validated.code).toBe(1);
    for (const entry of before)
      expect(validated.text).toContain(
        `ERROR missing-archive: ${entry.archiveKey}: committed ${entry.committedAt} with ${entry.figures.rowCount} rows; outside the current prefix (moved/app/public.moved/), so not read here: s3.prefix or the bucket changed since it was written`,
      );
    expect(validated.text).not.toMatch(/the object is gone/);
  });

  it('a committed archive deleted by a bucket writer fails the restore and its dry run before anything is written; a day range without it restores', async () => {
    // Prepare
    const entries = (await committed('erased')).sort(byKey);
    const victim = entries[1];
    const next = entries[2];
    if (!victim || !next) throw new Error('fewer than three archives of public.erased');
    const s3 = s3ClientFor(bed.local);
    for (const Key of [victim.archiveKey, manifestKeyFor(victim.archiveKey)])
      await s3.send(new DeleteObjectCommand({ Bucket: bed.local.services.bucket, Key }));
    const request = { database: 'app', table: 'public.erased', targetTable: 'public.erased_copy' };

    // Act
    const restored = await runLocalRestore(bed.local, request, { retryIntervalScale: 0 });
    const dryRun = await runLocalRestore(bed.local, { ...request, dryRun: true }, { retryIntervalScale: 0 });
    const oneKey = await runLocalRestore(
      bed.local,
      { ...request, mode: 'key', key: victim.archiveKey },
      { retryIntervalScale: 0 },
    );
    const laterDays = await runLocalRestore(
      bed.local,
      { ...request, mode: 'range', fromDay: day(next.archiveKey) },
      { retryIntervalScale: 0 },
    );
    const validated = await validate(bed.local.config, 'erased');
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'committed archive and manifest deleted, then a whole-table restore',
      held: restored.execution.status === 'FAILED' && dryRun.execution.status === 'FAILED',
    });

    // Assess
    for (const run of [restored, dryRun, oneKey]) {
      expect(run.execution.status).toBe('FAILED');
      expect(run.execution.error?.name).toBe('ConfigError');
      const message = run.execution.error?.message ?? '';
      expect(message).toContain(
        `1 committed archive(s) of "public"."erased" in the inventory, ${victim.figures.rowCount} rows`,
      );
      expect(message).toContain(victim.archiveKey);
      expect(message).toContain('1 is under the current prefix but gone from this bucket (test-archive)');
      expect(run.results).toEqual([]);
    }
    expect(laterDays.execution.status).toBe('SUCCEEDED');
    expect(laterDays.results.map((r) => r.key)).toEqual(entries.slice(2).map((e) => e.archiveKey));
    // Only the range restore wrote: into the target it created.
    expect(await exists('erased_copy')).toBe(true);
    expect(validated.text).toContain(
      `ERROR missing-archive: ${victim.archiveKey}: committed ${victim.committedAt} with ${victim.figures.rowCount} rows; the object is gone from this bucket`,
    );
  });
});
