import type { z } from 'zod';
import {
  BatchFiguresSchema,
  canonicalJson,
  type Manifest,
  manifestKeyFor,
  parseManifest,
  writeOnceProbeKey,
} from '../shared/archive/format.js';
import { datedSinceInventory } from '../shared/archive/inventory.js';
import type { ObjectHead } from '../shared/archive/store.js';
import type { WriteOptions } from '../shared/archive/store-writes.js';
import {
  BATCH_ID_METADATA,
  claimForWithdrawal,
  keepAsEvidence,
  LOCK_TABLE_METADATA,
  recordInFlight,
  renewLease,
  tableLabel,
} from '../shared/batch/batch.js';
import { manifestOf } from '../shared/batch/batch-manifest.js';
import { forEachObject } from '../shared/batch/batch-objects.js';
import { batchToActOn } from '../shared/batch/lifecycle.js';
import { resolveTableIfConfigured } from '../shared/config/resolved-table.js';
import {
  ArchiveConflictError,
  ArchiveIntegrityError,
  ConfigError,
  EncryptionRequiredError,
} from '../shared/errors/step-errors.js';
import type { BatchObject, InFlight } from '../shared/lock-table/table-state.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import type { UploadInput, UploadOutput } from './schema.js';

/** Object metadata that lets anyone holding only the object check it, and tells whose batch and deployment wrote it. */
function archiveMetadata(batchId: string, lockTable: string, object: BatchObject): Record<string, string> {
  return {
    [BATCH_ID_METADATA]: batchId,
    [LOCK_TABLE_METADATA]: lockTable,
    'content-sha256': object.figures.contentSha256,
    'compressed-sha256': object.figures.compressedSha256,
    'row-count': String(object.figures.rowCount),
    ...(object.figures.rowDigest ? { 'row-digest': object.figures.rowDigest } : {}),
  };
}

export type UploadDeps = Pick<StepDeps, 'config' | 'store' | 'locks' | 'inventory' | 'telemetry' | 'fault'>;

/** What stops a batch at upload: the problem, and the staged object kept as evidence (it is there, but not export's). */
interface Damage {
  problem: string;
  evidence?: { key: string; head: ObjectHead };
}

/**
 * Upload: publishes each staged object of the batch under its final, content-addressed key without ever replacing an
 * existing object, writes its manifest sidecar once, then removes the batch's staging objects. Every part is
 * idempotent, so a retry after a crash at any point completes the same publication.
 */
export async function uploadBatch(input: UploadInput, deps: UploadDeps): Promise<UploadOutput> {
  const started = Date.now();
  const state = await renewLease(deps, input);
  const inFlight = batchToActOn('upload', input, state.inFlight);
  let damage: Damage | undefined;
  const published = await forEachObject(inFlight.objects, async (object, index) => {
    const outcome = await publishObject(deps, input, inFlight, index, state.inventorySince);
    if ('figures' in outcome) return { ...object, ...outcome };
    // The first damage found decides; the others are left as they are for the withdrawal.
    damage ??= outcome;
    return object;
  });
  if (damage) {
    // Damaged staged objects: nothing was deleted. Counted as a failed verification. Upload keeps the evidence and
    // claims the batch for withdrawal, whatever stage a resumed batch had reached; the next export withdraws it,
    // archives this batch copied included, which upload's role may not delete.
    deps.telemetry.metric('VerificationFailures', 'Count', 1, tableLabel(input));
    if (damage.evidence) {
      await keepAsEvidence(deps, inFlight, damage.evidence.key, damage.evidence.head, 'integrity');
    }
    await claimForWithdrawal(deps, input, inFlight);
    throw new ArchiveIntegrityError(`${damage.problem}; the next run withdraws the batch`);
  }
  // Staging goes once every object is published: a retry before this finds each archive published and its staged
  // copies still there, which it accepts.
  await deps.store.deleteKeys([
    ...inFlight.objects.flatMap((object) => [
      object.stagingKey,
      ...(inFlight.manifest ? [] : [manifestKeyFor(object.stagingKey)]),
    ]),
    ...inFlight.objects.slice(0, 1).map((first) => writeOnceProbeKey(first.stagingKey)),
  ]);
  if (inFlight.stage === 'exported') {
    await recordInFlight(deps, input, { ...inFlight, stage: 'uploaded', objects: published }, ['exported']);
  }
  deps.telemetry.metric('UploadDuration', 'Milliseconds', Date.now() - started, tableLabel(input));
  return {
    objects: published.length,
    created: published.filter((object) => object.createdArchive).length,
  };
}

