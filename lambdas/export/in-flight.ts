import { recordCommitted, recordInFlight, settleDelete, withdrawBatch } from '../shared/batch/batch.js';
import type { ResolvedTable } from '../shared/config/resolved-table.js';
import { describeTable } from '../shared/database/table-shape.js';
import type { InFlight } from '../shared/lock-table/table-state.js';
import type { StepDeps } from '../shared/step/step-deps.js';
import type { ExportInput, ExportOutput } from './schema.js';

/**
 * A batch left in flight by a crashed or failed attempt. Exported-only batches are discarded (nothing was
 * published), and so are batches reaching past this run's cut-off (retention was raised since). Uploaded or
 * verified ones are resumed. One whose delete was under way is settled: committed means it is recorded, otherwise
 * it goes back to verified and is resumed (verify re-checks it). A withdrawal interrupted by a crash is finished.
 */
export async function settleInFlight(
  input: ExportInput,
  deps: Pick<StepDeps, 'config' | 'store' | 'locks' | 'inventory' | 'database' | 'telemetry' | 'now'>,
  table: ResolvedTable,
  inFlight: InFlight,
): Promise<ExportOutput | undefined> {
  const resume: ExportOutput = {
    status: 'resumed',
    day: inFlight.day,
    rows: inFlight.figures.rowCount,
    compressedBytes: inFlight.figures.compressedBytes,
    uncompressedBytes: inFlight.figures.uncompressedBytes,
    stagingKey: inFlight.stagingKey,
    archiveKey: inFlight.archiveKey,
  };
  const pastCutoff = Date.parse(inFlight.bounds.to) > Date.parse(input.cutoff);
  if (inFlight.stage === 'exported' || inFlight.stage === 'withdrawing') {
    await withdrawBatch(deps, input, inFlight, 'discarded');
    return undefined;
  }
  if (inFlight.stage === 'uploaded' || inFlight.stage === 'verified') {
    if (!pastCutoff) return resume;
    await withdrawBatch(deps, input, inFlight, 'cutoff-moved');
    return undefined;
  }
  const db = await deps.database(input.database);
  const settled = await db.withConnection((client) =>
    settleDelete(client, () => describeTable(client, table), inFlight),
  );
  if (settled === 'committed') {
    await recordCommitted(deps, input, inFlight);
    return undefined;
  }
  if (pastCutoff) {
    await withdrawBatch(deps, input, inFlight, 'cutoff-moved');
    return undefined;
  }
  await recordInFlight(
    deps,
    input,
    { ...inFlight, stage: 'verified', deleteXid: undefined, deleteServer: undefined },
    { unchanged: inFlight },
  );
  return resume;
}
