import type { ColumnInfo, TableShape } from '../database/table-shape.js';
import { InvalidInputError } from '../errors/step-errors.js';
import type { InFlight } from '../lock-table/table-state.js';
import type { TableTask } from '../step/table-task.js';
import { batchSpan } from './batch-objects.js';

/*
 * The lifecycle of a batch in flight, in one place: its stages, the changes of stage the steps may make, the stages
 * each step acts on, the cut-off test and what a later attempt does with a batch it finds in flight. Pure: the
 * writes are in batch.ts. The record's schema stays in lock-table/table-state.ts, below this layer, because the
 * lease store parses it.
 */

/** A batch's stage while it is on the lease item. */
export type Stage = InFlight['stage'];

/** How a batch leaves the lease item: its delete committed, or it was taken back with its rows still in place. */
export type End = 'committed' | 'withdrawn';

/**
 * Every change of stage the steps make, `none` being no batch in flight. A stage may follow itself where a retry
 * rewrites its own record (verify re-pins, delete retries after an aborted attempt, withdrawal is finished).
 */
export const TRANSITIONS: { readonly [from in Stage | 'none']: readonly (Stage | End)[] } = {
  none: ['exported'],
  // upload; discarded by the next export, or claimed for withdrawal by upload when staging is damaged
  exported: ['uploaded', 'withdrawing'],
  // verify; a failed verification, a cut-off that moved, or damaged staging a resumed upload found
  uploaded: ['verified', 'withdrawing'],
  // verify again; delete; a failed verification, changed rows or archive, or a cut-off that moved
  verified: ['verified', 'deleting', 'withdrawing'],
  // delete retried after an aborted attempt; recovery of an aborted delete; the commit; changed rows or a cut-off
  // that moved after an aborted attempt
  deleting: ['deleting', 'verified', 'committed', 'withdrawing'],
  withdrawing: ['withdrawing', 'withdrawn'],
};

/** Throws unless the lifecycle allows `from` → `to`: a write outside the table is a bug, never a state to store. */
export function assertTransition(from: Stage | 'none', to: Stage | End): void {
  if (!TRANSITIONS[from].includes(to)) {
    throw new Error(`a batch in flight cannot go from ${from} to ${to}`);
  }
}

/**
 * The stages each step acts on: the one it expects, and later ones a retry finds once its own write (or a later
 * step's) took effect; it repeats only idempotent work there. `expects` names the stage in the refusal.
 */
export const ACTS_ON = {
  upload: { expects: 'exported', stages: ['exported', 'uploaded', 'verified'] },
  verify: { expects: 'uploaded', stages: ['uploaded', 'verified'] },
  delete: { expects: 'verified', stages: ['verified', 'deleting'] },
} as const satisfies Record<string, { expects: Stage; stages: readonly Stage[] }>;

export type ActingStep = keyof typeof ACTS_ON;

/** The batch `step` may act on, or InvalidInputError when none is in flight or it is at a stage the step never acts on. */
export function batchToActOn(
  step: ActingStep,
  task: Pick<TableTask, 'database' | 'table'>,
  inFlight: InFlight | undefined,
): InFlight {
  const { expects, stages } = ACTS_ON[step];
  if (!inFlight || !(stages as readonly Stage[]).includes(inFlight.stage)) {
    throw new InvalidInputError(`no ${expects} batch is in flight for ${task.database}/${task.table}`);
  }
  return inFlight;
}

/** Whether the batch holds rows at or after `cutoff`: a run with that cut-off (retention raised since) may not delete it. */
export function reachesPastCutoff(inFlight: Pick<InFlight, 'objects'>, cutoff: string): boolean {
  return Date.parse(batchSpan(inFlight).to) > Date.parse(cutoff);
}

/**
 * Why the table is now read otherwise than when the batch was exported, or undefined: its key, or the column and zone
 * that put its rows on days, changed since (in the config, or the primary key in the database). The batch's bounds
 * are values of its own key and its windows instants of its own zone: read through others they select other rows, or
 * none, or fail to cast. A batch recorded before its record kept these counts as read otherwise.
 */