/**
 * What publishing an object settled: whether this batch created the archive (this call's copy, or an earlier
 * attempt's: every attempt records the same), and the figures of the archive kept.
 */
interface Published {
  createdArchive: boolean;
  figures: BatchObject['figures'];
}

/**
 * Publishes the batch's object at `index` and its manifest: whether this batch created the archive object (false:
 * identical rows archived before by another batch) and the archive's figures, or the damage that stops the
 * batch. An archive of the same content that was there keeps its own compressed bytes, which differ from the staged
 * ones when another compression level or zlib wrote it (rows restored into the table and archived again): the batch
 * takes its compressed figures, which verify then measures on those bytes, and the earlier manifest stays valid. An
 * archive a version before 2026-12-03 wrote states the row digest of its lines too: the batch takes it (verify
 * measures it), or that manifest would differ from the batch's and fail the table every run.
 */
async function publishObject(
  deps: UploadDeps,
  input: UploadInput,
  inFlight: InFlight,
  index: number,
  inventorySince: number | undefined,
): Promise<Published | Damage> {
  const { store, config } = deps;
  const { batchId } = inFlight;
  const object = inFlight.objects[index];
  if (!object) throw new Error(`the batch has no object ${index}`);
  const manifestKey = manifestKeyFor(object.archiveKey);
  const write: WriteOptions = { storageClass: config.s3.storageClass, kmsKeyId: config.s3.kmsKeyId };
  /** Whether the archive object is this batch's: this call's copy created it, or an earlier attempt's did. */
  let ownArchive = false;
  let figures = object.figures;
  // The copy is write-once (If-None-Match) and copies only the object export staged (by its ETag), so nothing is read
  // before it. Refused, the archive key tells why: there already (a retry, or identical rows archived before,
  // accepted only with the same content), or not, and then the staged object was changed or is gone.
  const lockTable = deps.inventory.lockTableName;
  if ((await copyStaged(store, batchId, lockTable, object, write)) === 'copied') ownArchive = true;
  else {
    const existing = await store.head(object.archiveKey);
    ownArchive = existing?.metadata[BATCH_ID_METADATA] === batchId;
    if (existing && existing.metadata['content-sha256'] !== object.figures.contentSha256) {
      throw new ArchiveConflictError(`${object.archiveKey} exists with different content`);
    }
    if (!existing) return stagingDamage(store, object);
    // Another deployment's archive (its own lock table) is never adopted: its commit is in an inventory this one
    // cannot read, and its withdrawal would remove the archive this batch committed, rows already deleted. This
    // batch's own (an earlier attempt's copy), or one this deployment's inventory lists as committed, was created
    // under an earlier name of its lock table (DynamoDB restores a table only under a new name).
    const writer = existing.metadata[LOCK_TABLE_METADATA];
    if (
      writer !== undefined &&
      writer !== lockTable &&
      !ownArchive &&
      !(await listedCommitted(deps, input, object.archiveKey, existing))
    ) {
      throw new ConfigError(
        `${object.archiveKey} was created by the deployment whose lock table is ${shownTableName(writer)}, not this one's (${lockTable}): two deployments archive ${input.database}/${input.table} into one bucket and prefix, and neither can see the other's commits; archive each table from one deployment, or give each deployment its own s3.prefix`,
      );
    }
    figures = existingFigures(deps, object, existing);
  }
  await deps.fault('upload:afterCopy');
  await requireKmsIfCritical(deps, input, object.archiveKey);

  // The manifest comes from the in-flight record; a record written before that kept it staged beside the object.
  const kept = {
    ...inFlight,
    objects: inFlight.objects.map((o, i) => (i === index ? { ...o, figures } : o)),
  };
  const manifest = manifestOf(kept, index) ?? (await readStagedManifest(deps, object));
  if (manifest === 'damaged') {
    return { problem: `staged manifest of ${object.archiveKey} does not describe the exported batch` };
  }
  if (manifest)
    await putManifestOnce(deps, { ...input, batchId, ownArchive, inventorySince }, manifestKey, manifest, {
      ...write,
      metadata: { [BATCH_ID_METADATA]: batchId },
    });
  else if (!(await store.head(manifestKey))) {
    throw new ArchiveIntegrityError(`manifest of ${object.archiveKey} is neither staged nor published`);
  }
  await deps.fault('upload:afterManifest');
  return { createdArchive: ownArchive, figures };
}

