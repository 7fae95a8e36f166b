import { Transform } from 'node:stream';
import type { StepDeps } from '../shared/step/step-deps.js';

/**
 * Passes the lines on unchanged, stopping once at 'export:midStream' after the first row went on towards the staging
 * upload and before the others: a crash injected there cuts the stream short. A long row spans several chunks.
 */
export function midStreamFaultPoint(fault: StepDeps['fault'], highWaterMark?: number): Transform {
  let reached = false;
  return new Transform({
    ...(highWaterMark ? { writableHighWaterMark: highWaterMark } : {}),
    transform(chunk: Buffer, _encoding, callback) {
      const newline = reached ? -1 : chunk.indexOf(10);
      if (newline === -1) return callback(null, chunk);
      reached = true;
      const firstRow = newline + 1;
      this.push(chunk.subarray(0, firstRow));
      Promise.resolve(fault('export:midStream')).then(
        () => callback(null, chunk.subarray(firstRow)),
        callback,
      );
    },
  });
}
