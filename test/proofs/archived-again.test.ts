/**
 * Rows restored into the archived table itself are still past the cut-off: the next run archives them again. Rows
 * archived again as they were go to the same content-addressed key, whose archive and manifest an earlier version may
 * have written: the table must go on, every row in one live archive, restorable.
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CopyObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { manifestSha256 } from '../../lambdas/shared/archive/integrity.js';
import type { InventoryEntry } from '../../lambdas/shared/archive/inventory.js';
import { RowDigest } from '../../lambdas/shared/archive/row-digest.js';
import { ArchiveInventory } from '../../lambdas/shared/lock-table/archive-inventory.js';
import { type LocalEnvironment, runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  compareRows,
  fixedCutoffSql,
  type LiveArchive,
  readLiveArchives,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
  validateLocalTable,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const fast = { retryIntervalScale: 0 };

/** The versions whose archives differ from today's around the same rows. */
const EARLIER = {
  /** Figures with the row digest (manifest, object metadata, inventory entry), no lcMonetary, no manifest digest. */
  'before 2026-12-03': { rowDigest: true },
  /** No lcMonetary in the manifest nor the inventory entry, and no manifest digest in the entry. */
  'before 2026-12-04': { rowDigest: false },
  /**
   * Such an archive whose rows a version of 2026-12-04 or 05 (before 039d86b) archived again: the entry binds the
   * manifest's digest, and records lcMonetary C, which the manifest lacks. No column of the table holds money.
   */
  'before 2026-12-04 (its entry from 2026-12-05)': { rowDigest: false, recordedC: true },
} as const;
type Earlier = keyof typeof EARLIER;

/** Makes a committed archive as an earlier version left it. The object's bytes stay, so its pin holds. */
async function asWrittenBy(version: Earlier, local: LocalEnvironment, table: string, archive: LiveArchive) {
  const digest = new RowDigest();
  for (const line of archive.lines) digest.add(Buffer.from(line));
  const earlier: { rowDigest: boolean; recordedC?: boolean } = EARLIER[version];
  const rowDigest = earlier.rowDigest ? digest.value() : undefined;
  const withDigest = <T extends object>(figures: T) => (rowDigest ? { ...figures, rowDigest } : figures);
  const s3 = s3ClientFor(local);
  const Bucket = local.services.bucket;
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: archive.key }));
  await s3.send(
    new CopyObjectCommand({
      Bucket,
      Key: archive.key,
      CopySource: `${Bucket}/${archive.key}`,
      MetadataDirective: 'REPLACE',
      Metadata: { ...head.Metadata, ...(rowDigest ? { 'row-digest': rowDigest } : {}) },
      ContentType: head.ContentType,
      ContentEncoding: head.ContentEncoding,
    }),
  );
  const { lcMonetary: _money, ...manifest } = {
    ...archive.manifest,
    figures: withDigest(archive.manifest.figures),
  };
  const manifestText = JSON.stringify(manifest, null, 2);
  await s3.send(new PutObjectCommand({ Bucket, Key: manifestKeyFor(archive.key), Body: manifestText }));
  const deps = local.deps();
  const entry = (await deps.inventory.entries('app', table, [archive.key])).get(archive.key);
  if (!entry) throw new Error(`setup: ${archive.key} is not in the inventory`);
  const { manifestSha256: _bound, lcMonetary: _recorded, ...older } = entry;
  const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: local.services.dynamoEndpoint }), {
    marshallOptions: { removeUndefinedValues: true },
  });
  await ddb.send(
    new UpdateCommand({
      TableName: local.services.lockTable,
      Key: ArchiveInventory.key('app', table, archive.key),
      UpdateExpression: 'SET #archive = :entry',
      ExpressionAttributeNames: { '#archive': 'archive' },
      ExpressionAttributeValues: {
        ':entry': {
          ...older,
          figures: withDigest(older.figures),
          ...(earlier.recordedC ? { manifestSha256: manifestSha256(manifestText), lcMonetary: 'C' } : {}),
        } satisfies InventoryEntry,
      },
    }),
  );
  ddb.destroy();
}