/** A DynamoDB table name's form: all an archiver writes as `lock-table` metadata. */
const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;

/**
 * A `lock-table` metadata value as a message may show it: anyone with write access to the bucket sets it (up to 2 KB,
 * any text), so only a table name is quoted, never a line made to read as a log entry or advice.
 */
function shownTableName(value: string): string {
  return TABLE_NAME.test(value) ? value : 'unreadable (not a DynamoDB table name)';
}

/**
 * The batch's figures taken from an archive of the same content already at the key. Its metadata is anyone's with
 * write access to the bucket, and goes into the lease item: a value not of a figure's form is left out, named but not
 * copied (the batch keeps export's, which verify measures on the archive's bytes), and an object no gzip of rows can
 * be (empty) is a conflict. A row digest left out makes an earlier manifest that states one differ from the batch's:
 * a conflict, named.
 */
function existingFigures(deps: Pick<UploadDeps, 'telemetry'>, object: BatchObject, existing: ObjectHead) {
  if (!BatchFiguresSchema.shape.compressedBytes.safeParse(existing.size).success) {
    throw new ArchiveConflictError(
      `${object.archiveKey} exists with different content (${existing.size} bytes)`,
    );
  }
  const taken = (name: string, form: z.ZodType<string>): string | undefined => {
    const value = existing.metadata[name];
    if (value === undefined) return undefined;
    if (form.safeParse(value).success) return value;
    deps.telemetry.warn('upload ignores metadata of another form on the archive already at the key', {
      key: object.archiveKey,
      metadata: name,
      length: value.length,
    });
    return undefined;
  };
  const compressedSha256 = taken('compressed-sha256', BatchFiguresSchema.shape.compressedSha256);
  const rowDigest = taken('row-digest', BatchFiguresSchema.shape.rowDigest.unwrap());
  return {
    ...object.figures,
    compressedBytes: existing.size,
    ...(compressedSha256 ? { compressedSha256 } : {}),
    ...(rowDigest ? { rowDigest } : {}),
  };
}

/**
 * How much later than its commit S3 may date the archive the inventory lists, when the commit pinned no version: the
 * commit is dated by the function's clock, which may run behind S3's (as far as the functions allow a cut-off's
 * clock), while a re-creation follows an expiry or a deletion, days later.
 */
const RECREATED_AFTER_COMMIT_SLACK_MS = 5 * 60_000;

/**
 * Whether this deployment's inventory lists `archiveKey` as committed, as the object there now: its pin, where the
 * entry has one (an object another deployment re-created after this one's expired has another version). Where the
 * bucket keeps versions the version the commit pinned decides alone, whatever the clocks; without one (a bucket without
 * versions, as the local one: identical bytes put again have the same ETag) S3 must date the object no later than
 * that commit, give or take the clocks.
 */
