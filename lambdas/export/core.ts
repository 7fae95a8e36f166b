import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { CopyToArchiveLines, type ObjectLines } from '../shared/archive/copy-to-lines.js';
import {
  ARCHIVE_LC_MONETARY,
  archiveKey,
  FORMAT_VERSION,
  type ObjectSpan,
  stagingKey,
  type TableLocation,
  TOOL_NAME,
  TOOL_VERSION,
  writeOnceProbeKey,
} from '../shared/archive/format.js';
import type { WriteOptions } from '../shared/archive/store-writes.js';
import { ByteFigures } from '../shared/archive/stream.js';
import { VersionDigest } from '../shared/archive/version-digest.js';
import {
  assertTaskCutoff,
  BATCH_ID_METADATA,
  recordInFlight,
  recoverInFlight,
  renewLease,
  tableLabel,
  tableLocation,
} from '../shared/batch/batch.js';
import { batchSpan, batchTotals, MAX_OBJECTS_PER_BATCH, RecordRoom } from '../shared/batch/batch-objects.js';
import { activeHold, refuseHeldPartition } from '../shared/batch/holds.js';
import { checkSchemaDrift } from '../shared/batch/schema-drift.js';
import { ApplicationLoad, batchRowLimit, checkReplicaLag, vacuumTable } from '../shared/batch/throttle.js';
import { findDatabase, resolveTable } from '../shared/config/resolved-table.js';
import { abandonConnection, type Database, inReadOnlyTransaction } from '../shared/database/db.js';
import { describeTable, readingDigestNow, type TableShape } from '../shared/database/table-shape.js';
import {
  batchPredicateSql,
  lockRowSource,
  rawBytesSql,
  rowValuesCopySql,
} from '../shared/database/table-sql.js';
import { valueRefusal } from '../shared/database/value-refusal.js';
import {
  LeaseLostError,
  ReplicaLagError,
  TableNotUsableError,
  timedOutStatement,
} from '../shared/errors/step-errors.js';
import { type BatchObject, type InFlight, keptAsLastColumns } from '../shared/lock-table/table-state.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import { midStreamFaultPoint } from './mid-stream-fault.js';
import { eligibleRowsCapped, nextBatchBounds, type ObjectBounds, wholeSpans } from './next-batch.js';
import type { ExportInput, ExportOutput } from './schema.js';

/** The most bytes of enum labels a batch's record and each manifest carry: the record has a size limit. */
const ENUM_LABEL_BYTES = 4096;

/** The enums' labels the manifests record: the smallest enums first, as many as fit ENUM_LABEL_BYTES. */
function recordedEnumLabels(enums: Record<string, string[]>): { enumLabels?: Record<string, string[]> } {
  const kept: Record<string, string[]> = {};
  let bytes = 0;
  for (const [name, labels] of Object.entries(enums).sort(([, a], [, b]) => a.length - b.length)) {
    bytes += Buffer.byteLength(JSON.stringify([name, labels]));
    if (bytes > ENUM_LABEL_BYTES) break;
    kept[name] = labels;
  }
  return Object.keys(kept).length > 0 ? { enumLabels: kept } : {};
}

export type ExportDeps = Pick<
  StepDeps,
  | 'config'
  | 'store'
  | 'locks'
  | 'inventory'
  | 'holds'
  | 'database'
  | 'telemetry'
  | 'now'
  | 'fault'
  | 'remainingTimeMs'
>;

/**
 * Export: finishes or undoes a batch an earlier attempt left in flight, then streams the next batch of eligible rows
 * through gzip into staging objects: from the oldest eligible UTC day (or month, `objectSpan`) on, one object per day
 * or month (an object never spans two), until the batch holds `batchSize` rows (or the time budget's share of them),
 * `MAX_OBJECTS_PER_BATCH` days, or every eligible row. Its last object may end mid-day, at a key. Everything the later
 * steps check is measured on the way; rows never pass through memory as a whole. The backlog metric (`BacklogRows`) is
 * 0 when nothing is left, and counted when the batch budget's last batch is exported.
 */
