import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import { exportBatch } from '../../lambdas/export/core.js';
import type { PlanOutput } from '../../lambdas/plan/schema.js';
import { tablePrefix } from '../../lambdas/shared/archive/format.js';
import { retentionCutoff } from '../../lambdas/shared/config/governance.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import type { TableTask } from '../../lambdas/shared/step/table-task.js';
import type { SummaryOutput } from '../../lambdas/summary/schema.js';
import { uploadBatch } from '../../lambdas/upload/core.js';
import { verifyBatch } from '../../lambdas/verify/core.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { ExecutionResult, LocalWorkflow, StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  compareRows,
  fixedCutoffSql,
  fixtureCutoff,
  listKeys,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
  validateLocalTable,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const DAY_MS = 86_400_000;
const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });

describe('whoever starts executions cannot move the cut-off past the retention', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'guarded', 300);
      await seedEvents(db.client, 'lawful', 300);
      await seedEvents(db.client, 'stepwise', 300);
      await seedEvents(db.client, 'skewed', 300);
      await seedEvents(db.client, 'midday', 300);
    },
    [spec('guarded'), spec('lawful'), spec('stepwise'), spec('skewed'), spec('midday')],
  );

  it('refuses a table execution started with a future cut-off: nothing archived, nothing deleted', async () => {
    // Prepare: the table keeps 30 days; the forged input asks for everything up to tomorrow.
    const table = resolvedTable(spec('guarded'));
    const original = await tableLines(bed.db.client, table);
    const forged = {
      runId: 'forged-cutoff',
      database: 'app',
      table: 'public.guarded',
      cutoff: new Date(Date.now() + DAY_MS).toISOString(),
      maxBatches: 100,
    };

    // Act: start the per-table state machine directly, as its execution role allows.
    const execution = await bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable(forged);

    // Assess
    const remaining = await tableLines(bed.db.client, table);
    const keys = await listKeys(
      bed.local,
      tablePrefix({ prefix: 'archive/', database: 'app', schema: 'public', table: 'guarded' }),
    );
    const outcome = (await bed.local.deps().runRecords.listOutcomes('forged-cutoff'))[0];
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack: 'future cut-off in the table execution input',
      held: remaining.length === original.length && keys.length === 0,
    });
    expect(execution.status).toBe('FAILED');
    expect(outcome?.error).toMatch(/^ConfigError: .*later than its retention allows/);
    expect(remaining).toHaveLength(original.length);
    expect(keys).toEqual([]);
  });

  it("refuses the next day's cut-off while the functions' clock reads the next day: the execution's start bounds it", async () => {
    // Prepare: the functions' clock runs a day ahead (as 5 minutes of allowed skew would before a UTC midnight); the
    // input asks for the cut-off of a run started then. The execution's start, which its input cannot set, is now.
    const table = resolvedTable(spec('skewed'));
    const original = await tableLines(bed.db.client, table);
    const tomorrow = Date.now() + DAY_MS;
    const forged = {
      runId: 'skewed-clock',
      database: 'app',
      table: 'public.skewed',
      cutoff: retentionCutoff(tomorrow, 30),
      startedAt: new Date(tomorrow).toISOString(),
      maxBatches: 100,
    };
    const workflow = bed.local.workflow({
      retryIntervalScale: 0,
      deps: (deps) => ({ ...deps, now: () => new Date(tomorrow) }),
    });

    // Act
    const execution = await workflow.runArchiveTable(forged);

    // Assess
    const remaining = await tableLines(bed.db.client, table);
    const outcome = (await bed.local.deps().runRecords.listOutcomes('skewed-clock'))[0];
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack: "the next day's cut-off in the minutes before a UTC midnight, within the functions' clock skew",
      held: execution.status === 'FAILED' && remaining.length === original.length,
    });
    expect(execution.status).toBe('FAILED');
    expect(outcome?.error).toMatch(
      /^ConfigError: .*later than its retention allows .*for an execution started/,
    );
    expect(remaining).toHaveLength(original.length);
  });

  it("accepts a run started yesterday with yesterday's (earlier) cut-off", async () => {
    // Prepare
    const table = resolvedTable(spec('lawful'));
    const original = await tableLines(bed.db.client, table);
    const yesterday = {
      runId: 'started-yesterday',
      database: 'app',
      table: 'public.lawful',
      cutoff: retentionCutoff(bed.db.now().getTime() - DAY_MS, 30),
      maxBatches: 100,
    };

    // Act
    const execution = await bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable(yesterday);

    // Assess: rows before that cut-off are archived, the rest stay.
    expect(execution.status).toBe('SUCCEEDED');
    const { inArchives } = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    const older = await bed.db.client.query(
      'SELECT count(*)::int AS n FROM public.lawful WHERE created_at < $1',
      [yesterday.cutoff],
    );
    expect(older.rows[0].n).toBe(0);
    expect(inArchives).toBeGreaterThan(0);
  });

  it('takes a day in two objects of its folder when a hand-started run cuts it at noon: none lost, validate clean, restored exactly', async () => {
    // Prepare: 5 rows a UTC day (one every 4.8 hours); the hand-started run's cut-off is a noon before the lawful one.
    const table = resolvedTable(spec('midday'));
    const original = await tableLines(bed.db.client, table);
    const lawful = await fixtureCutoff(bed.local.deps());
    const noon = new Date(Date.parse(lawful) - 1.5 * DAY_MS).toISOString();
    const byHand = {
      runId: 'cut-at-noon',
      database: 'app',
      table: 'public.midday',
      cutoff: noon,
      maxBatches: 100,
    };

    // Act: the hand-started run, then the scheduled one, which takes the rest of that day
    const first = await bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable(byHand);
    const afterFirst = await tableLines(bed.db.client, table);
    const second = await runLocalArchive(bed.local, { tables: ['public.midday'] }, { retryIntervalScale: 0 });
    const { inArchives } = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    const report = await validateLocalTable(bed.local, 'midday');
    const archives = await readLiveArchives(bed.local, 'public', 'midday', bed.db.client);
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.midday' },
      { retryIntervalScale: 0 },
    );

    // Assess: the first run left every row from noon on; the cut day's two objects share its folder and hold the
    // rows before and after noon; the restore gives back every original row once.
    expect(first.status).toBe('SUCCEEDED');
    expect(second.execution.status).toBe('SUCCEEDED');
    const times = (lines: string[]) => lines.map((line) => Date.parse(JSON.parse(line).created_at));
    expect(Math.min(...times(afterFirst))).toBeGreaterThanOrEqual(Date.parse(noon));
    const folder = (key: string) => key.slice(0, key.lastIndexOf('/'));
    const dayOfNoon = archives.filter((a) =>
      times(a.lines).some((t) => t >= Date.parse(noon) - DAY_MS / 2 && t < Date.parse(noon) + DAY_MS / 2),
    );
    expect(dayOfNoon).toHaveLength(2);
    expect(new Set(dayOfNoon.map((a) => folder(a.key))).size).toBe(1);
    expect(dayOfNoon.map((a) => times(a.lines).every((t) => t < Date.parse(noon))).sort()).toEqual([
      false,
      true,
    ]);
    expect(inArchives).toBeGreaterThan(original.length - afterFirst.length);
    expect(report.problems).toEqual([]);
    expect(restored.execution.status).toBe('SUCCEEDED');
    const back = compareRows(original, await tableLines(bed.db.client, table));
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack:
        'starts archive-table by hand with a cut-off at noon, then the scheduled run takes the rest of that day',
      held: back.lost === 0 && back.doubled === 0 && back.extra === 0,
    });
    expect(back).toEqual({ lost: 0, doubled: 0, extra: 0 });
  });

  it('delete refuses a future cut-off itself, even for a batch exported under the lawful one', async () => {
    // Prepare: a batch exported, uploaded and verified under today's cut-off.
    const deps = bed.local.deps();
    const table = resolvedTable(spec('stepwise'));
    const original = await tableLines(bed.db.client, table);
    const acquired = await deps.locks.acquire('app', 'public.stepwise', 'exec-stepwise', 600);
    if (!acquired.acquired) throw new Error('lease not acquired');
    const task: TableTask = {
      runId: 'exec-stepwise',
      database: 'app',
      table: 'public.stepwise',
      cutoff: await fixtureCutoff(deps),
      lease: acquired.lease,
    };
    await exportBatch(task, deps);
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const future = { ...task, cutoff: new Date(Date.now() + DAY_MS).toISOString() };

    // Act: both at once, each with its expectation attached as it starts, so neither rejection goes unobserved.
    const refusals = Promise.all([
      expect(exportBatch(future, deps)).rejects.toThrow(ConfigError),
      expect(deleteBatch({ ...future, progress: { batches: 0, rows: 0, bytes: 0 } }, deps)).rejects.toThrow(
        ConfigError,
      ),
    ]);

    // Assess
    await refusals;
    const remaining = await tableLines(bed.db.client, table);
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack: 'future cut-off handed to export and delete',
      held: remaining.length === original.length,
    });
    expect(remaining).toHaveLength(original.length);
  });
});

