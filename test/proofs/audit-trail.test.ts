import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validateCommand } from '../../cli/archives.js';
import { auditCommand } from '../../cli/audit.js';
import { clearHold, setHold } from '../../cli/holds.js';
import { lockTable } from '../../lambdas/lock/core.js';
import { ManifestSchema } from '../../lambdas/shared/archive/format.js';
import {
  type AuditEvent,
  auditEventKey,
  auditEventsPrefix,
  listAuditEvents,
} from '../../lambdas/shared/telemetry/audit-trail.js';
import { NotificationSchema } from '../../lambdas/shared/telemetry/notifications.js';
import { NOTIFICATIONS_FILE, runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  getObject,
  leasedTask,
  listKeys,
  putObjects,
  TODAY_UTC_SQL,
} from '../support/fixtures.js';

const spec = (name: string, onSchemaDrift?: 'fail' | 'continue') => ({
  schema: 'public',
  name,
  timestampColumn: 'created_at',
  batchSize: 6,
  ...(onSchemaDrift ? { onSchemaDrift } : {}),
});

/** 20 rows, 4 a day on five days past the 30-day retention: batches of 6 span days, four small batches per run. */
const seedRows = (table: string, from: number) =>
  `INSERT INTO ${table} (created_at, payload)
   SELECT ${TODAY_UTC_SQL} - ((31 + g % 5) * interval '1 day') + interval '1 hour', 'value-' || g FROM generate_series(${from}, ${from + 19}) g`;

