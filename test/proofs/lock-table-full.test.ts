import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { type LocalPostgres, type PostgresVersion, startLocalPostgres } from '../../local/postgres.js';
import { type LocalEnvironment, openLocalEnvironment, runLocalArchive } from '../../local/run.js';
import { TODAY_UTC_SQL, writeTestConfig } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * A partitioned audit table of many partitions (daily ones, for years) on a server whose lock table is small for it
 * (max_locks_per_transaction at its default with thousands of partitions, or lowered). The delete locks every
 * partition (LOCK TABLE of the parent recurses), and PostgreSQL refuses the lock it cannot fit with 53200 "out of
 * shared memory", its hint naming max_locks_per_transaction. The table fails; the error must say what to change, not
 * leave the operator with a bare "out of shared memory" under PostgreSQL's unnamed driver error.
 * This file runs a server of its own: every slot it can spare turned off, max_locks_per_transaction at its minimum
 * (10), so some 600 partitions fill it as some ten thousand (hourly ones for a year) fill a default server.
 */
describe.each([
  { shape: 'daily partitions for two years back', past: 700, future: 0 },
  // Partitions made ahead count as much: describing the table (pg_partition_tree) locks every partition, in every step.
  { shape: 'daily partitions made two years ahead', past: 45, future: 660 },
])('a partitioned table of more partitions than the server lock table holds: $shape', ({ past, future }) => {
  const version = inject('postgresVersion') as PostgresVersion;
  const root = mkdtempSync(join(tmpdir(), 'audit-archiver-lock-table-'));
  let server: LocalPostgres | undefined;
  let local: LocalEnvironment | undefined;
  let files: ReturnType<typeof writeTestConfig> | undefined;
  afterAll(async () => {
    await local?.close();
    files?.cleanup();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('fails the table naming max_locks_per_transaction, not retried, nothing lost or deleted', async () => {
    // Prepare: the server runs as the postgres user when the tests run as root: it must be able to enter the directory.
    chmodSync(root, 0o755);
    server = await startLocalPostgres(version, {
      dataDir: join(root, 'data'),
      maxConnections: 8,
      settings: {
        max_locks_per_transaction: '10',
        max_wal_senders: '0',
        wal_level: 'minimal',
        max_worker_processes: '0',
        autovacuum_max_workers: '1',
      },
    });
    const client = new pg.Client({ connectionString: server.url() });
    await client.connect();
    const partitions = past + future;
    const rowsPartition = `public.events_${past - 40}`;
    try {
      await client.query(`CREATE TABLE public.events (id bigint NOT NULL, created_at timestamptz NOT NULL, v text,
                            PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)`);
      for (let start = 0; start < partitions; start += 25) {
        const statements: string[] = [];
        for (let i = start; i < Math.min(partitions, start + 25); i++)
          statements.push(`CREATE TABLE public.events_${i} PARTITION OF public.events
                           FOR VALUES FROM (${TODAY_UTC_SQL} + ${i - past} * interval '1 day')
                                      TO (${TODAY_UTC_SQL} + ${i - past + 1} * interval '1 day')`);
        await client.query(statements.join('; '));
      }
      await client.query(`INSERT INTO public.events
                          SELECT g, ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 minute', 'v' || g
                            FROM generate_series(1, 50) g`);
    } finally {
      await client.end();
    }
    files = writeTestConfig({ url: server.url() }, [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
    ]);
    local = await openLocalEnvironment(files.configPath, join(files.dir, 'state'));

    // Act
    const run = await runLocalArchive(local, {}, { retryIntervalScale: 0 });

    // Assess: the rows' one partition read alone (a count of the table would meet the same limit).
    const after = new pg.Client({ connectionString: server.url() });
    await after.connect();
    const left = await after
      .query<{ n: number }>(`SELECT count(*)::int AS n FROM ${rowsPartition}`)
      .finally(() => after.end());
    const outcome = run.outcomes[0];
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: `archives a partitioned table of ${partitions} partitions (${future} ahead) on a server whose lock table cannot hold a lock on each`,
      held: /max_locks_per_transaction/.test(outcome?.error ?? '') && left.rows[0]?.n === 50,
    });
    expect(left.rows[0]?.n).toBe(50);
    expect(outcome).toMatchObject({ status: 'failed' });
    expect(`${outcome?.error} ${outcome?.reason}`).toMatch(/max_locks_per_transaction/);
  });
});
