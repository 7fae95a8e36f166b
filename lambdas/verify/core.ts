import { pipeline } from 'node:stream/promises';
import { canonicalJson, type Manifest, manifestKeyFor, parseManifest } from '../shared/archive/format.js';
import { archiveProblems, boundLcMonetary, manifestExpectation } from '../shared/archive/integrity.js';
import { datedSinceInventory, type InventoryEntry } from '../shared/archive/inventory.js';
import { RowDigest } from '../shared/archive/row-digest.js';
import type { ObjectPin } from '../shared/archive/store.js';
import { ByteFigures, createLinesGunzip, JsonLinesContent } from '../shared/archive/stream.js';
import { recordInFlight, renewLease, tableLabel, withdrawBatch } from '../shared/batch/batch.js';
import { manifestOf } from '../shared/batch/batch-manifest.js';
import { batchTotals, forEachObject } from '../shared/batch/batch-objects.js';
import { batchToActOn } from '../shared/batch/lifecycle.js';
import {
  ArchiveInColdStorageError,
  ArchiveIntegrityError,
  StorageUnavailableError,
} from '../shared/errors/step-errors.js';
import type { BatchObject } from '../shared/lock-table/table-state.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import type { VerifyInput, VerifyOutput } from './schema.js';

export type VerifyDeps = Pick<StepDeps, 'config' | 'store' | 'locks' | 'inventory' | 'telemetry' | 'fault'>;

/**
 * Verify: re-reads each published object of the batch and its manifest from S3, once, and measures row count, sizes
 * and both SHA-256s. Object, manifest and the figures export recorded in the lock table must all agree
 * (archiveProblems, the check restore and validate share), or nothing is deleted: a batch with a damaged archive is
 * withdrawn (its rows are still in the database). The database side is not read here: delete digests exactly the
 * rows it removes, in its transaction, against what export read, so a second pass over the rows would check nothing
 * more (rows changed since export roll that delete back and withdraw the batch).
 */
export async function verifyBatch(input: VerifyInput, deps: VerifyDeps): Promise<VerifyOutput> {
  const started = Date.now();
  const state = await renewLease(deps, input);
  const inFlight = batchToActOn('verify', input, state.inFlight);
  // An archive another batch created (identical rows archived before) keeps that batch's manifest: once committed,
  // the one its inventory entry binds, or the commit would bind a manifest a bucket writer rewrote since. An entry
  // committed before entries recorded the manifest's digest, or an archive not committed, binds none to check.
  const found = inFlight.objects
    .filter((object) => !object.createdArchive)
    .map((object) => object.archiveKey);
  const committed =
    found.length > 0 ? await deps.inventory.entries(input.database, input.table, found) : new Map();
  const checked = await forEachObject(inFlight.objects, async (object, i) => {
    if (object.createdArchive) return verifyObject(deps, object, { written: manifestOf(inFlight, i) });
    const entry = committed.get(object.archiveKey);
    if (entry) return verifyObject(deps, object, { committed: entry });
    // No commit vouches for the archive there, and S3 dates it after the table's archives began to be recorded: a
    // bucket writer's (restore refuses such an archive), or a stale upload's. Its manifest must say what the batch's
    // says, or the commit would bind a planted one. One from before then was committed unrecorded: as committed.
    const unvouched =
      state.inventorySince !== undefined &&
      datedSinceInventory((await deps.store.head(object.archiveKey))?.lastModified, state.inventorySince);
    return verifyObject(deps, object, unvouched ? { written: manifestOf(inFlight, i), unvouched } : {});
  });
  const failed = inFlight.objects.flatMap((object, i) => {
    const outcome = checked[i];
    return outcome && 'problem' in outcome ? [{ key: object.archiveKey, problem: outcome.problem }] : [];
  });
  if (failed.length > 0) {
    deps.telemetry.metric('VerificationFailures', 'Count', 1, tableLabel(input));
    await withdrawBatch(
      deps,
      input,
      inFlight,
      'integrity',
      failed.map((f) => f.key),
    );
    throw new ArchiveIntegrityError(failed.map((f) => f.problem).join('; '));
  }
  // Pins the very objects read: a later overwrite (same size, same metadata or not) has another ETag and version;
  // and the manifests read, by digest and lcMonetary, which the commit records in the inventory.
  const objects = inFlight.objects.map((object, i) => {
    const outcome = checked[i];
    return outcome && 'pin' in outcome
      ? {
          ...object,
          pin: outcome.pin,
          manifestSha256: outcome.manifestSha256,
          manifestLcMonetary: outcome.manifestLcMonetary,
        }
      : object;
  });
  await recordInFlight(deps, input, { ...inFlight, stage: 'verified', objects }, ['uploaded', 'verified']);
  deps.telemetry.metric('VerifyDuration', 'Milliseconds', Date.now() - started, tableLabel(input));
  return { objects: objects.length, rows: batchTotals(inFlight).rowCount, verified: true };
}

