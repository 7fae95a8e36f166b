import { Readable, Transform } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ArchiveStore } from '../../lambdas/shared/archive/store.js';
import { LockStoreUnavailableError } from '../../lambdas/shared/errors/step-errors.js';
import type { FaultPoint, StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { runLocalArchive, runLocalRestore, type WorkflowOptions } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import {
  archiverTestbed,
  compareRows,
  getObject,
  type LiveArchive,
  readLiveArchives,
  resolvedTable,
  seedEvents,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

/**
 * Passes the first `bytes` of a body on, then fails it: a read cut off in the middle of an archive. `reading`: the
 * connection breaks as the reader gets there (nothing moves before it reads); `waiting`: it breaks at once, while
 * the body waits to be read (restore opens the next archive's object ahead).
 */
function cutShort(body: Readable, bytes: number, when: 'reading' | 'waiting'): Readable {
  if (when === 'reading') {
    return Readable.from(
      (async function* () {
        let passed = 0;
        for await (const chunk of body as AsyncIterable<Buffer>) {
          if (passed + chunk.length < bytes) {
            passed += chunk.length;
            yield chunk;
            continue;
          }
          yield chunk.subarray(0, bytes - passed);
          throw new InjectedCrash('connection lost in the middle of the archive');
        }
      })(),
      { objectMode: false },
    );
  }
  let passed = 0;
  const cut = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (passed + chunk.length < bytes) {
        passed += chunk.length;
        return callback(null, chunk);
      }
      this.push(chunk.subarray(0, bytes - passed));
      passed = bytes;
      callback(new InjectedCrash('connection lost while the object waited to be read'));
    },
  });
  body.on('error', (error) => cut.destroy(error));
  return body.pipe(cut);
}

/** Dependencies whose store cuts reads of `key` short, `times` times (Infinity: always). */
function cutReadsOf(
  key: string,
  bytes: number,
  times: number,
  when: 'reading' | 'waiting' = 'reading',
): (deps: StepDeps) => StepDeps {
  let cuts = 0;
  return (deps) => {
    const store = Object.create(deps.store) as ArchiveStore;
    store.getStream = async (requested) => {
      const body = await deps.store.getStream(requested);
      if (requested !== key || !body || cuts >= times) return body;
      cuts += 1;
      return cutShort(body, bytes, when);
    };
    return { ...deps, store };
  };
}

/** Whether a watermark write is the one after a group's COMMIT (the one before names the transaction). */
const afterCommit = (marks: { mark: { commit?: unknown } }[]) => marks.every(({ mark }) => !mark.commit);

/** The functions' deps, but the lock table refuses the second watermark write made after a group's COMMIT, once. */
function failingSecondMarkAfterCommit(): (deps: StepDeps) => StepDeps {
  let writes = 0;
  return (deps) => {
    const restoreRecords = Object.create(deps.restoreRecords) as StepDeps['restoreRecords'];
    restoreRecords.markAllRestored = async (...args) => {
      if (afterCommit(args[2]) && ++writes === 2)
        throw new LockStoreUnavailableError('lock table unavailable (injected)');
      return deps.restoreRecords.markAllRestored(...args);
    };
    return { ...deps, restoreRecords };
  };
}

/** The steps' errors as `function:ErrorName`, in order, and the listener that collects them. */
function stepErrors(): { errors: string[]; onStep: (event: StepEvent) => void } {
  const errors: string[] = [];
  return {
    errors,
    onStep: (event) => {
      if (event.error) errors.push(`${event.functionName}:${event.error.name}`);
    },
  };
}

