/**
 * The server ends the functions' connection at a statement they send, one execution per place of their statements
 * (statementPlaces): wherever it is, the step fails as the database's outage, is retried, and the execution ends with
 * every row where it belongs, once. The places are read from an execution run first without a fault, so a statement
 * the steps add later is swept too; each place is swept once, not each of its repeats (sweptPlaces).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import { connectionEndedAt, statementPlaces } from '../support/connection-killer.js';
import {
  archiverTestbed,
  assertNoLossNoDuplicates,
  compareRows,
  type LiveArchive,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { interceptingStatements, statementText } from '../support/intercepted.js';
import { recordProof } from '../support/proof-ledger.js';

/** Tables made for the archive's sweep: more than the places it sweeps. */
const SWEPT_TABLES = 60;
const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at', batchSize: 4 });
const swept = (n: number) => `swept_${n}`;

/** A statement's text with what varies between executions left out: the names of the tables, numbers, literals. */
function statementKind(statement: unknown): string {
  return (statementText(statement) ?? '')
    .replace(/'(?:[^']|'')*'/g, "''")
    .replace(/"(?:swept|fail|overwrite)_\w+"/g, '"table"')
    .replace(/\d+/g, '0')
    .replace(/\s+/g, ' ')
    .slice(0, 200);
}

/** Longer than any execution of these takes, retries included, on a busy machine. */
const EXECUTION_BOUND_MS = 60_000;

