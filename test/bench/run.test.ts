import { describe, expect, it } from 'vitest';
import { formatResult, runBenchmark } from '../../bench/run.js';

describe('npm run bench (smoke, at a small size so it cannot rot)', () => {
  it('archives and restores the shared table with the local workflows and reports every stage against the baseline', async () => {
    // Act
    const result = await runBenchmark(
      { rows: 3000, batchSize: 50_000, compressionLevel: 6, postgres: 18 },
      () => undefined,
    );

    // Assess
    expect(result.eligibleRows).toBeGreaterThan(2600);
    expect(result.baseline.map((r) => r.stage)).toEqual([
      'COPY | gzip',
      'DELETE',
      'COPY | gzip + DELETE',
      'COPY FROM',
    ]);
    expect(result.archiver.map((r) => r.stage)).toEqual([
      'export',
      'upload',
      'verify',
      'delete',
      'whole archive',
      'restore',
    ]);
    for (const row of result.archiver) {
      expect(row.rows).toBe(result.archiver[0]?.rows);
      expect(row.rowsPerSecond).toBeGreaterThan(0);
      expect(row.peakRssMb).toBeGreaterThan(0);
    }
    expect(Math.abs((result.archiver[0]?.rows ?? 0) - result.eligibleRows)).toBeLessThan(5);
    expect(result.archiver.find((r) => r.stage === 'whole archive')?.ratio).toBeGreaterThan(0);
    expect(result.archiver.find((r) => r.stage === 'restore')?.ratio).toBeGreaterThan(0);
    expect(formatResult(result)).toContain('whole archive');
  });
});