async function listedCommitted(
  deps: UploadDeps,
  input: UploadInput,
  archiveKey: string,
  existing: ObjectHead,
): Promise<boolean> {
  const entry = (await deps.inventory.entries(input.database, input.table, [archiveKey])).get(archiveKey);
  if (!entry || entry.figures.contentSha256 !== existing.metadata['content-sha256']) return false;
  const { pin } = entry;
  if (pin && (pin.etag !== existing.pin?.etag || pin.versionId !== existing.pin?.versionId)) return false;
  if (pin?.versionId !== undefined) return true;
  return !(
    existing.lastModified &&
    existing.lastModified.getTime() > Date.parse(entry.committedAt) + RECREATED_AFTER_COMMIT_SLACK_MS
  );
}

/** The damage when the copy was refused and no archive is there: the staged object was changed or is gone. */
async function stagingDamage(store: UploadDeps['store'], object: BatchObject): Promise<Damage> {
  const staged = await store.head(object.stagingKey);
  const problem = !staged
    ? 'missing'
    : staged.size !== object.figures.compressedBytes
      ? `${staged.size} bytes, expected ${object.figures.compressedBytes}`
      : `not the object export wrote (ETag ${staged.pin?.etag ?? 'none'}, export's ${object.stagedEtag ?? 'not recorded'})`;
  return {
    problem: `staging object ${object.stagingKey} is ${problem}`,
    ...(staged ? { evidence: { key: object.stagingKey, head: staged } } : {}),
  };
}

/**
 * Copies the staged object to its archive key, write-once, only if it is the object export staged: by the ETag export
 * recorded, or, in a record written before export recorded it, by its size (read first).
 */
async function copyStaged(
  store: UploadDeps['store'],
  batchId: string,
  lockTable: string,
  object: BatchObject,
  write: WriteOptions,
): Promise<'copied' | 'refused'> {
  if (!object.stagedEtag && (await store.head(object.stagingKey))?.size !== object.figures.compressedBytes) {
    return 'refused';
  }
  return store.copyOnce(
    object.stagingKey,
    object.archiveKey,
    write,
    archiveMetadata(batchId, lockTable, object),
    object.figures.compressedBytes,
    object.stagedEtag,
  );
}

/**
 * A critical table's archive must be SSE-KMS encrypted as S3 itself reports it (not merely requested): a bucket
 * policy, a wrong key setting or a server without KMS stops the batch here, before verify and delete, with its
 * rows still in the database. The next export withdraws the batch it left in flight.
 */
async function requireKmsIfCritical(
  deps: Pick<StepDeps, 'config' | 'store'>,
  input: UploadInput,
  archiveKey: string,
): Promise<void> {
  // A table the config no longer lists (a deployment during the run) is not held to it.
  const table = resolveTableIfConfigured(deps.config, input.database, input.table);
  if (!table?.governance.requiresKms) return;
  const encryption = (await deps.store.head(archiveKey))?.serverSideEncryption;
  if (encryption !== 'aws:kms') {
    throw new EncryptionRequiredError(
      `${input.database}/${input.table} is critical: its archive ${archiveKey} must be SSE-KMS encrypted, S3 reports ${encryption ?? 'no encryption'}${deps.config.s3.kmsKeyId ? '' : ' (s3.kmsKeyId is not set)'}`,
    );
  }
}

/**
 * The staged manifest of a batch recorded before export kept manifests in its in-flight record; undefined once
 * published (staging removed), 'damaged' unless it describes the batch.
 */
async function readStagedManifest(
  deps: Pick<StepDeps, 'store'>,
  object: BatchObject,
): Promise<Manifest | 'damaged' | undefined> {
  const text = await deps.store.getText(manifestKeyFor(object.stagingKey));
  if (text === undefined) return undefined;
  const manifest = parseManifest(text);
  if (!manifest) return 'damaged';
  const describesBatch =
    manifest.dataKey === object.archiveKey &&
    JSON.stringify(manifest.figures) === JSON.stringify(object.figures);
  return describesBatch ? manifest : 'damaged';
}