describe('rows restored into the archived table, archived again', () => {
  const versions = Object.keys(EARLIER) as Earlier[];
  const name = (version: Earlier) => `older_${versions.indexOf(version)}`;
  const spec = (version: Earlier) => ({
    schema: 'public',
    name: name(version),
    timestampColumn: 'created_at',
  });
  const bed = archiverTestbed(async (db) => {
    for (const version of versions) await seedEvents(db.client, name(version), 80, 40);
  }, versions.map(spec));

  it.each(versions)(
    'under the keys of archives a version %s wrote: archived again once, restorable, the table not stuck',
    async (version) => {
      // Prepare: archive; the archives as that version wrote them; restore all into the table.
      const ref = `public.${name(version)}`;
      const table = resolvedTable(spec(version));
      const original = await tableLines(bed.db.client, table);
      const cutoff = await fixedCutoffSql(bed.db.client);
      expect((await runLocalArchive(bed.local, { tables: [ref] }, fast)).execution.status).toBe('SUCCEEDED');
      const archives = await readLiveArchives(bed.local, 'public', name(version));
      for (const archive of archives) await asWrittenBy(version, bed.local, ref, archive);
      const back = await runLocalRestore(bed.local, { database: 'app', table: ref }, fast);
      expect(back.execution.status).toBe('SUCCEEDED');
      expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());

      // Act
      const again = await runLocalArchive(bed.local, { tables: [ref] }, fast);
      const left = (
        await bed.db.client.query(`SELECT count(*)::int AS n FROM ${ref} WHERE created_at < ${cutoff}`)
      ).rows[0].n as number;
      const held = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original).then(
        () => true,
        () => false,
      );
      const copy = await runLocalRestore(
        bed.local,
        { database: 'app', table: ref, targetTable: `${ref}_copy` },
        fast,
      );
      const deps = bed.local.deps();
      const entries = await deps.inventory.entries(
        'app',
        ref,
        archives.map((a) => a.key),
      );
      const validated = await validateLocalTable(bed.local, name(version));
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: `restores into the archived table rows whose archives a version ${version} wrote, and the next run archives them again`,
        held:
          again.execution.status === 'SUCCEEDED' &&
          left === 0 &&
          held &&
          copy.execution.status === 'SUCCEEDED',
      });

      // Assess: the rows went back to the same keys, each once; a restore into a copy brings every one back. (A run
      // that ends past UTC midnight also archives the day that became old: an archive of a day of its own.)
      expect(again.outcomes.map((o) => `${o.status} ${o.error ?? ''}`.trim())).toEqual(['succeeded']);
      expect(again.execution.status).toBe('SUCCEEDED');
      expect(left).toBe(0);
      const live = await readLiveArchives(bed.local, 'public', name(version));
      const days = new Set(archives.map((a) => a.manifest.day));
      expect(
        live
          .filter((a) => days.has(a.manifest.day))
          .map((a) => a.key)
          .sort(),
      ).toEqual(archives.map((a) => a.key).sort());
      expect(held).toBe(true);
      expect(copy.results.filter((r) => r.error)).toEqual([]);
      expect(copy.execution.status).toBe('SUCCEEDED');
      const copied = await tableLines(
        bed.db.client,
        resolvedTable({ ...spec(version), name: `${name(version)}_copy` }),
      );
      expect(copied.sort()).toEqual(live.flatMap((a) => a.lines).sort());
      // The commit records the lcMonetary of the manifest it binds (none), so validate finds each as committed.
      expect(archives.map((a) => entries.get(a.key)?.lcMonetary ?? 'none')).toEqual(
        archives.map(() => 'none'),
      );
      expect(validated.problems.filter((p) => p.severity === 'error')).toEqual([]);
    },
  );
});

/**
 * A day whose rows two batches took (the first ended mid-day) is one object once it is restored alone and archived
 * again: its rows go to a third archive, under a key of their own. They are then in two committed archives, which a
 * restore must not double.
 */