export async function exportBatch(input: ExportInput, deps: ExportDeps): Promise<ExportOutput> {
  const table = resolveTable(deps.config, input.database, input.table);
  assertTaskCutoff(deps, input, table);
  const state = await renewLease(deps, input);
  const db = await deps.database(input.database);
  if (state.inFlight && (await recoverInFlight(deps, input, table, state.inFlight))) {
    return summary('resumed', state.inFlight);
  }
  // Kept by an earlier version however wide: the item would have no room for this batch (see LAST_COLUMNS_MAX_BYTES).
  if (state.lastColumns && !keptAsLastColumns(state.lastColumns)) {
    await deps.locks.forgetLastColumns(input.database, input.table, input.lease);
  }
  // A legal hold set while the run was going: no new batch starts (release then records the table as held).
  if (await activeHold(deps, input.database, input.table, table.governance.configHold)) {
    return { status: 'empty' as const };
  }
  const started = Date.now();
  // From now on the table's archives are committed through the inventory: dated before anything is staged.
  if (state.inventorySince === undefined)
    await deps.locks.startInventory(input.database, input.table, input.lease, started);
  const batchId = randomUUID();
  const location = tableLocation(deps.config, table);
  const write = {
    storageClass: 'STANDARD' as const,
    kmsKeyId: deps.config.s3.kmsKeyId,
    metadata: { [BATCH_ID_METADATA]: batchId },
  };
  // Summed over every object's rows: the delete removes them all in one transaction and compares one sum.
  const versions = new VersionDigest();
  // Sampled only for the throttle that yields to the application.
  const load = deps.config.defaults.yieldToLoad ? new ApplicationLoad() : undefined;
  // One read-only transaction from the table's checks to the end of the last COPY: the archiver's settings
  // (search_path, the text formats the archive records) hold for each statement even behind a transaction-pooling
  // proxy. It ends with the COPYs, before the lock-table write, so it never idles in a transaction on slow calls.
  const copied = await db.withConnection((client) =>
    inReadOnlyTransaction(client, async () => {
      // Locked first: a column renamed between the description and the COPYs would be read under its new name.
      await lockRowSource(client, table, 'ACCESS SHARE');
      const shape = await describeTable(client, table);
      refuseConfiguredAncestor(deps.config, input.database, shape);
      await refuseHeldPartition(deps, client, input.database, shape);
      try {
        await checkReplicaLag(client, table.replicaLag);
      } catch (error) {
        if (error instanceof ReplicaLagError)
          deps.telemetry.metric('ReplicaLagPauses', 'Count', 1, tableLabel(input));
        throw error;
      }
      let remaining = batchRowLimit(
        table.batchSize,
        deps.config.defaults,
        deps.remainingTimeMs?.(),
        input.progress,
      );
      const drift = await checkSchemaDrift(deps, input, table, shape.columns);
      const staged: StagedObject[] = [];
      const publishing = new Publications();
      const batch: StagingBatch = {
        location,
        batchId,
        write,
        versions,
        span: table.objectSpan,
        input,
        load,
        publishing,
        failure: new AbortController(),
        streams: [],
      };
      try {
        // One COPY's branches must come out in turn (rowValuesCopySql): no parallel plan for this transaction, nor an
        // asynchronous Append over foreign partitions (a setting since PostgreSQL 14, set only where it exists).
        await client.query(
          `SELECT pg_catalog.set_config(v.name, v.setting, true)
             FROM (VALUES ('max_parallel_workers_per_gather', '0'), ('enable_async_append', 'off')) AS v(name, setting)
            WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_settings AS s WHERE s.name = v.name)`,
        );
        const room = new RecordRoom(
          shape.columns,
          [state.lastColumns, state.inFlight?.columns],
          drift,
          shape.columnNumbers,
          { typeDefinitions: shape.typeDefinitions, ...recordedEnumLabels(shape.enumLabels) },
        );
        const fits = (span: ObjectBounds) => room.take(location, table.objectSpan, span);
        const spans = await wholeSpans(
          client,
          shape,
          input.cutoff,
          table.objectSpan,
          remaining,
          MAX_OBJECTS_PER_BATCH,
        );
        const fitting = spans.findIndex((span) => !fits(span));
        const whole = fitting === -1 ? spans : spans.slice(0, fitting);
        for (let i = 0; i < whole.length; i += SPANS_PER_COPY) {
          const objects = await stageSpans(
            deps,
            client,
            shape,
            whole.slice(i, i + SPANS_PER_COPY),
            batch,
            staged.length,
          );
          await assertReadAsDescribed(client, shape);
          staged.push(...objects);
          remaining -= objects.reduce((sum, object) => sum + object.rows, 0);
        }
        for (
          let after = whole.at(-1)?.bounds.to;
          staged.length < MAX_OBJECTS_PER_BATCH && remaining > 0 && whole.length === spans.length;
        ) {
          const next = await nextBatchBounds(client, shape, input.cutoff, table.objectSpan, remaining, after);
          if (!next || !fits(next)) break;
          const [object] = await stageSpans(deps, client, shape, [next], batch, staged.length);
          await assertReadAsDescribed(client, shape);
          after = next.bounds.to;
          // No rows: they went away between choosing them and copying them; the batch goes on with the next span.
          if (!object) continue;
          staged.push(object);
          remaining -= object.rows;
          // A day that filled what was left ends the batch there, mid-day or not.
          if (next.rows >= remaining + object.rows) break;
        }
        // A reading at the end too, where the batch took longer than the sampling interval.
        await load?.sample(client);
        await publishing.settle();
      } catch (error) {
        // Every staging write has ended before the export fails: none lands after a retry has begun.
        await publishing.settle().catch(() => undefined);
        // A key the batch's bounds read may be what is not UTF-8, before any COPY.
        throw valueRefusal(shape, error);
      }
      return { shape, staged: await Promise.all(staged.map((object) => object.staged)), drift };
    }),
  );
  const { shape, staged, drift } = copied;
  const [first] = staged;
  if (!first) {
    deps.telemetry.metric('BacklogRows', 'Count', 0, tableLabel(input));
    // The table's run is over: reclaim what this run deleted, if asked to (VACUUM runs outside a transaction).
    if (deps.config.defaults.vacuumAfterRun && (input.progress?.rows ?? 0) > 0) {
      await db.withConnection((client) => vacuumTable(client, shape, deps.telemetry, tableLabel(input)));
    }
    return { status: 'empty' as const };
  }
  // Upload copies write-once before it reads the archive key: proven here, before any copy, for every batch.
  await deps.store.requireWriteOnce(writeOnceProbeKey(first.stagingKey), write);
  await deps.fault('export:afterStaging');
  const inFlight: InFlight = {
    stage: 'exported',
    batchId,
    runId: input.runId,
    cutoff: input.cutoff,
    objects: staged,
    versionDigest: versions.value(),
    columns: shape.columns,
    columnNumbers: shape.columnNumbers,
    readingDigest: shape.readingDigest,
    exportedAt: started,
    busySessions: load?.busySessions(),
    manifest: {
      formatVersion: FORMAT_VERSION,
      tool: { name: TOOL_NAME, version: TOOL_VERSION },
      database: location.database,
      schema: location.schema,
      table: location.table,
      keyColumns: shape.keyColumns.map((c) => c.name),
      timestampColumn: shape.timestampColumn.name,
      timestampType: shape.timestampKind,
      timestampTimeZone: shape.timestampTimeZone,
      compression: { format: 'gzip', level: deps.config.defaults.compressionLevel },
      encoding: 'jsonl-pg-text',
      exportedAt: deps.now().toISOString(),
      // Pinned on every session (database/db.ts): restore reads the money values under it.
      lcMonetary: ARCHIVE_LC_MONETARY,
      ...(Object.keys(shape.typeDefinitions).length > 0 ? { typeDefinitions: shape.typeDefinitions } : {}),
      ...recordedEnumLabels(shape.enumLabels),
      // Told in the batch's first object's manifest (an object whose rows went away is not in the batch).
      ...(drift ? { schemaDrift: drift } : {}),
    },
  };
  try {
    await recordInFlight(deps, input, inFlight, 'none');
  } catch (error) {
    const twin = error instanceof LeaseLostError ? await twinsBatch(deps, input, inFlight) : undefined;
    if (!twin) throw error;
    return summary('resumed', twin);
  }
  if (inFlight.busySessions !== undefined)
    deps.telemetry.metric('BusySessions', 'Count', inFlight.busySessions, tableLabel(input));
  const output = summary('exported', inFlight);
  if ((input.progress?.batches ?? 0) + 1 >= (input.maxBatches ?? deps.config.defaults.maxBatchesPerRun)) {
    await reportBacklog(deps, input, db, shape, table.objectSpan, output.rows);
  }
  deps.telemetry.metric('ExportDuration', 'Milliseconds', Date.now() - started, tableLabel(input));
  deps.telemetry.info('batch exported', {
    ...tableLabel(input),
    firstDay: output.firstDay,
    lastDay: output.lastDay,
    objects: output.objects,
    rows: output.rows,
    bytes: output.compressedBytes,
    busySessions: inFlight.busySessions,
  });
  return output;
}