/** How often upload removes an orphan manifest and writes its own before it gives up (another writer keeps racing). */
const ORPHAN_ROUNDS = 3;

/**
 * Publishes the manifest write-once. What is already at the key decides:
 * - this very manifest (a retry, or a duplicated invocation of this batch's upload): done;
 * - another, while the archive object under its data key is this batch's (`ownArchive`: this batch's copy created
 *   it, so no data object was there, and it still is) and the inventory lists no committed archive under that key:
 *   an orphan, left by a withdrawal that ended between removing an archive and its manifest, or written by a stale
 *   upload after its archive was withdrawn; or while the archive there is no batch's that committed and S3 dates it
 *   since the table's archives began to be recorded (`inventorySince`): a leftover, whose manifest verify would not
 *   accept for this batch's unless it says the same. It is removed (only if still the one read) and this batch's
 *   written, a few rounds at most;
 * - otherwise, a manifest for the same rows (same data key and figures) is accepted even if another run wrote it: the
 *   content-addressed data object is the same (identical rows archived before). Anything else is a conflict.
 * The manifest of a committed archive is never replaced.
 */
async function putManifestOnce(
  deps: Pick<StepDeps, 'store' | 'inventory' | 'locks'>,
  owner: Pick<UploadInput, 'database' | 'table' | 'lease'> & {
    batchId: string;
    ownArchive: boolean;
    inventorySince: number | undefined;
  },
  key: string,
  manifest: Manifest,
  write: WriteOptions,
): Promise<void> {
  const { store } = deps;
  const text = JSON.stringify(manifest, null, 2);
  const mine = canonicalJson(manifest);
  const isMine = (parsed: Manifest | undefined) => parsed !== undefined && canonicalJson(parsed) === mine;
  const describesSameRows = (parsed: Manifest | undefined) =>
    parsed !== undefined &&
    parsed.dataKey === manifest.dataKey &&
    JSON.stringify(parsed.figures) === JSON.stringify(manifest.figures);
  // Read only when the manifest there is not this batch's: the archive's writer now, then the inventory.
  const isOrphan = async () => {
    const archive = await store.head(manifest.dataKey);
    if (!archive) return false;
    // Not this batch's, but no commit's either and dated since the table's archives began to be recorded: a stale
    // upload's leftover (its batch withdrawn) or a bucket writer's. Verify holds its manifest to this batch's, so
    // another (enum labels added since) would fail the table on every run.
    const leftover = !owner.ownArchive && datedSinceInventory(archive.lastModified, owner.inventorySince);
    if (!leftover && (!owner.ownArchive || archive.metadata[BATCH_ID_METADATA] !== owner.batchId))
      return false;
    const committed = await deps.inventory.entries(owner.database, owner.table, [manifest.dataKey]);
    return !committed.has(manifest.dataKey);
  };
  for (let round = 0; round <= ORPHAN_ROUNDS; round++) {
    let existing = '';
    const outcome = await store.putTextOnce(key, text, write, (found) => {
      existing = found;
      return true;
    });
    if (outcome === 'written') return;
    const parsed = parseManifest(existing);
    if (isMine(parsed)) return;
    // Gone between the refused write and the read (an orphan another invocation removed): write again.
    if (existing === '') continue;
    if (await isOrphan()) {
      if (round === ORPHAN_ROUNDS) break;
      // Only the manifest read: one a racing invocation of this batch wrote meanwhile stays. Fenced: an upload whose
      // lease was lost (its object completed after the batch was withdrawn) would remove the next batch's manifest.
      await deps.locks.assertHolding(owner.database, owner.table, owner.lease, owner.batchId);
      if ((await store.getText(key)) === existing) await store.deleteKeys([key]);
      continue;
    }
    if (describesSameRows(parsed)) return;
    break;
  }
  throw new ArchiveConflictError(`s3://${store.bucket}/${key} exists with other content`);
}
