import { describe, expect, it } from 'vitest';
import { parseCostOptions, parseSize, workloadFromOptions } from '../../../cli/commands/cost.js';
import { archiveObjects } from '../../../cli/cost-model.js';

const GIB = 1024 ** 3;

describe('cost: inputs', () => {
  it('reads sizes in the binary units S3 bills in, and names the field of bad input', () => {
    // Act / Assess
    expect(parseSize('120GB')).toBe(120 * GIB);
    expect(parseSize('1.5 TiB')).toBe(1.5 * 1024 * GIB);
    expect(() => parseSize('lots')).toThrow(/--size: "lots" is not a size/);
    expect(() => parseCostOptions({ size: '1GB', rows: '5' })).toThrow(/size: give either --size or --rows/);
    expect(() => parseCostOptions({ rows: '5', compressionRatio: '0.5' })).toThrow(
      /compressionRatio: must be at least 1/,
    );
  });

  it('derives rows and archives from a size, and from rows and their raw width', () => {
    // Act
    const sized = workloadFromOptions(parseCostOptions({ size: '720MB', compressionRatio: '2' }), 50_000);
    const rowed = workloadFromOptions(parseCostOptions({ rows: '1000000', avgRowBytes: '240' }), 50_000);

    // Assess
    expect(sized.backlog.bytes).toBe(360 * 1024 ** 2);
    expect(sized.backlog.objects).toBe(Math.ceil(sized.backlog.rows / 50_000));
    expect(rowed.backlog.bytes).toBe(1_000_000 * 100);
    expect(archiveObjects(10, 50_000, 30)).toBe(10);
    expect(archiveObjects(100_000, 50_000, 30)).toBe(30);
  });
});
