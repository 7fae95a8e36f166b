import pg from 'pg';
import { describeTable } from '../../lambdas/shared/database/table-shape.js';
import { rowLineSql } from '../../lambdas/shared/database/table-sql.js';
import { resolvedTable, type TableSpec, TODAY_UTC_SQL } from './fixtures.js';
import type { Rng } from './shape-fuzz.js';

/**
 * The application of test/proofs/chaos.test.ts: it writes an audit table's old rows while the archiver works on them
 * and keeps a ledger of every row version it wrote. Each version carries a `rev` of its own, so an archive line names
 * the exact version it holds; the ledger knows which versions the application replaced (updated or deleted), learnt
 * from the rows its own statements found, never from what it asked for: a row the archiver deleted first is a row the
 * application's UPDATE does not find.
 */

const q = pg.escapeIdentifier;
const lit = pg.escapeLiteral;
export const TABLE = 'chaos';
const REF = `public.${TABLE}`;
/** The UTC days rows live on, relative to the database's day: 31 and older are past the 30 days' cut-off. */
const OLD_DAYS = [40, 31] as const;
const NEW_DAYS = [29, 26] as const;

export interface ChaosShape {
  label: string;
  keyColumns: string[];
  /** The statements that make the table, its days given as the SQL of the database's UTC midnight. */
  ddl: (today: string) => string[];
  /** Key values of a new row (`n` is unique), or none when the key is generated. */
  newKey: (rng: Rng, n: number) => string[] | undefined;
  /** Re-inserting a generated key needs OVERRIDING SYSTEM VALUE. */
  generatedKey?: true;
}

const COLUMNS = 'created_at timestamptz NOT NULL, tag text NOT NULL, note text, rev bigint NOT NULL';
const hex = (rng: Rng, n: number) =>
  Array.from({ length: n }, () => '0123456789abcdef'[rng.int(0, 15)] ?? '0').join('');

export const SHAPES: ChaosShape[] = [
  {
    label: 'bigint identity key',
    keyColumns: ['id'],
    // fillfactor leaves room on each page, so a note's update stays on its page (HOT); tag is indexed (never HOT).
    ddl: () => [
      `CREATE TABLE ${REF} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ${COLUMNS}) WITH (fillfactor = 50)`,
    ],
    newKey: () => undefined,
    generatedKey: true,
  },
  {
    label: 'uuid key',
    keyColumns: ['id'],
    ddl: () => [`CREATE TABLE ${REF} (id uuid PRIMARY KEY, ${COLUMNS}) WITH (fillfactor = 50)`],
    newKey: (rng, n) => [
      `${hex(rng, 4)}${String(n).padStart(4, '0')}-${hex(rng, 4)}-4${hex(rng, 3)}-8${hex(rng, 3)}-${hex(rng, 12)}`,
    ],
  },
  {
    label: 'composite key',
    keyColumns: ['tenant', 'seq'],
    ddl: () => [
      `CREATE TABLE ${REF} (tenant int, seq int, ${COLUMNS}, PRIMARY KEY (tenant, seq)) WITH (fillfactor = 50)`,
    ],
    newKey: (rng, n) => [String(rng.int(1, 3)), String(1000 - n)],
  },
  {
    label: 'partitioned by range, its key holding the timestamp',
    keyColumns: ['id', 'created_at'],
    // An update of created_at may move a row to another partition (a DELETE and an INSERT underneath).
    ddl: (today) => [
      `CREATE TABLE ${REF} (id bigint, ${COLUMNS}, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)`,
      `CREATE TABLE public.chaos_old PARTITION OF ${REF} FOR VALUES FROM (MINVALUE) TO (${lit(today)}::timestamptz - interval '35 days')`,
      `CREATE TABLE public.chaos_mid PARTITION OF ${REF} FOR VALUES FROM (${lit(today)}::timestamptz - interval '35 days') TO (${lit(today)}::timestamptz - interval '28 days')`,
      `CREATE TABLE public.chaos_rest PARTITION OF ${REF} DEFAULT`,
    ],
    newKey: (_, n) => [String(n * 7)],
  },
];

/** One row version the application wrote. */
interface Version {
  rev: number;
  key: string[];
  line: string;
  /** False once the application's own statement updated or deleted it. */
  live: boolean;
}

export type ChaosAction =
  | 'update note'
  | 'update tag'
  | 'update timestamp'
  | 'touch'
  | 'delete'
  | 'delete and re-insert'
  | 'insert back-dated'
  | 'lock a row'
  | 'vacuum';

