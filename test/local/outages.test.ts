import { describe, expect, it } from 'vitest';
import type { FaultPoint } from '../../lambdas/shared/deps.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { startFlakyProxy } from '../support/flaky-proxy.js';

describe('outages: connections reset mid-run are retried, and nothing is lost', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 's3_outage', 900);
      await seedEvents(db.client, 'db_outage', 900);
    },
    [spec('s3_outage'), spec('db_outage')],
  );

  it('S3 connections reset during upload: the step is retried and the run completes', async () => {
    // Prepare: S3 reached through a proxy that drops every connection once the first object is published.
    const table = resolvedTable(spec('s3_outage'));
    const original = await tableLines(bed.db.client, table);
    const proxy = await startFlakyProxy(Number(new URL(bed.local.services.s3Endpoint).port));
    let cuts = 0;
    const fault = (point: FaultPoint) => {
      if (point === 'upload:afterCopy' && cuts++ === 0) proxy.cut(8);
    };
    const failures: string[] = [];

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.s3_outage'] },
      {
        fault,
        retryIntervalScale: 0,
        onStep: (event) => {
          if (event.error) failures.push(`${event.functionName}:${event.error.name}`);
        },
        env: { AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${proxy.port}` },
      },
    );
    await proxy.stop();

    // Assess
    expect(proxy.resets()).toBeGreaterThanOrEqual(8);
    expect(failures).toContain('upload:StorageUnavailableError');
    expect(run.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });

  it('database connection killed inside the delete transaction: rolled back, retried, completed', async () => {
    // Prepare: kill the archiver's own backend right before its COMMIT, on the second batch.
    const table = resolvedTable(spec('db_outage'));
    const original = await tableLines(bed.db.client, table);
    let batches = 0;
    const fault = async (point: FaultPoint) => {
      if (point !== 'delete:beforeCommit' || ++batches !== 2) return;
      await bed.db.client.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'audit-archiver' AND datname = current_database() AND state = 'idle in transaction'",
      );
    };
    const steps: string[] = [];

    // Act
    const run = await runLocalArchive(
      bed.local,
      { tables: ['public.db_outage'] },
      {
        fault,
        retryIntervalScale: 0,
        onStep: (event) => {
          if (event.error) steps.push(`${event.functionName}:${event.error.name}`);
        },
      },
    );

    // Assess
    expect(steps).toContain('delete:DatabaseUnavailableError');
    expect(run.execution.status).toBe('SUCCEEDED');
    await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
  });
});
