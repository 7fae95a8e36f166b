import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { ManifestSchema } from '../../lambdas/shared/archive-format.js';
import type { FaultPoint } from '../../lambdas/shared/deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  getObject,
  listKeys,
  readLiveArchives,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';

const FAULT_POINTS: FaultPoint[] = [
  'export:afterStaging',
  'upload:afterCopy',
  'upload:afterManifest',
  'verify:afterRead',
  'delete:beforeCommit',
  'delete:afterCommit',
];
const faultTable = (point: FaultPoint) => `fault_${point.replace(':', '_').toLowerCase()}`;

/** Ways a manifest can be damaged between upload and verify, and what verify must say about each. */
const MANIFEST_TAMPERING: { name: string; edit: (text: string) => string | undefined; says: RegExp }[] = [
  {
    name: 'other_object',
    edit: (text) => text.replace(/"dataKey": "([^"]*)"/, '"dataKey": "$1.other"'),
    says: /manifest names another object/,
  },
  {
    name: 'row_count',
    edit: (text) => text.replace(/"rowCount": (\d+)/, (_, n: string) => `"rowCount": ${Number(n) + 1}`),
    says: /manifest differs from the export: rowCount/,
  },
  { name: 'deleted', edit: () => undefined, says: /manifest is missing/ },
  { name: 'not_json', edit: () => '{ not json', says: /manifest is not a valid manifest/ },
];

class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