describe('rows of a day restored into the archived table and archived again under other cuts', () => {
  const spec = { schema: 'public', name: 'split', timestampColumn: 'created_at', batchSize: 25 };
  const table = resolvedTable(spec);
  // 20 rows a day (19 on the first), 5 days past the cut-off: batches of 25 end mid-day.
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'split', 700, 35), [spec]);

  it('archives them once more under a key of their own; a restore of the table writes each row once', async () => {
    // Prepare: archive; restore a day two archives hold into the table.
    const original = await tableLines(bed.db.client, table);
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const first = await readLiveArchives(bed.local, 'public', 'split');
    const days = first.map((a) => a.manifest.day);
    const splitDay = days.find((day, i) => days.indexOf(day) !== i);
    if (!splitDay) throw new Error('setup: no day in two archives');
    const back = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.split', mode: 'range', fromDay: splitDay, toDay: splitDay },
      fast,
    );
    expect(back.execution.status).toBe('SUCCEEDED');
    const dayRows = back.results.reduce((n, r) => n + r.inserted, 0);

    const twice = async () => {
      const report = await validateLocalTable(bed.local, 'split');
      return report.problems.filter((p) => p.kind === 'archived-twice');
    };
    const twiceBefore = await twice();

    // Act: the next run; then the whole table restored into a copy, under skip and under overwrite.
    const again = await runLocalArchive(bed.local, {}, fast);
    const after = await readLiveArchives(bed.local, 'public', 'split');
    const twiceAfter = await twice();
    const present = await tableLines(bed.db.client, table);
    const inArchives = compareRows(original, [...present, ...after.flatMap((a) => a.lines)]);
    const copies: Record<string, { status: string; lost: number; doubled: number }> = {};
    for (const strategy of ['skip', 'overwrite'] as const) {
      const copy = await runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.split', targetTable: `public.split_${strategy}`, strategy },
        fast,
      );
      const copied = await tableLines(bed.db.client, resolvedTable({ ...spec, name: `split_${strategy}` }));
      const { lost, doubled } = compareRows(original, [...present, ...copied]);
      copies[strategy] = { status: copy.execution.status, lost, doubled };
    }
    const restoredOnce = Object.values(copies).every(
      (c) => c.status === 'SUCCEEDED' && c.lost === 0 && c.doubled === 0,
    );
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores into the archived table one day of rows two batches archived, and the next run archives that day as one object',
      held: again.execution.status === 'SUCCEEDED' && inArchives.lost === 0 && restoredOnce,
    });

    // Assess: the day is in a third archive, so its rows are in two; nothing lost; each restore writes every row once.
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(after.length).toBe(first.length + 1);
    expect(
      after
        .filter((a) => a.manifest.day === splitDay)
        .map((a) => a.lines.length)
        .sort(),
    ).toEqual(
      [...first.filter((a) => a.manifest.day === splitDay).map((a) => a.lines.length), dayRows].sort(),
    );
    expect(inArchives).toEqual({ lost: 0, doubled: dayRows, extra: 0 });
    // validate warns of the rows it counts twice: the new archive's keys overlap both earlier archives of the day.
    const older = first.filter((a) => a.manifest.day === splitDay).map((a) => a.key);
    const newer = after.find((a) => !first.some((f) => f.key === a.key))?.key;
    expect(twiceBefore).toEqual([]);
    expect(twiceAfter.map((p) => [p.severity, p.key])).toEqual([['warning', newer]]);
    for (const key of older) expect(twiceAfter[0]?.detail).toContain(key);
    expect(copies).toEqual({
      skip: { status: 'SUCCEEDED', lost: 0, doubled: 0 },
      overwrite: { status: 'SUCCEEDED', lost: 0, doubled: 0 },
    });
  });
});