describe('restore under faults: no archive restored twice or in part', () => {
  let archives: LiveArchive[] = [];
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    // 36 days of rows: 6 eligible days, so 6 archives.
    async (db) => seedEvents(db.client, 'events', 720, 36),
    [spec('events')],
  );

  beforeAll(async () => {
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    if (run.execution.status !== 'SUCCEEDED') throw new Error('archiving the material failed');
    archives = (await readLiveArchives(bed.local, 'public', 'events')).sort((a, b) =>
      a.key.localeCompare(b.key),
    );
    if (archives.length < 5) throw new Error(`only ${archives.length} archives to restore`);
  });

  /** Restores every archive of `events` into `target`; each row must then be there exactly once, and is recorded. */
  const restore = (target: string, options: WorkflowOptions = {}, request: Record<string, unknown> = {}) =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', targetTable: `public.${target}`, ...request },
      { retryIntervalScale: 0, ...options },
    );
  async function rowsIn(target: string, expected: string[]) {
    const present = await tableLines(bed.db.client, resolvedTable(spec(target)));
    const found = compareRows(expected, present);
    recordProof({ kind: 'invariant', rows: expected.length, lost: found.lost, doubled: found.doubled });
    return { ...found, present: present.length };
  }
  const allLines = () => archives.flatMap((a) => a.lines);

  it('a crash after a group COMMITs but before its watermarks: the group retried is answered by the marks written before its COMMIT; a re-run skips every archive', async () => {
    // Prepare: the second group to commit crashes before its watermarks are written.
    let commits = 0;
    let crashedGroup: string[] = [];
    const fault = (point: FaultPoint) => {
      if (point === 'restore:afterCommit' && ++commits === 2) throw new InjectedCrash('crash after COMMIT');
    };
    const onStep = (event: StepEvent) => {
      if (event.functionName === 'restore-file' && event.error?.name === 'InjectedCrash')
        crashedGroup = (event.payload as { archives: { key: string }[] }).archives.map((a) => a.key);
    };

    // Act
    const first = await restore('after_commit', { fault, onStep });
    const between = await rowsIn('after_commit', allLines());
    const rerun = await restore('after_commit', {}, { strategy: 'skip' });
    const after = await rowsIn('after_commit', allLines());

    // Assess: the crashed group's rows were committed once, and its retry reports them as inserted, from the marks
    // its transaction wrote before COMMIT (none met again as skipped); no row is there twice or missing.
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(first.results.every((r) => r.status === 'restored')).toBe(true);
    expect(crashedGroup.length).toBeGreaterThan(0);
    expect(first.results.filter((r) => r.skipped > 0)).toEqual([]);
    expect(first.results.reduce((n, r) => n + r.inserted, 0)).toBe(allLines().length);
    expect(between).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    expect(rerun.execution.status).toBe('SUCCEEDED');
    expect(rerun.results.every((r) => r.status === 'already-restored')).toBe(true);
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    recordProof({ kind: 'fault', point: 'restore: crash after COMMIT, before the watermark', iteration: 0 });
  });

  it('a crash inside a group, its rows written but before its COMMIT: the group rolls back and its retry writes them once', async () => {
    // Prepare: the first group dies once it has written every archive, before its watermarks and COMMIT.
    let crashed = false;
    const fault = (point: FaultPoint) => {
      if (point !== 'restore:beforeCommit' || crashed) return;
      crashed = true;
      throw new InjectedCrash('crash before COMMIT');
    };

    // Act
    const first = await restore('before_commit', { fault });
    const after = await rowsIn('before_commit', allLines());

    // Assess
    expect(crashed).toBe(true);
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(first.results.every((r) => r.status === 'restored')).toBe(true);
    expect(first.results.reduce((n, r) => n + r.inserted, 0)).toBe(allLines().length);
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    recordProof({ kind: 'fault', point: 'restore: crash inside a group, before COMMIT', iteration: 0 });
  });

  it("every group dies after its COMMIT, in every attempt: no row counts as inserted, yet the target's identity sequence is moved past the committed ids", async () => {
    // Prepare: a target whose key takes new values from its identity sequence; the first execution fails with every
    // row committed and no watermark written.
    await bed.db.client.query(
      `CREATE TABLE public.committed_before (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                             created_at timestamptz, actor text NOT NULL, payload jsonb)`,
    );
    const fault = (point: FaultPoint) => {
      if (point === 'restore:afterCommit') throw new InjectedCrash('crash after COMMIT');
    };
    const first = await restore('committed_before', { fault });
    const highest = Math.max(...allLines().map((line) => Number(JSON.parse(line).id)));

    // Act
    const rerun = await restore('committed_before');
    const added = await bed.db.client.query<{ id: string }>(
      `INSERT INTO public.committed_before (created_at, actor) VALUES (now(), 'app') RETURNING id::text`,
    );

    // Assess: the failed execution and its re-run met every row already there (their totals insert none), and the
    // application's next row takes a new id.
    expect(first.execution.status).toBe('FAILED');
    expect(rerun.execution.status).toBe('SUCCEEDED');
    expect(rerun.results.reduce((n, r) => n + r.inserted, 0)).toBe(0);
    expect(Number(added.rows[0]?.id)).toBe(highest + 1);
    await bed.db.client.query(`DELETE FROM public.committed_before WHERE actor = 'app'`);
    expect(await rowsIn('committed_before', allLines())).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    recordProof({
      kind: 'fault',
      point: 'restore: every COMMIT followed by a crash, then a re-run',
      iteration: 0,
    });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack:
        'restores again after every group died past its COMMIT: the identity sequence behind the restored ids',
      held: Number(added.rows[0]?.id) === highest + 1,
    });
  });

  it('a dry run after every group died past its COMMIT tells what a restore would do: the marks written before COMMIT answer, no conflict', async () => {
    // Prepare: every group of a restore under "fail" commits its rows and dies before the watermark write after COMMIT,
    // in every attempt: only the marks written before each COMMIT say the rows are there.
    const fault = (point: FaultPoint) => {
      if (point === 'restore:afterCommit') throw new InjectedCrash('crash after COMMIT');
    };
    const first = await restore('dry_after_commit', { fault });

    // Act
    let dryMarks = 0;
    const counting = (deps: StepDeps): StepDeps => {
      const restoreRecords = Object.create(deps.restoreRecords) as StepDeps['restoreRecords'];
      restoreRecords.markAllRestored = async (...args) => {
        dryMarks += 1;
        return deps.restoreRecords.markAllRestored(...args);
      };
      return { ...deps, restoreRecords };
    };
    const dry = await restore('dry_after_commit', { deps: counting }, { dryRun: true, strategy: 'fail' });
    const real = await restore('dry_after_commit', {}, { strategy: 'fail' });

    // Assess: the dry run reports what the restore then does, every archive already restored, not a conflict, and
    // writes no watermark.
    expect(first.execution.status).toBe('FAILED');
    expect(real.results.map((r) => r.status)).toEqual(archives.map(() => 'already-restored'));
    expect(dryMarks).toBe(0);
    expect(dry.results.map((r) => [r.key, r.status, r.error])).toEqual(
      real.results.map((r) => [r.key, r.status, r.error]),
    );
    expect(await rowsIn('dry_after_commit', allLines())).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
  });

  it('an archive whose read always breaks off mid-stream: nothing of it is written, the others are restored', async () => {
    // Prepare
    const victim = archives[2] as LiveArchive;
    const size = (await getObject(bed.local, victim.key)).length;
    const others = archives.filter((a) => a !== victim).flatMap((a) => a.lines);

    // Act
    const broken = await restore('mid_stream', {
      deps: cutReadsOf(victim.key, Math.floor(size / 2), Infinity),
    });
    const between = await rowsIn('mid_stream', others);
    const rerun = await restore('mid_stream');
    const after = await rowsIn('mid_stream', allLines());

    // Assess
    expect(broken.execution.status).toBe('FAILED');
    const failed = broken.results.filter((r) => r.status === 'failed');
    expect(failed.map((r) => r.key)).toEqual([victim.key]);
    expect(failed[0]?.error).toMatch(/^StorageUnavailableError: /);
    expect(between).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    expect(rerun.execution.status).toBe('SUCCEEDED');
    expect(rerun.results.find((r) => r.key === victim.key)).toMatchObject({
      status: 'restored',
      inserted: victim.lines.length,
    });
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    recordProof({ kind: 'fault', point: 'restore: read broken off mid-archive', iteration: 0 });
  });

  it('an object opened ahead whose connection breaks while it waits is opened again: restored once, nothing crashes', async () => {
    // Prepare
    const victim = archives[4] as LiveArchive;
    const size = (await getObject(bed.local, victim.key)).length;

    // Act
    const run = await restore('waited', { deps: cutReadsOf(victim.key, Math.floor(size / 2), 1, 'waiting') });
    const after = await rowsIn('waited', allLines());

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.results.find((r) => r.key === victim.key)).toMatchObject({
      status: 'restored',
      inserted: victim.lines.length,
    });
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
  });

  it('a read that breaks off mid-stream once is retried in the same execution, and restores the archive once', async () => {
    // Prepare
    const victim = archives[3] as LiveArchive;
    const size = (await getObject(bed.local, victim.key)).length;
    const { errors, onStep } = stepErrors();

    // Act
    const run = await restore('retried', { deps: cutReadsOf(victim.key, Math.floor(size / 2), 1), onStep });
    const after = await rowsIn('retried', allLines());

    // Assess
    expect(errors).toEqual(['restore-file:StorageUnavailableError']);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    recordProof({ kind: 'fault', point: 'restore: read broken off once, retried', iteration: 0 });
  });

  it('the watermark write after a COMMIT fails once: the group is retried, answered by the marks written before its COMMIT, every row restored once', async () => {
    // Prepare: the lock table refuses the second group's watermarks, once.
    const failSecondWrite = failingSecondMarkAfterCommit();
    const { errors, onStep } = stepErrors();

    // Act
    const run = await restore('mark_failed', { deps: failSecondWrite, onStep });
    const after = await rowsIn('mark_failed', allLines());
    const rerun = await restore('mark_failed');

    // Assess: the retried group found the marks of its committed transaction and reports what it inserted; the
    // re-run finds every watermark.
    expect(errors).toEqual(['restore-file:LockStoreUnavailableError']);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.results.every((r) => r.status === 'restored')).toBe(true);
    expect(run.results.reduce((n, r) => n + r.inserted, 0)).toBe(allLines().length);
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    expect(rerun.results.every((r) => r.status === 'already-restored')).toBe(true);
    recordProof({ kind: 'fault', point: 'restore: watermark write fails after COMMIT', iteration: 0 });
  });

  it('under strategy "fail", the watermark write after a COMMIT fails once: the retried group meets its own rows, not a conflict', async () => {
    // Prepare: the lock table refuses the second group's watermarks, once (throttled, or down for a moment).
    const failSecondWrite = failingSecondMarkAfterCommit();
    const { errors, onStep } = stepErrors();

    // Act
    const run = await restore('mark_failed_fail', { deps: failSecondWrite, onStep }, { strategy: 'fail' });
    const after = await rowsIn('mark_failed_fail', allLines());
    const rerun = await restore('mark_failed_fail', {}, { strategy: 'fail' });

    // Assess: the rows the first attempt committed are this restore's own, no conflict; each row is there once and
    // counted once as inserted, and a re-run finds every archive restored.
    expect(errors).toEqual(['restore-file:LockStoreUnavailableError']);
    expect(run.results.filter((r) => r.status !== 'restored').map((r) => r.error)).toEqual([]);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.results.reduce((n, r) => n + r.inserted, 0)).toBe(allLines().length);
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    expect(rerun.execution.status).toBe('SUCCEEDED');
    expect(rerun.results.every((r) => r.status === 'already-restored')).toBe(true);
    recordProof({
      kind: 'threat',
      actor: 'invocation',
      attack:
        'a restore under strategy "fail" whose watermark write after a COMMIT fails once (the lock table throttled): the group retried',
      held: run.execution.status === 'SUCCEEDED' && after.lost === 0 && after.doubled === 0,
    });
  });

  /** Dependencies that kill the first group's connection right after its marks are written, before its COMMIT. */
  function killAfterMarks() {
    const killed = { count: 0 };
    const deps = (deps: StepDeps): StepDeps => {
      const restoreRecords = Object.create(deps.restoreRecords) as StepDeps['restoreRecords'];
      restoreRecords.markAllRestored = async (...args) => {
        await deps.restoreRecords.markAllRestored(...args);
        if (afterCommit(args[2]) || killed.count > 0) return;
        killed.count += 1;
        await bed.db.client.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'audit-archiver' AND datname = current_database() AND state = 'idle in transaction'",
        );
      };
      return { ...deps, restoreRecords };
    };
    const { errors, onStep } = stepErrors();
    return { killed, deps, errors, onStep };
  }

  it('marks written before a COMMIT that then fails: they count for nothing, the group retried writes its rows', async () => {
    // Prepare
    const { killed, deps, errors, onStep } = killAfterMarks();

    // Act
    const run = await restore('marked_rolled_back', { deps, onStep }, { strategy: 'fail' });
    const after = await rowsIn('marked_rolled_back', allLines());

    // Assess: the marks of the rolled-back transaction answered for nothing (no "restored again" either); every row
    // is there once, inserted once. Groups run side by side: one idle in its transaction then is killed with it.
    expect(killed.count).toBe(1);
    expect(errors.length).toBeGreaterThan(0);
    expect(new Set(errors)).toEqual(new Set(['restore-file:DatabaseUnavailableError']));
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.results.every((r) => r.status === 'restored' && r.warnings.length === 0)).toBe(true);
    expect(run.results.reduce((n, r) => n + r.inserted, 0)).toBe(allLines().length);
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    recordProof({
      kind: 'fault',
      point: 'restore: connection killed after the marks, before COMMIT',
      iteration: 0,
    });
  });

  // The second: the functions' clock, which dates the marks, runs a minute behind the one that dated the execution's
  // start (within the skew the functions allow a cut-off); the marks the first attempt wrote are still its own.
  it.each([
    { clock: 'the same clock', table: 'ignored_retry', behindMs: 0 },
    {
      clock: "the functions' clock a minute behind the execution's start",
      table: 'skewed_retry',
      behindMs: 60_000,
    },
  ])(
    'under ignoreWatermark and "fail", the watermark write after a COMMIT fails once, $clock: the retried group meets its own rows, not a conflict',
    async ({ table, behindMs }) => {
      // Prepare
      const failSecondWrite = failingSecondMarkAfterCommit();
      const deps = (step: StepDeps): StepDeps => ({
        ...failSecondWrite(step),
        now: () => new Date(step.now().getTime() - behindMs),
      });
      const { errors, onStep } = stepErrors();

      // Act
      const run = await restore(table, { deps, onStep }, { strategy: 'fail', ignoreWatermark: true });

      // Assess
      expect(errors).toEqual(['restore-file:LockStoreUnavailableError']);
      expect(run.results.filter((r) => r.status !== 'restored').map((r) => r.error)).toEqual([]);
      expect(run.results.reduce((n, r) => n + r.inserted, 0)).toBe(allLines().length);
      expect(await rowsIn(table, allLines())).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    },
  );

  it('a restore with ignoreWatermark whose transaction dies after its marks: the marks of the earlier restore still answer', async () => {
    // Prepare: every archive restored and marked; then a restore that ignores the marks writes its own before each
    // COMMIT, and every group dies right after, rolling back.
    const first = await restore('ignored_marks');
    const dying = (deps: StepDeps): StepDeps => {
      const restoreRecords = Object.create(deps.restoreRecords) as StepDeps['restoreRecords'];
      restoreRecords.markAllRestored = async (...args) => {
        await deps.restoreRecords.markAllRestored(...args);
        if (!afterCommit(args[2])) throw new InjectedCrash('invocation died before COMMIT');
      };
      return { ...deps, restoreRecords };
    };
    const ignoring = await restore('ignored_marks', { deps: dying }, { ignoreWatermark: true });

    // Act
    const rerun = await restore('ignored_marks', {}, { strategy: 'fail' });

    // Assess: the rolled-back marks took nothing away; every archive is answered by the first restore's marks.
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(ignoring.results.some((r) => r.status === 'restored')).toBe(false);
    expect(rerun.results.map((r) => [r.status, r.error])).toEqual(
      archives.map(() => ['already-restored', undefined]),
    );
    expect(await rowsIn('ignored_marks', allLines())).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
  });

  it('under "overwrite", marks written before a COMMIT that then fails: the retried group still puts the archived values back', async () => {
    // Prepare: a target holding every archived key with other values.
    const first = await restore('overwrite_rolled_back');
    if (first.execution.status !== 'SUCCEEDED') throw new Error('the first restore failed');
    await bed.db.client.query(`UPDATE public.overwrite_rolled_back SET actor = 'changed since'`);
    const { killed, deps, errors, onStep } = killAfterMarks();

    // Act
    const run = await restore('overwrite_rolled_back', { deps, onStep }, { strategy: 'overwrite' });
    const after = await rowsIn('overwrite_rolled_back', allLines());

    // Assess: the keys were there all along, so only the transaction's outcome tells its marks do not answer.
    expect(killed.count).toBe(1);
    expect(errors.length).toBeGreaterThan(0);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.results.reduce((n, r) => n + r.overwritten, 0)).toBe(allLines().length);
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    recordProof({
      kind: 'fault',
      point: 'restore: overwrite, connection killed after the marks, before COMMIT',
      iteration: 0,
    });
  });

  it('under "overwrite", the connection dies as the reference path opens an archive again: the group is retried as a database failure, nothing waits forever', {
    timeout: 90_000,
  }, async () => {
    // Prepare: a target holding every archived key with other values, so each archive's COPY meets a conflict and
    // the reference path reads it once more; as it does for the victim, the server ends the restore's connections.
    const first = await restore('overwrite_reopened');
    if (first.execution.status !== 'SUCCEEDED') throw new Error('the first restore failed');
    await bed.db.client.query(`UPDATE public.overwrite_reopened SET actor = 'changed since'`);
    const victim = archives[1] as LiveArchive;
    let opened = 0;
    const killed = { count: 0 };
    const deps = (step: StepDeps): StepDeps => {
      const store = Object.create(step.store) as ArchiveStore;
      store.getStream = async (key, pin) => {
        const body = await step.store.getStream(key, pin);
        if (key !== victim.key || ++opened !== 2) return body;
        const { rows } = await bed.db.client.query<{ ended: boolean }>(
          `SELECT pg_terminate_backend(pid, 10000) AS ended FROM pg_stat_activity
            WHERE application_name = 'audit-archiver' AND datname = current_database()
              AND state <> 'idle' AND pid <> pg_backend_pid()`,
        );
        killed.count = rows.filter((row) => row.ended).length;
        // The client learns of it from its socket: let that arrive before the body is handed on.
        await new Promise((resolve) => setTimeout(resolve, 200));
        return body;
      };
      return { ...step, store };
    };
    const { errors, onStep } = stepErrors();

    // Act
    const run = await restore('overwrite_reopened', { deps, onStep }, { strategy: 'overwrite' });
    const after = await rowsIn('overwrite_reopened', allLines());

    // Assess: the broken connection reads as the database's failure (not the archive's store), and the retried group
    // puts every archived value back.
    expect(killed.count).toBeGreaterThan(0);
    expect(errors.length).toBeGreaterThan(0);
    expect(new Set(errors)).toEqual(new Set(['restore-file:DatabaseUnavailableError']));
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.results.reduce((n, r) => n + r.overwritten, 0)).toBe(allLines().length);
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
    recordProof({
      kind: 'fault',
      point: 'restore: connection ended as the reference path reads an archive again',
      iteration: 0,
    });
  });

  it('an invocation that dies once its watermarks are written: the retried group reports what its first attempt wrote, from the marks', async () => {
    // Prepare: the first group's invocation dies right after its watermark write.
    let writes = 0;
    const dieAfterFirstWrite = (deps: StepDeps): StepDeps => {
      const restoreRecords = Object.create(deps.restoreRecords) as StepDeps['restoreRecords'];
      restoreRecords.markAllRestored = async (...args) => {
        await deps.restoreRecords.markAllRestored(...args);
        if (afterCommit(args[2]) && ++writes === 1)
          throw new InjectedCrash('invocation died after the watermark write');
      };
      return { ...deps, restoreRecords };
    };

    // Act
    const run = await restore('died_after_marks', { deps: dieAfterFirstWrite });
    const after = await rowsIn('died_after_marks', allLines());

    // Assess: every archive counts as restored by this execution, each row inserted once, none "already restored".
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.results.every((r) => r.status === 'restored' && r.warnings.length === 0)).toBe(true);
    expect(run.results.reduce((n, r) => n + r.inserted, 0)).toBe(allLines().length);
    expect(after).toMatchObject({ lost: 0, doubled: 0, extra: 0 });
  });
});