describe('archive workflow, end to end on local PostgreSQL, S3 and DynamoDB', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 3000);
      for (const point of FAULT_POINTS) await seedEvents(db.client, faultTable(point), 1200);
      await seedEvents(db.client, 'tampered', 1200);
      for (const c of MANIFEST_TAMPERING) await seedEvents(db.client, `manifest_${c.name}`, 300);
      await seedEvents(db.client, 'shared_a', 1500);
      await seedEvents(db.client, 'shared_b', 1500);
      await seedEvents(db.client, 'changing', 1200);
      await db.client.query('CREATE TABLE public.keyless (created_at timestamptz, note text)');
      await db.client.query(
        "INSERT INTO public.keyless SELECT now() - interval '90 days', 'x' FROM generate_series(1, 10)",
      );
    },
    [
      spec('events'),
      ...FAULT_POINTS.map((point) => spec(faultTable(point))),
      spec('tampered'),
      ...MANIFEST_TAMPERING.map((c) => spec(`manifest_${c.name}`)),
      spec('shared_a'),
      spec('shared_b'),
      spec('changing'),
      spec('keyless'),
    ],
  );

  it('archives exactly the old rows once and leaves the new rows untouched', async () => {
    // Prepare
    const table = resolvedTable(spec('events'));
    const original = await tableLines(bed.db.client, table);
    const newRowsBefore = await bed.db.client.query(
      "SELECT id, created_at, actor, payload FROM public.events WHERE created_at >= now() - interval '29 days' ORDER BY id",
    );

    // Act
    const { execution, outcomes } = await runLocalArchive(
      bed.local,
      { tables: ['public.events'] },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const old = await bed.db.client.query(
      "SELECT count(*)::int AS n FROM public.events WHERE created_at < now() - interval '30 days'",
    );
    expect(old.rows[0].n).toBe(0);
    const newRowsAfter = await bed.db.client.query(
      "SELECT id, created_at, actor, payload FROM public.events WHERE created_at >= now() - interval '29 days' ORDER BY id",
    );
    expect(newRowsAfter.rows).toEqual(newRowsBefore.rows);
    const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(counts.inArchives).toBeGreaterThan(1200);
    expect(outcomes).toEqual([
      expect.objectContaining({
        table: 'public.events',
        status: 'succeeded',
        rowsArchived: counts.inArchives,
      }),
    ]);
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    for (const archive of archives) {
      // Each object holds the rows of one UTC day, and its partition names that day.
      const [y, m, d] = archive.manifest.day.split('-');
      expect(archive.key).toContain(`/year=${y}/month=${m}/day=${d}/`);
      expect(archive.manifest.timestampRange.min.slice(0, 10)).toBe(archive.manifest.day);
      expect(archive.manifest.timestampRange.max.slice(0, 10)).toBe(archive.manifest.day);
      expect(archive.lines).toHaveLength(archive.manifest.figures.rowCount);
    }
    expect(await listKeys(bed.local, 'archive/_staging/')).toEqual([]);
  });

  it('a second run finds nothing left and archives nothing', async () => {
    // Act
    const { execution, outcomes } = await runLocalArchive(
      bed.local,
      { tables: ['public.events'] },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    expect(outcomes[0]).toMatchObject({ status: 'succeeded', rowsArchived: 0, batches: 0 });
  });

  describe.each(FAULT_POINTS)('a crash at %s, then a re-run', (point) => {
    it('loses no row and doubles none', async () => {
      // Prepare
      const name = faultTable(point);
      const table = resolvedTable(spec(name));
      const original = await tableLines(bed.db.client, table);
      let crashes = 0;
      const fault = (at: FaultPoint) => {
        // Crash on the second batch, so one batch is already committed when it happens.
        if (at === point && ++crashes === 2) throw new InjectedCrash(`injected at ${at}`);
      };

      // Act
      const crashed = await runLocalArchive(
        bed.local,
        { tables: [`public.${name}`] },
        { fault, retryIntervalScale: 0 },
      );
      const between = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      const rerun = await runLocalArchive(
        bed.local,
        { tables: [`public.${name}`] },
        { retryIntervalScale: 0 },
      );

      // Assess
      expect(crashed.execution.status).toBe('FAILED');
      expect(crashed.outcomes[0]).toMatchObject({
        status: 'failed',
        error: expect.stringContaining('InjectedCrash'),
      });
      expect(rerun.execution.status).toBe('SUCCEEDED');
      const after = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
      expect(between.inArchives).toBeGreaterThan(0);
      const stillOld = await bed.db.client.query(
        `SELECT count(*)::int AS n FROM public.${name} WHERE created_at < now() - interval '30 days'`,
      );
      expect(stillOld.rows[0].n).toBe(0);
      expect(after.inArchives).toBeGreaterThan(between.inArchives);
    });
  });

  it('an archive altered between upload and verify is caught and nothing is deleted', async () => {
    // Prepare
    const table = resolvedTable(spec('tampered'));
    const original = await tableLines(bed.db.client, table);
    const s3 = (await import('../support/fixtures.js')).s3ClientFor(bed.local);
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const { gzipSync, gunzipSync } = await import('node:zlib');
    let tampered = '';
    const fault = async (at: FaultPoint) => {
      if (at !== 'upload:afterManifest' || tampered) return;
      const [key] = (await listKeys(bed.local, 'archive/app/public.tampered/')).filter((k) =>
        k.endsWith('.jsonl.gz'),
      );
      if (!key) throw new Error('no archive to tamper with');
      const text = gunzipSync(await getObject(bed.local, key)).toString('utf8');
      const altered = text.replace(/"user_\d+"/, '"someone_else"');
      await s3.send(
        new PutObjectCommand({ Bucket: bed.local.services.bucket, Key: key, Body: gzipSync(altered) }),
      );
      tampered = key;
    };

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.tampered'] },
      { fault, retryIntervalScale: 0 },
    );

    // Assess
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(/^ArchiveIntegrityError: .*object differs from its manifest/);
    expect(await tableLines(bed.db.client, table)).toHaveLength(original.length);
    expect(await readLiveArchives(bed.local, 'public', 'tampered')).toEqual([]);
    expect(
      (await listKeys(bed.local, 'archive/_quarantine/')).some((k) =>
        k.endsWith(tampered.slice('archive/'.length)),
      ),
    ).toBe(true);
    // The next run re-exports from the database and completes.
    const rerun = await runLocalArchive(
      bed.local,
      { tables: ['public.tampered'] },
      { retryIntervalScale: 0 },
    );
    expect(rerun.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  describe.each(MANIFEST_TAMPERING)(
    'a manifest tampered with between upload and verify ($name)',
    ({ name, edit, says }) => {
      it('is caught by verify and nothing is deleted', async () => {
        // Prepare
        const tableName = `manifest_${name}`;
        const table = resolvedTable(spec(tableName));
        const original = await tableLines(bed.db.client, table);
        const s3 = s3ClientFor(bed.local);
        let done = false;
        const fault = async (at: FaultPoint) => {
          if (at !== 'upload:afterManifest' || done) return;
          const [key] = (await listKeys(bed.local, `archive/app/public.${tableName}/`)).filter((k) =>
            k.endsWith('.manifest.json'),
          );
          if (!key) throw new Error('no manifest to tamper with');
          const edited = edit((await getObject(bed.local, key)).toString('utf8'));
          await s3.send(
            edited === undefined
              ? new DeleteObjectCommand({ Bucket: bed.local.services.bucket, Key: key })
              : new PutObjectCommand({ Bucket: bed.local.services.bucket, Key: key, Body: edited }),
          );
          done = true;
        };

        // Act
        const run = await runLocalArchive(
          bed.local,
          { tables: [`public.${tableName}`] },
          { fault, retryIntervalScale: 0 },
        );

        // Assess
        expect(done).toBe(true);
        expect(run.execution.status).toBe('FAILED');
        expect(run.outcomes[0]?.error).toMatch(/^ArchiveIntegrityError: /);
        expect(run.outcomes[0]?.error).toMatch(says);
        expect(await tableLines(bed.db.client, table)).toHaveLength(original.length);
        expect(await readLiveArchives(bed.local, 'public', tableName)).toEqual([]);
      });
    },
  );

  it('two concurrent executions: each table is archived by one and skipped by the other', async () => {
    // Prepare: slow the export down so both executions are in flight together.
    const tables = ['public.shared_a', 'public.shared_b'];
    const originals = await Promise.all(
      ['shared_a', 'shared_b'].map((n) => tableLines(bed.db.client, resolvedTable(spec(n)))),
    );
    const fault = async (at: FaultPoint) => {
      if (at === 'export:afterStaging') await new Promise((resolve) => setTimeout(resolve, 50));
    };

    // Act
    const [first, second] = await Promise.all([
      runLocalArchive(bed.local, { tables }, { fault, retryIntervalScale: 0 }),
      runLocalArchive(bed.local, { tables }, { fault, retryIntervalScale: 0 }),
    ]);

    // Assess
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(second.execution.status).toBe('SUCCEEDED');
    for (const table of tables) {
      const statuses = [first, second]
        .map((run) => run.outcomes.find((o) => o.table === table)?.status)
        .sort();
      expect(statuses).toEqual(['skipped', 'succeeded']);
    }
    const skipped = [...first.outcomes, ...second.outcomes].filter((o) => o.status === 'skipped');
    expect(skipped[0]?.reason).toMatch(/^locked by arn:aws:states:.*:execution:.* until /);
    await assertNoLossNoDuplicates(
      bed.local,
      bed.db.client,
      resolvedTable(spec('shared_a')),
      originals[0] ?? [],
    );
    await assertNoLossNoDuplicates(
      bed.local,
      bed.db.client,
      resolvedTable(spec('shared_b')),
      originals[1] ?? [],
    );
  });

  it('rows updated between export and delete: rolled back, nothing lost, the next run archives the current version', async () => {
    // Prepare: after the first batch is verified, update a row inside it.
    const table = resolvedTable(spec('changing'));
    let updatedId: number | undefined;
    const fault = async (at: FaultPoint) => {
      if (at !== 'verify:afterRead' || updatedId !== undefined) return;
      const oldest = await bed.db.client.query('SELECT min(id)::int AS id FROM public.changing');
      updatedId = oldest.rows[0].id;
      await bed.db.client.query(`UPDATE public.changing SET actor = 'changed' WHERE id = $1`, [updatedId]);
    };

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.changing'] },
      { fault, retryIntervalScale: 0 },
    );

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    const current = await tableLines(bed.db.client, table);
    const archives = await readLiveArchives(bed.local, 'public', 'changing');
    const archivedRow = archives
      .flatMap((a) => a.lines)
      .filter((line) => line.startsWith(`{"id" : "${updatedId}",`));
    expect(archivedRow).toHaveLength(1);
    expect(archivedRow[0]).toContain('"actor" : "changed"');
    expect(current.some((line) => line.startsWith(`{"id" : "${updatedId}",`))).toBe(false);
  });

  it('a table without a usable key fails with a clear error and nothing is touched', async () => {
    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.keyless'] }, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('FAILED');
    expect(run.outcomes[0]?.error).toMatch(/^TableNotUsableError: .*has no primary key; set keyColumns/);
    const rows = await bed.db.client.query('SELECT count(*)::int AS n FROM public.keyless');
    expect(rows.rows[0].n).toBe(10);
    expect(await listKeys(bed.local, 'archive/app/public.keyless/')).toEqual([]);
  });

  it('an unknown table in the execution input fails the plan with a clear error', async () => {
    // Act
    const run = await runLocalArchive(bed.local, { tables: ['public.nope'] }, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('FAILED');
    expect(run.execution.error?.message).toContain('tables not in the config: public.nope');
  });

  it('manifests carry the documented fields', async () => {
    // Act
    const [archive] = await readLiveArchives(bed.local, 'public', 'events');

    // Assess
    expect(archive).toBeDefined();
    expect(ManifestSchema.parse(archive?.manifest)).toMatchObject({
      formatVersion: 1,
      database: 'app',
      schema: 'public',
      table: 'events',
      keyColumns: ['id'],
      timestampColumn: 'created_at',
      encoding: 'jsonl-pg-text',
    });
  });
});
