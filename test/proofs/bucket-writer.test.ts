import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DeleteCommand, DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { validateCommand } from '../../cli/archives.js';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import { ByteFigures, JsonLinesToCopy } from '../../lambdas/shared/archive/stream.js';
import { StorageUnavailableError } from '../../lambdas/shared/errors/step-errors.js';
import { ArchiveInventory } from '../../lambdas/shared/lock-table/archive-inventory.js';
import { LeaseStore } from '../../lambdas/shared/lock-table/lease-store.js';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  getObject,
  readLiveArchives,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * A bucket writer can PUT, overwrite and delete any object of the archive bucket, but cannot write the lock table or
 * the database. s3rver has no versioning and ignores If-Match, so these runs show what holds where S3 keeps no
 * older version: the checks the code makes itself (the pinned ETag, the key's hash, the inventory).
 */
const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

describe('a bucket writer cannot make the archiver lose rows or restore forged ones', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'swapped', 300, 33);
      await seedEvents(db.client, 'forged', 300, 33);
      await seedEvents(db.client, 'raced', 60, 33);
      await seedEvents(db.client, 'raced_retried', 60, 33);
      await seedEvents(db.client, 'laundered', 60, 33);
      await seedEvents(db.client, 'padded', 60, 33);
      // Rows on three days with two empty days between them (the 35th, 34th and 31st day before today).
      await db.client.query(
        'CREATE TABLE public.sparse (id bigserial PRIMARY KEY, created_at timestamptz, actor text NOT NULL, payload jsonb)',
      );
      await db.client.query(
        `INSERT INTO public.sparse (created_at, actor, payload)
         SELECT ${TODAY_UTC_SQL} - make_interval(days => d) + make_interval(hours => g), 'user_' || g, '{}'::jsonb
           FROM unnest(ARRAY[35, 34, 31]) AS d, generate_series(1, 5) AS g`,
      );
    },
    [
      spec('swapped'),
      spec('forged'),
      spec('sparse'),
      spec('raced'),
      spec('raced_retried'),
      spec('laundered'),
      spec('padded'),
    ],
  );
  const s3 = () => s3ClientFor(bed.local);
  const bucket = () => bed.local.services.bucket;
  const validate = async (table: string, strict = false) => {
    const lines: string[] = [];
    const code = await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { table: [table], json: false, strict },
      (line) => lines.push(line),
      bed.local.deps().inventory,
    );
    return { code, text: lines.join('\n') };
  };

  it('an archive overwritten after verify with other bytes of the same size and metadata stops the delete', async () => {
    // Prepare
    const table = resolvedTable(spec('swapped'));
    const original = await tableLines(bed.db.client, table);
    let struck = '';
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== 'verify' || struck) return;
      // The batch's keys are on its in-flight record; the last of its three days' objects is overwritten.
      const objects = (await bed.local.deps().locks.get('app', 'public.swapped')).inFlight?.objects ?? [];
      const key = objects.at(-1)?.archiveKey;
      if (!key || objects.length < 2) throw new Error(`a batch of ${objects.length} objects to strike`);
      const bytes = await getObject(bed.local, key);
      const head = await s3().send(new HeadObjectCommand({ Bucket: bucket(), Key: key }));
      const corrupt = Buffer.alloc(bytes.length, 0x5a);
      await s3().send(
        new PutObjectCommand({ Bucket: bucket(), Key: key, Body: corrupt, Metadata: head.Metadata }),
      );
      struck = key;
    };

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.swapped'] },
      { afterStep, retryIntervalScale: 0 },
    );
    const remaining = await tableLines(bed.db.client, table);
    const error = run.outcomes[0]?.error ?? '';
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'archive overwritten after verify (same size and metadata)',
      held: struck !== '' && remaining.length === original.length,
    });
    const rerun = await runLocalArchive(bed.local, { tables: ['public.swapped'] }, { retryIntervalScale: 0 });

    // Assess
    expect(struck).not.toBe('');
    expect(run.execution.status).toBe('FAILED');
    expect(error).toMatch(/^ArchiveIntegrityError: an archive changed after verification/);
    expect(error).toContain(struck);
    expect(remaining.length).toBe(original.length);
    expect(rerun.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('a consistent forgery (a row rewritten, its manifest and metadata rewritten to match) is refused by validate and restore, which name it', async () => {
    // Prepare
    const archived = await runLocalArchive(
      bed.local,
      { tables: ['public.forged'] },
      { retryIntervalScale: 0 },
    );
    expect(archived.execution.status).toBe('SUCCEEDED');
    expect((await validate('public.forged', true)).code).toBe(0);
    const [victim] = await readLiveArchives(bed.local, 'public', 'forged');
    if (!victim) throw new Error('nothing archived');
    const text = gunzipSync(await getObject(bed.local, victim.key)).toString('utf8');
    const forged = gzipSync(text.replace(/"actor" : "user_\d+"/, '"actor" : "mallory"'));
    expect(gunzipSync(forged).toString('utf8')).toContain('mallory');
    const compressed = new ByteFigures();
    const lines = new JsonLinesToCopy();
    const discard = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    await pipeline(Readable.from([forged]), compressed, createGunzip(), lines, discard);
    const measured = lines.figures();
    const figures = {
      ...victim.manifest.figures,
      rowCount: measured.rows,
      contentSha256: measured.contentSha256,
      uncompressedBytes: measured.uncompressedBytes,
      compressedSha256: compressed.sha256(),
      compressedBytes: compressed.bytes,
    };
    const head = await s3().send(new HeadObjectCommand({ Bucket: bucket(), Key: victim.key }));
    await s3().send(
      new PutObjectCommand({
        Bucket: bucket(),
        Key: victim.key,
        Body: forged,
        Metadata: {
          ...head.Metadata,
          'content-sha256': figures.contentSha256,
          'compressed-sha256': figures.compressedSha256,
        },
      }),
    );
    await s3().send(
      new PutObjectCommand({
        Bucket: bucket(),
        Key: manifestKeyFor(victim.key),
        Body: JSON.stringify({ ...victim.manifest, figures }, null, 2),
      }),
    );

    // Act
    const validated = await validate('public.forged');
    const keyOnly: string[] = [];
    const keyOnlyCode = await validateCommand(
      bed.local.deps().store,
      bed.local.config,
      { table: ['public.forged'], json: false, strict: false },
      (line) => keyOnly.push(line),
    );
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.forged', targetTable: 'public.forged_copy' },
      { retryIntervalScale: 0 },
    );
    const failed = restored.results.find((r) => r.key === victim.key);
    const mallory = await bed.db.client.query(
      `SELECT count(*)::int AS n FROM public.forged_copy WHERE actor = 'mallory'`,
    );
    const refused =
      validated.code === 1 &&
      validated.text.includes(victim.key) &&
      keyOnlyCode === 1 &&
      failed?.status === 'failed' &&
      (failed.error ?? '').includes(victim.key) &&
      mallory.rows[0].n === 0;
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'consistent forgery (row, manifest and metadata rewritten)',
      held: refused,
    });

    // Assess
    expect(validated.code).toBe(1);
    expect(validated.text).toMatch(/ERROR [a-z-]+: .*: .*(inventory|key names content)/);
    expect(validated.text).toContain(victim.key);
    // Without the inventory, the content hash in the key alone gives the forgery away.
    expect(keyOnlyCode).toBe(1);
    expect(keyOnly.join('\n')).toContain(`${victim.key}: archive ${victim.key}: its key names content other`);
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toContain(victim.key);
    expect(mallory.rows[0].n).toBe(0);
    // Every other archive was restored: the forgery costs only itself.
    expect(restored.results.filter((r) => r.status === 'restored').length).toBe(restored.results.length - 1);
  });

  it('a manifest rewritten consistently (its key columns and time zone, figures untouched) is refused by validate and restore', async () => {
    // Prepare: the forgery above left one archive of public.forged damaged; this one rewrites another's manifest only.
    const [, victim] = await readLiveArchives(bed.local, 'public', 'forged');
    if (!victim) throw new Error('nothing archived');
    await s3().send(
      new PutObjectCommand({
        Bucket: bucket(),
        Key: manifestKeyFor(victim.key),
        Body: JSON.stringify(
          { ...victim.manifest, keyColumns: ['actor'], timestampTimeZone: 'Asia/Tokyo' },
          null,
          2,
        ),
      }),
    );

    // Act
    const validated = await validate('public.forged');
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.forged', targetTable: 'public.forged_manifest_copy' },
      { retryIntervalScale: 0 },
    );
    const failed = restored.results.find((r) => r.key === victim.key);
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'manifest fields rewritten consistently (key columns, time zone), figures untouched',
      held: validated.code === 1 && failed?.status === 'failed',
    });

    // Assess
    expect(validated.code).toBe(1);
    expect(validated.text).toContain(`${victim.key}: differs from the inventory: manifestSha256: recorded`);
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toMatch(
      /is not the archive committed under its key, nothing restored: manifestSha256: /,
    );
  });

  it('a manifest padded past the longest text a store reads, between upload and verify, fails verification once: the next run archives the rows', async () => {
    // Prepare: right after upload wrote the manifests, the bucket writer pads the first one with 4 MiB of blanks
    // (still JSON, still the same manifest): every text read refuses it by name.
    const table = resolvedTable(spec('padded'));
    const original = await tableLines(bed.db.client, table);
    let struck: string | undefined;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== 'upload' || struck) return;
      const key = (await bed.local.deps().locks.get('app', 'public.padded')).inFlight?.objects[0]?.archiveKey;
      if (!key) return;
      const manifest = (await getObject(bed.local, manifestKeyFor(key))).toString('utf8');
      await s3().send(
        new PutObjectCommand({
          Bucket: bucket(),
          Key: manifestKeyFor(key),
          Body: `${manifest}${' '.repeat(4 * 1024 * 1024)}`,
        }),
      );
      struck = key;
    };

    // Act
    const raced = await runLocalArchive(
      bed.local,
      { tables: ['public.padded'] },
      { afterStep, retryIntervalScale: 0 },
    );
    const afterRace = await tableLines(bed.db.client, table);
    const committed = await bed.local.deps().inventory.list('app', 'public.padded');
    const next = await runLocalArchive(bed.local, { tables: ['public.padded'] }, { retryIntervalScale: 0 });

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'manifest padded past the text read limit between upload and verify',
      held:
        raced.execution.status === 'FAILED' && afterRace.length === original.length && committed.length === 0,
    });
    expect(struck).toBeDefined();
    expect(raced.execution.status).toBe('FAILED');
    expect(afterRace).toEqual(original);
    expect(committed).toEqual([]);
    expect(next.outcomes[0]?.error).toBeUndefined();
    expect(next.execution.status).toBe('SUCCEEDED');
    expect(raced.outcomes[0]?.error).toMatch(/^ArchiveIntegrityError: archive .* failed verification: /);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it.each([
    { name: 'raced', upload: 'upload' },
    // An S3 error after the copies (a 503 on a manifest PUT): the ASL retries upload, which finds the archives there.
    { name: 'raced_retried', upload: 'upload retried after its copies' },
  ])(
    'a manifest rewritten between $upload and verify fails verification: nothing is deleted or committed, and the next run archives the rows',
    async ({ name }) => {
      // Prepare: right after upload wrote the manifests, the bucket writer drops a column from the first one.
      const table = resolvedTable(spec(name));
      let failedOnce = name !== 'raced_retried';
      const fault = (point: FaultPoint) => {
        if (point !== 'upload:afterCopy' || failedOnce) return;
        failedOnce = true;
        throw new StorageUnavailableError('503 Slow Down on the manifest PUT');
      };
      const original = await tableLines(bed.db.client, table);
      let struck: string | undefined;
      const afterStep = async (event: StepEvent) => {
        if (event.functionName !== 'upload' || struck) return;
        const key = (await bed.local.deps().locks.get('app', `public.${name}`)).inFlight?.objects[0]
          ?.archiveKey;
        if (!key) return;
        const manifest = JSON.parse((await getObject(bed.local, manifestKeyFor(key))).toString('utf8'));
        await s3().send(
          new PutObjectCommand({
            Bucket: bucket(),
            Key: manifestKeyFor(key),
            Body: JSON.stringify({
              ...manifest,
              columns: manifest.columns.filter((c: { name: string }) => c.name !== 'payload'),
            }),
          }),
        );
        struck = key;
      };

      // Act
      const raced = await runLocalArchive(
        bed.local,
        { tables: [`public.${name}`] },
        { afterStep, fault, retryIntervalScale: 0 },
      );
      const afterRace = await tableLines(bed.db.client, table);
      const committed = await bed.local.deps().inventory.list('app', `public.${name}`);
      const next = await runLocalArchive(
        bed.local,
        { tables: [`public.${name}`] },
        { retryIntervalScale: 0 },
      );

      // Assess
      recordProof({
        kind: 'threat',
        actor: 'bucket writer',
        attack: `manifest rewritten between ${name === 'raced' ? 'upload' : 'a retried upload'} and verify`,
        held:
          raced.execution.status === 'FAILED' &&
          afterRace.length === original.length &&
          committed.length === 0,
      });
      expect(struck).toBeDefined();
      expect(failedOnce).toBe(true);
      expect(raced.execution.status).toBe('FAILED');
      expect(raced.outcomes[0]?.error).toMatch(
        /^ArchiveIntegrityError: archive .* failed verification: manifest is not the one upload wrote \(columns differ\)/,
      );
      expect(afterRace).toEqual(original);
      expect(committed).toEqual([]);
      expect(next.execution.status).toBe('SUCCEEDED');
      await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    },
  );

  it('a committed manifest rewritten, then its rows restored and archived again under the same key: verify refuses the rewrite and the inventory keeps binding the original', async () => {
    // Prepare: the rows archived, restored into the table, and a manifest of theirs rewritten (a column dropped).
    const table = resolvedTable(spec('laundered'));
    const original = await tableLines(bed.db.client, table);
    const archived = await runLocalArchive(
      bed.local,
      { tables: ['public.laundered'] },
      { retryIntervalScale: 0 },
    );
    expect(archived.execution.status).toBe('SUCCEEDED');
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.laundered' },
      { retryIntervalScale: 0 },
    );
    expect(restored.execution.status).toBe('SUCCEEDED');
    const [victim] = await readLiveArchives(bed.local, 'public', 'laundered');
    if (!victim) throw new Error('nothing archived');
    const inventory = bed.local.deps().inventory;
    const bound = (await inventory.entries('app', 'public.laundered', [victim.key])).get(victim.key);
    await s3().send(
      new PutObjectCommand({
        Bucket: bucket(),
        Key: manifestKeyFor(victim.key),
        Body: JSON.stringify({
          ...victim.manifest,
          columns: victim.manifest.columns.filter((c) => c.name !== 'payload'),
        }),
      }),
    );

    // Act: the next run exports the same rows into the same content-addressed keys.
    const again = await runLocalArchive(
      bed.local,
      { tables: ['public.laundered'] },
      { retryIntervalScale: 0 },
    );

    // Assess: the batch is withdrawn, its rows stay, and the entry still binds the manifest verified at first.
    const after = (await inventory.entries('app', 'public.laundered', [victim.key])).get(victim.key);
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: "rewrites a committed archive's manifest, then identical rows are archived again under its key",
      held: again.execution.status === 'FAILED' && after?.manifestSha256 === bound?.manifestSha256,
    });
    expect(bound?.manifestSha256).toBeDefined();
    expect(again.outcomes[0]?.error).toMatch(
      /^ArchiveIntegrityError: archive .* failed verification: manifest is not the one its committed archive was verified with/,
    );
    expect(after?.manifestSha256).toBe(bound?.manifestSha256);
    expect((await tableLines(bed.db.client, table)).sort()).toEqual([...original].sort());
  });

  it('validate tells a day without rows from a missing archive', async () => {
    // Prepare
    const archived = await runLocalArchive(
      bed.local,
      { tables: ['public.sparse'] },
      { retryIntervalScale: 0 },
    );
    expect(archived.execution.status).toBe('SUCCEEDED');
    const archives = await readLiveArchives(bed.local, 'public', 'sparse');
    expect(archives.length).toBe(3);

    // Act
    const clean = await validate('public.sparse', true);
    const removed = archives[1]?.key ?? '';
    await s3().send(new DeleteObjectCommand({ Bucket: bucket(), Key: removed }));
    await s3().send(new DeleteObjectCommand({ Bucket: bucket(), Key: manifestKeyFor(removed) }));
    const afterDelete = await validate('public.sparse');
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'committed archive and manifest deleted',
      held: afterDelete.code === 1 && afterDelete.text.includes(removed),
    });

    // Assess
    expect(clean.text).not.toMatch(/day-gap/);
    expect(clean.code).toBe(0);
    expect(afterDelete.code).toBe(1);
    expect(afterDelete.text).toMatch(/ERROR missing-archive: .*: committed/);
    expect(afterDelete.text).toContain(removed);
  });

  it('restores an archive written before the inventory with a warning, and refuses it when the inventory is required', async () => {
    // Prepare: the first test archived this table; its first archive loses its inventory entry, and the table's lease
    // item the time its inventory began, as if both were written before.
    const [old] = await readLiveArchives(bed.local, 'public', 'swapped');
    if (!old) throw new Error('nothing archived');
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: bed.local.services.dynamoEndpoint }),
    );
    await ddb.send(
      new DeleteCommand({
        TableName: bed.local.services.lockTable,
        Key: ArchiveInventory.key('app', 'public.swapped', old.key),
      }),
    );
    await ddb.send(
      new UpdateCommand({
        TableName: bed.local.services.lockTable,
        Key: LeaseStore.stateKey('app', 'public.swapped'),
        UpdateExpression: 'REMOVE inventorySince',
      }),
    );
    ddb.destroy();
    const request = { database: 'app', table: 'public.swapped', mode: 'key', key: old.key };

    // Act
    const validated = await validate('public.swapped', true);
    const strict = await runLocalRestore(
      bed.local,
      { ...request, targetTable: 'public.swapped_strict', requireInventory: true },
      { retryIntervalScale: 0 },
    );
    const lenient = await runLocalRestore(
      bed.local,
      { ...request, targetTable: 'public.swapped_copy' },
      { retryIntervalScale: 0 },
    );
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'archive the inventory does not list',
      held:
        validated.text.includes(`WARNING not-in-inventory: ${old.key}`) &&
        strict.results[0]?.status === 'failed' &&
        strict.results[0]?.inserted === 0,
    });

    // Assess
    expect(validated.code).toBe(1); // a warning under --strict is a finding (docs/operating.md, Exit codes)
    expect(validated.text).toContain(`WARNING not-in-inventory: ${old.key}`);
    expect(strict.results[0]?.status).toBe('failed');
    expect(strict.results[0]?.error).toMatch(/^ArchiveIntegrityError: archive .* is not in the inventory/);
    expect(strict.results[0]?.error).toContain(old.key);
    expect(lenient.results[0]).toMatchObject({ status: 'restored', rows: old.lines.length });
    expect(lenient.results[0]?.warnings.join(' ')).toMatch(/not in the inventory/);
  });
});

