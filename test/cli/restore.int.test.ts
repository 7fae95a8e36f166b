import { SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, describe, expect, it } from 'vitest';
import { HISTORY_PAGE } from '../../cli/execution-history.js';
import { runAwsRestore } from '../../cli/restore.js';
import { runLocalArchive } from '../../local/run.js';
import { stateMachineArn } from '../../local/workflow.js';
import { archiverTestbed, resolvedTable, seedEvents, tableLines } from '../support/fixtures.js';
import { startStepFunctions } from '../support/step-functions.js';

describe('audit-archiver restore (AWS mode): starts the deployed state machine and follows it', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 300, 40);
    },
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );
  let endpoint: Awaited<ReturnType<typeof startStepFunctions>> | undefined;
  afterAll(async () => endpoint?.stop());

  const sfn = async () => {
    endpoint ??= await startStepFunctions((observer) =>
      bed.local.workflow({
        retryIntervalScale: 0,
        onEvent: (execution, event) => observer.onEvent(execution, event),
      }),
    );
    return new SFNClient({
      endpoint: endpoint.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
  };

  it('restores through a real execution, reporting progress, and exits with its status', async () => {
    // Prepare
    const original = await tableLines(
      bed.db.client,
      resolvedTable({ name: 'events', timestampColumn: 'created_at' }),
    );
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const lines: string[] = [];

    // Act
    const outcome = await runAwsRestore(
      await sfn(),
      stateMachineArn('restore'),
      { database: 'app', table: 'public.events' },
      { write: (line) => lines.push(line), pollMs: 20 },
    );
    const refused = await runAwsRestore(
      await sfn(),
      stateMachineArn('restore'),
      { database: 'app', table: 'public.events', strategy: 'fail', ignoreWatermark: true },
      { write: () => undefined, pollMs: 20 },
    );

    // Assess
    expect(outcome.status).toBe('SUCCEEDED');
    expect(outcome.output).toMatchObject({ status: 'succeeded', totals: { failedFiles: 0 } });
    expect(lines[0]).toMatch(/^Started arn:aws:states:.*:execution:audit-archiver-restore:cli-1$/);
    // Progress as groups finish: archives of the plan's total, rows, rate, time left; read from the new events only.
    expect(lines.some((line) => /^ {2}\d+ of \d+ archives, [\d,]+ rows, [\d,]+ rows\/s/.test(line))).toBe(
      true,
    );
    expect(lines.at(-1)).toMatch(/^ {2}\d+ of \d+ archives/);
    expect(outcome.rowsPerSecond).toBeGreaterThan(0);
    const polls = endpoint?.requests.filter((r) => r === 'DescribeExecution').length ?? 0;
    expect(endpoint?.eventsServed()).toBeLessThanOrEqual(
      (endpoint?.historyLength() ?? 0) + polls * HISTORY_PAGE,
    );
    const restored = await tableLines(
      bed.db.client,
      resolvedTable({ name: 'events', timestampColumn: 'created_at' }),
    );
    expect(restored.sort()).toEqual(original.sort());
    expect(refused).toMatchObject({
      status: 'FAILED',
      error: 'RestoreIncompleteError',
      output: {
        status: 'failed',
        failures: expect.arrayContaining([
          { key: expect.any(String), error: expect.stringMatching(/^RestoreConflictError: /) },
        ]),
      },
    });
    expect(endpoint?.requests).toEqual(expect.arrayContaining(['StartExecution', 'DescribeExecution']));
  });
});
