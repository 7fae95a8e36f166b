import { describe, expect, it } from 'vitest';
import type { LocalEnvironment } from '../../../local/run.js';
import type { LocalWorkflow } from '../../../local/workflow.js';
import {
  archiverTestbed,
  compareRows,
  fixedCutoffSql,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';

type Invoke = (input: { FunctionName: string; Payload: unknown }) => Promise<unknown>;

/**
 * Every invocation of the named functions is made twice at once, as Lambda's at-least-once delivery may: the state
 * machine goes on with whichever answers first (an error only if both fail), the other runs on beside the next
 * steps. `pending` holds the ones left running.
 */
function atLeastOnce(
  local: LocalEnvironment,
  names: string[],
  options: Parameters<LocalEnvironment['workflow']>[0] = {},
  answer: 'first' | 'retry' = 'first',
): { workflow: LocalWorkflow; pending: Promise<unknown>[]; duplicated: () => number; answered: string[] } {
  const workflow = local.workflow(options);
  const patched = workflow as unknown as { invokeFunction: Invoke };
  const invoke = patched.invokeFunction.bind(workflow);
  const pending: Promise<unknown>[] = [];
  let duplicated = 0;
  /** The errors the state machine was answered with, by function. */
  const answered: string[] = [];
  patched.invokeFunction = (input) => {
    if (!names.some((name) => input.FunctionName.endsWith(`audit-archiver-${name}`))) return invoke(input);
    duplicated += 1;
    const both = [invoke(input), invoke(input)];
    pending.push(...both.map((p) => p.catch(() => undefined)));
    // The answer of the retry: the first attempt's was lost, the retry ran beside it
    if (answer === 'retry')
      return Promise.allSettled(both).then(() =>
        (both[1] as Promise<unknown>).catch((error: Error) => {
          answered.push(
            `${input.FunctionName.split('audit-archiver-').pop()}: ${error.name}: ${error.message}`,
          );
          throw error;
        }),
      );
    return Promise.any(both).catch((error: AggregateError) => {
      throw error.errors[0];
    });
  };
  return { workflow, pending, duplicated: () => duplicated, answered };
}

const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at', batchSize: 9 });

describe('every archive step invoked twice at once, the state machine taking the first answer', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'twice', 150, 45), [spec('twice')]);

  it('archives every eligible row once, and the run succeeds', async () => {
    const table = resolvedTable(spec('twice'));
    const original = await tableLines(bed.db.client, table);
    const cutoff = await fixedCutoffSql(bed.db.client);
    const { workflow, pending, duplicated } = atLeastOnce(
      bed.local,
      ['export', 'upload', 'verify', 'delete'],
      {
        retryIntervalScale: 0,
      },
    );
    const execution = await workflow.runArchive({});
    await Promise.all(pending);
    const outcomes = await bed.local.deps().runRecords.listOutcomes(execution.executionName);
    const again = await bed.local.workflow({ retryIntervalScale: 0 }).runArchive({});
    const left = (
      await bed.db.client.query(`SELECT count(*)::int AS n FROM public.twice WHERE created_at < ${cutoff}`)
    ).rows[0].n as number;
    const { lost, doubled, extra } = compareRows(original, [
      ...(await tableLines(bed.db.client, table)),
      ...(await readLiveArchives(bed.local, 'public', 'twice', bed.db.client)).flatMap((a) => a.lines),
    ]);

    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack:
        'every export, upload, verify and delete invoked twice at once, the run going on with the first answer',
      held: lost === 0 && doubled === 0 && extra === 0 && left === 0 && execution.status === 'SUCCEEDED',
    });
    expect(duplicated()).toBeGreaterThan(4);
    expect({ lost, doubled, extra, left }).toEqual({ lost: 0, doubled: 0, extra: 0, left: 0 });
    expect({
      status: execution.status,
      outcomes: outcomes.map((o) => `${o.status} ${o.error ?? ''}`.trim()),
      again: again.status,
    }).toEqual({ status: 'SUCCEEDED', outcomes: ['succeeded'], again: 'SUCCEEDED' });
  });
});