/**
 * The manifest fields that say what an archive's rows are and how to read them back. Besides these a manifest names
 * its run (runId, cutoff, exportedAt, tool): a manifest an earlier run published for the same rows differs there.
 */
const MEANING: readonly (keyof Manifest)[] = [
  'formatVersion',
  'database',
  'schema',
  'table',
  'columns',
  'keyColumns',
  'timestampColumn',
  'timestampType',
  'timestampTimeZone',
  'day',
  'span',
  'bounds',
  'keyRange',
  'timestampRange',
  'compression',
  'encoding',
  'lcMonetary',
  // What restore checks the target's types against: without them it takes the archive for one written before.
  'typeDefinitions',
  'enumLabels',
  'dataKey',
];

/** The fields of MEANING in which `read` differs from what upload wrote. */
function meaningChanges(read: Manifest, written: Manifest): string[] {
  // Key order aside: a record's (typeDefinitions) is the order the lock table returned it in.
  return MEANING.filter((field) => canonicalJson(read[field]) !== canonicalJson(written[field]));
}

/**
 * Reads one object back and checks it against its manifest and the recorded figures: its pin, or the problem. The
 * manifest read must be the one the archive has: `written`, the manifest upload wrote from the in-flight record when
 * this batch created the archive (it must say the same; `unvouched`: an archive no commit records was there), or the
 * one `committed`, the inventory entry of an archive committed before, binds (its digest, or its lcMonetary in an entry
 * from before the digest); else a bucket writer's rewrite would be the manifest the commit binds.
 */
async function verifyObject(
  deps: VerifyDeps,
  object: BatchObject,
  bound: {
    written?: Manifest;
    committed?: Pick<InventoryEntry, 'lcMonetary' | 'manifestSha256' | 'pin' | 'figures'>;
    unvouched?: boolean;
  },
): Promise<
  | { pin: ObjectPin | undefined; manifestSha256: string | undefined; manifestLcMonetary: 'C' | null }
  | { problem: string }