export const ACTIONS: ChaosAction[] = [
  'update note',
  'update tag',
  'update timestamp',
  'touch',
  'delete',
  'delete and re-insert',
  'insert back-dated',
  'lock a row',
  'vacuum',
];

export class ChaosApplication {
  readonly versions = new Map<number, Version>();
  private rev = 0;
  private keys = 0;
  private line = '';
  /** The application's writes run one after another on `client`; a step may be waiting for one (a row lock). */
  private queue: Promise<void> = Promise.resolve();
  private readonly pending = new Set<Promise<void>>();
  private readonly failures: unknown[] = [];
  private locker: pg.Client | undefined;
  private lockHeld = false;

  constructor(
    private readonly client: pg.Client,
    private readonly url: string,
    readonly shape: ChaosShape,
    private readonly rng: Rng,
    /** What happened, in order, for a failure's message. */
    private readonly trace: string[],
  ) {}

  get spec(): TableSpec {
    return {
      schema: 'public',
      name: TABLE,
      timestampColumn: 'created_at',
      keyColumns: this.shape.keyColumns,
    };
  }

  /** Makes the table and seeds `rows` rows, most on old days. */
  async create(rows: number): Promise<void> {
    const today = await this.client.query<{ t: string }>(`SELECT (${TODAY_UTC_SQL})::text AS t`);
    for (const sql of this.shape.ddl(today.rows[0]?.t ?? '')) await this.client.query(sql);
    await this.client.query(`CREATE INDEX ON ${REF} (tag)`);
    await this.client.query(`CREATE INDEX ON ${REF} (created_at)`);
    this.line = rowLineSql(await describeTable(this.client, resolvedTable(this.spec)), 't');
    for (let i = 0; i < rows; i++) await this.insert(undefined, this.instant(this.rng.chance(0.75)));
  }

  /** An instant on a random old (eligible) or new day, never on a midnight. */
  private instant(old: boolean): string {
    const [from, to] = old ? OLD_DAYS : NEW_DAYS;
    const day = this.rng.int(to, from);
    const second = this.rng.int(1, 86_398);
    return `(${TODAY_UTC_SQL} - interval '${day} days' + interval '${second} seconds' + interval '${this.rng.int(0, 999_999)} microseconds')`;
  }

  private get returning(): string {
    return `RETURNING ${this.line} AS line, t.rev, json_build_array(${this.shape.keyColumns.map((c) => `t.${q(c)}::text`).join(', ')}) AS key`;
  }

  private keyWhere(from: number): string {
    return this.shape.keyColumns.map((c, i) => `t.${q(c)}::text = $${from + i}`).join(' AND ');
  }

  private record(row: { line: string; rev: string; key: string[] }): void {
    const rev = Number(row.rev);
    this.versions.set(rev, { rev, key: row.key, line: row.line, live: true });
  }

  /** Inserts a row under `key` (a new one when undefined) at `at` (SQL). */
  private async insert(key: string[] | undefined, at: string): Promise<void> {
    const rev = ++this.rev;
    // A key holding the timestamp takes it from `at`.
    const keyColumns = this.shape.keyColumns.filter((c) => c !== 'created_at');
    const values = (key ?? this.shape.newKey(this.rng, ++this.keys))?.slice(0, keyColumns.length);
    const columns = [...(values ? keyColumns : []), 'created_at', 'tag', 'note', 'rev'];
    const params = [...(values ?? []), this.tag(), `note ${rev}`, rev];
    const placeholders = (values ?? []).map((_, i) => `$${i + 1}`);
    const n = placeholders.length;
    const overriding = key && this.shape.generatedKey ? 'OVERRIDING SYSTEM VALUE' : '';
    const result = await this.client.query(
      `INSERT INTO ${REF} AS t (${columns.map(q).join(', ')}) ${overriding}
       VALUES (${[...placeholders, at, `$${n + 1}`, `$${n + 2}`, `$${n + 3}`].join(', ')}) ${this.returning}`,
      params,
    );
    this.record(result.rows[0]);
  }

  private tag(): string {
    return this.rng.pick(['login', 'logout', 'grant', 'revoke', 'export']);
  }

  /** A version the application believes it has (it may have left the table by the archiver's hand). */
  private target(): Version | undefined {
    const live = [...this.versions.values()].filter((v) => v.live);
    return live.length > 0 ? this.rng.pick(live) : undefined;
  }

