import { z } from 'zod';
import { isConditionFailure, type LockTableClient, type WriteCondition } from './table-client.js';

/** How one table's execution in a run ended, as the summary and `audit-archiver report` read it. */
export interface TableOutcome {
  database: string;
  table: string;
  /** `held`: a legal hold kept the table from starting (or from starting another batch); nothing else changed. */
  status: 'succeeded' | 'skipped' | 'held' | 'failed';
  reason?: string;
  rowsArchived: number;
  bytesArchived: number;
  /** Batches committed. */
  batches: number;
  /** Batches withdrawn because their rows changed under them (nothing deleted); absent when none was. */
  withdrawnBatches?: number;
  /** True when eligible rows may remain because the per-run batch budget was used up. */
  budgetReached: boolean;
  durationSeconds?: number;
  error?: string;
  finishedAt: string;
}

export const StoredConfigFingerprintSchema = z.object({
  hash: z.string(),
  paths: z.record(z.string(), z.string()),
  recordedAt: z.string(),
  runId: z.string(),
});
export type StoredConfigFingerprint = z.infer<typeof StoredConfigFingerprintSchema>;
const CONFIG_FINGERPRINT_KEY = { pk: 'CONFIG', sk: 'FINGERPRINT' };
/** Sort key of a table's latest outcomes, in its `TABLE#db#table` area beside the lease item (`STATE`). */
const LATEST_OUTCOME_SK = 'OUTCOME';
/** Sort key of a run's children, in its `RUN#runId` area beside the tables' outcomes (`db#table`). */
const RUN_CHILDREN_SK = 'CHILDREN';

/** The table execution a run starts for one of its tables: its name. */
export interface RunChild {
  database: string;
  table: string;
  name: string;
}

/**
 * A child's key in the stored map: the table's outcome sort key (`db#table`). Never a database name alone, which may
 * be `constructor` or `toString`: the SDK's marshaller refuses a map holding such a key, and plain objects inherit it.
 */
const childKey = (database: string, table: string) => `${database}#${table}`;

export interface LatestOutcomes {
  last?: TableOutcome & { runId: string };
  lastSucceeded?: TableOutcome & { runId: string };
}

/** What runs leave behind: each table's outcome (expires after 90 days) and the config fingerprint (never expires). */
export class RunRecords {
  constructor(private readonly lockTable: LockTableClient) {}

