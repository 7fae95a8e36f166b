import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { formatPlanReport, planLocally } from '../../cli/plan.js';
import type { TablePlan } from '../../lambdas/shared/batch/plan-report.js';
import { runLocalArchive } from '../../local/run.js';
import { archiverTestbed, listKeys, TODAY_UTC_SQL } from '../support/fixtures.js';

/** Rows 1 to 118 hours on either side of the cut-off (today's UTC midnight - 5 days), at every hour of the day. */
const SEED = `
  CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL, payload jsonb);
  CREATE INDEX ON events (created_at);
  INSERT INTO events (created_at, actor, payload)
  SELECT ${TODAY_UTC_SQL} - interval '5 days' + (CASE WHEN g % 2 = 0 THEN 1 ELSE -1 END) * (interval '1 hour' + (g % 40) * interval '3 hours'),
         'user_' || g % 7, jsonb_build_object('n', g)
    FROM generate_series(1, 120) AS g;
  CREATE TABLE ledger (id bigserial PRIMARY KEY, at timestamptz NOT NULL, note text);
  INSERT INTO ledger (at, note) SELECT ${TODAY_UTC_SQL} - interval '20 days' + g * interval '1 hour', 'n' || g FROM generate_series(1, 10) AS g;
  CREATE TABLE frozen (id bigserial PRIMARY KEY, at timestamptz NOT NULL);
  CREATE INDEX ON frozen (at);
  INSERT INTO frozen (at) SELECT ${TODAY_UTC_SQL} - interval '30 days' FROM generate_series(1, 5);
`;

