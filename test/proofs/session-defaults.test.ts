import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import { type LocalPostgres, type PostgresVersion, startLocalPostgres } from '../../local/postgres.js';
import { type LocalEnvironment, openLocalEnvironment, runLocalArchive } from '../../local/run.js';
import { batchThrough } from '../support/batch-stages.js';
import {
  archiverTestbed,
  compareRows,
  expectRequestsWithinRoles,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  TODAY_UTC_SQL,
  tableLines,
  writeTestConfig,
} from '../support/fixtures.js';
import { interceptedAt } from '../support/intercepted.js';
import { recordProof } from '../support/proof-ledger.js';

/**
 * A database (or the archiver's role) whose default_transaction_isolation is repeatable read or serializable, as an
 * operator may set for the application. The delete locks the table, then describes it again so that a foreign key or
 * trigger added meanwhile is seen; under a transaction snapshot the second look reads the catalog as the
 * transaction's first statement saw it. Another session adds an ON DELETE CASCADE foreign key from a table of notes
 * between the two: the DELETE then fired it, and the notes, which no archive holds, were deleted with the batch.
 */
const OLD = `${TODAY_UTC_SQL} - interval '40 days'`;
const ZERO = { batches: 0, rows: 0, bytes: 0 };

describe.each(['repeatable read', 'serializable'])(
  'a database whose default isolation is %s',
  (isolation) => {
    const bed = archiverTestbed(
      async (db) => {
        await db.client.query(
          `ALTER DATABASE ${pg.escapeIdentifier(db.name)} SET default_transaction_isolation = ${pg.escapeLiteral(isolation)}`,
        );
        await db.client.query(`
        CREATE TABLE public.events (id int PRIMARY KEY, created_at timestamptz NOT NULL, v text);
        INSERT INTO public.events SELECT g, ${OLD} + g * interval '1 minute', 'v' || g FROM generate_series(1, 20) g;
        CREATE TABLE public.notes (id int PRIMARY KEY, event_id int NOT NULL, body text);
        INSERT INTO public.notes SELECT g, g, 'note ' || g FROM generate_series(1, 20) g;`);
      },
      [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
    );

    it('a cascading foreign key added while the delete takes its lock: refused, no note deleted, no event either', async () => {
      // Prepare: a verified batch, and another session that adds the foreign key just before the delete's LOCK.
      const deps = bed.local.deps();
      const { task } = await batchThrough(deps, 'public.events', 'verified');
      const racing = interceptedAt(deps, /^LOCK TABLE/, async () => {
        const session = new pg.Client({ connectionString: bed.db.url });
        await session.connect();
        try {
          await session.query(
            'ALTER TABLE public.notes ADD FOREIGN KEY (event_id) REFERENCES public.events ON DELETE CASCADE',
          );
        } finally {
          await session.end();
        }
      });

      // Act
      const refused = await deleteBatch({ ...task, progress: ZERO }, racing).catch((error: Error) => error);

      // Assess
      const counts = await bed.db.client.query(
        `SELECT (SELECT count(*) FROM public.notes)::int AS notes, (SELECT count(*) FROM public.events)::int AS events`,
      );
      recordProof({
        kind: 'threat',
        actor: 'database role',
        attack: `adds an ON DELETE CASCADE foreign key while a delete takes its lock, the database's default isolation ${isolation}`,
        held: counts.rows[0]?.notes === 20,
      });
      expect(counts.rows[0]).toEqual({ notes: 20, events: 20 });
      expect(refused).toMatchObject({
        name: 'TableNotUsableError',
        message: expect.stringMatching(
          /foreign key "notes_event_id_fkey" of public\.notes with ON DELETE CASCADE/,
        ),
      });
    });
  },
);

/**
 * A database whose synchronous_commit is off (for the application's speed): PostgreSQL acknowledges a COMMIT before
 * its WAL is on disk, and a crash in the next moments takes it back. A delete's COMMIT so acknowledged was recorded in
 * the inventory as committed; the server crashed (an immediate shutdown, as a power loss or an OOM kill of the
 * postmaster leaves it) before the WAL writer wrote it, and the rows came back into the table: archived once, and
 * archived again by the next run. This file runs a server of its own, whose WAL writer waits 10 s between writes.
 */
describe('a database whose synchronous_commit is off, and a crash right after a run', () => {
  const version = inject('postgresVersion') as PostgresVersion;
  const root = mkdtempSync(join(tmpdir(), 'audit-archiver-async-commit-'));
  const servers: LocalPostgres[] = [];
  let local: LocalEnvironment | undefined;
  let files: ReturnType<typeof writeTestConfig> | undefined;
  afterAll(async () => {
    try {
      if (local) await expectRequestsWithinRoles(local);
    } finally {
      await local?.close();
      files?.cleanup();
      for (const server of servers) await server.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('keeps every committed delete: no archived row comes back into the table, none is archived twice', async () => {
    // Prepare: the server runs as the postgres user when the tests run as root: it must be able to enter the directory.
    chmodSync(root, 0o755);
    const dataDir = join(root, 'data');
    const settings = {
      wal_writer_delay: '10000',
      wal_writer_flush_after: '100000',
      checkpoint_timeout: '3600',
    };
    const server = await startLocalPostgres(version, { dataDir, settings });
    servers.push(server);
    const table = resolvedTable({ name: 'events', timestampColumn: 'created_at' });
    const withClient = async <T>(work: (client: pg.Client) => Promise<T>): Promise<T> => {
      const client = new pg.Client({ connectionString: server.url() });
      await client.connect();
      try {
        return await work(client);
      } finally {
        await client.end();
      }
    };
    const original = await withClient(async (client) => {
      await seedEvents(client, 'events', 300, 40);
      await client.query('ALTER DATABASE postgres SET synchronous_commit = off');
      await client.query('CHECKPOINT');
      return tableLines(client, table);
    });
    files = writeTestConfig({ url: server.url() }, [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
    ]);
    local = await openLocalEnvironment(files.configPath, join(files.dir, 'state'));

    // Act: a run, then an immediate shutdown of the server (no WAL written on the way out), then crash recovery on
    // the same port.
    const run = await runLocalArchive(local, {}, { retryIntervalScale: 0 });
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGQUIT');
    for (let alive = true; alive; ) {
      try {
        process.kill(pid, 0);
        await new Promise((resolve) => setTimeout(resolve, 100));
      } catch {
        alive = false;
      }
    }
    servers.push(
      await startLocalPostgres(version, { dataDir, settings: { ...settings, port: String(server.port) } }),
    );
    const left = await withClient((client) => tableLines(client, table));
    const archived = (await readLiveArchives(local, 'public', 'events')).flatMap((a) => a.lines);

    // Assess
    const { lost, doubled } = compareRows(original, [...left, ...archived]);
    recordProof({ kind: 'invariant', rows: original.length, lost, doubled });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'sets synchronous_commit = off for the database, and the server crashes right after a run',
      held: lost === 0 && doubled === 0,
    });
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(archived.length).toBeGreaterThan(0);
    expect({ lost, doubled }).toEqual({ lost: 0, doubled: 0 });
  });
});