describe("whoever starts a table execution with a run's id cannot rewrite that run's outcome", () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'steady', 100);
      await seedEvents(db.client, 'crashing', 100);
      await seedEvents(db.client, 'unplanned', 100);
    },
    [spec('steady'), spec('crashing'), spec('unplanned')],
  );

  it.each([
    {
      name: 'over the outcome of the table it names, which failed',
      crashAfter: 'verify',
      forgedTable: 'public.crashing',
      recorded: [
        ['public.crashing', 'failed'],
        ['public.steady', 'succeeded'],
      ],
    },
    {
      name: 'for a table the run does not archive, in place of one that recorded nothing',
      crashAfter: 'lock',
      forgedTable: 'public.unplanned',
      recorded: [['public.steady', 'succeeded']],
    },
  ])(
    'refuses such an execution $name: the run fails as its table did',
    async ({ name, crashAfter, forgedTable, recorded }) => {
      // Prepare: a run of two tables, one of whose executions crashes (between verify and delete: it records a failure;
      // or right after taking its lease: it records nothing). Then a table execution is started by hand with the run's
      // id and a cut-off that finds nothing, which records a success.
      let crashed = false;
      let forged: ExecutionResult | undefined;
      const forge = async (runId: string) => {
        forged = await bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable({
          runId,
          database: 'app',
          table: forgedTable,
          cutoff: '2000-01-01T00:00:00.000Z',
          maxBatches: 1,
        });
      };
      const afterStep = async (event: StepEvent) => {
        const step = event.payload as { action?: string; runId?: string; table?: string };
        if (step.table !== 'public.crashing' || !step.runId) return;
        if (event.functionName === crashAfter && !crashed) {
          crashed = true;
          if (crashAfter === 'lock') await forge(step.runId);
          throw new Error(`crash after ${crashAfter}`);
        }
        if (event.functionName === 'lock' && step.action === 'release') await forge(step.runId);
      };

      // Act
      const run = await bed.local
        .workflow({ retryIntervalScale: 0, afterStep })
        .runArchive({ tables: ['public.steady', 'public.crashing'] });
      const outcomes = await bed.local.deps().runRecords.listOutcomes(run.executionName);
      const forgedOutcomes = forged
        ? await bed.local.deps().runRecords.listOutcomes(forged.executionName)
        : [];

      // Assess
      recordProof({
        kind: 'threat',
        actor: 'execution starter',
        attack: `starts a table execution with a running run's id, ${name}`,
        held: run.status === 'FAILED' && forged?.status === 'FAILED',
      });
      expect(forged?.status).toBe('FAILED');
      expect([run.status, run.error?.name]).toEqual(['FAILED', 'ArchiveRunFailed']);
      expect(outcomes.map((o) => [o.table, o.status]).sort()).toEqual(recorded);
      expect(forgedOutcomes).toEqual([]);
    },
  );

  it("fails the run whose table execution's name was taken first by one started with the run's id", async () => {
    // Prepare: once the run planned, an execution of the per-table state machine is started under the name the run
    // gives its table (a digest of the run's name and start, shown by DescribeExecution, and the table's place in the
    // plan), with the run's id and a cut-off that finds nothing: it records the table succeeded, 0 rows archived.
    const cutoff = await fixedCutoffSql(bed.db.client);
    const eligible = async () =>
      (
        await bed.db.client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM public.unplanned WHERE created_at < ${cutoff}`,
        )
      ).rows[0]?.n;
    const before = await eligible();
    let squatted: unknown;
    let summary: SummaryOutput | undefined;
    let workflow: LocalWorkflow | undefined;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName === 'summary') summary = event.result as SummaryOutput;
      if (event.functionName !== 'plan' || !workflow) return;
      const plan = event.result as PlanOutput;
      const [entry] = plan.lanes.flatMap((lane) => lane.tables);
      squatted = await workflow.startArchiveTable(
        {
          runId: plan.runId,
          database: 'app',
          table: 'public.unplanned',
          cutoff: '2000-01-01T00:00:00.000Z',
          maxBatches: 1,
        },
        `${plan.childKey}-${entry?.n}`,
      );
    };
    workflow = bed.local.workflow({ retryIntervalScale: 0, afterStep });

    // Act
    const run = await workflow.runArchive({ tables: ['public.unplanned'] });

    // Assess
    const outcome = {
      squatted: (squatted as { Status?: string } | undefined)?.Status,
      run: [run.status, run.error?.name],
      summary: summary?.perTable.map((t) => `${t.table} ${t.status} ${t.rowsArchived}`),
      eligibleLeft: (await eligible()) === before,
    };
    const expected = {
      squatted: 'SUCCEEDED',
      run: ['FAILED', 'ArchiveRunFailed'],
      summary: ['public.unplanned failed 0'],
      eligibleLeft: true,
    };
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack: "starts a table execution with a running run's id under the name the run gives the table",
      held: JSON.stringify(outcome) === JSON.stringify(expected),
    });
    expect(outcome).toEqual(expected);
    expect(summary?.perTable[0]?.error).toMatch(
      /^the run's execution \S+ for the table could not start: an execution of its name already existed/,
    );
    expect(before).toBeGreaterThan(0);
  });
});

describe('whoever starts a restore cannot write into a table the config does not allow', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 300);
      await db.client.query(
        `CREATE TABLE public.accounts (id bigint PRIMARY KEY, email text, balance numeric NOT NULL DEFAULT 0)`,
      );
      await db.client.query(
        `INSERT INTO public.accounts SELECT g, 'user' || g || '@example.com', g * 10 FROM generate_series(1, 50) AS g`,
      );
      await db.client.query('CREATE SCHEMA forensics');
      await db.client.query(
        `CREATE TABLE forensics.narrow (id bigint PRIMARY KEY, created_at timestamptz, note text NOT NULL DEFAULT '')`,
      );
      await db.client.query(
        `INSERT INTO forensics.narrow (id, note) SELECT g, 'kept' FROM generate_series(1, 50) AS g`,
      );
    },
    [spec('events')],
    { database: { restoreTargets: ['forensics.*'] } },
  );
  const snapshot = async (table: string) =>
    (await bed.db.client.query(`SELECT t::text AS line FROM ${table} AS t ORDER BY 1`)).rows.map(
      (r) => r.line,
    );
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', ...request },
      { retryIntervalScale: 0 },
    );

  it('archives the old rows first', async () => {
    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
  });

  it.each([
    ['public.accounts', 'a table outside restoreTargets'],
    ['forensics.narrow', 'an allowed table that lacks archived columns'],
  ])(
    'refuses to restore into %s (%s), with overwrite and lenient drift: not one row written',
    async (target) => {
      // Prepare
      const before = await snapshot(target);

      // Act
      const result = await restore({ targetTable: target, strategy: 'overwrite', drift: 'lenient' });

      // Assess
      const after = await snapshot(target);
      recordProof({
        kind: 'threat',
        actor: 'execution starter',
        attack: `restore into ${target === 'public.accounts' ? 'an unrelated table' : 'an allowed table of another shape'}`,
        held: JSON.stringify(after) === JSON.stringify(before),
      });
      expect(result.execution.status).toBe('FAILED');
      expect(after).toEqual(before);
    },
  );

  it('refuses a table the config does not archive named as the source, restored into itself (an overwrite of it)', async () => {
    // Prepare: a bucket writer's legacy-layout archive of public.accounts would be read under this source
    const before = await snapshot('public.accounts');

    // Act
    const result = await restore({
      table: 'public.accounts',
      strategy: 'overwrite',
      drift: 'lenient',
      legacy: { database: bed.db.name },
    });

    // Assess
    const after = await snapshot('public.accounts');
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack: 'names an unconfigured table as the restore source, so that it is also the target',
      held: result.execution.status === 'FAILED' && JSON.stringify(after) === JSON.stringify(before),
    });
    expect(result.execution.status).toBe('FAILED');
    expect(result.execution.error?.message ?? '').toMatch(
      /restore target "public"\."accounts" is neither a table the config archives \(restored into itself\) nor in restoreTargets/,
    );
    expect(after).toEqual(before);
  });

  it('restores into a new table the config allows, and into the archived table itself', async () => {
    // Prepare
    const table = resolvedTable(spec('events'));
    const kept = await tableLines(bed.db.client, table);

    // Act
    const copy = await restore({ targetTable: 'forensics.events_copy' });
    const back = await restore({});

    // Assess: every archived row is back in both, none doubled.
    expect(copy.execution.status).toBe('SUCCEEDED');
    expect(back.execution.status).toBe('SUCCEEDED');
    const restored = await tableLines(bed.db.client, { ...table, schema: 'forensics', name: 'events_copy' });
    const all = await tableLines(bed.db.client, table);
    expect(all.length).toBe(kept.length + restored.length);
    expect(restored.length).toBeGreaterThan(0);
  });
});

describe('a table execution started with incomplete or ill-typed input fails before it takes the lease', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'unleased', 300), [spec('unleased')]);
  const lawful = () => ({
    runId: 'direct-start',
    database: 'app',
    table: 'public.unleased',
    cutoff: retentionCutoff(Date.now(), 30),
    maxBatches: 100,
  });
  const without = (field: 'cutoff' | 'maxBatches') => {
    const { [field]: _omitted, ...rest } = lawful();
    return rest;
  };

  it.each([
    ['maxBatches', 'missing', without('maxBatches')],
    ['maxBatches', 'a string', { ...lawful(), maxBatches: '100' }],
    ['maxBatches', 'zero', { ...lawful(), maxBatches: 0 }],
    // At 26 history events a batch (5 for each of four Tasks, 2 for each of the loop's Choices and its Wait), 1,000
    // batches are 26,000: in AWS the execution would fail at Step Functions' 25,000 events with no Catch, holding the
    // lease, its table's outcome unrecorded. The config caps maxBatchesPerRun at 800 for that reason.
    ['maxBatches', 'past what one execution history holds', { ...lawful(), maxBatches: 1_000 }],
    ['cutoff', 'missing', without('cutoff')],
    ['cutoff', 'not an instant', { ...lawful(), cutoff: 'yesterday' }],
  ])('refuses %s (%s), naming it: the lease stays free for the next run', async (field, how, input) => {
    // Prepare
    const table = resolvedTable(spec('unleased'));
    const original = await tableLines(bed.db.client, table);

    // Act: started directly, as whoever may start executions can.
    const execution = await bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable(input);

    // Assess
    const lease = await bed.local.deps().locks.get('app', 'public.unleased');
    const remaining = await tableLines(bed.db.client, table);
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack: `starts a table execution with ${field} ${how}, to keep the table's lease held`,
      held: execution.status === 'FAILED' && lease.owner === undefined,
    });
    expect(execution.status).toBe('FAILED');
    expect(execution.error?.message ?? '').toContain(field);
    expect(lease.owner).toBeUndefined();
    expect(remaining).toHaveLength(original.length);
  });

  it('then archives the table with complete input, the lease not in its way', async () => {
    // Prepare
    const table = resolvedTable(spec('unleased'));
    const original = await tableLines(bed.db.client, table);

    // Act
    const execution = await bed.local.workflow({ retryIntervalScale: 0 }).runArchiveTable(lawful());

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const { inArchives } = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original);
    expect(inArchives).toBeGreaterThan(0);
  });
});