describe('rows restored, moved to another time of the day by the application, and archived again', () => {
  const spec = { schema: 'public', name: 'moved', timestampColumn: 'created_at', batchSize: 25 };
  // As split above: 20 rows a day, batches of 25 that end mid-day, so a day lies in two archives cut by key.
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'moved', 700, 35), [spec]);

  it('validate still warns of them as archived twice, though the timestamp ranges of the archives do not meet', async () => {
    // Prepare: archive; restore a day two archives hold; move its rows to an instant between those archives' ranges.
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const first = await readLiveArchives(bed.local, 'public', 'moved');
    const days = first.map((a) => a.manifest.day);
    const splitDay = days.find((day, i) => days.indexOf(day) !== i);
    const ofDay = first
      .filter((a) => a.manifest.day === splitDay)
      .sort((a, b) => a.manifest.timestampRange.min.localeCompare(b.manifest.timestampRange.min));
    const [early, late] = ofDay;
    if (!splitDay || !early || !late) throw new Error('setup: no day in two archives');
    const back = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.moved', mode: 'range', fromDay: splitDay, toDay: splitDay },
      fast,
    );
    expect(back.execution.status).toBe('SUCCEEDED');
    const between = new Date(Date.parse(early.manifest.timestampRange.max) + 1000).toISOString();
    expect(between < late.manifest.timestampRange.min).toBe(true);
    await bed.db.client.query(
      `UPDATE public.moved SET created_at = $1 WHERE created_at >= $2 AND created_at < $2::timestamptz + interval '1 day'`,
      [between, splitDay],
    );

    // Act
    expect((await runLocalArchive(bed.local, {}, fast)).execution.status).toBe('SUCCEEDED');
    const report = await validateLocalTable(bed.local, 'moved');

    // Assess: the new archive of the day holds the moved rows, whose keys both earlier archives hold too.
    const newer = (await readLiveArchives(bed.local, 'public', 'moved')).find(
      (a) => !first.some((f) => f.key === a.key),
    );
    const range = newer?.manifest.timestampRange;
    expect([range?.min, range?.max].map((t) => Date.parse(t ?? ''))).toEqual([
      Date.parse(between),
      Date.parse(between),
    ]);
    const twice = report.problems.filter((p) => p.kind === 'archived-twice');
    expect(twice.map((p) => [p.severity, p.key])).toEqual([['warning', newer?.key]]);
    expect(twice[0]?.detail).toMatch(/^[1-9]\d* of its rows \(by key\) are also in /);
    expect(twice[0]?.detail).toContain(early.key);
    expect(twice[0]?.detail).toContain(late.key);
  });
});

/**
 * An entry committed before entries bound the manifest's digest binds its lcMonetary still: a bucket writer who strips
 * it from that archive's manifest gets the archive refused by restore, and must not get the next archive of the same
 * rows to commit the stripped manifest in its place.
 */
describe('rows archived again under an entry that binds lcMonetary but no manifest digest', () => {
  const spec = { schema: 'public', name: 'money_bound', timestampColumn: 'created_at' };
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'money_bound', 40, 35), [spec]);

  it('does not commit a manifest a bucket writer stripped of its lcMonetary: verify refuses it, the entry keeps C', async () => {
    // Prepare: archived, restored into the table; then the first archive's entry as such a version left it, and its
    // manifest stripped.
    const ref = 'public.money_bound';
    const table = resolvedTable(spec);
    const original = await tableLines(bed.db.client, table);
    expect((await runLocalArchive(bed.local, { tables: [ref] }, fast)).execution.status).toBe('SUCCEEDED');
    const back = await runLocalRestore(bed.local, { database: 'app', table: ref }, fast);
    expect(back.execution.status).toBe('SUCCEEDED');
    const [victim] = await readLiveArchives(bed.local, 'public', 'money_bound');
    if (!victim) throw new Error('setup: nothing archived');
    const inventory = bed.local.deps().inventory;
    const entry = (await inventory.entries('app', ref, [victim.key])).get(victim.key);
    if (!entry) throw new Error(`setup: ${victim.key} is not in the inventory`);
    const { manifestSha256: _bound, ...older } = entry;
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: bed.local.services.dynamoEndpoint }),
      {
        marshallOptions: { removeUndefinedValues: true },
      },
    );
    await ddb.send(
      new UpdateCommand({
        TableName: bed.local.services.lockTable,
        Key: ArchiveInventory.key('app', ref, victim.key),
        UpdateExpression: 'SET #archive = :entry',
        ExpressionAttributeNames: { '#archive': 'archive' },
        ExpressionAttributeValues: { ':entry': older satisfies InventoryEntry },
      }),
    );
    ddb.destroy();
    const { lcMonetary: _money, ...stripped } = victim.manifest;
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: manifestKeyFor(victim.key),
        Body: JSON.stringify(stripped, null, 2),
      }),
    );

    // Act
    const again = await runLocalArchive(bed.local, { tables: [ref] }, fast);

    // Assess: the entry still binds C; the batch is withdrawn and its rows stay.
    const after = (await inventory.entries('app', ref, [victim.key])).get(victim.key);
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack:
        'strips the lcMonetary of a manifest whose entry binds it but no digest, then identical rows are archived again',
      held: again.execution.status === 'FAILED' && after?.lcMonetary === 'C',
    });
    expect(entry.lcMonetary).toBe('C');
    expect(after?.lcMonetary).toBe('C');
    expect(again.execution.status).toBe('FAILED');
    expect(again.outcomes[0]?.error).toMatch(
      /^ArchiveIntegrityError: archive .* failed verification: .*lcMonetary/,
    );
    expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());
  });
});