/**
 * The batch a duplicate of this invocation recorded first, under this lease and run (Lambda invokes at least once, and
 * a Task retried beside the attempt it replaced runs twice), or undefined. The state machine may carry on with this
 * invocation's answer: it answers with that batch, as if it had resumed it, and removes what it staged itself that the
 * batch does not use (objects of another content, under other keys, carrying this batch's id).
 */
async function twinsBatch(
  deps: ExportDeps,
  input: ExportInput,
  mine: InFlight,
): Promise<InFlight | undefined> {
  const state = await deps.locks.get(input.database, input.table);
  const twin = state.inFlight;
  const ours = state.owner === input.lease.owner && state.token === input.lease.token;
  if (!ours || !twin || twin.batchId === mine.batchId || twin.runId !== input.runId) return undefined;
  const used = new Set(twin.objects.map((object) => object.stagingKey));
  const staged = mine.objects.map((object) => object.stagingKey);
  const [first] = staged;
  // And its write-once probe, unless it is the twin's.
  if (first) staged.push(writeOnceProbeKey(first));
  if (twin.objects[0]) used.add(writeOnceProbeKey(twin.objects[0].stagingKey));
  for (const key of staged) {
    if (used.has(key)) continue;
    const head = await deps.store.head(key);
    if (head?.metadata[BATCH_ID_METADATA] === mine.batchId) await deps.store.deleteKeys([key]);
  }
  return twin;
}

