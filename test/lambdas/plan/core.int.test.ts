import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PLAN_BYTES, type PlanDeps, planRun } from '../../../lambdas/plan/core.js';
import { ArchiveStore } from '../../../lambdas/shared/archive/store.js';
import { parseConfig } from '../../../lambdas/shared/config/config.js';
import type { ArchiverConfig } from '../../../lambdas/shared/config/schema.js';
import { ConfigError } from '../../../lambdas/shared/errors/step-errors.js';
import { LeaseStore } from '../../../lambdas/shared/lock-table/lease-store.js';
import { LegalHolds } from '../../../lambdas/shared/lock-table/legal-holds.js';
import { RunRecords } from '../../../lambdas/shared/lock-table/run-records.js';
import { LockTableClient } from '../../../lambdas/shared/lock-table/table-client.js';
import { type LocalServices, startLocalServices } from '../../../local/services.js';

const silent = {
  info: () => undefined,
  warn: () => undefined,
  metric: () => undefined,
  runMetric: () => undefined,
};

// Plan writes its run-started event and the config fingerprint into a local S3 and DynamoDB; what they hold is
// checked in test/proofs/audit-trail.test.ts, here only the plan is.
let services: LocalServices | undefined;
let dir = '';
let recording: Omit<PlanDeps, 'config'> | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plan-test-'));
  services = await startLocalServices(dir, 'plan-test');
  const region = 'us-east-1';
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const s3 = new S3Client({
    endpoint: services.s3Endpoint,
    forcePathStyle: true,
    region,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  const lockTable = new LockTableClient(
    DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: services.dynamoEndpoint, region, credentials }),
      {
        marshallOptions: { removeUndefinedValues: true },
      },
    ),
    services.lockTable,
  );
  recording = {
    store: new ArchiveStore(s3, services.bucket),
    locks: new LeaseStore(lockTable),
    holds: new LegalHolds(lockTable),
    runRecords: new RunRecords(lockTable),
    database: () => Promise.reject(new Error('only a dry run reads the database')),
    telemetry: silent,
    now: () => new Date('2025-03-10T12:00:00.000Z'),
  };
});

