import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { to as copyTo } from 'pg-copy-streams';
import {
  archiveKey,
  FORMAT_VERSION,
  type Manifest,
  manifestKeyFor,
  stagingKey,
  TOOL_NAME,
  TOOL_VERSION,
} from '../shared/archive/format.js';
import { ByteFigures, CopyToJsonLines } from '../shared/archive/stream.js';
import {
  assertTaskCutoff,
  BATCH_ID_METADATA,
  recordInFlight,
  recoverInFlight,
  renewLease,
  tableLabel,
  tableLocation,
} from '../shared/batch/batch.js';
import { activeHold } from '../shared/batch/holds.js';
import { checkSchemaDrift } from '../shared/batch/schema-drift.js';
import { batchRowLimit, checkReplicaLag, vacuumTable } from '../shared/batch/throttle.js';
import { resolveTable } from '../shared/config/resolved-table.js';
import { abandonConnection, inReadOnlyTransaction } from '../shared/database/db.js';
import { describeTable } from '../shared/database/table-shape.js';
import {
  batchPredicateSql,
  keyOrderSql,
  rowLineSql,
  rowSourceSql,
  rowVersionSql,
  timestampAsInstantSql,
} from '../shared/database/table-sql.js';
import { ReplicaLagError } from '../shared/errors/step-errors.js';
import type { InFlight } from '../shared/lock-table/table-state.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import { midStreamFaultPoint } from './mid-stream-fault.js';
import { nextBatchBounds } from './next-batch.js';
import type { ExportInput, ExportOutput } from './schema.js';

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
 * Export: finishes or undoes a batch an earlier attempt left in flight, then streams the next batch of eligible
 * rows (one UTC day of the timestamp column, the first `batchSize` keys of it) through gzip into a staging object,
 * measuring everything the later steps check. Rows never pass through memory as a whole.
 */