/**
 * The budget's last batch ends the run with rows left: the eligible rows beyond this batch (assuming its delete
 * commits), counted once the batch is recorded. A failed count is logged and leaves the batch as it is.
 */
async function reportBacklog(
  deps: ExportDeps,
  input: ExportInput,
  db: Database,
  shape: TableShape,
  span: ObjectSpan,
  batchRows: number,
): Promise<void> {
  try {
    const eligible = await db.withConnection((client) =>
      inReadOnlyTransaction(client, () => eligibleRowsCapped(client, shape, input.cutoff, span)),
    );
    deps.telemetry.metric('BacklogRows', 'Count', Math.max(0, eligible - batchRows), tableLabel(input));
  } catch (error) {
    deps.telemetry.warn('backlog not counted', { ...tableLabel(input), error: (error as Error).name });
  }
}

/**
 * How lines go through an object's staging chain (bench/export-pipeline.ts measures each). Lines are passed on once
 * WRITE_BYTES are ready (or the object ends), not per chunk of the COPY (about 20 KB); the chain's head takes up to
 * HEAD_BYTES before a write waits, so the next lines are written while gzip (on libuv's pool) compresses the last;
 * gzip hands on GZIP_CHUNK_BYTES at a time, so a write is one round trip to its thread, not three. None of them
 * changes a byte of the object: without a flush, deflate's output does not depend on how its input is cut.
 */
export const WRITE_BYTES = 256 * 1024;
export const HEAD_BYTES = 1024 * 1024;
export const GZIP_CHUNK_BYTES = 64 * 1024;

/** Whole spans one COPY reads at most: PostgreSQL keeps each branch's sort (up to work_mem) until the COPY ends. */
export const SPANS_PER_COPY = 8;

