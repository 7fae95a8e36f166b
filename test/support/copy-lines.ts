import type { CopyToArchiveLines, ObjectLines } from '../../lambdas/shared/archive/copy-to-lines.js';

/** One archive object's lines as export's reader split them off a COPY, and their figures. */
export interface CopiedObject {
  /** Empty when the lines went to `onLines` instead. */
  lines: Buffer;
  figures: ObjectLines;
}

/**
 * Reads a binary COPY of rowValuesCopySql's shape through `reader` as export does, without its staging: each object's
 * lines and figures, in the COPY's order. `onLines` takes every piece of lines instead of keeping them (a large value).
 */
export async function readCopyObjects(
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  reader: CopyToArchiveLines,
  onLines?: (lines: Buffer) => void,
): Promise<CopiedObject[]> {
  const objects: CopiedObject[] = [];
  let kept: Buffer[] = [];
  const take = () => {
    const lines = reader.lines();
    if (!lines) return;
    if (onLines) onLines(lines);
    else kept.push(lines);
  };
  for await (const chunk of chunks) {
    for (let offset = 0; ; ) {
      offset = reader.read(chunk, offset);
      take();
      if (!reader.atAnotherObject) break;
      const { ended } = reader.nextObject();
      if (ended) objects.push({ lines: Buffer.concat(kept), figures: ended });
      kept = [];
    }
  }
  const last = reader.finish();
  if (last) objects.push({ lines: Buffer.concat(kept), figures: last });
  return objects;
}
