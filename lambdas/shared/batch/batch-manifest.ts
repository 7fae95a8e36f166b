import { type Manifest, ManifestSchema } from '../archive/format.js';
import type { InFlight } from '../lock-table/table-state.js';

/**
 * The manifest of the batch's object at `index`, from its in-flight record: what the batch's objects share, and the
 * object's own day, bounds, timestamps and figures. A schema drift is told in the batch's first object. Undefined for
 * a record written before export recorded manifests (their manifests were staged in S3).
 */
export function manifestOf(inFlight: InFlight, index: number): Manifest | undefined {
  const object = inFlight.objects[index];
  if (!inFlight.manifest || !inFlight.columns || !object?.timestampRange) return undefined;
  const { schemaDrift, ...shared } = inFlight.manifest;
  return ManifestSchema.parse({
    ...shared,
    columns: inFlight.columns,
    day: object.day,
    span: object.span,
    cutoff: inFlight.cutoff,
    bounds: object.bounds,
    keyRange: { first: object.bounds.firstKey, last: object.bounds.lastKey },
    timestampRange: object.timestampRange,
    figures: object.figures,
    runId: inFlight.runId,
    dataKey: object.archiveKey,
    ...(index === 0 && schemaDrift ? { schemaDrift } : {}),
  });
}
