import { describe, expect, it } from 'vitest';
import type { StepEvent } from '../../../local/workflow.js';
import { archiverTestbed, seedEvents } from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';
import { InjectedCrash } from './support.js';

const quick = { schema: 'public', name: 'quick', timestampColumn: 'created_at' };
const slow = { schema: 'public', name: 'slow', timestampColumn: 'created_at', batchSize: 20 };

/**
 * The parent's ArchiveTable Task (`states:startExecution.sync:2`) retries StepFunctions.AWSStepFunctionsException and
 * StepFunctions.SdkClientException: a StartExecution that was carried out but answered with such an error (a timeout,
 * a throttled poll) is retried. Started without a `Name`, the retry was a second child of the same table in the same
 * run: it found the lease held by its twin, recorded the table as `skipped`, and the Map took that answer at once; the
 * first child's failure came after the summary, and the run succeeded. Named by the run and the table, the retry
 * finds the child it started, and waits for its end.
 */
describe('a child execution’s StartExecution retried after it was carried out', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'quick', 100, 40);
      await seedEvents(db.client, 'slow', 100, 40);
    },
    [quick, slow],
  );

  it('starts no second child for the table, and its failure fails the run', async () => {
    // Prepare: StartExecution of the slow table's child is carried out, then answered with an error, once; that
    // table's delete fails.
    const locks = bed.local.deps().locks;
    const afterStep = async (event: StepEvent) => {
      if (event.functionName === 'delete' && (event.payload as { table: string }).table === 'public.slow')
        throw new InjectedCrash('the table fails');
    };
    const workflow = bed.local.workflow({ retryIntervalScale: 0, afterStep });
    type ChildStart = (input: { Name?: string; Input: { table: string } }) => Promise<unknown>;
    const patched = workflow as unknown as { startChildExecution: ChildStart };
    const start = patched.startChildExecution.bind(workflow);
    const names: (string | undefined)[] = [];
    patched.startChildExecution = async (input) => {
      if (input.Input.table !== 'public.slow') return start(input);
      names.push(input.Name);
      const child = start(input);
      if (names.length > 1) return child;
      child.catch(() => undefined);
      for (let i = 0; i < 200 && !(await locks.get('app', 'public.slow')).owner; i += 1)
        await new Promise((resolve) => setTimeout(resolve, 25));
      const error = new Error('Rate exceeded');
      error.name = 'StepFunctions.AWSStepFunctionsException';
      throw error;
    };

    // Act
    const execution = await workflow.runArchive({});
    const outcomes = await bed.local.deps().runRecords.listOutcomes(execution.executionName);

    // Assess
    const observed = {
      starts: names.length,
      sameName: names[0] !== undefined && names[0] === names[1],
      outcomes: outcomes.map((o) => `${o.table} ${o.status}`).sort(),
      status: execution.status,
    };
    const expected = {
      starts: 2,
      sameName: true,
      outcomes: ['public.quick succeeded', 'public.slow failed'],
      status: 'FAILED',
    };
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack: 'a child execution’s StartExecution retried after it was carried out, the table then failing',
      held: JSON.stringify(observed) === JSON.stringify(expected),
    });
    expect(observed).toEqual(expected);
  });
});
