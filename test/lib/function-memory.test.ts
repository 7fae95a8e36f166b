import { describe, expect, it } from 'vitest';
import { lambdaHeapFlags } from '../../lib/function-memory.js';

describe('lambdaHeapFlags', () => {
  it.each([
    [128, ['--max-semi-space-size=6', '--max-old-space-size=116']],
    [256, ['--max-semi-space-size=12', '--max-old-space-size=231']],
    [1024, ['--max-semi-space-size=51', '--max-old-space-size=922']],
    [10240, ['--max-semi-space-size=512', '--max-old-space-size=9216']],
  ])(
    'give %i MB the flags of Lambda’s Node.js bootstrap: a tenth as new space, the rest as old space',
    (memoryMb, flags) => {
      // Act
      const actual = lambdaHeapFlags(memoryMb);

      // Assess
      expect(actual).toEqual(flags);
    },
  );
});
