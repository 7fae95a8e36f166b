import { describe, expect, it } from 'vitest';
import { OTHER_PROCESSES } from '../../bench/cpu-time.js';
import { formatResult, lambdaGbSeconds, runBenchmark } from '../../bench/run.js';

describe('npm run bench (smoke, at a small size so it cannot rot)', () => {
  it("archives and restores the shared table with each function in a process of its own, and reports every stage against the baseline, each function's memory and the runs' requests and AWS price", async () => {
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

    // Assess: the archive run's CPU time, by process: the database, the functions and the local S3 server all worked.
    const cpuGroups = result.archiveCpu.groups.map((g) => g.group);
    expect(cpuGroups).toEqual(
      expect.arrayContaining(['PostgreSQL', 'function export', 'function delete', 'local S3 server']),
    );
    // The archiver's processes (not the test workers running beside it) spent at most the cores' time; /proc is read
    // process by process, so the two snapshots are a few milliseconds wide.
    const cpuUsed = result.archiveCpu.groups
      .filter((g) => g.group !== OTHER_PROCESSES)
      .reduce((sum, g) => sum + g.seconds, 0);
    expect(cpuUsed).toBeLessThanOrEqual(result.archiveCpu.wallSeconds * result.archiveCpu.cores * 1.05 + 0.5);
    expect(formatResult(result)).toContain('CPU during the whole archive');
    // The floor those processes set on this machine, and the best ratio it allows.
    expect(formatResult(result)).toContain(
      `the archiver's own processes used ${cpuUsed.toFixed(1)} CPU s: on ${result.archiveCpu.cores} cores no overlap of its stages finishes in less than ${(cpuUsed / result.archiveCpu.cores).toFixed(1)} s, `,
    );
    expect(formatResult(result)).toMatch(
      /finishes in less than [\d.]+ s, [\d.]+× COPY \| gzip \+ DELETE at best/,
    );
    // The restore's too: the functions that write and the database that takes the rows.
    expect(result.restoreCpu.groups.map((g) => g.group)).toEqual(
      expect.arrayContaining(['PostgreSQL', 'function restore-file']),
    );
    expect(formatResult(result)).toMatch(/CPU during the restore: [\d.]+ s on \d+ cores/);
    expect(formatResult(result)).toMatch(/finishes in less than [\d.]+ s, [\d.]+× COPY FROM at best/);

    // Assess: every function of both workflows ran in its own process, which loaded its modules and measured itself.
    expect(result.functions.map((f) => f.functionName).sort()).toEqual(
      [
        'delete',
        'export',
        'lock',
        'plan',
        'restore-file',
        'restore-plan',
        'restore-summary',
        'summary',
        'upload',
        'verify',
      ].sort(),
    );
    for (const f of result.functions) {
      expect(f.invocations, f.functionName).toBeGreaterThan(0);
      expect(f.loadedRssMb, f.functionName).toBeGreaterThan(20);
      expect(f.peakRssMb, f.functionName).toBeGreaterThanOrEqual(f.loadedRssMb);
      // A process of its own: one function's bundle is far smaller than the bench process with all ten.
      expect(f.peakRssMb, f.functionName).toBeLessThan(1000);
      expect(f.dynamodbRequests + f.s3Requests, f.functionName).toBeGreaterThan(0);
    }
    const stageRss = (stage: string) => result.archiver.find((r) => r.stage === stage)?.peakRssMb;
    expect(stageRss('export')).toBe(result.functions.find((f) => f.functionName === 'export')?.peakRssMb);

    // One object: the archive run did 4 batch steps more than the run with nothing left, and requests for them.
    const [archive, nothingLeft, restore] = result.runs;
    expect(archive?.objects).toBe(1);
    expect(archive?.lambdaInvocations).toBe((nothingLeft?.lambdaInvocations ?? 0) + 4);
    expect(archive?.stateTransitions).toBeGreaterThan(nothingLeft?.stateTransitions ?? 0);
    expect(archive?.s3.PutObject ?? 0).toBeGreaterThan(0);
    expect(archive?.s3.GetObject ?? 0).toBeGreaterThan(0);
    expect(archive?.dynamodb.UpdateItem ?? 0).toBeGreaterThan(nothingLeft?.dynamodb.UpdateItem ?? 0);
    expect(restore?.rows).toBe(archive?.rows);
    expect(restore?.lambdaInvocations).toBeGreaterThanOrEqual(3);
    // A batch request is billed per item: each archive restored has its watermark written twice (before the group's
    // COMMIT, naming its transaction, and after it) and its result once, each of the group's two watermark writes
    // lists the target among its table's watermark targets (one group here), and the plan records the keys it found
    // (one item here).
    expect(restore?.dynamodb.BatchWriteItem).toBeGreaterThan(0);
    expect(restore?.dynamodbUnits?.BatchWriteItem).toBe(3 * (restore?.objects ?? 0) + 2 + 1);

    expect(result.costs.map((c) => c.label)).toEqual([
      'archive, the bench table, per 1M rows',
      'archive, a table of 1M rows a day, per daily run',
      'restore, per 1M rows',
    ]);
    for (const line of result.costs) {
      expect(line.tally.lambdaInvocations, line.label).toBeGreaterThan(0);
      expect(line.tally.stateTransitions, line.label).toBeGreaterThan(0);
      for (const cost of [
        line.costs.lambdaRequests,
        line.costs.stateTransitions,
        line.costs.s3,
        line.costs.dynamodb,
      ]) {
        expect(cost, line.label).toBeGreaterThan(0);
      }
    }
    // Per 1M rows of a 3,000-row table is about 370 runs of one object each.
    const [perMillion, daily] = result.costs;
    expect(perMillion?.tally.lambdaInvocations).toBeCloseTo(
      ((archive?.lambdaInvocations ?? 0) * 1e6) / (archive?.rows ?? 1),
    );
    // 1M rows a day at 50,000 a batch: 20 objects, each with the measured run's 4 batch steps.
    expect(daily?.tally.lambdaInvocations).toBeCloseTo((nothingLeft?.lambdaInvocations ?? 0) + 20 * 4);
    expect(formatResult(result)).toContain('function (own process)');
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
    // The window is a 0.5 s timer, measured on another clock: it may end a fraction of a millisecond early.
    expect(oltp?.withoutArchiver.seconds).toBeGreaterThanOrEqual(0.49);
    const without = ((oltp?.withoutArchiver.tps ?? 0) + (oltp?.afterArchiver.tps ?? 0)) / 2;
    expect(oltp?.tpsRatio).toBeCloseTo((oltp?.withArchiver.tps ?? 0) / without);
    expect(formatResult(result)).toContain('OLTP TPS with archiver / without');
  });

  it('prices each invocation at the memory size its function has in the stack', () => {
    // Act: plan has 256 MB, export 1024 MB.
    const gbSeconds = lambdaGbSeconds([
      { functionName: 'plan', durationMs: 1000 },
      { functionName: 'export', durationMs: 2000 },
    ]);

    // Assess
    expect(gbSeconds).toBeCloseTo(0.25 + 2, 10);
  });
});