describe('audit-archiver plan: a dry run through the archive state machine', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(SEED);
    },
    [
      { name: 'events', timestampColumn: 'created_at', retentionDays: 5, batchSize: 10 },
      { name: 'ledger', timestampColumn: 'at', retentionDays: 5 },
      { name: 'frozen', timestampColumn: 'at', retentionDays: 5, legalHold: 'case 2025-17' },
    ],
    { maxConnections: 1 },
  );

  /** Everything a run could change: rows, deletes as PostgreSQL counts them, S3 objects and lock-table items. */
  async function snapshot() {
    const { client } = bed.db;
    const rows = await client.query(
      `SELECT (SELECT count(*) FROM events)::int AS events, (SELECT count(*) FROM ledger)::int AS ledger,
              (SELECT count(*) FROM frozen)::int AS frozen`,
    );
    await client.query('SELECT pg_stat_clear_snapshot()');
    const deletes = await client.query(
      'SELECT relname, n_tup_del::int AS deleted FROM pg_stat_user_tables ORDER BY relname',
    );
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: bed.local.services.dynamoEndpoint }),
    );
    const items = await ddb.send(new ScanCommand({ TableName: bed.local.services.lockTable }));
    ddb.destroy();
    return {
      rows: rows.rows[0],
      deletes: deletes.rows,
      objects: (await listKeys(bed.local, '')).sort(),
      items: (items.Items ?? []).sort((a, b) => `${a.pk}${a.sk}`.localeCompare(`${b.pk}${b.sk}`)),
    };
  }

  /**
   * Eligible rows and batches as export cuts them, computed here from the rows themselves: each batch takes days in
   * turn until it holds 10 rows (10 objects at most, far below the 100 a batch may hold), so every batch but the last
   * is full. `perDay` is what a batch per day would have needed.
   */
  async function expectedFor(cutoff: string) {
    const days = await bed.db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM events WHERE created_at < $1
        GROUP BY to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
      [cutoff],
    );
    const eligibleRows = days.rows.reduce((sum, d) => sum + d.n, 0);
    return {
      eligibleRows,
      batches: Math.ceil(eligibleRows / 10),
      perDay: days.rows.reduce((sum, d) => sum + Math.ceil(d.n / 10), 0),
    };
  }

  it('reports per table what a run would do, changes nothing, and agrees with the run that follows', async () => {
    // Prepare: another execution holds the ledger's lease.
    const locks = bed.local.deps().locks;
    const lease = await locks.acquire('app', 'public.ledger', 'arn:other-execution', 3600);
    if (!lease.acquired) throw new Error('fixture lease not taken');
    const before = await snapshot();

    // Act
    const report = await planLocally(bed.local, {});
    const after = await snapshot();

    // Assess: nothing changed, and no lease was taken.
    expect(after).toEqual(before);
    expect(after.items.filter((item) => item.owner !== undefined).map((item) => item.pk)).toEqual([
      'TABLE#app#public.ledger',
    ]);
    const byTable = new Map<string, TablePlan>(report.tables.map((t) => [t.table, t]));
    const events = byTable.get('public.events');
    const { perDay, ...expected } = await expectedFor(events?.cutoff ?? '');
    expect(expected.eligibleRows).toBe(60);
    // 12 rows on each of 5 days: batches of 10 span days, fewer than a batch per day would be.
    expect(expected.batches).toBeLessThan(perDay);
    expect(events).toMatchObject({
      action: 'archive',
      ...expected,
      runsNeeded: 1,
      countMethod: 'index',
      bytesBasis: 'assumed',
      lock: 'free',
      legalHold: null,
      retention: '5 days, no policy bounds: ok',
      encryption: 'bucket default encryption',
    });
    expect(events?.estimatedBytes).toBeGreaterThan(0);
    expect(events?.oldestRow).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    expect(byTable.get('public.ledger')).toMatchObject({
      action: 'locked',
      eligibleRows: 10,
      countMethod: 'sequential-scan',
      lock: expect.stringMatching(/^locked by arn:other-execution until /),
    });
    expect(byTable.get('public.frozen')).toMatchObject({
      action: 'held',
      eligibleRows: 5,
      legalHold: 'legal hold (config): case 2025-17',
    });
    const text = formatPlanReport(report);
    expect(text).toContain('public.ledger: LOCKED (skipped)');
    expect(text).toContain('no index on the timestamp column: counted by a sequential scan');
    expect(text).toContain('legal hold: legal hold (config): case 2025-17');

    // Act: the real run, after the other execution let go of the ledger.
    await locks.release('app', 'public.ledger', lease.lease);
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess: it did what the plan said, and the snapshot sees it.
    expect(run.execution.status).toBe('SUCCEEDED');
    const outcomes = new Map(run.outcomes.map((o) => [o.table, o]));
    expect(outcomes.get('public.events')).toMatchObject({
      status: 'succeeded',
      rowsArchived: events?.eligibleRows,
      batches: events?.batches,
    });
    expect(outcomes.get('public.frozen')).toMatchObject({ status: 'held', rowsArchived: 0 });
    expect((await snapshot()).rows).toEqual({ events: 60, ledger: 0, frozen: 5 });
  });

  it('fails a dry run of a table the config does not list, with the plan step’s error', async () => {
    // Act / Assess
    await expect(planLocally(bed.local, { tables: ['public.nope'] })).rejects.toThrow(
      'tables not in the config: public.nope',
    );
  });
});

describe('audit-archiver plan: how a table is counted', () => {
  const bed = archiverTestbed(
    async (db) => {
      // The only index on the timestamp column is one a failed CREATE INDEX CONCURRENTLY left invalid (two equal
      // times broke its uniqueness): PostgreSQL never uses it, so every count and batch scans the table.
      await db.client.query(`
        CREATE TABLE half_indexed (id bigserial PRIMARY KEY, at timestamptz NOT NULL);
        INSERT INTO half_indexed (at) SELECT ${TODAY_UTC_SQL} - interval '20 days' FROM generate_series(1, 2);`);
      await expect(
        db.client.query('CREATE UNIQUE INDEX CONCURRENTLY half_indexed_at ON half_indexed (at)'),
      ).rejects.toThrow(/could not create unique index/);
    },
    [{ name: 'half_indexed', timestampColumn: 'at', retentionDays: 5 }],
  );

  it('says a table whose only index on the timestamp column is invalid is counted by a sequential scan', async () => {
    // Act
    const report = await planLocally(bed.local, {});

    // Assess
    expect(report.tables[0]).toMatchObject({ eligibleRows: 2, countMethod: 'sequential-scan' });
  });
});
