import { describe, expect, it, vi } from 'vitest';
import { recordInFlight } from '../../../../lambdas/shared/batch/batch.js';
import {
  ACTS_ON,
  type ActingStep,
  afterDeleteSettled,
  assertTransition,
  batchToActOn,
  type End,
  reachesPastCutoff,
  readingChange,
  recoveryOf,
  resumeOrWithdraw,
  type Stage,
  TRANSITIONS,
} from '../../../../lambdas/shared/batch/lifecycle.js';
import { InvalidInputError } from '../../../../lambdas/shared/errors/step-errors.js';
import { type InFlight, StageSchema } from '../../../../lambdas/shared/lock-table/table-state.js';
import type { StepDeps } from '../../../../lambdas/shared/step/step-deps.js';

const STAGES = StageSchema.options;
const CUTOFF = '2026-03-01T00:00:00.000Z';
const task = {
  runId: 'run-1',
  database: 'main',
  table: 'public.audit_log',
  cutoff: CUTOFF,
  lease: { owner: 'execution-1', token: 1 },
};

const figures = {
  rowCount: 9,
  contentSha256: 'a'.repeat(64),
  compressedSha256: 'b'.repeat(64),
  uncompressedBytes: 900,
  compressedBytes: 300,
  rowDigest: 'c'.repeat(32),
};

/** A batch of two days whose newest object's bounds end at `to`. */
function batch(stage: Stage, to = '2026-02-01T00:00:00.000Z'): InFlight {
  return {
    stage,
    batchId: 'batch-1',
    runId: 'run-1',
    cutoff: CUTOFF,
    objects: [
      {
        day: '2026-01-30',
        stagingKey: 'staging/2026-01-30-batch-1.jsonl.gz',
        archiveKey: 'archive/day=2026-01-30/abc.jsonl.gz',
        bounds: {
          from: '2026-01-30T00:00:00.000Z',
          to: '2026-01-31T00:00:00.000Z',
          firstKey: ['1'],
          lastKey: ['9'],
        },
        figures,
      },
      {
        day: '2026-01-31',
        stagingKey: 'staging/2026-01-31-batch-1.jsonl.gz',
        archiveKey: 'archive/day=2026-01-31/def.jsonl.gz',
        bounds: { from: '2026-01-31T00:00:00.000Z', to, firstKey: ['10'], lastKey: ['19'] },
        figures,
      },
    ],
  };
}

describe('the transitions of a batch in flight', () => {
  it('are exactly the changes of stage the steps make', () => {
    // Assess: a new stage or transition must be added here on purpose, with the step that makes it.
    expect(TRANSITIONS).toEqual({
      none: ['exported'],
      exported: ['uploaded', 'withdrawing'],
      uploaded: ['verified', 'withdrawing'],
      verified: ['verified', 'deleting', 'withdrawing'],
      deleting: ['deleting', 'verified', 'committed', 'withdrawing'],
      withdrawing: ['withdrawing', 'withdrawn'],
    });
    expect(Object.keys(TRANSITIONS).sort()).toEqual(['none', ...STAGES].sort());
  });

  it('reach every stage from none, and from every stage an end: no batch can be stranded', () => {
    // Arrange
    const reachable = (from: Stage | 'none') => {
      const seen = new Set<Stage | End | 'none'>([from]);
      const queue: (Stage | End | 'none')[] = [from];
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        if (next === 'committed' || next === 'withdrawn') continue;
        for (const to of TRANSITIONS[next].filter((stage) => !seen.has(stage))) {
          seen.add(to);
          queue.push(to);
        }
      }
      return seen;
    };

    // Assess
    expect([...reachable('none')].sort()).toEqual(['committed', 'none', 'withdrawn', ...STAGES].sort());
    for (const stage of STAGES) expect(reachable(stage).has('withdrawn')).toBe(true);
    // Only a batch whose delete is under way can commit, and every stage can be withdrawn.
    expect(STAGES.filter((stage) => TRANSITIONS[stage].includes('committed'))).toEqual(['deleting']);
    expect(STAGES.filter((stage) => TRANSITIONS[stage].includes('withdrawing'))).toEqual(STAGES);
  });

  it('refuse any change outside the table', () => {
    // Act / Assess
    expect(() => assertTransition('none', 'uploaded')).toThrow('cannot go from none to uploaded');
    expect(() => assertTransition('exported', 'verified')).toThrow('from exported to verified');
    expect(() => assertTransition('verified', 'committed')).toThrow('from verified to committed');
    expect(() => assertTransition('withdrawing', 'verified')).toThrow('from withdrawing to verified');
    expect(() => assertTransition('deleting', 'committed')).not.toThrow();
  });

  it('are checked before the record is written: a write outside the table never reaches the lease item', async () => {
    // Arrange
    const setInFlight = vi.fn(async () => undefined);
    const deps = {
      config: { defaults: { leaseSeconds: 60 } } as StepDeps['config'],
      locks: { setInFlight } as unknown as StepDeps['locks'],
    };

    // Act
    const skipped = expect(recordInFlight(deps, task, batch('verified'), ['exported'])).rejects.toThrow(
      'from exported to verified',
    );
    const fromRead = expect(
      recordInFlight(deps, task, batch('exported'), { unchanged: batch('uploaded') }),
    ).rejects.toThrow('from uploaded to exported');
    await recordInFlight(deps, task, batch('verified'), ['uploaded', 'verified']);

    // Assess
    await Promise.all([skipped, fromRead]);
    expect(setInFlight).toHaveBeenCalledTimes(1);
  });
});