  /**
   * Runs `action` after the application's writes before it; the promise settles when it is done. Only a caller between
   * two steps may wait for it: inside a step the write may wait for the step's locks (a VACUUM FULL for an export's
   * COPY, an UPDATE for a delete's rows), as the application's would.
   */
  act(action: ChaosAction, where: string): Promise<void> {
    const target = this.target();
    // Every choice is drawn now, in the seed's order, whenever the write runs.
    const choice = {
      at: this.instant(this.rng.chance(0.6)),
      tag: this.tag(),
      holdMs: this.rng.int(20, 400),
      mode: this.rng.pick(['UPDATE', 'NO KEY UPDATE', 'SHARE', 'KEY SHARE']),
      full: this.rng.chance(0.2),
    };
    const run = async () => {
      const done = await this.write(action, target, choice);
      this.trace.push(`${where}: ${action} ${target ? JSON.stringify(target.key) : ''} → ${done}`);
    };
    const next = this.queue.then(run);
    this.queue = next.catch(() => undefined);
    this.track(next);
    return next;
  }

  /** Waits for every write and row lock the application started; fails with the first write that failed. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    if (this.failures.length > 0) throw this.failures[0];
  }

  /** Keeps `work` until it ends, and its failure for `settle`, whoever else awaits it. */
  private track(work: Promise<void>): void {
    this.pending.add(work);
    work.then(
      () => this.pending.delete(work),
      (error: unknown) => {
        this.failures.push(error);
        this.pending.delete(work);
      },
    );
  }

  async close(): Promise<void> {
    await this.settle();
    await this.locker?.end();
  }

  private async write(
    action: ChaosAction,
    target: Version | undefined,
    choice: { at: string; tag: string; holdMs: number; mode: string; full: boolean },
  ): Promise<string> {
    if (action === 'insert back-dated') {
      await this.insert(undefined, this.instant(true));
      return `rev ${this.rev}`;
    }
    if (action === 'vacuum') {
      await this.client.query(`VACUUM ${choice.full ? '(FULL) ' : ''}${REF}`);
      return choice.full ? 'full' : 'done';
    }
    if (!target) return 'no row';
    if (action === 'lock a row') return this.lockRow(target, choice.mode, choice.holdMs);
    await this.client.query('BEGIN');
    try {
      const found = await this.client.query<{ rev: string }>(
        `SELECT t.rev FROM ${REF} AS t WHERE ${this.keyWhere(1)} FOR UPDATE`,
        target.key,
      );
      const old = found.rows[0] ? this.versions.get(Number(found.rows[0].rev)) : undefined;
      if (found.rows[0] && !old?.live)
        throw new Error(`the table holds rev ${found.rows[0].rev}, not a live one`);
      if (!old && action !== 'delete and re-insert') {
        await this.client.query('COMMIT');
        return 'gone';
      }
      const rev = this.rev + 1;
      const set =
        action === 'update note'
          ? `note = 'note ${rev}'`
          : action === 'update tag'
            ? `tag = ${lit(`${choice.tag} ${rev}`)}`
            : action === 'update timestamp'
              ? `created_at = ${choice.at}`
              : undefined;
      const n = target.key.length;
      if (action === 'touch') {
        await this.client.query(`UPDATE ${REF} AS t SET note = note WHERE ${this.keyWhere(1)}`, target.key);
      } else if (set) {
        this.rev = rev;
        const updated = await this.client.query(
          `UPDATE ${REF} AS t SET ${set}, rev = $${n + 1} WHERE ${this.keyWhere(1)} ${this.returning}`,
          [...target.key, rev],
        );
        this.record(updated.rows[0]);
      } else {
        if (old) await this.client.query(`DELETE FROM ${REF} AS t WHERE ${this.keyWhere(1)}`, target.key);
        if (action === 'delete and re-insert') {
          // The same key, on the same UTC day when the day is part of the key.
          const at = this.shape.keyColumns.includes('created_at')
            ? `${lit(target.key[1] ?? '')}::timestamptz`
            : choice.at;
          await this.insert(target.key, at);
        }
      }
      await this.client.query('COMMIT');
      if (old && action !== 'touch') old.live = false;
      if (!old) return 'gone, re-inserted';
      return action === 'touch' ? `touched rev ${old.rev}` : `replaced rev ${old.rev}`;
    } catch (error) {
      await this.client.query('ROLLBACK');
      throw error;
    }
  }