describe('every archive step invoked twice at once, the state machine taking the retry’s answer', () => {
  const bed = archiverTestbed(async (db) => seedEvents(db.client, 'retried', 150, 45), [spec('retried')]);

  it('archives every eligible row once, and the run succeeds', async () => {
    const table = resolvedTable(spec('retried'));
    const original = await tableLines(bed.db.client, table);
    const { workflow, pending, answered } = atLeastOnce(
      bed.local,
      ['export', 'upload', 'verify', 'delete'],
      { retryIntervalScale: 0 },
      'retry',
    );
    const execution = await workflow.runArchive({});
    await Promise.all(pending);
    const outcomes = await bed.local.deps().runRecords.listOutcomes(execution.executionName);
    const { lost, doubled, extra } = compareRows(original, [
      ...(await tableLines(bed.db.client, table)),
      ...(await readLiveArchives(bed.local, 'public', 'retried', bed.db.client)).flatMap((a) => a.lines),
    ]);

    // A delete that finds its twin deleting answers DeleteInProgressError, which the state machine retries by design.
    const unexpected = answered.filter((a) => !a.startsWith('delete: DeleteInProgressError: '));
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack:
        'every export, upload, verify and delete invoked twice at once, the run going on with the second answer (the first one lost)',
      held:
        lost === 0 &&
        doubled === 0 &&
        extra === 0 &&
        unexpected.length === 0 &&
        execution.status === 'SUCCEEDED',
    });
    expect({ lost, doubled, extra }).toEqual({ lost: 0, doubled: 0, extra: 0 });
    expect({
      answeredWithErrors: unexpected,
      status: execution.status,
      outcomes: outcomes.map((o) => `${o.status} ${o.error ?? ''}`.trim()),
    }).toEqual({ answeredWithErrors: [], status: 'SUCCEEDED', outcomes: ['succeeded'] });
  });
});

describe('every restore-file invocation made twice at once', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'restored', 150, 45);
      await db.client.query('CREATE TABLE public.restored_copy (LIKE public.restored INCLUDING ALL)');
    },
    [spec('restored')],
  );

  it('restores every archived row once and reports what it wrote', async () => {
    expect((await bed.local.workflow({ retryIntervalScale: 0 }).runArchive({})).status).toBe('SUCCEEDED');
    const archived = (await readLiveArchives(bed.local, 'public', 'restored')).flatMap((a) => a.lines);
    for (const strategy of ['skip', 'fail'] as const) {
      await bed.db.client.query('TRUNCATE public.restored_copy');
      const { workflow, pending } = atLeastOnce(bed.local, ['restore-file'], { retryIntervalScale: 0 });
      const execution = await workflow.runRestore({
        database: 'app',
        table: 'public.restored',
        targetTable: 'public.restored_copy',
        strategy,
      });
      await Promise.all(pending);
      const results = await bed.local.deps().restoreRecords.listResults(execution.executionName);
      const copied = await tableLines(bed.db.client, resolvedTable(spec('restored_copy')));
      recordProof({
        kind: 'threat',
        actor: 'invocation',
        attack: `every restore-file invocation made twice at once (strategy ${strategy})`,
        held:
          execution.status === 'SUCCEEDED' && copied.sort().join('\n') === [...archived].sort().join('\n'),
      });
      expect(copied.sort()).toEqual([...archived].sort());
      expect({
        strategy,
        status: execution.status,
        error: execution.error?.name,
        inserted: results.reduce((n, r) => n + r.inserted, 0),
        failed: results.filter((r) => r.status === 'failed').map((r) => r.error),
      }).toEqual({ strategy, status: 'SUCCEEDED', error: undefined, inserted: archived.length, failed: [] });
    }
  });
});