describe('the stages each step acts on', () => {
  const expected: Record<ActingStep, Stage[]> = {
    upload: ['exported', 'uploaded', 'verified'],
    verify: ['uploaded', 'verified'],
    delete: ['verified', 'deleting'],
  };

  for (const step of Object.keys(ACTS_ON) as ActingStep[]) {
    it(`${step} acts on ${expected[step].join(', ')} and refuses every other stage or no batch`, () => {
      for (const stage of STAGES) {
        // Act
        const act = () => batchToActOn(step, task, batch(stage));

        // Assess
        if (expected[step].includes(stage)) expect(act()).toEqual(batch(stage));
        else expect(act).toThrow(InvalidInputError);
      }
      expect(() => batchToActOn(step, task, undefined)).toThrow(
        `no ${ACTS_ON[step].expects} batch is in flight for main/public.audit_log`,
      );
    });
  }

  it('names the refusal InvalidInputError, which the ASL fails on without retrying', () => {
    // Act / Assess
    expect(() => batchToActOn('delete', task, batch('exported'))).toThrow(
      expect.objectContaining({ name: 'InvalidInputError' }),
    );
  });
});

describe('the cut-off test', () => {
  it('is past only when the batch ends after the cut-off, whatever the offset the instants are written in', () => {
    // Act / Assess
    expect(reachesPastCutoff(batch('verified', CUTOFF), CUTOFF)).toBe(false);
    expect(reachesPastCutoff(batch('verified', '2026-02-28T23:59:59.999Z'), CUTOFF)).toBe(false);
    expect(reachesPastCutoff(batch('verified', '2026-03-01T00:00:00.001Z'), CUTOFF)).toBe(true);
    expect(reachesPastCutoff(batch('verified', '2026-03-01T01:00:00+01:00'), CUTOFF)).toBe(false);
    expect(reachesPastCutoff(batch('verified', '2026-03-01T00:00:00-01:00'), CUTOFF)).toBe(true);
  });
});

describe('how the table is read, against how the batch read it', () => {
  const exported = (manifest: Partial<NonNullable<InFlight['manifest']>>): Pick<InFlight, 'manifest'> => ({
    manifest: {
      formatVersion: 1 as const,
      tool: { name: 'audit-archiver', version: '0.1.0' },
      database: 'main',
      schema: 'public',
      table: 'audit_log',
      keyColumns: ['id'],
      timestampColumn: 'created_at',
      timestampType: 'timestamp' as const,
      timestampTimeZone: 'UTC',
      compression: { format: 'gzip' as const, level: 3 },
      encoding: 'jsonl-pg-text' as const,
      exportedAt: CUTOFF,
      ...manifest,
    },
  });
  const shape = (now: {
    key?: string[];
    column?: string;
    kind?: 'timestamp' | 'timestamptz';
    zone?: string;
  }) => ({
    keyColumns: (now.key ?? ['id']).map((name) => ({ name })),
    timestampColumn: { name: now.column ?? 'created_at' },
    timestampKind: now.kind ?? ('timestamp' as const),
    timestampTimeZone: now.zone ?? 'UTC',
  });

  it('names what changed: the key, the timestamp column or its type, the zone of a timestamp without zone', () => {
    // Act / Assess
    expect(readingChange(exported({}), shape({}))).toBeUndefined();
    expect(readingChange(exported({}), shape({ key: ['uid'] }))).toMatch(/key \(id\) is now \(uid\)/);
    expect(readingChange(exported({}), shape({ key: ['id', 'at'] }))).toMatch(/is now \(id, at\)/);
    expect(readingChange(exported({ keyColumns: ['id', 'at'] }), shape({ key: ['id'] }))).toMatch(
      /key \(id, at\) is now \(id\)/,
    );
    expect(readingChange(exported({ keyColumns: ['a\nb'] }), shape({ key: ['a', 'b'] }))).toMatch(/is now/);
    expect(readingChange(exported({}), shape({ column: 'logged_at' }))).toMatch(
      /timestamp column created_at \(timestamp\) is now logged_at/,
    );
    expect(readingChange(exported({}), shape({ kind: 'timestamptz' }))).toMatch(
      /is now created_at \(timestamptz\)/,
    );
    expect(readingChange(exported({}), shape({ zone: 'Europe/Paris' }))).toMatch(
      /timestampTimeZone UTC is now Europe\/Paris/,
    );
  });

  it('ignores the zone of a timestamptz column (its instants are the same in any); a record without a manifest never reads alike', () => {
    // Act / Assess
    const instants = exported({ timestampType: 'timestamptz' });
    expect(readingChange(instants, shape({ kind: 'timestamptz', zone: 'Asia/Tokyo' }))).toBeUndefined();
    expect(readingChange({ manifest: undefined }, shape({}))).toMatch(/written by an earlier version/);
  });
});