/** What export knows of a batch while it stages its objects. */
interface StagingBatch {
  location: TableLocation;
  batchId: string;
  write: WriteOptions & { metadata: Record<string, string> };
  versions: VersionDigest;
  span: ObjectSpan;
  input: ExportInput;
  load: ApplicationLoad | undefined;
  publishing: Publications;
  /**
   * Aborted by the first failure of any object's stream or upload in the batch: it ends every wait of the COPY's
   * reader, and no later COPY starts.
   */
  failure: AbortController;
  /** Every object stream the batch started. */
  streams: StagingStream[];
}

/**
 * Throws the batch's first failure, known by an aborted upload or by a stream that failed (which it says at once,
 * before its pipeline reports it): checked before anything more is read, written or started, so nothing lands after.
 */
function assertNoneFailed(batch: StagingBatch): void {
  batch.failure.signal.throwIfAborted();
  for (const stream of batch.streams) stream.assertFlowing();
}

/** An object whose rows are read: its row count, and the object once its staging upload ended (with its ETag). */
interface StagedObject {
  rows: number;
  staged: Promise<BatchObject>;
}

/**
 * Refuses a batch whose COPY may have read the rows otherwise than the table was described: an enum's labels, a
 * composite's attributes or a collation changed meanwhile (ALTER TYPE locks no table), which the delete, comparing the
 * described digest with its own, would not see once changed back. Checked after each COPY, the batch is never
 * recorded, so nothing is deleted; the next run describes the table again.
 */
async function assertReadAsDescribed(client: pg.ClientBase, shape: TableShape): Promise<void> {
  if ((await readingDigestNow(client, shape)) === shape.readingDigest) return;
  throw new TableNotUsableError(
    `${shape.schema}.${shape.name}: a type a column uses (an enum's labels, a composite's attributes) or a column's collation changed while export read its rows, so they may have been read otherwise than described; nothing of this batch was recorded, and the next run reads the table as it is then`,
  );
}

/**
 * Streams the rows of `spans` (consecutive days or months of the batch) from one COPY into their staging objects, one
 * object per span that has rows, each through gzip into its own upload, measuring each on the way. Returns once the
 * rows are read; each object's upload ends while the next rows are read (at most `OBJECTS_PUBLISHING` outstanding:
 * the last part of an upload is held in memory until it is sent). A span whose rows went away between choosing them
 * and copying them has no object. `before`: the batch's objects so far (the fault point between objects).
 */
