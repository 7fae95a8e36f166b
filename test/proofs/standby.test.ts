import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { serverIdentity } from '../../lambdas/shared/batch/batch.js';
import { type LocalPostgres, type PostgresVersion, startLocalPostgres } from '../../local/postgres.js';
import { type LocalEnvironment, openLocalEnvironment, runLocalArchive } from '../../local/run.js';
import { expectRequestsWithinRoles, listKeys, seedEvents, writeTestConfig } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * A hot standby (what a read replica's endpoint, such as Aurora's reader endpoint, reaches) reads like its primary but
 * refuses every write. This file makes one of its own: a copy of a stopped cluster, started with standby.signal and no
 * primary to follow, stays in recovery and takes read-only connections.
 */
describe('an operator who points a database entry at a hot standby', () => {
  const version = inject('postgresVersion') as PostgresVersion;
  const root = mkdtempSync(join(tmpdir(), 'audit-archiver-standby-'));
  let standby: LocalPostgres | undefined;
  let local: LocalEnvironment | undefined;
  let files: ReturnType<typeof writeTestConfig> | undefined;

  beforeAll(async () => {
    // The server runs as the postgres user when the tests run as root: it must be able to enter the directory.
    chmodSync(root, 0o755);
    const primaryDir = join(root, 'primary');
    const primary = await startLocalPostgres(version, { dataDir: primaryDir });
    const client = new pg.Client({ connectionString: primary.url() });
    await client.connect();
    await seedEvents(client, 'events', 200, 40);
    await client.end();
    await primary.stop();
    const standbyDir = join(root, 'standby');
    execFileSync('cp', ['-a', primaryDir, standbyDir]);
    writeFileSync(join(standbyDir, 'standby.signal'), '');
    standby = await startLocalPostgres(version, { dataDir: standbyDir });
    files = writeTestConfig({ url: standby.url() }, [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
    ]);
    local = await openLocalEnvironment(files.configPath, join(files.dir, 'state'));
  });
  afterAll(async () => {
    try {
      if (local) await expectRequestsWithinRoles(local);
    } finally {
      await local?.close();
    }
    files?.cleanup();
    await standby?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('gets the table refused by name before any object is written, not a batch that no delete can remove', async () => {
    // Prepare
    if (!local || !standby) throw new Error('setup failed');
    const client = new pg.Client({ connectionString: standby.url() });
    await client.connect();
    const before = await client.query<{ n: number; recovery: boolean }>(
      'SELECT count(*)::int AS n, pg_is_in_recovery() AS recovery FROM public.events',
    );

    // Act
    const run = await runLocalArchive(local, {}, { retryIntervalScale: 0 });

    // Assess
    const keys = await listKeys(local, '');
    const after = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM public.events');
    await client.end();
    const error = run.outcomes[0]?.error ?? '';
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: "points a database entry's host at a hot standby (a read replica)",
      held: error.startsWith('ConfigError') && keys.every((key) => key.includes('/_audit/')),
    });
    expect(before.rows[0]).toEqual({ n: 200, recovery: true });
    expect(error).toMatch(/^ConfigError: database app is a hot standby \(a read replica\)/);
    expect(keys.filter((key) => !key.includes('/_audit/'))).toEqual([]);
    expect(after.rows[0]?.n).toBe(200);
  });

  it('has another server identity the moment it is promoted, so a delete retried across a failover asks no xid of the old primary', async () => {
    // Prepare: a promotion requests a checkpoint, but does not wait for it; a busy server's takes minutes.
    if (!standby) throw new Error('setup failed');
    const client = new pg.Client({ connectionString: standby.url() });
    await client.connect();
    try {
      await client.query('CHECKPOINT');
      const { rows } = await client.query<{ sysid: string; timeline: number }>(
        'SELECT s.system_identifier::text AS sysid, c.timeline_id AS timeline FROM pg_control_system() s, pg_control_checkpoint() c',
      );
      const [before] = rows;

      // Act
      await client.query('SELECT pg_promote(true)');
      const identity = await serverIdentity(client);

      // Assess
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack: 'fails the database over to a replica while a delete waits for its COMMIT',
        held: identity === `${before?.sysid}:${(before?.timeline ?? 0) + 1}`,
      });
      expect(identity).toBe(`${before?.sysid}:${(before?.timeline ?? 0) + 1}`);
    } finally {
      await client.end();
    }
  });
});