  /** Holds a row lock in a session of its own for `ms`, as a long application transaction would. */
  private async lockRow(target: Version, mode: string, ms: number): Promise<string> {
    if (this.lockHeld) return 'a lock is held already';
    if (!this.locker) {
      this.locker = new pg.Client({ connectionString: this.url });
      await this.locker.connect();
    }
    const locker = this.locker;
    this.lockHeld = true;
    await locker.query('BEGIN');
    const locked = await locker.query(
      `SELECT 1 FROM ${REF} AS t WHERE ${this.keyWhere(1)} FOR ${mode}`,
      target.key,
    );
    const release = new Promise<void>((resolve, reject) =>
      setTimeout(() => {
        locker
          .query('COMMIT')
          .then(() => {
            this.lockHeld = false;
            resolve();
          })
          .catch(reject);
      }, ms),
    );
    this.track(release);
    return `${locked.rowCount} row(s) FOR ${mode} for ${ms} ms`;
  }

  /**
   * What the ledger says of the table and the archives: each archived line is a live version the application wrote,
   * with its exact values, in one archive and not in the table; each table row is a live version; no live version is
   * missing from both.
   */
  problems(tableLines: string[], archivedLines: string[]): string[] {
    const problems: string[] = [];
    const revOf = (line: string) => Number((JSON.parse(line) as { rev: string }).rev);
    const inTable = new Map<number, number>();
    for (const line of tableLines) {
      const v = this.versions.get(revOf(line));
      if (v?.line !== line) problems.push(`the table holds a version the application never wrote: ${line}`);
      else if (!v.live) problems.push(`the table holds rev ${v.rev}, which the application replaced`);
      inTable.set(revOf(line), (inTable.get(revOf(line)) ?? 0) + 1);
    }
    const archived = new Map<number, number>();
    for (const line of archivedLines) {
      const rev = revOf(line);
      const v = this.versions.get(rev);
      if (v?.line !== line) problems.push(`archived a version the application never wrote: ${line}`);
      else if (!v.live) problems.push(`archived rev ${rev}, which the application replaced: ${line}`);
      archived.set(rev, (archived.get(rev) ?? 0) + 1);
    }
    for (const v of this.versions.values()) {
      const where = (inTable.get(v.rev) ?? 0) + (archived.get(v.rev) ?? 0);
      if (v.live && where === 0)
        problems.push(`rev ${v.rev} lost: neither in the table nor archived: ${v.line}`);
      if (where > 1)
        problems.push(`rev ${v.rev} ${where} times (table ${inTable.get(v.rev) ?? 0}): ${v.line}`);
    }
    return problems;
  }
}

/**
 * What a restore of every archive into an empty table must hold, against what it holds: each archived row, once,
 * except for a key the application re-inserted after the archiver took it, archived in two versions, of which a
 * restore writes one (operating.md, restore: the newest under `skip` when both lie in one UTC day, either when the
 * versions lie in different days).
 */
export function restoreProblems(
  archives: readonly { day: string; lines: readonly string[] }[],
  keyColumns: readonly string[],
  restored: readonly string[],
): string[] {
  const keyOf = (line: string) => {
    const row = JSON.parse(line) as Record<string, string>;
    return JSON.stringify(keyColumns.map((c) => row[c]));
  };
  const versions = new Map<string, { line: string; day: string; rev: number }[]>();
  for (const archive of archives)
    for (const line of archive.lines) {
      const rev = Number((JSON.parse(line) as { rev: string }).rev);
      versions.set(keyOf(line), [...(versions.get(keyOf(line)) ?? []), { line, day: archive.day, rev }]);
    }
  const problems: string[] = [];
  const written = new Map<string, string[]>();
  for (const line of restored) written.set(keyOf(line), [...(written.get(keyOf(line)) ?? []), line]);
  for (const [key, archived] of versions) {
    const got = written.get(key) ?? [];
    written.delete(key);
    const newest = archived.reduce((a, b) => (b.rev > a.rev ? b : a));
    const oneDay = archived.every((v) => v.day === newest.day);
    const allowed = oneDay ? [newest.line] : archived.map((v) => v.line);
    if (got.length !== 1 || !allowed.includes(got[0] ?? ''))
      problems.push(`key ${key}: restored ${JSON.stringify(got)}, archived ${JSON.stringify(archived)}`);
  }
  for (const [key, lines] of written)
    problems.push(`key ${key}: restored, never archived: ${lines.join(' ')}`);
  return problems;
}