export function readingChange(
  inFlight: Pick<InFlight, 'manifest'>,
  now: {
    keyColumns: readonly Pick<ColumnInfo, 'name'>[];
    timestampColumn: Pick<ColumnInfo, 'name'>;
    timestampKind: TableShape['timestampKind'];
    timestampTimeZone: string;
  },
): string | undefined {
  const exported = inFlight.manifest;
  // Rows read under an unknown reading are never carried on: they are all in the table, and the next batch reads them.
  if (!exported)
    return `the batch's record, written by an earlier version, does not say how it read the table`;
  const changes: string[] = [];
  const key = now.keyColumns.map((c) => c.name);
  if (key.length !== exported.keyColumns.length || key.some((name, i) => name !== exported.keyColumns[i]))
    changes.push(`key (${exported.keyColumns.join(', ')}) is now (${key.join(', ')})`);
  if (now.timestampColumn.name !== exported.timestampColumn || now.timestampKind !== exported.timestampType)
    changes.push(
      `timestamp column ${exported.timestampColumn} (${exported.timestampType}) is now ${now.timestampColumn.name} (${now.timestampKind})`,
    );
  else if (now.timestampKind === 'timestamp' && now.timestampTimeZone !== exported.timestampTimeZone)
    changes.push(`timestampTimeZone ${exported.timestampTimeZone} is now ${now.timestampTimeZone}`);
  return changes.length > 0 ? `since export, the table's ${changes.join('; its ')}` : undefined;
}

/** What a later attempt does with a batch an earlier one left in flight. */
export type Recovery =
  /** Take it back, its rows stay in the database. */
  | { action: 'withdraw'; reason: 'discarded' | 'cutoff-moved' | 'reading-changed' }
  /** Carry it on from its stage: the next steps continue it. */
  | { action: 'resume' }
  /** Its delete was under way: ask the database whether it committed, then `afterDeleteSettled` decides. */
  | { action: 'settle-delete' }
  /** Its delete committed: record it as committed. */
  | { action: 'record-committed' }
  /** Its delete did not commit: back to `verified` (verify re-checks the archive) and carry it on. */
  | { action: 'resume-verified' };

/**
 * The decision for a batch found in flight, before the table is read. Exported-only batches are discarded (nothing
 * was published), and so is an interrupted withdrawal (it is finished). Uploaded or verified ones are resumed unless
 * they reach past this run's cut-off; once the table is described, resumeOrWithdraw decides with its reading.
 */
export function recoveryOf(inFlight: Pick<InFlight, 'stage' | 'objects'>, cutoff: string): Recovery {
  switch (inFlight.stage) {
    case 'exported':
    case 'withdrawing':
      return { action: 'withdraw', reason: 'discarded' };
    case 'uploaded':
    case 'verified':
      return resumeOrWithdraw(inFlight, cutoff, undefined);
    case 'deleting':
      return { action: 'settle-delete' };
  }
}

/** The decision for a `deleting` batch once the database said whether its delete committed. */
export function afterDeleteSettled(
  inFlight: Pick<InFlight, 'objects'>,
  cutoff: string,
  settled: 'committed' | 'aborted',
  readingChanged?: string,
): Exclude<Recovery, { action: 'settle-delete' }> {
  if (settled === 'committed') return { action: 'record-committed' };
  return notToResume(inFlight, cutoff, readingChanged) ?? { action: 'resume-verified' };
}

/**
 * An uploaded or verified batch: carried on, unless it reaches past the cut-off or the table is now read otherwise
 * (`readingChanged`, from readingChange).
 */
export function resumeOrWithdraw(
  inFlight: Pick<InFlight, 'objects'>,
  cutoff: string,
  readingChanged: string | undefined,
): Extract<Recovery, { action: 'resume' | 'withdraw' }> {
  return notToResume(inFlight, cutoff, readingChanged) ?? { action: 'resume' };
}

/** Why a batch whose rows are all still in the table is taken back instead of carried on, if it is. */
function notToResume(
  inFlight: Pick<InFlight, 'objects'>,
  cutoff: string,
  readingChanged: string | undefined,
): Extract<Recovery, { action: 'withdraw' }> | undefined {
  if (reachesPastCutoff(inFlight, cutoff)) return { action: 'withdraw', reason: 'cutoff-moved' };
  if (readingChanged) return { action: 'withdraw', reason: 'reading-changed' };
  return undefined;
}