afterAll(async () => {
  await services?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function depsWith(config: ArchiverConfig): PlanDeps {
  if (!recording) throw new Error('local services are not started');
  return { ...recording, config };
}

function depsFor(tablesPerDb: number[], maxConnections = 2): PlanDeps {
  const config = parseConfig({
    s3: { bucket: 'bucket' },
    defaults: { retentionDays: 10 },
    databases: tablesPerDb.map((count, d) => ({
      name: `db${d}`,
      credentials: { url: `postgres://u:p@h/db${d}` },
      maxConnections,
      tables: Array.from({ length: count }, (_, t) => ({
        schema: 'audit',
        name: `table_number_${t}`,
        timestampColumn: 'created_at',
        ...(t === 0 ? { retentionDays: 1 } : {}),
      })),
    })),
  });
  return depsWith(config);
}

const START = '2025-03-10T12:00:00.000Z';

describe('plan', () => {
  it('deals each database into at most maxConnections lanes and computes cut-offs from the UTC day of the start time', async () => {
    // Act
    const plan = await planRun({ request: {}, runId: 'run-1', startTime: START }, depsFor([5, 1], 2));

    // Assess
    expect(plan.tableCount).toBe(6);
    expect(plan.lanes.map((l) => [l.database, l.tables.length])).toEqual([
      ['db0', 3],
      ['db0', 2],
      ['db1', 1],
    ]);
    expect(plan.lanes[0]?.tables[0]).toEqual({
      table: 'audit.table_number_0',
      cutoff: '2025-03-09T00:00:00.000Z',
      n: 0,
    });
    expect(plan.lanes[1]?.tables[0]).toEqual({
      table: 'audit.table_number_1',
      cutoff: '2025-02-28T00:00:00.000Z',
      n: 1,
    });
    // Each table's child execution is named by the run and the table's place in it: one name per table.
    const names = plan.lanes.flatMap((l) => l.tables.map((t) => `${plan.childKey}-${t.n}`));
    expect(new Set(names).size).toBe(6);
    expect(plan.childKey).toMatch(/^[0-9a-f]{32}$/);
  });

  it('names the children of a run started again under its name (Step Functions gives it again after 90 days) apart', async () => {
    // Prepare: one table, planned twice by one execution (a retried Plan), and once by a later one of the same name.
    const config = parseConfig({
      s3: { bucket: 'bucket' },
      databases: [
        {
          name: 'app',
          credentials: { url: 'postgres://u:p@h/app' },
          tables: [{ schema: 'audit', name: 'events', timestampColumn: 'created_at' }],
        },
      ],
    });
    const later = new Date(Date.parse(START) + 91 * 86_400_000).toISOString();

    // Act
    const first = await planRun({ request: {}, runId: 'catch-up', startTime: START }, depsWith(config));
    const retried = await planRun({ request: {}, runId: 'catch-up', startTime: START }, depsWith(config));
    const again = await planRun({ request: {}, runId: 'catch-up', startTime: later }, depsWith(config));

    // Assess: a retry finds the child it started; the later run does not meet the earlier run's (ended) children,
    // which Step Functions keeps for 90 days after they end, so past the parent's own name.
    expect(retried.childKey).toBe(first.childKey);
    expect(again.childKey).not.toBe(first.childKey);
  });

  it('records the child it starts for each table, whatever the database is named (constructor, toString)', async () => {
    // Prepare: names a config allows that are also members every plain object inherits
    const config = parseConfig({
      s3: { bucket: 'bucket' },
      databases: ['constructor', 'toString'].map((name) => ({
        name,
        credentials: { url: `postgres://u:p@h/${name}` },
        tables: [{ schema: 'audit', name: 'events', timestampColumn: 'created_at' }],
      })),
    });

    // Act
    const plan = await planRun({ request: {}, runId: 'run-named', startTime: START }, depsWith(config));
    const { runRecords } = depsWith(config);

    // Assess
    expect(await runRecords.childOf('run-named', 'constructor', 'audit.events')).toBe(`${plan.childKey}-0`);
    expect(await runRecords.childOf('run-named', 'toString', 'audit.events')).toBe(`${plan.childKey}-1`);
    expect(await runRecords.childOf('run-named', 'constructor', 'audit.other')).toBeNull();
    expect(await runRecords.childOf('run-by-hand', 'constructor', 'audit.events')).toBeUndefined();
  });

  it('applies database and table filters from the execution input', async () => {
    // Act
    const plan = await planRun(
      { request: { database: 'db0', tables: ['audit.table_number_3'] }, runId: 'r', startTime: START },
      depsFor([5, 1]),
    );

    // Assess
    expect(plan.lanes).toEqual([
      { database: 'db0', tables: [{ table: 'audit.table_number_3', cutoff: expect.any(String), n: 0 }] },
    ]);
  });

  it('plans a table named in the input in every database that lists it', async () => {
    // Act: both databases list audit.table_number_1.
    const plan = await planRun(
      { request: { tables: ['audit.table_number_1'] }, runId: 'r', startTime: START },
      depsFor([3, 2]),
    );

    // Assess
    expect(plan.lanes).toEqual([
      { database: 'db0', tables: [{ table: 'audit.table_number_1', cutoff: expect.any(String), n: 0 }] },
      { database: 'db1', tables: [{ table: 'audit.table_number_1', cutoff: expect.any(String), n: 1 }] },
    ]);
    expect(plan.tableCount).toBe(2);
  });

  it.each([
    [{ database: 'nope' }, /database "nope" is not in the config/],
    [{ tables: ['audit.nope'] }, /tables not in the config: audit\.nope$/],
    // A name without its schema, under another schema or in another case: the configured tables of that name.
    [
      { tables: ['table_number_1', 'audit.nope'] },
      /tables not in the config: table_number_1 \(did you mean audit\.table_number_1\?\), audit\.nope$/,
    ],
    [
      { tables: ['public.table_number_0'] },
      /public\.table_number_0 \(did you mean audit\.table_number_0\?\)$/,
    ],
    [{ tables: ['AUDIT.Table_Number_1'] }, /AUDIT\.Table_Number_1 \(did you mean audit\.table_number_1\?\)$/],
    [{ tabels: [] }, /execution input is invalid:\n\(root\): Unrecognized key: "tabels"/],
  ])('refuses the input %j with a clear error', async (request, message) => {
    await expect(planRun({ request, runId: 'r', startTime: START }, depsFor([2]))).rejects.toThrow(message);
  });

  it('plans 1000 tables within the payload budget', async () => {
    // Act
    const plan = await planRun(
      { request: {}, runId: 'r', startTime: START },
      depsFor([250, 250, 250, 250], 4),
    );

    // Assess
    expect(plan.tableCount).toBe(1000);
    expect(plan.lanes).toHaveLength(16);
    expect(Buffer.byteLength(JSON.stringify(plan))).toBeLessThan(MAX_PLAN_BYTES);
  });
});

describe('plan: retention policy and encryption at run time', () => {
  /** A valid config changed after validation, as a function could receive it (an older bundle, a hand edit). */
  function depsWithPolicy(change: (config: ArchiverConfig) => void): PlanDeps {
    const config = parseConfig({
      s3: { bucket: 'bucket' },
      defaults: { retentionDays: 90 },
      policy: { minRetentionDays: 30, classifications: { payments: { requireKms: true } } },
      databases: [
        {
          name: 'db0',
          credentials: { url: 'postgres://u:p@h/db' },
          tables: [{ schema: 'audit', name: 'events', timestampColumn: 'created_at' }],
        },
      ],
    });
    change(config);
    return depsWith(config);
  }

  it('refuses a table whose retention is below the policy minimum, naming table, retention and bound', async () => {
    // Prepare
    const deps = depsWithPolicy((config) => {
      const table = config.databases[0]?.tables[0];
      if (table) table.retentionDays = 7;
    });

    // Act
    const planning = planRun({ request: {}, runId: 'r', startTime: START }, deps);

    // Assess
    await expect(planning).rejects.toThrow(ConfigError);
    await expect(planning).rejects.toThrow(
      'policy refuses db0/audit.events: db0/audit.events: retentionDays 7 is below the policy minimum of 30 days',
    );
  });

  it('refuses a table whose classification requires KMS when no kmsKeyId is configured', async () => {
    // Prepare
    const deps = depsWithPolicy((config) => {
      const table = config.databases[0]?.tables[0];
      if (table) table.classification = 'payments';
    });

    // Act / Assess
    await expect(planRun({ request: {}, runId: 'r', startTime: START }, deps)).rejects.toThrow(
      'db0/audit.events requires SSE-KMS archives (classification payments has requireKms): set s3.kmsKeyId',
    );
  });
});