describe('audit trail and schema drift through the local workflow', () => {
  // events_fail overrides the default (continue) with fail.
  const bed = archiverTestbed(
    async (db) => {
      for (const name of ['events_continue', 'events_fail']) {
        await db.client.query(
          `CREATE TABLE ${name} (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, payload text)`,
        );
        await db.client.query(seedRows(name, 1));
      }
    },
    [spec('events_continue'), spec('events_fail', 'fail')],
  );
  const store = () => bed.local.deps().store;
  const prefix = () => bed.local.config.s3.prefix;
  const kinds = (events: AuditEvent[]) =>
    events.map((e) => `${e.kind}${e.table ? ` ${e.table}` : ''}`).sort();

  it('records run start and end, the first config, each table outcome, and the would-be notification', async () => {
    // Act
    const { execution } = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const events = await listAuditEvents(store(), prefix(), {});
    expect(kinds(events)).toEqual([
      'config-changed',
      'run-finished',
      'run-started',
      'table-outcome public.events_continue',
      'table-outcome public.events_fail',
    ]);
    const outcome = events.find((e) => e.kind === 'table-outcome' && e.table === 'public.events_continue');
    expect(outcome?.details).toMatchObject({ status: 'succeeded', rowsArchived: 20, batches: 4 });
    expect(events.find((e) => e.kind === 'config-changed')?.details).toMatchObject({ firstRecorded: true });
    expect(JSON.stringify(events)).not.toContain('value-');
    // The events sit in their own area: validate finds nothing stray, and nothing else lives under it.
    const lines: string[] = [];
    const exit = await validateCommand(store(), bed.local.config, { json: false, strict: true }, (l) =>
      lines.push(l),
    );
    expect(lines.join('\n')).not.toContain('_audit');
    expect(exit).toBe(0);
    expect(await listKeys(bed.local, auditEventsPrefix(prefix()))).toHaveLength(events.length);
    // Local mode has no SNS: the summary step wrote the digest it would have published.
    const file = bed.local.env.ARCHIVER_NOTIFICATIONS_FILE ?? '';
    expect(file.endsWith(NOTIFICATIONS_FILE) && existsSync(file)).toBe(true);
    const messages = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => NotificationSchema.parse(JSON.parse(line)))
      .filter((m) => m.runId === execution.executionName);
    expect(messages.map((m) => [m.scope, m.failure])).toEqual([['run', false]]);
    expect(messages[0]?.text).toContain('2 succeeded');
  });

  it('after ALTER TABLE, records the drift; `continue` archives with schemaDrift in the manifest, `fail` stops the table', async () => {
    // Prepare: the next rows arrive after both tables changed shape.
    for (const name of ['events_continue', 'events_fail']) {
      await bed.db.client.query(
        `ALTER TABLE ${name} ADD COLUMN source text, ALTER COLUMN payload TYPE varchar(40)`,
      );
      await bed.db.client.query(seedRows(name, 100));
    }
    // Act
    const { execution, outcomes } = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    // Assess: the run fails because one table did; the other archived its rows.
    expect(execution.status).toBe('FAILED');
    const byTable = Object.fromEntries(outcomes.map((o) => [o.table, o]));
    expect(byTable['public.events_continue']).toMatchObject({ status: 'succeeded', rowsArchived: 20 });
    expect(byTable['public.events_fail']?.status).toBe('failed');
    expect(byTable['public.events_fail']?.error).toMatch(/^SchemaChangedError: .*added source/);
    expect(Number((await bed.db.client.query('SELECT count(*) FROM events_fail')).rows[0].count)).toBe(20);

    const drift = await listAuditEvents(store(), prefix(), {
      kinds: ['schema-drift'],
      since: new Date(Date.now() - 3600_000).toISOString(),
    });
    expect(drift.map((e) => [e.table, e.details.action])).toEqual(
      expect.arrayContaining([
        ['public.events_continue', 'continue'],
        ['public.events_fail', 'fail'],
      ]),
    );
    expect(drift[0]?.details).toMatchObject({
      added: ['source text'],
      retyped: ['payload text -> character varying(40)'],
    });

    // The first manifest after the change says so; the ones after it compare with the new columns.
    const manifests = (await listKeys(bed.local, `${prefix()}app/public.events_continue/`))
      .filter((key) => key.endsWith('.manifest.json'))
      .map(async (key) =>
        ManifestSchema.parse(JSON.parse((await getObject(bed.local, key)).toString('utf8'))),
      );
    const drifted = (await Promise.all(manifests)).filter((m) => m.schemaDrift);
    expect(drifted).toHaveLength(1);
    expect(drifted[0]?.schemaDrift).toMatchObject({
      added: [{ name: 'source', type: 'text' }],
      removed: [],
      retyped: [{ name: 'payload', from: 'text', to: 'character varying(40)' }],
      reordered: false,
    });
  });

  it('records a restore, and the CLI lists events by kind and table', async () => {
    // Act
    const { execution } = await runLocalRestore(bed.local, {
      database: 'app',
      table: 'public.events_continue',
      targetTable: 'public.events_copy',
    });
    const lines: string[] = [];
    await auditCommand(
      store(),
      bed.local.config,
      { kind: ['restore-finished', 'schema-drift'], table: 'public.events_fail', json: false },
      (l) => lines.push(l),
    );
    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const restores = await listAuditEvents(store(), prefix(), { kinds: ['restore-finished'] });
    expect(restores.map((e) => [e.table, e.details.status, e.details.inserted])).toEqual([
      ['public.events_copy', 'succeeded', 40],
    ]);
    expect(lines.join('\n').split('\n')).toHaveLength(1);
    expect(lines[0]).toMatch(/schema-drift +app\/public\.events_fail .*action=fail/);
  });

  it('lists the readable events around planted invalid objects, naming their keys (never their content), and exits 1', async () => {
    // Prepare: under the trail's prefix, one object that is not JSON and one event with a field the format lacks.
    const plantedKey = (kind: string) =>
      auditEventKey(prefix(), {
        time: new Date().toISOString(),
        kind: kind as AuditEvent['kind'],
        id: randomUUID(),
      });
    const notJson = plantedKey('run-started');
    const invalid = plantedKey('table-outcome');
    await putObjects(
      bed.local,
      new Map([
        [notJson, Buffer.from('secret-row-value {')],
        [
          invalid,
          Buffer.from(JSON.stringify({ formatVersion: 1, kind: 'table-outcome', secret: 'row-value' })),
        ],
      ]),
    );
    const readable = await listAuditEvents(store(), prefix(), {}).catch(() => undefined);
    const lines: string[] = [];
    const warnings: string[] = [];
    const json: string[] = [];

    // Act
    const code = await auditCommand(
      store(),
      bed.local.config,
      { json: false },
      (l) => lines.push(l),
      (l) => warnings.push(l),
    );
    const jsonCode = await auditCommand(
      store(),
      bed.local.config,
      { json: true },
      (l) => json.push(l),
      () => undefined,
    );

    // Assess
    expect(readable).toBeUndefined();
    expect([code, jsonCode]).toEqual([1, 1]);
    const listed = lines.join('\n');
    expect(listed).toMatch(/run-started/);
    expect(listed).toMatch(/table-outcome +app\/public\.events_continue/);
    const warned = warnings.join('\n');
    expect(warned).toContain(`${notJson}: not JSON`);
    expect(warned).toContain(`${invalid}: not an audit event`);
    expect(warned).toMatch(/2 audit event objects could not be read/);
    expect(`${listed}\n${warned}`).not.toMatch(/secret|row-value/);
    const events = JSON.parse(json.join('\n')) as AuditEvent[];
    expect(events.map((e) => e.kind)).toContain('run-started');
    expect(events.every((e) => e.formatVersion === 1 && e.id)).toBe(true);
  });
});

