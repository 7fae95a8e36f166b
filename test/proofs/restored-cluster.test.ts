import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { FaultPoint } from '../../lambdas/shared/step/step-deps.js';
import { type LocalPostgres, type PostgresVersion, startLocalPostgres } from '../../local/postgres.js';
import {
  type LocalEnvironment,
  openLocalEnvironment,
  runLocalArchive,
  runLocalRestore,
} from '../../local/run.js';
import {
  assertNoLossNoDuplicates,
  expectRequestsWithinRoles,
  fixedCutoffSql,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
  writeTestConfig,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

/**
 * A cluster restored from a copy of its data directory (a volume or file-system snapshot, started by crash recovery)
 * keeps its system identifier and timeline, so it has the server identity the delete recorded with its transaction id;
 * only its transaction counter went back. Once the application has used that counter up to the recorded id again,
 * `pg_xact_status` tells the outcome of an application transaction, not of the delete, whose rows the restore brought
 * back. This file makes such a cluster of its own: a copy of the stopped one, put back in its place.
 */
describe('an operator who restores the database from a snapshot taken before a delete whose outcome was lost', () => {
  const version = inject('postgresVersion') as PostgresVersion;
  const root = mkdtempSync(join(tmpdir(), 'audit-archiver-restored-'));
  const dataDir = join(root, 'data');
  const stateDir = join(root, 'state');
  const table = resolvedTable({ name: 'events', timestampColumn: 'created_at' });
  let server: LocalPostgres | undefined;
  let local: LocalEnvironment | undefined;
  const configs: { cleanup(): void }[] = [];

  /** The local environment against the server as it now runs (a restarted server listens on another port). */
  async function reopen(): Promise<LocalEnvironment> {
    if (!server) throw new Error('no server');
    await local?.close();
    const files = writeTestConfig({ url: server.url() }, [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
    ]);
    configs.push(files);
    local = await openLocalEnvironment(files.configPath, stateDir);
    return local;
  }

  async function connect(): Promise<pg.Client> {
    if (!server) throw new Error('no server');
    const client = new pg.Client({ connectionString: server.url() });
    await client.connect();
    return client;
  }

  afterAll(async () => {
    try {
      if (local) await expectRequestsWithinRoles(local);
    } finally {
      await local?.close();
    }
    for (const files of configs) files.cleanup();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('does not take the delete for committed while the exported rows are all back in the table', async () => {
    // Prepare: 200 rows over 40 days, 10 of them past a 30-day retention: one batch. The snapshot is taken first.
    chmodSync(root, 0o755);
    server = await startLocalPostgres(version, { dataDir });
    let client = await connect();
    await seedEvents(client, 'events', 200, 40);
    await client.end();
    await server.stop();
    execFileSync('cp', ['-a', dataDir, join(root, 'snapshot')]);
    server = await startLocalPostgres(version, { dataDir });
    let env = await reopen();
    // The batch's delete commits, and its attempt ends before it records that (its answer lost, the function gone).
    let deleteXid: string | undefined;
    const fault = async (point: FaultPoint) => {
      if (point !== 'delete:afterCommit' || deleteXid) return;
      deleteXid = (await env.deps().locks.get('app', 'public.events')).inFlight?.deleteXid;
      throw new InjectedCrash(`crash at ${point}`);
    };
    await runLocalArchive(env, {}, { fault, retryIntervalScale: 0 });
    if (!deleteXid) throw new Error('the delete did not record its transaction id');
    // The database is restored from the snapshot (the archive bucket and the lock table are not), and the application
    // goes on: its transactions take the ids again, the delete's among them, and it writes a row dated back into the
    // batch's first day (a queue drained late).
    await env.close();
    local = undefined;
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
    execFileSync('cp', ['-a', join(root, 'snapshot'), dataDir]);
    server = await startLocalPostgres(version, { dataDir });
    client = await connect();
    await client.query(
      `DO $$ BEGIN WHILE pg_current_xact_id() <= ${pg.escapeLiteral(deleteXid)}::xid8 LOOP COMMIT; END LOOP; END $$`,
    );
    const reused = await client.query<{ status: string | null }>(
      'SELECT pg_xact_status($1::xid8) AS status',
      [deleteXid],
    );
    const cutoff = await fixedCutoffSql(client);
    await client.query(
      `INSERT INTO public.events (created_at, actor, payload)
       SELECT min(created_at) + interval '1 minute', 'late', '{}' FROM public.events WHERE created_at < ${cutoff}`,
    );
    const original = await tableLines(client, table);
    env = await reopen();

    // Act: an operator restores the table before the next run settles the batch, then the run goes on.
    const restore = await runLocalRestore(
      env,
      { database: 'app', table: 'public.events' },
      { retryIntervalScale: 0 },
    );
    const rerun = await runLocalArchive(env, {}, { retryIntervalScale: 0 });

    // Assess: every row once, in the table or in one live archive.
    let held = false;
    let archived: string[] = [];
    try {
      await assertNoLossNoDuplicates(env, client, table, original);
      archived = (await readLiveArchives(env, 'public', 'events', client)).flatMap((a) => a.lines);
      held = true;
    } finally {
      await client.end();
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack:
          'restores the database from a snapshot (same system identifier and timeline) taken before a delete whose outcome a crash lost, and the application reuses its transaction id',
        held,
      });
    }
    expect(reused.rows[0]?.status).toBe('committed');
    // The restore, too, takes the rows' word over the reused id: the batch's archives hold rows the table has.
    expect(restore.execution.error).toEqual({
      name: 'ConfigError',
      message:
        'the only archive(s) of "public"."events" selected (10) belong to the batch it has in flight: their rows are still in the source table, not yet deleted; nothing to restore',
    });
    expect(rerun.execution.status).toBe('SUCCEEDED');
    expect(new Set(archived).size).toBe(archived.length);
  });
});
