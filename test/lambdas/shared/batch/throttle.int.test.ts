import { describe, expect, it } from 'vitest';
import {
  ApplicationLoad,
  LOAD_SAMPLE_INTERVAL_MS,
  vacuumTable,
} from '../../../../lambdas/shared/batch/throttle.js';
import { sessionSetupSql } from '../../../../lambdas/shared/database/db.js';
import { ownServer } from '../../../support/own-server.js';

/**
 * The load the yieldToLoad throttle measures counts every client session of the server, so this file has a server of
 * its own: the suite's other files would be load here.
 */
describe('ApplicationLoad, against the real pg_stat_activity', () => {
  const { connect } = ownServer();
  /** A session as the archiver opens it (its application_name). */
  const archiverSession = async (options: { user?: string; password?: string } = {}) => {
    const client = await connect(options);
    await client.query(sessionSetupSql({ statementTimeoutSeconds: 60, lockTimeoutSeconds: 5 }));
    return client;
  };

  it('counts other sessions in a transaction, running or between statements; not idle ones, nor the archiver’s', async () => {
    // Prepare: one session between statements of a transaction, one running a statement, one idle, and another
    // archiver session in a transaction.
    const betweenStatements = await connect();
    await betweenStatements.query('BEGIN');
    await betweenStatements.query('SELECT 1');
    const running = await connect();
    const sleeping = running.query('SELECT pg_sleep(30)').catch(() => undefined);
    await connect();
    const otherTable = await archiverSession();
    await otherTable.query('BEGIN');
    await otherTable.query('SELECT 1');
    const archiver = await archiverSession();
    const runningSeen = async () => {
      const result = await archiver.query(
        "SELECT pg_stat_clear_snapshot(), count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'",
      );
      return result.rows[0].n;
    };
    await expect.poll(runningSeen).toBe(1);
    let clock = 0;
    const load = new ApplicationLoad({ now: () => clock });

    // Act: two samples in one transaction (as export takes them), the second after a transaction ended, an interval
    // later.
    await archiver.query('BEGIN READ ONLY');
    await load.sample(archiver);
    await betweenStatements.query('COMMIT');
    clock += LOAD_SAMPLE_INTERVAL_MS;
    await load.sample(archiver);
    await archiver.query('COMMIT');

    // Assess: 2 busy, then 1: the second sample was not the transaction's cached snapshot.
    expect(load.busySessions()).toBe(1.5);
    await betweenStatements.query(
      'SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()',
      ['SELECT pg_sleep%'],
    );
    await sleeping;
  });

  it('takes no second sample within the interval: the mean is of moments, not of objects', async () => {
    // Prepare: one busy session, then none.
    const busy = await connect();
    await busy.query('BEGIN');
    await busy.query('SELECT 1');
    const archiver = await archiverSession();
    let clock = 0;
    const load = new ApplicationLoad({ now: () => clock });
    await load.sample(archiver);
    await busy.query('COMMIT');

    // Act: a sample just within the interval, then one at its end.
    clock += LOAD_SAMPLE_INTERVAL_MS - 1;
    await load.sample(archiver);
    const withinInterval = load.busySessions();
    clock += 1;
    await load.sample(archiver);

    // Assess: the first sample alone, then the mean of two.
    expect(withinInterval).toBe(1);
    expect(load.busySessions()).toBe(0.5);
  });

  it('does not count a session left idle in a transaction for longer than idleInTransactionSeconds', async () => {
    // Prepare: the archiver's session first, so the first sample follows the forgotten statement at once (a
    // connection opened between them could take a second on a loaded machine).
    const archiver = await archiverSession();
    const forgotten = await connect();
    await forgotten.query('BEGIN');
    await forgotten.query('SELECT 1');
    const fresh = new ApplicationLoad({ idleInTransactionSeconds: 1 });
    await fresh.sample(archiver);

    // Act
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const later = new ApplicationLoad({ idleInTransactionSeconds: 1 });
    await later.sample(archiver);

    // Assess
    expect(fresh.busySessions()).toBe(1);
    expect(later.busySessions()).toBe(0);
    await forgotten.query('ROLLBACK');
  });

  it('counts another role’s session by its transaction id or snapshot when the role may not read its state', async () => {
    // Prepare: two sessions of another role in a transaction, one that wrote (it holds a transaction id), one
    // between read-only statements (it holds nothing every role may see).
    const admin = await connect();
    await admin.query("CREATE ROLE load_reader LOGIN PASSWORD 'reader'");
    const writing = await connect();
    await writing.query('BEGIN');
    await writing.query('SELECT pg_current_xact_id()');
    const reading = await connect();
    await reading.query('BEGIN');
    await reading.query('SELECT 1');
    const archiver = await archiverSession({ user: 'load_reader', password: 'reader' });

    // Act
    const unprivileged = new ApplicationLoad();
    await unprivileged.sample(archiver);
    await admin.query('GRANT pg_read_all_stats TO load_reader');
    const privileged = new ApplicationLoad();
    await privileged.sample(archiver);

    // Assess: without the grant only the writer counts; with it, both do, by their state.
    expect(unprivileged.busySessions()).toBe(1);
    expect(privileged.busySessions()).toBe(2);
    await writing.query('ROLLBACK');
    await reading.query('ROLLBACK');
  });

  describe('vacuumTable', () => {
    /** A telemetry that keeps what it is told, to assert on. */
    const recording = () => {
      const calls: { kind: string; message: string; fields?: Record<string, unknown> }[] = [];
      return {
        calls,
        telemetry: {
          info: (message: string, fields?: Record<string, unknown>) =>
            calls.push({ kind: 'info', message, fields }),
          warn: (message: string, fields?: Record<string, unknown>) =>
            calls.push({ kind: 'warn', message, fields }),
          metric: (name: string) => calls.push({ kind: 'metric', message: name }),
          runMetric: (name: string) => calls.push({ kind: 'run metric', message: name }),
        },
      };
    };
    const label = { database: 'app', table: 'public.vacuumed' };

    it('reports a VACUUM that PostgreSQL skipped with a warning (a role that may not maintain the table) as failed', async () => {
      // Prepare: the table belongs to another role; the archiver's role may read and delete its rows, no more.
      const admin = await connect();
      await admin.query(`CREATE TABLE public.vacuumed (id int PRIMARY KEY);
                         CREATE ROLE vacuum_stranger LOGIN PASSWORD 'stranger';
                         GRANT SELECT, DELETE ON public.vacuumed TO vacuum_stranger`);
      const stranger = await connect({ user: 'vacuum_stranger', password: 'stranger' });
      const skipped = recording();
      const owned = recording();

      // Act
      await vacuumTable(stranger, { schema: 'public', name: 'vacuumed' }, skipped.telemetry, label);
      await vacuumTable(admin, { schema: 'public', name: 'vacuumed' }, owned.telemetry, label);

      // Assess: the stranger's VACUUM is counted and warned of, with no text of PostgreSQL's (a function an expression
      // index runs during ANALYZE could raise a warning holding a row's value); the owner's is done.
      expect(skipped.calls.map(({ kind, message }) => `${kind}: ${message}`)).toEqual([
        'metric: VacuumFailures',
        expect.stringMatching(/^warn: VACUUM \(ANALYZE\) ended with a warning/),
      ]);
      expect(skipped.calls[1]?.fields).toEqual({ ...label, codes: ['01000'] });
      expect(owned.calls.map(({ kind, message }) => `${kind}: ${message}`)).toEqual(['info: table vacuumed']);
    });
  });
});
