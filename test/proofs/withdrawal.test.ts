import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { breakLease } from '../../cli/leases.js';
import { exportBatch } from '../../lambdas/export/core.js';
import { type Manifest, manifestKeyFor, tablePrefix } from '../../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../../lambdas/shared/archive/store.js';
import { BATCH_ID_METADATA } from '../../lambdas/shared/batch/batch.js';
import { manifestOf } from '../../lambdas/shared/batch/batch-manifest.js';
import type { FaultPoint, StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { uploadBatch } from '../../lambdas/upload/core.js';
import { verifyBatch } from '../../lambdas/verify/core.js';
import { runLocalArchive } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  fixedCutoffSql,
  leasedTask,
  listKeys,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

const spec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };
const prefix = tablePrefix({ prefix: 'archive/', database: 'app', schema: 'public', table: 'events' });
const isManifest = (key: string) => key.endsWith('.manifest.json');

/** Manifests under the table's prefix whose archive object is not there. */
async function orphanManifests(bed: ReturnType<typeof archiverTestbed>): Promise<string[]> {
  const keys = await listKeys(bed.local, prefix);
  const manifestsOfData = new Set(keys.filter((k) => !isManifest(k)).map(manifestKeyFor));
  return keys.filter((k) => isManifest(k) && !manifestsOfData.has(k));
}

/** Rows older than `cutoff` (fixedCutoffSql, taken before the runs). */
const oldRows = async (bed: ReturnType<typeof archiverTestbed>, cutoff: string) =>
  (await bed.db.client.query(`SELECT count(*)::int AS n FROM public.events WHERE created_at < ${cutoff}`))
    .rows[0].n as number;

/** The manifest the inventory's committed archive holds, for each published manifest: its runId must be the entry's. */
async function manifestsOfCommittedRuns(bed: ReturnType<typeof archiverTestbed>): Promise<boolean> {
  const deps = bed.local.deps();
  const entries = await deps.inventory.list('app', 'public.events');
  for (const entry of entries) {
    const text = await deps.store.getText(manifestKeyFor(entry.archiveKey));
    if (!text || (JSON.parse(text) as Manifest).runId !== entry.runId) return false;
  }
  return entries.length > 0;
}

describe('a withdrawal interrupted between removing an archive and removing its manifest', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 310, 31), [spec]);

  it('is finished by the next attempt, manifest included, and the table stays archivable', async () => {
    // Prepare: upload crashes once its object and manifest are published (the batch stays `exported`); the next
    // run discards the batch and crashes after removing the archive, before its manifest; then a migration that
    // the manifest records and the rows' text does not show.
    const cutoff = await fixedCutoffSql(bed.db.client);
    let uploadCrashed = false;
    const first = await runLocalArchive(
      bed.local,
      {},
      {
        retryIntervalScale: 0,
        fault: (point: FaultPoint) => {
          if (point === 'upload:afterManifest' && !uploadCrashed) {
            uploadCrashed = true;
            throw new InjectedCrash('crash after the manifest');
          }
        },
      },
    );
    expect(first.execution.status).toBe('FAILED');
    expect((await listKeys(bed.local, prefix)).filter(isManifest)).toHaveLength(1);
    let withdrawCrashed = false;
    const crashBeforeManifestDelete = (deps: StepDeps): StepDeps => {
      const store = Object.create(deps.store) as ArchiveStore;
      store.deleteKeys = async (keys: string[]) => {
        if (!withdrawCrashed && keys.some((k) => k.startsWith(prefix) && isManifest(k))) {
          withdrawCrashed = true;
          throw new InjectedCrash('crash before the manifest is removed');
        }
        return deps.store.deleteKeys(keys);
      };
      return { ...deps, store };
    };
    const second = await runLocalArchive(
      bed.local,
      {},
      { retryIntervalScale: 0, deps: crashBeforeManifestDelete },
    );
    expect(withdrawCrashed).toBe(true);
    expect(second.execution.status).toBe('FAILED');
    expect(await orphanManifests(bed)).toHaveLength(1);
    await bed.db.client.query('ALTER TABLE public.events ALTER COLUMN actor DROP NOT NULL');

    // Act: the next run; its export finishes the withdrawal before it starts a batch.
    let orphansAfterExport: string[] | undefined;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName === 'export' && orphansAfterExport === undefined)
        orphansAfterExport = await orphanManifests(bed);
    };
    const third = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, afterStep });
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'a withdrawal cut between removing an archive and its manifest, then a migration',
      held: third.execution.status === 'SUCCEEDED' && (await orphanManifests(bed)).length === 0,
    });

    // Assess
    expect(orphansAfterExport).toEqual([]);
    expect(third.execution.status).toBe('SUCCEEDED');
    expect(await oldRows(bed, cutoff)).toBe(0);
    expect(await orphanManifests(bed)).toEqual([]);
    expect(await manifestsOfCommittedRuns(bed)).toBe(true);
  });
});