describe('an archive run started under the name of one from 90 days ago is summarized by its own outcomes', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'renamed_a', 300);
      await seedEvents(db.client, 'renamed_b', 300);
    },
    [spec('renamed_a'), spec('renamed_b')],
  );

  it('fails the run whose one table recorded nothing, the earlier run’s outcomes still in the lock table', async () => {
    // Prepare: a run under the name archives both tables. Step Functions gives the name again 90 days on; DynamoDB's
    // TTL removes the run's outcomes (90 days) when it gets to it, days late at times: here they are, 91 days old.
    const earlier = await bed.local.workflow({ retryIntervalScale: 0 }).runArchive({}, 'catch-up');
    expect(earlier.status).toBe('SUCCEEDED');
    const ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: bed.local.services.dynamoEndpoint }),
    );
    const longAgo = Date.now() - 91 * DAY_MS;
    for (const outcome of await bed.local.deps().runRecords.listOutcomes('catch-up')) {
      await ddb.send(
        new UpdateCommand({
          TableName: bed.local.services.lockTable,
          Key: { pk: 'RUN#catch-up', sk: `${outcome.database}#${outcome.table}` },
          UpdateExpression: 'SET outcome.finishedAt = :finished, #ttl = :ttl',
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: {
            ':finished': new Date(longAgo).toISOString(),
            ':ttl': Math.floor((longAgo + 90 * DAY_MS) / 1000),
          },
        }),
      );
    }
    ddb.destroy();
    // The name again, for renamed_b alone, whose table execution dies before it records anything (its acquire's
    // answer lost for good): a table the summary must count as failed.
    const summaries: unknown[] = [];
    const workflow = bed.local.workflow({
      retryIntervalScale: 0,
      onStep: (event) => {
        if (event.functionName === 'summary') summaries.push(event.result);
      },
      afterStep: (event) => {
        if (event.functionName === 'lock' && (event.payload as { action?: string }).action === 'acquire')
          throw new Error('the acquire’s answer was lost');
      },
    });

    // Act
    const again = await workflow.runArchive({ tables: ['public.renamed_b'] }, 'catch-up');

    // Assess: the run fails, its one table failed; the earlier run's tables are not its own.
    const summary = summaries.at(-1) as {
      tables: number;
      succeeded: number;
      failed: number;
      perTable: unknown[];
    };
    recordProof({
      kind: 'threat',
      actor: 'execution starter',
      attack:
        'starts an archive run under the name of one from 90 days ago whose outcomes TTL has not yet removed',
      held: again.status === 'FAILED' && summary.failed === 1 && summary.succeeded === 0,
    });
    expect(again.status).toBe('FAILED');
    expect(summary).toMatchObject({ tables: 1, succeeded: 0, failed: 1, perTable: [] });
  });
});
