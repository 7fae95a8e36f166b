import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { buildPlanReport, PLAN_RETURN_MARGIN_MS } from '../../../../lambdas/shared/batch/plan-report.js';
import { resolveTable } from '../../../../lambdas/shared/config/resolved-table.js';
import { archiverTestbed, fixtureCutoff, TODAY_UTC_SQL } from '../../../support/fixtures.js';

const SEED = `
  CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, note text);
  INSERT INTO events (created_at, note)
  SELECT ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 hour', 'n' || g FROM generate_series(1, 100) AS g;
  CREATE TABLE ledger (id bigserial PRIMARY KEY, at timestamptz NOT NULL);
  INSERT INTO ledger (at) SELECT ${TODAY_UTC_SQL} - interval '40 days' FROM generate_series(1, 5);
`;

/**
 * The dry run within its invocation's time: in AWS the plan function has a minute, which a big table's count can
 * outlast. A count is made to outlast its budget here by a lock another session holds on the table.
 */
describe('dry run: each count within what is left of the plan step', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(SEED);
    },
    [
      { name: 'events', timestampColumn: 'created_at' },
      { name: 'ledger', timestampColumn: 'at' },
    ],
  );
  const tables = async () => {
    const cutoff = await fixtureCutoff(bed.local.deps());
    return ['public.events', 'public.ledger'].map((ref) => ({
      table: resolveTable(bed.local.config, 'app', ref),
      cutoff,
    }));
  };

  /** Whether the server's timers fire: under faketime (LD_PRELOAD) PostgreSQL's statement_timeout never does. */
  async function timersFire(): Promise<boolean> {
    const probe = await bed.db.client
      .query('BEGIN; SET LOCAL statement_timeout = 50; SELECT pg_sleep(0.5)')
      .then(
        () => false,
        () => true,
      );
    await bed.db.client.query('ROLLBACK');
    return probe;
  }

  /**
   * Cancels a count still waiting on a lock after `ms`, as the statement_timeout would have: where the server's timers
   * do not fire, the count would otherwise wait forever. Says whether it had to.
   */
  function cancelStuckCount(ms: number): { acted: () => boolean; stop: () => void } {
    let acted = false;
    const timer = setTimeout(async () => {
      const cancelled = await bed.db.client.query(
        `SELECT pg_cancel_backend(pid) FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()`,
      );
      acted = (cancelled.rowCount ?? 0) > 0;
    }, ms);
    return { acted: () => acted, stop: () => clearTimeout(timer) };
  }

  it('reports a table whose count outlasts the time left uncounted, ends that count, and counts the next', async () => {
    // Prepare: 1.5 s left for counts; the lock would hold the count for the whole lock timeout (5 s) otherwise.
    const fire = await timersFire();
    const holder = new pg.Client({ connectionString: bed.db.url });
    await holder.connect();
    await holder.query('BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
    const planned = await tables();
    const deps = { ...bed.local.deps(), remainingTimeMs: () => PLAN_RETURN_MARGIN_MS + 1_500 };
    const watchdog = cancelStuckCount(3_000);

    try {
      // Act
      const started = performance.now();
      const report = await buildPlanReport(deps, 'dry', planned);
      const tookMs = performance.now() - started;
      watchdog.stop();

      // Assess
      expect(report.tables.map((t) => [t.table, t.action])).toEqual([
        ['public.events', 'uncounted'],
        ['public.ledger', 'archive'],
      ]);
      expect(report.tables[0]?.error).toMatch(
        /^not counted within the plan step's time \(2 s were left for it\): plan this table alone, or from the CLI$/,
      );
      expect(report.tables[1]?.eligibleRows).toBe(5);
      // The budget's statement_timeout ended the count, wherever the server's timers fire.
      expect(watchdog.acted()).toBe(!fire);
      expect(tookMs).toBeLessThan(4_500);
      const waiting = await bed.db.client.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`,
      );
      expect(waiting.rows[0]?.n).toBe(0);
    } finally {
      watchdog.stop();
      await holder.end();
    }
  });

  it('starts no count when less than a second is left, and reports every table uncounted', async () => {
    // Prepare
    const deps = { ...bed.local.deps(), remainingTimeMs: () => PLAN_RETURN_MARGIN_MS + 500 };

    // Act
    const report = await buildPlanReport(deps, 'dry', await tables());

    // Assess
    expect(report.tables.map((t) => t.action)).toEqual(['uncounted', 'uncounted']);
  });

  it('counts every table under the statement limit alone when no invocation time bounds it (a direct call)', async () => {
    // Act
    const report = await buildPlanReport(bed.local.deps(), 'dry', await tables());

    // Assess
    expect(report.tables.map((t) => [t.action, t.eligibleRows])).toEqual([
      ['archive', 100],
      ['archive', 5],
    ]);
  });
});