describe("a stopped execution's upload writes its manifest after its batch was withdrawn", () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 310, 31), [spec]);

  it('the next batch of the same rows replaces that orphan manifest with its own, and the table stays archivable', async () => {
    // Prepare: an execution exported a batch; its upload copied the archive and is still running when the operator
    // stops the execution and breaks its lease; a migration the manifest records is deployed.
    const cutoff = await fixedCutoffSql(bed.db.client);
    const deps = bed.local.deps();
    const stopped = await leasedTask(bed.local, 'public.events', 'arn:stopped-execution', 'stopped-run');
    await exportBatch({ ...stopped, progress: { batches: 0, rows: 0, bytes: 0 } }, deps);
    let resume: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      resume = r;
    });
    let copied: () => void = () => undefined;
    const atCopy = new Promise<void>((r) => {
      copied = r;
    });
    const staleUpload = uploadBatch(
      stopped,
      bed.local.deps(async (point) => {
        if (point === 'upload:afterCopy') {
          copied();
          await gate;
        }
      }),
    ).then(
      () => 'succeeded',
      (e: Error) => e.name,
    );
    await atCopy;
    const broken = await breakLease(
      { ...deps, leases: deps.locks, actor: 'operator', holderRunning: async () => false },
      'app',
      'public.events',
    );
    expect(broken.broken).toBe(true);
    await bed.db.client.query('ALTER TABLE public.events ALTER COLUMN actor DROP NOT NULL');

    // Act: the next run withdraws the stopped batch in its export; right after, the stale upload writes its
    // manifest (its archive is gone); then the run's own batch publishes the same rows under the same key.
    let orphansAfterStaleUpload: string[] = [];
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== 'export') return;
      resume();
      await staleUpload;
      if (orphansAfterStaleUpload.length === 0) orphansAfterStaleUpload = await orphanManifests(bed);
    };
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, afterStep });
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: "a stopped execution's upload writing its manifest after lease break and the withdrawal",
      held: run.execution.status === 'SUCCEEDED' && (await orphanManifests(bed)).length === 0,
    });

    // Assess
    expect(await staleUpload).toBe('LeaseLostError');
    expect(orphansAfterStaleUpload).toHaveLength(1);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(await oldRows(bed, cutoff)).toBe(0);
    expect(await orphanManifests(bed)).toEqual([]);
    expect(await manifestsOfCommittedRuns(bed)).toBe(true);
  });
});