describe("a bucket writer who rewrites the manifest schema drift reads a table's last columns from", () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'informed', 60, 33);
      await seedEvents(db.client, 'watched', 60, 33);
    },
    [spec('informed'), { ...spec('watched'), onSchemaDrift: 'fail' }],
  );

  /**
   * Old rows of the table `name` arrive again and its lease item keeps no columns (as for a table too wide for them), so
   * the next run's drift check reads its last archive's manifest: that manifest's key.
   */
  async function lateRowsCheckedByManifest(ddb: DynamoDBDocumentClient, name: string): Promise<string> {
    await bed.db.client.query(
      `INSERT INTO public.${name} (created_at, actor) SELECT ${TODAY_UTC_SQL} - interval '40 days', 'late' FROM generate_series(1, 5)`,
    );
    const state = await bed.local.deps().locks.get('app', `public.${name}`);
    await ddb.send(
      new UpdateCommand({
        TableName: bed.local.services.lockTable,
        Key: LeaseStore.stateKey('app', `public.${name}`),
        UpdateExpression: 'REMOVE lastColumns',
      }),
    );
    return manifestKeyFor(state.lastArchiveKey ?? '');
  }

  it('cannot stop a table with an unnamed error, nor feed it a forged drift: only the manifest its commit recorded counts', async () => {
    // Prepare: both tables archived; then old rows arrive again, the lease items keep no columns (as for a table too
    // wide for them, whose drift check reads its last archive's manifest), and a bucket writer rewrites that manifest:
    // not JSON for one table, a consistent manifest whose columns lost one for the other.
    const first = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    expect(first.execution.status).toBe('SUCCEEDED');
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: bed.local.services.dynamoEndpoint }),
    );
    const rewritten: Record<string, string> = {};
    for (const name of ['informed', 'watched']) {
      const key = await lateRowsCheckedByManifest(ddb, name);
      const manifest = JSON.parse((await getObject(bed.local, key)).toString('utf8')) as {
        columns: { name: string }[];
      };
      const body =
        name === 'informed'
          ? 'not a manifest'
          : JSON.stringify({ ...manifest, columns: manifest.columns.filter((c) => c.name !== 'payload') });
      await s3ClientFor(bed.local).send(
        new PutObjectCommand({ Bucket: bed.local.services.bucket, Key: key, Body: body }),
      );
      rewritten[name] = key;
    }
    ddb.destroy();

    // Act
    const second = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess: the informed table goes on (its drift unchecked this once); the watched one fails naming the manifest
    // and why, never with a drift the rewrite made up.
    const outcome = (table: string) => second.outcomes.find((o) => o.table === `public.${table}`);
    const left = await bed.db.client.query(
      `SELECT count(*)::int AS n FROM public.informed WHERE created_at < ${TODAY_UTC_SQL} - interval '30 days'`,
    );
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: "rewrites the manifest a table's schema drift check reads its last columns from",
      // A forged drift would be a SchemaDriftError; the error says the manifest is not the committed one.
      held:
        outcome('informed')?.status === 'succeeded' &&
        left.rows[0]?.n === 0 &&
        /^ArchiveIntegrityError: .* is not the manifest its archive's commit recorded/.test(
          outcome('watched')?.error ?? '',
        ),
    });
    expect(outcome('informed')?.status).toBe('succeeded');
    expect(left.rows[0]?.n).toBe(0);
    expect(outcome('watched')?.status).toBe('failed');
    expect(outcome('watched')?.error).toMatch(
      new RegExp(
        `^ArchiveIntegrityError: .*${rewritten.watched?.replaceAll('.', '\\.')} is not the manifest its archive's commit recorded`,
      ),
    );
  });
  it('cannot hide a drift by deleting that manifest: under fail the table stops naming it, under continue it goes on with a warning', async () => {
    // Prepare: old rows arrive again, the lease items keep no columns, each table gains a column (a drift), and a
    // bucket writer deletes the manifest the check would read (in AWS, a delete marker hides it).
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: bed.local.services.dynamoEndpoint }),
    );
    const deleted: Record<string, string> = {};
    for (const name of ['informed', 'watched']) {
      await bed.db.client.query(`ALTER TABLE public.${name} ADD COLUMN added_later text`);
      const key = await lateRowsCheckedByManifest(ddb, name);
      await s3ClientFor(bed.local).send(
        new DeleteObjectCommand({ Bucket: bed.local.services.bucket, Key: key }),
      );
      deleted[name] = key;
    }
    ddb.destroy();

    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess: the watched table does not archive past a drift it could not check; the informed one goes on.
    const outcome = (table: string) => run.outcomes.find((o) => o.table === `public.${table}`);
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: "deletes the manifest a table's schema drift check reads its last columns from",
      held: outcome('watched')?.status === 'failed' && outcome('informed')?.status === 'succeeded',
    });
    expect(outcome('informed')?.status).toBe('succeeded');
    expect(outcome('watched')?.status).toBe('failed');
    expect(outcome('watched')?.error).toMatch(
      new RegExp(`^ArchiveIntegrityError: .*${deleted.watched?.replaceAll('.', '\\.')} is missing`),
    );
  });
});