describe('the audit trail of a run whose bookkeeping steps each ran twice', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        'CREATE TABLE retried (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, payload text)',
      );
      await db.client.query(seedRows('retried', 1));
    },
    [spec('retried')],
  );

  it('lists each event once when plan, lock and summary each ran again after their first attempt ended', async () => {
    // Prepare: every invocation of the three is made again once the first has ended (its answer lost, as a retry
    // after a timeout would), a few milliseconds later, so the end times they record differ.
    type Invoke = (input: { FunctionName: string; Payload: unknown }) => Promise<unknown>;
    const workflow = bed.local.workflow({ retryIntervalScale: 0 });
    const patched = workflow as unknown as { invokeFunction: Invoke };
    const invoke = patched.invokeFunction.bind(workflow);
    let repeated = 0;
    patched.invokeFunction = async (input) => {
      if (!/audit-archiver-(plan|lock|summary)$/.test(input.FunctionName)) return invoke(input);
      await invoke(input).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 5));
      repeated += 1;
      return invoke(input);
    };

    // Act
    const execution = await workflow.runArchive({});
    const events = await listAuditEvents(bed.local.deps().store, bed.local.config.s3.prefix, {});

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    expect(repeated).toBeGreaterThanOrEqual(4);
    expect(events.map((e) => `${e.kind}${e.table ? ` ${e.table}` : ''}`).sort()).toEqual([
      'config-changed',
      'run-finished',
      'run-started',
      'table-outcome public.retried',
    ]);
  });

  it("a release that meets the held outcome its run's acquire recorded, then archived rows, records its own figures", async () => {
    // Prepare: the acquire recorded the table held (0 rows); the hold was cleared, the retried acquire took the lease
    // and 7 rows were archived; a hold set again stopped the run, so the release finds the table held too.
    const deps = bed.local.deps();
    const runId = 'held-then-archived';
    const startedAt = new Date(Date.now() - 60_000).toISOString();
    await deps.runRecords.recordFirstOutcome(runId, {
      database: 'app',
      table: 'public.retried',
      status: 'held',
      reason: 'legal hold',
      rowsArchived: 0,
      bytesArchived: 0,
      batches: 0,
      budgetReached: false,
      finishedAt: new Date(Date.now() - 50_000).toISOString(),
    });
    const { lease } = await leasedTask(bed.local, 'public.retried', runId);
    await setHold(
      { config: bed.local.config, holds: deps.holds, store: deps.store, actor: 'test-operator' },
      'app',
      'public.retried',
      'case 2025-22',
    );

    // Act
    let released: Awaited<ReturnType<typeof lockTable>>;
    try {
      released = await lockTable(
        {
          action: 'release',
          runId,
          database: 'app',
          table: 'public.retried',
          lease,
          progress: { batches: 2, rows: 7, bytes: 700 },
          budgetReached: false,
          startedAt,
          withdrawnBatches: 0,
        },
        deps,
      );
    } finally {
      await clearHold(
        { config: bed.local.config, holds: deps.holds, store: deps.store, actor: 'test-operator' },
        'app',
        'public.retried',
      );
    }
    const [outcome] = await deps.runRecords.listOutcomes(runId);

    // Assess
    expect(released).toMatchObject({ status: 'held' });
    expect(outcome).toMatchObject({ status: 'held', rowsArchived: 7, batches: 2 });
  });

  it('lists one outcome when two releases of the table ran at once, each with its own clock', async () => {
    // Prepare: a release retried after a timeout while its first invocation still runs: both read the run's outcomes
    // before either records one, and their end times differ.
    const deps = bed.local.deps();
    const runId = 'released-twice-at-once';
    const startedAt = new Date(Date.now() - 60_000).toISOString();
    const { lease } = await leasedTask(bed.local, 'public.retried', runId);
    // Each release's first read of the recorded outcome waits until the other's has been made.
    let reads = 0;
    let bothRead: () => void = () => undefined;
    const barrier = new Promise<void>((resolve) => {
      bothRead = resolve;
    });
    const runRecords: typeof deps.runRecords = Object.create(deps.runRecords);
    runRecords.recordedOutcome = async (...args) => {
      const recorded = await deps.runRecords.recordedOutcome(...args);
      reads += 1;
      if (reads === 2) bothRead();
      if (reads <= 2) await barrier;
      return recorded;
    };
    const release = (clockOffsetMs: number) =>
      lockTable(
        {
          action: 'release',
          runId,
          database: 'app',
          table: 'public.retried',
          lease,
          progress: { batches: 1, rows: 4, bytes: 400 },
          budgetReached: false,
          startedAt,
          withdrawnBatches: 0,
        },
        { ...deps, runRecords, now: () => new Date(Date.now() + clockOffsetMs) },
      );

    // Act
    await Promise.all([release(0), release(1_500)]);
    const events = await listAuditEvents(deps.store, bed.local.config.s3.prefix, {});
    const outcomes = events.filter((e) => e.kind === 'table-outcome' && e.runId === runId);
    const [recorded] = await deps.runRecords.listOutcomes(runId);

    // Assess
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]?.time).toBe(recorded?.finishedAt);
  });
});