describe('two invocations of one upload at once, an orphan manifest under its key', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 40, 31), [spec]);

  it("leave exactly the batch's own manifest, which verify accepts", async () => {
    // Prepare: a batch exported; under its first archive's manifest key, a manifest no archive object goes with
    // (another run's, for the same rows and figures, recording the column as nullable).
    const deps = bed.local.deps();
    const task = await leasedTask(bed.local, 'public.events', 'arn:execution', 'run');
    await exportBatch({ ...task, progress: { batches: 0, rows: 0, bytes: 0 } }, deps);
    const inFlight = (await deps.locks.get('app', 'public.events')).inFlight;
    if (!inFlight) throw new Error('no batch exported');
    const own = manifestOf(inFlight, 0);
    const archiveKey = inFlight.objects[0]?.archiveKey ?? '';
    if (!own) throw new Error('no manifest in the record');
    const orphan: Manifest = {
      ...own,
      runId: 'an-earlier-run',
      columns: own.columns.map((c) => (c.name === 'actor' ? { ...c, nullable: !c.nullable } : c)),
    };
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: deps.store.bucket,
        Key: manifestKeyFor(archiveKey),
        Body: JSON.stringify(orphan, null, 2),
        Metadata: { [BATCH_ID_METADATA]: 'an-earlier-batch' },
      }),
    );

    // Act
    const outcomes = await Promise.all(
      [0, 1].map(() =>
        uploadBatch(task, bed.local.deps()).then(
          () => 'succeeded',
          (e: Error) => `${e.name}: ${e.message}`,
        ),
      ),
    );
    const verified = await verifyBatch(task, deps).then(
      () => 'verified',
      (e: Error) => `${e.name}: ${e.message}`,
    );

    // Assess
    // The slower one may find the batch already moved on by the other (its record write is fenced): nothing else.
    expect(outcomes).toContain('succeeded');
    for (const outcome of outcomes) expect(outcome).toMatch(/^(succeeded|LeaseLostError: )/);
    const published = await deps.store.getText(manifestKeyFor(archiveKey));
    expect(JSON.parse(published ?? '{}')).toEqual(JSON.parse(JSON.stringify(own)));
    expect((await deps.store.head(manifestKeyFor(archiveKey)))?.metadata[BATCH_ID_METADATA]).toBe(
      inFlight.batchId,
    );
    expect(verified).toBe('verified');
  });
});

describe('a batch resumed after its upload whose archive is gone (a run stopped between upload and verify)', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'events', 310, 31), [spec]);

  it('is claimed for withdrawal by the resumed upload and withdrawn by the next export; nothing is lost or left stuck', async () => {
    // Prepare: the run stops between upload and verify (the batch stays `uploaded`, its staging removed); then one of
    // its archives is deleted from the bucket.
    const table = resolvedTable({ schema: 'public', name: 'events', timestampColumn: 'created_at' });
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);
    let stopped = false;
    const stopAfterUpload = async (event: StepEvent) => {
      if (event.functionName === 'upload' && !stopped) {
        stopped = true;
        throw new InjectedCrash('the run stops after upload');
      }
    };
    const first = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, afterStep: stopAfterUpload });
    const inFlight = (await bed.local.deps().locks.get('app', 'public.events')).inFlight;
    const [gone] = inFlight?.objects ?? [];
    if (!gone) throw new Error('no batch in flight');
    await bed.local.deps().store.deleteKeys([gone.archiveKey]);

    // Act: the next run resumes the batch at upload; the one after that.
    const second = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    const stage = (await bed.local.deps().locks.get('app', 'public.events')).inFlight?.stage;
    const third = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'deletes an archive of a batch a stopped run left between upload and verify',
      held: third.execution.status === 'SUCCEEDED' && (await oldRows(bed, cutoff)) === 0,
    });

    // Assess
    expect(first.execution.status).toBe('FAILED');
    expect(inFlight?.stage).toBe('uploaded');
    expect(second.execution.status).toBe('FAILED');
    expect(second.outcomes[0]?.error).toMatch(
      /^ArchiveIntegrityError: staging object .* is missing; the next run withdraws the batch/,
    );
    expect(stage).toBe('withdrawing');
    expect(third.execution.status).toBe('SUCCEEDED');
    expect(await oldRows(bed, cutoff)).toBe(0);
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });
});