describe('recovery of a batch found in flight', () => {
  const past = '2026-03-02T00:00:00.000Z';

  it('discards exported batches and finishes withdrawals, whatever the cut-off', () => {
    for (const stage of ['exported', 'withdrawing'] as const) {
      for (const to of [undefined, past]) {
        // Act / Assess
        expect(recoveryOf(batch(stage, to), CUTOFF)).toEqual({ action: 'withdraw', reason: 'discarded' });
      }
    }
  });

  it('resumes uploaded and verified batches, unless they reach past the cut-off (retention raised since)', () => {
    for (const stage of ['uploaded', 'verified'] as const) {
      // Act / Assess
      expect(recoveryOf(batch(stage), CUTOFF)).toEqual({ action: 'resume' });
      expect(recoveryOf(batch(stage, past), CUTOFF)).toEqual({ action: 'withdraw', reason: 'cutoff-moved' });
    }
  });

  it('asks the database about a batch whose delete was under way before deciding anything', () => {
    // Act / Assess
    expect(recoveryOf(batch('deleting'), CUTOFF)).toEqual({ action: 'settle-delete' });
    expect(recoveryOf(batch('deleting', past), CUTOFF)).toEqual({ action: 'settle-delete' });
  });

  it('records a committed delete even past the cut-off, and otherwise resumes from verified or withdraws', () => {
    // Act / Assess: the rows are gone once it committed, so its archive must stay whatever the cut-off says.
    expect(afterDeleteSettled(batch('deleting', past), CUTOFF, 'committed')).toEqual({
      action: 'record-committed',
    });
    expect(afterDeleteSettled(batch('deleting'), CUTOFF, 'committed')).toEqual({
      action: 'record-committed',
    });
    expect(afterDeleteSettled(batch('deleting'), CUTOFF, 'aborted')).toEqual({ action: 'resume-verified' });
    expect(afterDeleteSettled(batch('deleting', past), CUTOFF, 'aborted')).toEqual({
      action: 'withdraw',
      reason: 'cutoff-moved',
    });
  });

  it('takes back a batch whose rows are all in the table when the table is now read otherwise', () => {
    // Prepare
    const changed = "since export, the table's key (id) is now (uid)";

    // Act / Assess: the cut-off is said first; a committed delete is recorded whatever the reading.
    for (const stage of ['uploaded', 'verified'] as const) {
      expect(resumeOrWithdraw(batch(stage), CUTOFF, changed)).toEqual({
        action: 'withdraw',
        reason: 'reading-changed',
      });
      expect(resumeOrWithdraw(batch(stage, past), CUTOFF, changed)).toEqual({
        action: 'withdraw',
        reason: 'cutoff-moved',
      });
      expect(resumeOrWithdraw(batch(stage), CUTOFF, undefined)).toEqual({ action: 'resume' });
    }
    expect(afterDeleteSettled(batch('deleting'), CUTOFF, 'aborted', changed)).toEqual({
      action: 'withdraw',
      reason: 'reading-changed',
    });
    expect(afterDeleteSettled(batch('deleting'), CUTOFF, 'committed', changed)).toEqual({
      action: 'record-committed',
    });
  });

  it('only ever moves a batch along the transitions', () => {
    // Assess: each decision's write is a transition of the table.
    const writes: Record<string, [Stage, Stage | End][]> = {
      withdraw: STAGES.map((stage) => [stage, 'withdrawing']),
      'record-committed': [['deleting', 'committed']],
      'resume-verified': [['deleting', 'verified']],
    };
    for (const pairs of Object.values(writes)) {
      for (const [from, to] of pairs) expect(() => assertTransition(from, to)).not.toThrow();
    }
  });
});
