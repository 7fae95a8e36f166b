import { describe, expect, it } from 'vitest';
import { histogramShare } from '../../cli/cost-measure.js';

describe('cost: live measurement', () => {
  it('reads the share of rows before an instant off histogram bounds', () => {
    // Act / Assess
    expect(histogramShare([0, 10, 20, 30, 40], 20)).toBe(0.5);
    expect(histogramShare([0, 10, 20, 30, 40], 5)).toBe(0.125);
    expect(histogramShare([0, 10, 20, 30, 40], -1)).toBe(0);
    expect(histogramShare([0, 10, 20, 30, 40], 99)).toBe(1);
  });
});