> {
  const { written, committed, unvouched } = bound;
  const fail = (problem: string) => ({
    problem: `archive ${object.archiveKey} failed verification: ${problem}`,
  });
  const expected = object.figures;
  // A manifest too long to read is a bucket writer's, like one that is no manifest: thrown, it left the batch in
  // flight, and every run resumed it into the same read.
  const manifestText = await deps.store.getText(manifestKeyFor(object.archiveKey)).catch((error: unknown) => {
    if (error instanceof ArchiveIntegrityError) return error;
    throw error;
  });
  if (manifestText instanceof ArchiveIntegrityError) return fail(manifestText.message);
  if (manifestText === undefined) return fail('manifest is missing');
  const manifest = parseManifest(manifestText);
  if (!manifest) return fail('manifest is not a valid manifest');
  if (manifest.dataKey !== object.archiveKey)
    return fail(`manifest names another object (${manifest.dataKey})`);
  const changed = written ? meaningChanges(manifest, written) : [];
  if (changed.length > 0 && unvouched)
    return fail(
      `an archive no commit records was under its key before upload, with a manifest that differs from the batch's (${changed.join(', ')}): not the archiver's committed archive; remove it and its manifest once examined, and the next run archives the rows`,
    );
  if (changed.length > 0) return fail(`manifest is not the one upload wrote (${changed.join(', ')} differ)`);
  const sidecar = manifestExpectation(object.archiveKey, manifest, manifestText);
  if (committed?.manifestSha256 !== undefined && sidecar.manifestSha256 !== committed.manifestSha256)
    return fail('manifest is not the one its committed archive was verified with');
  // An entry from before the digest binds the manifest's lcMonetary still: the commit must not take a stripped one.
  const recorded = committed && boundLcMonetary(committed, sidecar);
  if (committed && manifest.lcMonetary !== recorded)
    return fail(
      `manifest says lcMonetary ${manifest.lcMonetary ?? 'none'}, its committed archive's inventory entry ${recorded ?? 'none'}`,
    );
  const manifestProblems = archiveProblems(sidecar, { recorded: expected }).sidecar;
  if (manifestProblems.length > 0)
    return fail(`manifest differs from the export: ${manifestProblems.join('; ')}`);

  const verified = {
    manifestSha256: sidecar.manifestSha256,
    manifestLcMonetary: manifest.lcMonetary ?? null,
  };
  let opened: Awaited<ReturnType<VerifyDeps['store']['open']>>;
  try {
    opened = await deps.store.open(object.archiveKey);
  } catch (error) {
    const pin =
      error instanceof ArchiveInColdStorageError && (await committedVersion(deps, object, committed));
    if (!pin) throw error;
    return { pin, ...verified };
  }
  if (!opened) return fail('object is missing');
  const { body, pin } = opened;
  const compressed = new ByteFigures();
  // A row digest is measured (an MD5 of every line) only where the sidecar states one: export no longer computes it,
  // so it is an earlier version's, which upload took from the bucket when identical rows were archived again, and
  // nothing but these bytes vouches for it. Where export did compute it, it did so from the very lines its recorded
  // content SHA-256 covers, so bytes reproducing that SHA-256 are those lines; measuring it too costs only time.
  // A bomb planted under the key is refused once it inflates to twice the size export recorded: far enough past it
  // that an object altered a little is read whole and told apart by its figures.
  const lines = new JsonLinesContent(
    { key: object.archiveKey, uncompressedBytes: 2 * expected.uncompressedBytes + 1024 * 1024 },
    sidecar.rowDigest === undefined ? undefined : new RowDigest(),
  );
  try {
    await pipeline(body, compressed, createLinesGunzip(), lines);
  } catch (error) {
    if (error instanceof StorageUnavailableError) throw error;
    if (error instanceof ArchiveIntegrityError) return fail(error.message);
    // zlib errors (Z_DATA_ERROR, Z_BUF_ERROR on truncation) mean damaged bytes; anything else is the network.
    const code = (error as { code?: string }).code ?? '';
    if (code.startsWith('Z_')) return fail(`object cannot be decompressed (${code})`);
    throw new StorageUnavailableError(`reading ${object.archiveKey} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  await deps.fault('verify:afterRead');
  const measured = {
    ...lines.figures(),
    compressedSha256: compressed.sha256(),
    compressedBytes: compressed.bytes,
  };
  const objectProblems = archiveProblems(sidecar, { recorded: expected, measured }).bytes;
  if (objectProblems.length > 0)
    return fail(`object differs from its manifest: ${objectProblems.join('; ')}`);
  return { pin, ...verified };
}

/** The figures that say which rows an archive holds and what its bytes are. */
const IDENTITY: readonly (keyof BatchObject['figures'])[] = [
  'rowCount',
  'contentSha256',
  'compressedSha256',
  'uncompressedBytes',
  'compressedBytes',
];

/**
 * The pin of an archive committed earlier that a lifecycle rule moved to GLACIER or DEEP_ARCHIVE since, when it is
 * still the very object its commit verified: identical rows archived again under its key (restored into the table from
 * that archive, whose restored copy S3 removed once its days ran out) could otherwise not be verified, and the table
 * would fail every run until someone restored the archive from cold storage again. Its bytes were measured when that
 * commit verified them, and an object keeps its ETag and version through a transition (S3 keeps a version's bytes as
 * they were), so the object the inventory entry pins, with the entry's figures for the batch's rows, is taken as
 * verified then. Anything else in cold storage (no pin recorded, another object, other figures) stays unverifiable.
 */
async function committedVersion(
  deps: VerifyDeps,
  object: BatchObject,
  committed: Pick<InventoryEntry, 'pin' | 'figures'> | undefined,
): Promise<ObjectPin | undefined> {
  const pin = committed?.pin;
  if (!pin || IDENTITY.some((figure) => committed.figures[figure] !== object.figures[figure]))
    return undefined;
  const head = await deps.store.head(object.archiveKey);
  return head?.pin?.etag === pin.etag && head.pin.versionId === pin.versionId ? head.pin : undefined;
}