export async function exportBatch(input: ExportInput, deps: ExportDeps): Promise<ExportOutput> {
  const table = resolveTable(deps.config, input.database, input.table);
  assertTaskCutoff(deps, input, table);
  await renewLease(deps, input);
  const db = await deps.database(input.database);
  const state = await deps.locks.get(input.database, input.table);
  if (state.inFlight && (await recoverInFlight(deps, input, table, state.inFlight))) {
    return resumed(state.inFlight);
  }
  // A legal hold set while the run was going: no new batch starts (release then records the table as held).
  if (await activeHold(deps, input.database, input.table, table.governance.configHold)) {
    return { status: 'empty' as const };
  }
  const started = Date.now();
  // One read-only transaction from the table's checks to the end of the COPY: the archiver's settings (search_path,
  // the text formats the archive records) hold for each statement even behind a transaction-pooling proxy. It ends
  // with the COPY, before the manifest and lock-table writes, so it never idles in a transaction on slow calls.
  const copied = await db.withConnection((client) =>
    inReadOnlyTransaction(client, async () => {
      const shape = await describeTable(client, table);
      try {
        await checkReplicaLag(client, table.replicaLag);
      } catch (error) {
        if (error instanceof ReplicaLagError)
          deps.telemetry.metric('ReplicaLagPauses', 'Count', 1, tableLabel(input));
        throw error;
      }
      const limit = batchRowLimit(
        table.batchSize,
        deps.config.defaults,
        deps.remainingTimeMs?.(),
        input.progress,
      );
      const next = await nextBatchBounds(client, shape, input.cutoff, limit);
      if (!next) return { over: true as const, shape };
      const drift = await checkSchemaDrift(deps, input, table, shape.columns);
      const location = tableLocation(deps.config, table);
      const batchId = randomUUID();
      const staging = stagingKey(location, next.day, batchId);
      const write = {
        storageClass: 'STANDARD' as const,
        kmsKeyId: deps.config.s3.kmsKeyId,
        metadata: { [BATCH_ID_METADATA]: batchId },
      };

      // Each line with its row version's identity, in one statement and so one snapshot: the version digest then
      // names exactly the tuples whose lines the archive holds, and the delete checks it (table-sql.ts rowVersionSql).
      const copy = client.query(
        copyTo(
          `COPY (SELECT ${rowLineSql(shape)}, to_char(${timestampAsInstantSql(shape)} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                        ${rowVersionSql()}
                 FROM ${rowSourceSql(shape)} AS t WHERE ${batchPredicateSql(shape, next.bounds)}
                ORDER BY ${keyOrderSql(shape)}) TO STDOUT (FORMAT binary)`,
        ),
      );
      const lines = new CopyToJsonLines();
      const compressed = new ByteFigures();
      const flowing = pipeline(
        copy,
        lines,
        midStreamFaultPoint(deps.fault),
        createGzip({ level: deps.config.defaults.compressionLevel }),
        compressed,
      );
      const upload = deps.store.putStream(staging, compressed, write);
      try {
        await Promise.all([flowing, upload]);
      } catch (error) {
        copy.destroy();
        abandonConnection(client);
        compressed.destroy();
        throw error;
      }
      return {
        over: false as const,
        shape,
        next,
        drift,
        location,
        batchId,
        staging,
        write,
        lines,
        compressed,
      };
    }),
  );
  if (copied.over) {
    // The table's run is over: reclaim what this run deleted, if asked to (VACUUM runs outside a transaction).
    if (deps.config.defaults.vacuumAfterRun && (input.progress?.rows ?? 0) > 0) {
      await db.withConnection((client) =>
        vacuumTable(client, copied.shape, deps.telemetry, tableLabel(input)),
      );
    }
    return { status: 'empty' as const };
  }
  const { shape, next, drift, location, batchId, staging, write, lines, compressed } = copied;
  const content = lines.figures();
  if (content.rows === 0) {
    // The rows went away between choosing the batch and copying it.
    await deps.store.deleteKeys([staging]);
    return { status: 'empty' as const };
  }
  const figures = {
    rowCount: content.rows,
    contentSha256: content.contentSha256,
    compressedSha256: compressed.sha256(),
    uncompressedBytes: content.uncompressedBytes,
    compressedBytes: compressed.bytes,
    rowDigest: content.rowDigest,
  };
  const dataKey = archiveKey(location, next.day, figures.contentSha256);
  const manifest: Manifest = {
    formatVersion: FORMAT_VERSION,
    tool: { name: TOOL_NAME, version: TOOL_VERSION },
    database: table.database,
    schema: table.schema,
    table: table.name,
    columns: shape.columns,
    keyColumns: shape.keyColumns.map((c) => c.name),
    timestampColumn: shape.timestampColumn.name,
    timestampType: shape.timestampKind,
    timestampTimeZone: shape.timestampTimeZone,
    day: next.day,
    cutoff: input.cutoff,
    bounds: next.bounds,
    keyRange: { first: next.bounds.firstKey, last: next.bounds.lastKey },
    timestampRange: { min: lines.minTimestamp ?? '', max: lines.maxTimestamp ?? '' },
    figures,
    compression: { format: 'gzip', level: deps.config.defaults.compressionLevel },
    encoding: 'jsonl-pg-text',
    runId: input.runId,
    exportedAt: deps.now().toISOString(),
    dataKey,
    ...(drift ? { schemaDrift: drift } : {}),
  };
  await deps.store.putText(manifestKeyFor(staging), JSON.stringify(manifest, null, 2), write);
  await deps.fault('export:afterStaging');
  const inFlight: InFlight = {
    stage: 'exported',
    batchId,
    runId: input.runId,
    day: next.day,
    cutoff: input.cutoff,
    stagingKey: staging,
    archiveKey: dataKey,
    bounds: next.bounds,
    figures,
    versionDigest: lines.versionDigest(),
    columns: shape.columns,
    exportedAt: started,
  };
  await recordInFlight(deps, input, inFlight, 'none');
  deps.telemetry.metric('ExportDuration', 'Milliseconds', Date.now() - started, tableLabel(input));
  deps.telemetry.info('batch exported', {
    ...tableLabel(input),
    day: next.day,
    rows: figures.rowCount,
    bytes: figures.compressedBytes,
  });
  return {
    status: 'exported' as const,
    day: next.day,
    rows: figures.rowCount,
    compressedBytes: figures.compressedBytes,
    uncompressedBytes: figures.uncompressedBytes,
    stagingKey: staging,
    archiveKey: dataKey,
  };
}

/** The output for a batch an earlier attempt left in flight and this one carries on. */
function resumed(inFlight: InFlight): ExportOutput {
  return {
    status: 'resumed',
    day: inFlight.day,
    rows: inFlight.figures.rowCount,
    compressedBytes: inFlight.figures.compressedBytes,
    uncompressedBytes: inFlight.figures.uncompressedBytes,
    stagingKey: inFlight.stagingKey,
    archiveKey: inFlight.archiveKey,
  };
}