  /**
   * Records a table's outcome in its run unless the table has one there already, and then as the table's latest
   * (and latest successful) outcome beside its lease item, where `status` and the dashboard's operators look without
   * knowing the run. For an acquire that did not take the lease: a late duplicate of it, landing after its execution
   * recorded how the table ended, must not replace that. An outcome past its TTL is an earlier run's under the name
   * (DynamoDB removes it days late at times), and is replaced. Returns the outcome recorded: this one, or the other.
   */
  async recordFirstOutcome(runId: string, outcome: TableOutcome): Promise<TableOutcome> {
    const none: WriteCondition = {
      expression: 'attribute_not_exists(#co) OR #cttl < :cnow',
      names: { '#co': 'outcome', '#cttl': 'ttl' },
      values: { ':cnow': Math.floor(this.lockTable.now() / 1000) },
    };
    try {
      await this.lockTable.put(
        `RUN#${runId}`,
        `${outcome.database}#${outcome.table}`,
        { outcome },
        true,
        none,
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      // Unless its TTL removed it since.
      return (
        (await this.recordedOutcome(runId, outcome.database, outcome.table)) ??
        this.recordFirstOutcome(runId, outcome)
      );
    }
    await this.recordLatest(runId, outcome);
    return outcome;
  }

  /**
   * Records the outcome a table's release settles on, once per run however many releases of it run at once (a Task
   * retried while its first invocation still runs): `settle` makes the outcome to record from the one recorded so
   * far, and the write holds only while that is still the one recorded; otherwise it is settled again on what the
   * other release recorded. Returns the outcome recorded.
   */
  async settleOutcome(
    runId: string,
    database: string,
    table: string,
    settle: (recorded: TableOutcome | undefined) => TableOutcome,
  ): Promise<TableOutcome> {
    for (let attempt = 1; ; attempt++) {
      const recorded = await this.recordedOutcome(runId, database, table);
      const outcome = settle(recorded);
      const unchanged: WriteCondition =
        recorded === undefined
          ? { expression: 'attribute_not_exists(#co)', names: { '#co': 'outcome' } }
          : {
              expression: '#co.#cend = :cend',
              names: { '#co': 'outcome', '#cend': 'finishedAt' },
              values: { ':cend': recorded.finishedAt },
            };
      try {
        await this.lockTable.put(`RUN#${runId}`, `${database}#${table}`, { outcome }, true, unchanged);
      } catch (error) {
        if (isConditionFailure(error) && attempt < SETTLE_ATTEMPTS) continue;
        throw error;
      }
      await this.recordLatest(runId, outcome);
      return outcome;
    }
  }

  private async recordLatest(runId: string, outcome: TableOutcome): Promise<void> {
    const latest = {
      last: { ...outcome, runId },
      ...(outcome.status === 'succeeded' ? { lastSucceeded: { ...outcome, runId } } : {}),
    };
    await this.lockTable.put(`TABLE#${outcome.database}#${outcome.table}`, LATEST_OUTCOME_SK, latest, false);
  }

  /** The outcome a table recorded in the run, if any. */
  async recordedOutcome(runId: string, database: string, table: string): Promise<TableOutcome | undefined> {
    const item = await this.lockTable.getItem({ pk: `RUN#${runId}`, sk: `${database}#${table}` });
    return item?.outcome as TableOutcome | undefined;
  }

  /** A table's latest outcome and latest successful one, with the run of each. */
  async latestOutcomes(database: string, table: string): Promise<LatestOutcomes> {
    const item = await this.lockTable.getItem({ pk: `TABLE#${database}#${table}`, sk: LATEST_OUTCOME_SK });
    return {
      last: item?.last as LatestOutcomes['last'],
      lastSucceeded: item?.lastSucceeded as LatestOutcomes['lastSucceeded'],
    };
  }

  /**
   * The outcomes recorded under the run id; with `startedAt` (the run's execution start), only those finished since
   * (less a day for the functions' clock). Step Functions gives an execution's name again after 90 days, when the
   * earlier run's outcomes have expired but may still be there (DynamoDB's TTL removes them days late at times): they
   * are not this run's, and would stand in for a table of it that recorded nothing.
   */
  async listOutcomes(runId: string, startedAt?: string): Promise<TableOutcome[]> {
    return (await this.listOutcomesByChild(runId, startedAt)).map(({ outcome }) => outcome);
  }

  /**
   * The outcomes listOutcomes lists, each with the name of the execution the run recorded it starts for the table
   * (none for a table it did not plan, or a run that recorded none): one Query reads both.
   */
  async listOutcomesByChild(
    runId: string,
    startedAt?: string,
  ): Promise<{ outcome: TableOutcome; child?: string }[]> {
    const since = startedAt === undefined ? undefined : Date.parse(startedAt) - OUTCOME_CLOCK_SLACK_MS;
    const items = await this.lockTable.queryAll(`RUN#${runId}`);
    const children = (items.find((item) => item.sk === RUN_CHILDREN_SK)?.children ?? {}) as Record<
      string,
      string
    >;
    return items
      .map((item) => item.outcome as TableOutcome | undefined)
      .filter((outcome): outcome is TableOutcome => outcome !== undefined)
      .filter((outcome) => since === undefined || Date.parse(outcome.finishedAt) >= since)
      .map((outcome) => {
        const key = childKey(outcome.database, outcome.table);
        return { outcome, ...(Object.hasOwn(children, key) ? { child: children[key] } : {}) };
      });
  }

  /** Records, before the run starts any, which execution it starts for each table (expires with its outcomes). */
  async recordChildren(runId: string, children: RunChild[]): Promise<void> {
    const names = Object.fromEntries(children.map((c) => [childKey(c.database, c.table), c.name]));
    await this.lockTable.put(`RUN#${runId}`, RUN_CHILDREN_SK, { children: names });
  }

  /**
   * The name of the execution the run recorded it starts for the table: null when it starts none for the table,
   * undefined for a run that recorded none (one started by hand).
   */
  async childOf(runId: string, database: string, table: string): Promise<string | null | undefined> {
    const item = await this.lockTable.getItem({ pk: `RUN#${runId}`, sk: RUN_CHILDREN_SK });
    if (!item) return undefined;
    const names = (item.children ?? {}) as Record<string, string>;
    const key = childKey(database, table);
    return Object.hasOwn(names, key) ? (names[key] ?? null) : null;
  }

  /** The fingerprint of the config the last run planned with (see batch/config-fingerprint.ts). */
  async getConfigFingerprint(): Promise<StoredConfigFingerprint | undefined> {
    const item = await this.lockTable.getItem(CONFIG_FINGERPRINT_KEY);
    return item ? StoredConfigFingerprintSchema.parse(item.fingerprint) : undefined;
  }

  async putConfigFingerprint(fingerprint: StoredConfigFingerprint): Promise<void> {
    await this.lockTable.put(CONFIG_FINGERPRINT_KEY.pk, CONFIG_FINGERPRINT_KEY.sk, { fingerprint }, false);
  }
}

/** Releases of one table that may record at once: each failed write means another recorded meanwhile. */
const SETTLE_ATTEMPTS = 5;

/** How far behind Step Functions' clock, which dates a run's start, the functions' clock may date its outcomes. */
const OUTCOME_CLOCK_SLACK_MS = 24 * 3600 * 1000;