async function stageSpans(
  deps: ExportDeps,
  client: pg.ClientBase,
  shape: TableShape,
  spans: readonly ObjectBounds[],
  batch: StagingBatch,
  before: number,
): Promise<StagedObject[]> {
  const { failure } = batch;
  assertNoneFailed(batch);
  if (before > 0) await deps.fault('export:betweenObjects');
  await batch.load?.sample(client);
  const predicates = spans.map((span) => batchPredicateSql(shape, span.bounds));
  if (shape.rawByteColumns.length > 0) {
    const raw = await client.query<{ found: boolean }>(rawBytesSql(shape, predicates));
    if (raw.rows[0]?.found)
      throw new TableNotUsableError(
        `a "char" column of ${shape.schema}.${shape.name} (${shape.rawByteColumns.map((c) => c.name).join(', ')}) holds a byte above 0x7f, which PostgreSQL 14 and older write bare: not UTF-8, so its archive could never be restored; nothing was archived (archive it on PostgreSQL 15 or later, or change the column's type)`,
      );
  }
  const copy = client.query(copyTo(rowValuesCopySql(shape, predicates)));
  const lines = new CopyToArchiveLines(
    shape.columns.map((c) => c.name),
    batch.versions,
  );
  const objects: StagedObject[] = [];
  const streams: StagingStream[] = [];
  let open: StagingStream | undefined;
  try {
    for await (const chunk of copy as AsyncIterable<Buffer>) {
      for (let offset = 0; ; ) {
        assertNoneFailed(batch);
        offset = lines.read(chunk, offset);
        const out = lines.lines(lines.atAnotherObject ? 0 : WRITE_BYTES);
        if (out) await open?.write(out, failure.signal);
        if (!lines.atAnotherObject) break;
        const { ended, next } = lines.nextObject();
        // Between two objects of this COPY (before its first one, the fault point came before the COPY).
        if (open && ended) {
          objects.push(await open.end(ended, batch.publishing));
          // Ended: its upload goes on whatever happens next (a failure waits for it, and destroys only an open one).
          open = undefined;
          await deps.fault('export:betweenObjects');
        }
        assertNoneFailed(batch);
        const span = spans[next];
        if (!span) throw new Error(`COPY sent a row of object ${next}; it reads ${spans.length}`);
        open = new StagingStream(deps, span, batch);
        streams.push(open);
        batch.streams.push(open);
      }
    }
    assertNoneFailed(batch);
    const rest = lines.lines();
    if (rest) await open?.write(rest, failure.signal);
    const last = lines.finish();
    if (open && last) objects.push(await open.end(last, batch.publishing));
    return objects;
  } catch (thrown) {
    // An upload's failure is the reason a wait was aborted; a value the COPY could not render refuses the table.
    const cause = failure.signal.aborted
      ? failure.signal.reason
      : timedOutStatement(thrown, `export's COPY of ${spans.length} day(s) of the batch's rows`);
    const error = valueRefusal(shape, cause);
    copy.destroy();
    abandonConnection(client);
    open?.destroy(error);
    await Promise.allSettled(streams.map((stream) => stream.settled));
    // A row that cannot be archived: say which day it is on, so the operator can find it (by day, never by its key:
    // a key can be personal data, and this message reaches the execution's history and logs). A line too long is the
    // open object's; a value PostgreSQL could not render is the row after the last it sent, or (computed below a
    // day's sort, as a VIRTUAL column is) one of a later day of this COPY, before that day's first row came.
    const first = open?.span ?? spans[0];
    const last = error === cause ? first : spans.at(-1);
    if (error instanceof TableNotUsableError && first && last) {
      const days = first === last ? `day ${first.day}` : `a day from ${first.day} to ${last.day}`;
      throw new TableNotUsableError(
        `${batch.input.database}/${batch.input.table}, ${days}: ${error.message}`,
      );
    }
    throw error;
  }
}

/** One object's lines on their way through gzip into its staging upload. */
class StagingStream {
  private readonly head: Transform;
  private readonly compressed = new ByteFigures();
  private readonly stagingKey: string;
  private readonly flowing: Promise<void>;
  private readonly upload: Promise<string | undefined>;
  /** Settles once both the stream and the upload ended, whichever way. */
  readonly settled: Promise<unknown>;

  constructor(
    deps: ExportDeps,
    readonly span: ObjectBounds,
    private readonly batch: StagingBatch,
  ) {
    this.stagingKey = stagingKey(batch.location, span.day, batch.batchId);
    this.head = midStreamFaultPoint(deps.fault, HEAD_BYTES);
    this.flowing = pipeline(
      this.head,
      createGzip({ level: deps.config.defaults.compressionLevel, chunkSize: GZIP_CHUNK_BYTES }),
      this.compressed,
    );
    this.upload = deps.store.putStream(this.stagingKey, this.compressed, batch.write);
    // Its errors reach export through the two promises; an 'error' event after the pipeline ended (the upload destroys
    // its body when a part fails) must not end the process as an uncaught exception.
    this.compressed.on('error', () => undefined);
    const fail = (error: unknown) => batch.failure.abort(error);
    this.flowing.catch(fail);
    this.upload.catch(fail);
    this.settled = Promise.allSettled([this.flowing, this.upload]);
  }

  /** Writes lines, waiting while gzip is behind (or until any object of the batch failed). */
  async write(lines: Buffer, failed: AbortSignal): Promise<void> {
    if (!this.head.write(lines)) await once(this.head, 'drain', { signal: failed });
  }

  /** Throws the stream's error once it failed (its streams say so at once; the upload hears of it later). */
  assertFlowing(): void {
    const error = this.head.errored ?? this.compressed.errored;
    if (error) throw error;
  }

