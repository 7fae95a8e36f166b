import { describe, expect, it } from 'vitest';
import { formatResult, runBenchmark } from '../../bench/run.js';

describe('npm run bench (smoke, at a small size so it cannot rot)', () => {
  it('archives and restores the shared table with the local workflows and reports every stage against the baseline', async () => {
    // Act: the eligible rows on one day make one batch (spread over 360 days they would make 360 tiny ones).
    const result = await runBenchmark(
      {
        rows: 3000,
        batchSize: 50_000,
        compressionLevel: 3,
        postgres: 18,
        oltpClients: 0,
        oltpSeconds: 1,
        oneDay: true,
      },
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
    expect(result.oltp).toBeUndefined();
  });

  it('measures the OLTP workload from a second process, alone and during a second archive run', async () => {
    // Act: 20 rows on one day keep both archive runs to one batch.
    const result = await runBenchmark(
      {
        rows: 20,
        batchSize: 50_000,
        compressionLevel: 3,
        postgres: 18,
        oltpClients: 1,
        oltpSeconds: 0.5,
        oneDay: true,
      },
      () => undefined,
    );

    // Assess
    const { oltp } = result;
    expect(oltp?.clients).toBe(1);
    for (const window of [oltp?.withoutArchiver, oltp?.withArchiver, oltp?.afterArchiver]) {
      expect(window?.transactions).toBeGreaterThan(0);
      expect(window?.errors).toBe(0);
      expect(window?.p99Ms).toBeGreaterThanOrEqual(window?.p95Ms ?? Number.NaN);
    }
    expect(oltp?.withoutArchiver.seconds).toBeGreaterThanOrEqual(0.5);
    const without = ((oltp?.withoutArchiver.tps ?? 0) + (oltp?.afterArchiver.tps ?? 0)) / 2;
    expect(oltp?.tpsRatio).toBeCloseTo((oltp?.withArchiver.tps ?? 0) / without);
    expect(formatResult(result)).toContain('OLTP TPS with archiver / without');
  });
});