/** An execution, failed once it has run past EXECUTION_BOUND_MS: a step that waits forever fails the sweep at once. */
async function bounded<T>(execution: Promise<T>, at: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${at()}: the execution did not end in ${EXECUTION_BOUND_MS / 1000} s`)),
      EXECUTION_BOUND_MS,
    );
  });
  try {
    return await Promise.race([execution, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What went wrong in one execution of a sweep, each line naming the place: it did not succeed, no connection was
 * ended (the execution never reached the place), a step failed otherwise than as the database's outage, or its rows.
 */
function sweepProblems(
  at: string,
  status: string,
  ended: string | undefined,
  errors: string[],
  rows: string[],
): string[] {
  const unexpected = errors.filter((e) => !e.endsWith(':DatabaseUnavailableError'));
  return [
    ...(status === 'SUCCEEDED' ? [] : [`execution ${status}`]),
    ...(ended === undefined ? ['no connection ended'] : []),
    ...(unexpected.length > 0 ? [unexpected.join(', ')] : []),
    ...rows,
  ].map((problem) => `${at}: ${problem}`);
}

/** The errors of an execution's steps, as `function:ErrorName`. */
function stepErrors(): { errors: string[]; onStep: (event: StepEvent) => void } {
  const errors: string[] = [];
  return {
    errors,
    onStep: (event) => event.error && errors.push(`${event.functionName}:${event.error.name}`),
  };
}

describe('a connection the server ends at any statement: retried, nothing lost or doubled', () => {
  // 3 rows a day over 33 days: about 9 eligible rows on 3 days, in batches of 4 (a batch ends mid-day).
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'source', 99, 33);
      for (let n = 0; n <= SWEPT_TABLES; n++) await seedEvents(db.client, swept(n), 99, 33);
    },
    [spec('source'), ...Array.from({ length: SWEPT_TABLES + 1 }, (_, n) => spec(swept(n)))],
    // One connection: every statement comes on it, one at a time, so an execution reaches the same places each time.
    { maxConnections: 1 },
  );
  let archives: LiveArchive[] = [];

  beforeAll(async () => {
    const run = await runLocalArchive(bed.local, { tables: ['public.source'] }, { retryIntervalScale: 0 });
    if (run.execution.status !== 'SUCCEEDED') throw new Error('archiving the material failed');
    archives = await readLiveArchives(bed.local, 'public', 'source');
    if (archives.length < 3) throw new Error(`only ${archives.length} archives to restore`);
  });

  /**
   * The places to end the connection at (statementPlaces), in the order an execution run first without a fault reached
   * them: every place in the steps' code, each once rather than each of its repeats (a restore writes every archive
   * alike).
   */
  async function sweptPlaces(execute: (deps: (deps: StepDeps) => StepDeps) => Promise<unknown>) {
    const placeOf = statementPlaces(statementKind);
    const places = new Set<string>();
    let sent = 0;
    await execute((deps) =>
      interceptingStatements(deps, (client, args, send) => {
        sent += 1;
        places.add(placeOf(client, args[0]));
        return send();
      }),
    );
    return { sent, places: [...places] };
  }

  it('archive of three batches: each place of its statements', { timeout: 900_000 }, async () => {
    // Prepare
    const { sent, places } = await sweptPlaces((deps) =>
      runLocalArchive(bed.local, { tables: [`public.${swept(0)}`] }, { retryIntervalScale: 0, deps }),
    );
    expect(sent).toBeGreaterThan(20);
    expect(places.length).toBeLessThanOrEqual(SWEPT_TABLES);
    const failures: string[] = [];

    // Act: execution n ends the connection at its nth statement.
    for (const [i, place] of places.entries()) {
      const table = resolvedTable(spec(swept(i + 1)));
      const original = await tableLines(bed.db.client, table);
      const fault = connectionEndedAt(place, statementKind, bed.db.client);
      const { errors, onStep } = stepErrors();
      const at = () => `at ${place.slice(0, 160)}`;
      const run = await bounded(
        runLocalArchive(
          bed.local,
          { tables: [`public.${table.name}`] },
          { retryIntervalScale: 0, deps: fault.deps, onStep },
        ),
        at,
      );
      const counts = await assertNoLossNoDuplicates(bed.local, bed.db.client, table, original).catch(
        (error: Error) => error.message,
      );
      const rows =
        typeof counts === 'string'
          ? [counts]
          : counts.inDatabase === original.length
            ? ['nothing archived']
            : [];
      failures.push(...sweepProblems(at(), run.execution.status, fault.ended(), errors, rows));
    }

    // Assess
    expect(failures).toEqual([]);
    recordProof({
      kind: 'fault',
      point: `archive: connection ended at each of ${places.length} places of ${sent} statements`,
      iteration: 0,
    });
  });

  for (const { strategy, what } of [
    { strategy: 'fail', what: 'into a new table' },
    { strategy: 'overwrite', what: 'over every key, whose values differ (the reference path)' },
  ] as const)
    it(`restore ${what}: each place of its statements`, { timeout: 900_000 }, async () => {
      // Prepare
      const lines = archives.flatMap((a) => a.lines);
      // Under overwrite, each target starts as a copy of one holding every archived key with other values.
      if (strategy === 'overwrite') {
        const first = await runLocalRestore(
          bed.local,
          { database: 'app', table: 'public.source', targetTable: 'public.changed' },
          { retryIntervalScale: 0 },
        );
        if (first.execution.status !== 'SUCCEEDED') throw new Error('the first restore failed');
        await bed.db.client.query(`UPDATE public.changed SET actor = 'changed since'`);
      }
      const restore = async (
        target: string,
        deps?: (deps: StepDeps) => StepDeps,
        onStep?: (event: StepEvent) => void,
      ) => {
        if (strategy === 'overwrite')
          await bed.db.client.query(
            `CREATE TABLE public.${target} (LIKE public.changed INCLUDING ALL);
           INSERT INTO public.${target} SELECT * FROM public.changed`,
          );
        return runLocalRestore(
          bed.local,
          { database: 'app', table: 'public.source', targetTable: `public.${target}`, strategy },
          { retryIntervalScale: 0, deps, onStep },
        );
      };
      const { sent, places } = await sweptPlaces((deps) => restore(`${strategy}_counted`, deps));
      expect(sent).toBeGreaterThan(20);
      const failures: string[] = [];

      // Act
      for (const [i, place] of places.entries()) {
        const target = `${strategy}_${i + 1}`;
        const fault = connectionEndedAt(place, statementKind, bed.db.client);
        const { errors, onStep } = stepErrors();
        const at = () => `at ${place.slice(0, 160)}`;
        const run = await bounded(restore(target, fault.deps, onStep), at);
        const found = compareRows(lines, await tableLines(bed.db.client, resolvedTable(spec(target))));
        recordProof({ kind: 'invariant', rows: lines.length, lost: found.lost, doubled: found.doubled });
        const rows = found.lost + found.doubled + found.extra > 0 ? [JSON.stringify(found)] : [];
        failures.push(...sweepProblems(at(), run.execution.status, fault.ended(), errors, rows));
      }

      // Assess
      expect(failures).toEqual([]);
      recordProof({
        kind: 'fault',
        point: `restore (${strategy}): connection ended at each of ${places.length} places of ${sent} statements`,
        iteration: 0,
      });
    });
});