  /** Ends the object's lines; its staging upload goes on while the next object is read. */
  async end(lines: ObjectLines, publishing: Publications): Promise<StagedObject> {
    this.assertFlowing();
    this.head.end();
    // Settled first: a stream that failed must not end the wait while its upload still sends (or aborts) parts.
    const staged = this.settled
      .then(() => Promise.all([this.flowing, this.upload]))
      .then(([, etag]) => this.object(lines, etag));
    await publishing.add(staged);
    return { rows: lines.rows, staged };
  }

  destroy(error: unknown): void {
    this.head.destroy(error as Error);
    this.compressed.destroy(error as Error);
  }

  private object(lines: ObjectLines, etag: string | undefined): BatchObject {
    const figures = {
      rowCount: lines.rows,
      contentSha256: lines.contentSha256,
      compressedSha256: this.compressed.sha256(),
      uncompressedBytes: lines.uncompressedBytes,
      compressedBytes: this.compressed.bytes,
    };
    return {
      day: this.span.day,
      span: this.batch.span,
      stagingKey: this.stagingKey,
      archiveKey: archiveKey(this.batch.location, this.span.day, figures.contentSha256, this.batch.span),
      bounds: this.span.bounds,
      figures,
      timestampRange: { min: lines.minTimestamp, max: lines.maxTimestamp },
      stagedEtag: etag,
    };
  }
}

/**
 * The staging uploads of objects already read, finishing while the next object is read: each object's upload ends
 * after its last row, and waiting for it cost export a round trip to S3 per object. At most `OBJECTS_PUBLISHING` are
 * outstanding: the last part of an object's upload is held in memory until it is sent.
 */
class Publications {
  private readonly outstanding: Promise<{ error?: unknown }>[] = [];

  /** Adds an object's publication; waits for the oldest when too many are outstanding, and throws its failure. */
  async add(published: Promise<unknown>): Promise<void> {
    this.outstanding.push(
      published.then(
        () => ({}),
        (error: unknown) => ({ error }),
      ),
    );
    if (this.outstanding.length > OBJECTS_PUBLISHING) await this.next();
  }

  /** Waits for every outstanding publication; throws the first failure. */
  async settle(): Promise<void> {
    const outcomes = await Promise.all(this.outstanding.splice(0));
    const failed = outcomes.find((outcome) => 'error' in outcome);
    if (failed) throw failed.error;
  }

  private async next(): Promise<void> {
    const outcome = await this.outstanding.shift();
    if (outcome && 'error' in outcome) throw outcome.error;
  }
}

const OBJECTS_PUBLISHING = 2;

/** The output for a batch: what it covers, in counts and days (its keys stay on the lease item). */
function summary(
  status: 'exported' | 'resumed',
  inFlight: InFlight,
): Extract<ExportOutput, { status: 'exported' | 'resumed' }> {
  const totals = batchTotals(inFlight);
  const span = batchSpan(inFlight);
  return {
    status,
    firstDay: span.firstDay,
    lastDay: span.lastDay,
    objects: inFlight.objects.length,
    rows: totals.rowCount,
    compressedBytes: totals.compressedBytes,
    uncompressedBytes: totals.uncompressedBytes,
  };
}

/**
 * A partition the config lists beside a partitioned table it belongs to would have its rows archived twice over, by
 * two leases at once: the delete's proof would roll the loser back, every night, and the table's archives would be
 * split between two prefixes. The partition is refused, naming what to change.
 */
function refuseConfiguredAncestor(
  config: StepDeps['config'],
  database: string,
  shape: Pick<TableShape, 'schema' | 'name' | 'partitionOf'>,
): void {
  const tables = findDatabase(config, database).tables;
  const ancestor = shape.partitionOf.find((a) =>
    tables.some((t) => t.schema === a.schema && t.name === a.name),
  );
  if (!ancestor) return;
  throw new TableNotUsableError(
    `table "${shape.schema}"."${shape.name}" in database ${database} is a partition of "${ancestor.schema}"."${ancestor.name}", which the config archives too, with every partition's rows: remove the partition from the config`,
  );
}
