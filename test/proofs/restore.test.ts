import { gunzipSync, gzipSync } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { deleteBatch } from '../../lambdas/delete/core.js';
import { exportBatch } from '../../lambdas/export/core.js';
import { manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../../lambdas/shared/archive/store.js';
import type { StepDeps } from '../../lambdas/shared/step/step-deps.js';
import { uploadBatch } from '../../lambdas/upload/core.js';
import { verifyBatch } from '../../lambdas/verify/core.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  cutoffSql,
  fixedCutoffSql,
  getObject,
  leasedTask,
  listKeys,
  readLiveArchives,
  resolvedTable,
  s3ClientFor,
  seedEvents,
  TODAY_UTC_SQL,
  tableLines,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const lines = (client: Parameters<typeof tableLines>[0], name: string) =>
  tableLines(client, resolvedTable({ name, timestampColumn: 'created_at' })).then((l) => l.sort());

describe('restore workflow, end to end on local PostgreSQL, S3 and DynamoDB', () => {
  /** Rows of `events` as archived: what every restore must give back exactly. */
  let archived: string[] = [];
  let dataKeys: string[] = [];

  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 600);
      await db.client.query(`CREATE TABLE public.before_archive AS SELECT * FROM public.events`);
      await db.client.query(`ALTER TABLE public.before_archive ADD PRIMARY KEY (id)`);
      await seedEvents(db.client, 'shrinking', 100);
    },
    [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
      { schema: 'public', name: 'shrinking', timestampColumn: 'created_at' },
    ],
  );
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', ...request },
      { retryIntervalScale: 0 },
    );

  it('archives the old rows first (the material of every restore below)', async () => {
    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    const kept = await lines(bed.db.client, 'events');
    const before = await lines(bed.db.client, 'before_archive');
    archived = before.filter((line) => !kept.includes(line));
    expect(archived.length).toBeGreaterThan(250);
    dataKeys = (await readLiveArchives(bed.local, 'public', 'events')).map((a) => a.key).sort();
    expect(dataKeys.length).toBeGreaterThan(RESTORE_PAGE_SIZE_FLOOR);
  });

  it('a dry run verifies every archive and reports what it would restore, and writes nothing', async () => {
    // Act
    const result = await restore({ targetTable: 'public.dry', dryRun: true });

    // Assess
    expect(result.execution.error).toBeUndefined();
    expect(result.results).toHaveLength(dataKeys.length);
    expect(result.results.every((r) => r.status === 'dry-run')).toBe(true);
    expect(result.results.reduce((n, r) => n + r.inserted, 0)).toBe(archived.length);
    const exists = await bed.db.client.query(`SELECT to_regclass('public.dry') AS t`);
    expect(exists.rows[0].t).toBeNull();
  });

  it('restores every archive of the table into a new table created like the source, exactly', async () => {
    // Act
    const result = await restore({ targetTable: 'public.copy_all' });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.execution.output).toMatchObject({
      status: 'succeeded',
      totals: { files: dataKeys.length, failedFiles: 0, inserted: archived.length, skipped: 0 },
    });
    expect(await lines(bed.db.client, 'copy_all')).toEqual(archived);
  });

  it('skips archives the watermark lists, unless told to ignore it; then strategy skip keeps existing rows', async () => {
    // Act
    const again = await restore({ targetTable: 'public.copy_all' });
    const ignoring = await restore({ targetTable: 'public.copy_all', ignoreWatermark: true });

    // Assess
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results.every((r) => r.status === 'already-restored')).toBe(true);
    expect(ignoring.execution.status).toBe('SUCCEEDED');
    expect(ignoring.execution.output).toMatchObject({ totals: { inserted: 0, skipped: archived.length } });
    expect(await lines(bed.db.client, 'copy_all')).toEqual(archived);
  });

  it('keeps a watermark per table, not per name: a target dropped and created again is restored again', async () => {
    // Prepare
    await restore({ targetTable: 'public.recreated' });
    await bed.db.client.query('DROP TABLE public.recreated');

    // Act
    const result = await restore({ targetTable: 'public.recreated' });

    // Assess
    expect(result.execution.output).toMatchObject({
      totals: { inserted: archived.length, alreadyRestoredFiles: 0 },
    });
    expect(await lines(bed.db.client, 'recreated')).toEqual(archived);
  });

  it('restores one archive by key, and a day range by partition', async () => {
    // Prepare
    const key = dataKeys[3] ?? '';
    const day =
      /year=(\d+)\/month=(\d+)\/day=(\d+)/
        .exec(dataKeys[5] ?? '')
        ?.slice(1)
        .join('-') ?? '';
    const lastDay =
      /year=(\d+)\/month=(\d+)\/day=(\d+)/
        .exec(dataKeys[7] ?? '')
        ?.slice(1)
        .join('-') ?? '';

    // Act
    const one = await restore({ targetTable: 'public.one_key', mode: 'key', key });
    const range = await restore({
      targetTable: 'public.some_days',
      mode: 'range',
      fromDay: day,
      toDay: lastDay,
    });

    // Assess
    expect(one.execution.status).toBe('SUCCEEDED');
    expect(one.results.map((r) => r.key)).toEqual([key]);
    const [archive] = (await readLiveArchives(bed.local, 'public', 'events')).filter((a) => a.key === key);
    expect(await lines(bed.db.client, 'one_key')).toEqual([...(archive?.lines ?? [])].sort());
    expect(range.execution.status).toBe('SUCCEEDED');
    expect(range.results.map((r) => r.key).sort()).toEqual(dataKeys.slice(5, 8));
  });

  it('strategy overwrite puts back the archived version of rows changed since; fail refuses and writes nothing', async () => {
    // Prepare
    const key = dataKeys[0] ?? '';
    await restore({ targetTable: 'public.edited', mode: 'key', key });
    await bed.db.client.query(
      `UPDATE public.edited SET actor = 'edited' WHERE id IN (SELECT min(id) FROM public.edited)`,
    );
    await bed.db.client.query(`INSERT INTO public.edited SELECT * FROM public.before_archive WHERE id = 600`);
    const edited = await lines(bed.db.client, 'edited');

    // Act
    const failing = await restore({
      targetTable: 'public.edited',
      mode: 'key',
      key,
      strategy: 'fail',
      ignoreWatermark: true,
    });
    const unchanged = await lines(bed.db.client, 'edited');
    const overwriting = await restore({
      targetTable: 'public.edited',
      mode: 'key',
      key,
      strategy: 'overwrite',
      ignoreWatermark: true,
    });

    // Assess
    expect(failing.execution.status).toBe('FAILED');
    expect(failing.execution.error?.name).toBe('RestoreIncompleteError');
    expect(failing.results[0]?.error).toMatch(/^RestoreConflictError: /);
    expect(unchanged).toEqual(edited);
    expect(overwriting.execution.status).toBe('SUCCEEDED');
    expect(overwriting.results[0]).toMatchObject({ status: 'restored', inserted: 0 });
    expect(overwriting.results[0]?.overwritten).toBe(overwriting.results[0]?.rows);
    const restored = await bed.db.client.query(
      `SELECT count(*)::int AS n FROM public.edited WHERE actor = 'edited'`,
    );
    expect(restored.rows[0].n).toBe(0);
  });

  it('advances the sequence of the key past the restored rows', async () => {
    // Prepare: a target whose identity sequence starts afresh, as after a rebuild.
    await bed.db.client.query(
      `CREATE TABLE public.rebuilt (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, created_at timestamptz, actor text NOT NULL, payload jsonb)`,
    );

    // Act
    const result = await restore({ targetTable: 'public.rebuilt' });
    const added = await bed.db.client.query(
      `INSERT INTO public.rebuilt (created_at, actor) VALUES (now(), 'new') RETURNING id::int AS id`,
    );

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.execution.output).toMatchObject({ sequences: [{ column: 'id' }] });
    expect(added.rows[0].id).toBeGreaterThan(Math.max(...archived.map((l) => Number(JSON.parse(l).id))));
  });

  it('leaves a sequence that feeds a text column alone (it cannot be advanced past text), and succeeds', async () => {
    // Prepare: the target's actor column takes 'evt_' || nextval(...) by default, its sequence owned by the column.
    await bed.db.client.query(`
      CREATE SEQUENCE public.prefixed_seq;
      CREATE TABLE public.prefixed (id bigint PRIMARY KEY, created_at timestamptz,
                                    actor text NOT NULL DEFAULT 'evt_' || nextval('public.prefixed_seq'), payload jsonb);
      ALTER SEQUENCE public.prefixed_seq OWNED BY public.prefixed.actor;`);

    // Act
    const result = await restore({ targetTable: 'public.prefixed' });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.execution.output).toMatchObject({ sequences: [] });
    expect(await lines(bed.db.client, 'prefixed')).toEqual(archived);
  });

  it('handles schema drift: added columns get their default, removed ones fail strict and drop lenient, changed types convert only when no value changes', async () => {
    // Prepare
    await bed.db.client.query(`
      CREATE TABLE public.drifted (id bigint PRIMARY KEY, created_at timestamptz, actor varchar(40) NOT NULL,
                                   payload jsonb, source text NOT NULL DEFAULT 'restored')`);
    await bed.db.client.query(
      `CREATE TABLE public.narrowed (id numeric PRIMARY KEY, created_at timestamptz, actor text NOT NULL)`,
    );
    await bed.db.client.query(
      `CREATE TABLE public.uncastable (id bigint PRIMARY KEY, created_at timestamptz, actor text, payload point)`,
    );
    await bed.db.client.query(
      `CREATE TABLE public.truncating (id bigint PRIMARY KEY, created_at date, actor varchar(4), payload jsonb)`,
    );
    const key = dataKeys[1] ?? '';

    // Act
    const added = await restore({ targetTable: 'public.drifted', mode: 'key', key });
    const strict = await restore({ targetTable: 'public.narrowed', mode: 'key', key });
    const lenient = await restore({ targetTable: 'public.narrowed', mode: 'key', key, drift: 'lenient' });
    const uncastable = await restore({
      targetTable: 'public.uncastable',
      mode: 'key',
      key,
      drift: 'lenient',
    });

    const truncating = await restore({ targetTable: 'public.truncating', mode: 'key', key });
    const truncatingLeniently = await restore({
      targetTable: 'public.truncating',
      mode: 'key',
      key,
      drift: 'lenient',
    });

    // Assess
    expect(added.execution.status).toBe('SUCCEEDED');
    expect(added.results[0]?.warnings.join('\n')).toMatch(
      /"actor" converted from text to character varying\(40\)/,
    );
    expect(truncating.execution.status).toBe('FAILED');
    expect(truncating.results[0]?.error).toMatch(
      /^SchemaDriftError: column "created_at": \d+ value\(s\) change when converted from timestamp with time zone to date/,
    );
    expect(truncatingLeniently.results[0]?.warnings.join('\n')).toMatch(
      /column "actor": \d+ value\(s\) change/,
    );
    const defaults = await bed.db.client.query(`SELECT DISTINCT source FROM public.drifted`);
    expect(defaults.rows).toEqual([{ source: 'restored' }]);
    // A removed column drops under lenient only in the archived table itself (below): another table lacking one is
    // not shaped like the archive, and takes nothing.
    for (const refused of [strict, lenient]) {
      expect(refused.execution.status).toBe('FAILED');
      expect(refused.results[0]?.error).toMatch(
        /^TableNotUsableError: .*not shaped like the archive: it lacks "payload"/,
      );
    }
    const count = await bed.db.client.query(`SELECT count(*)::int AS n FROM public.narrowed`);
    expect(count.rows[0].n).toBe(0);
    expect(uncastable.execution.status).toBe('FAILED');
    expect(uncastable.results[0]?.error).toMatch(
      /SchemaDriftError: column "payload": archived jsonb values cannot be read as point \(SQLSTATE 22P02\)/,
    );
  });

  it('refuses a target without a key for every strategy: it could not tell which rows are already there', async () => {
    // Prepare
    await bed.db.client.query(
      'CREATE TABLE public.heap (id bigint, created_at timestamptz, actor text, payload jsonb)',
    );
    const key = dataKeys[2] ?? '';

    // Act
    const results = await Promise.all(
      ['skip', 'overwrite', 'fail'].map((strategy) =>
        restore({ targetTable: 'public.heap', mode: 'key', key, strategy }),
      ),
    );

    // Assess
    for (const result of results) {
      expect(result.execution.status).toBe('FAILED');
      expect(result.results[0]?.error).toMatch(
        /^SchemaDriftError: restore needs a primary key or unique index/,
      );
    }
    const count = await bed.db.client.query('SELECT count(*)::int AS n FROM public.heap');
    expect(count.rows[0].n).toBe(0);
  });

  it('refuses a target whose key only a CHECK or a NOT NULL domain keeps from NULL, naming the columns and the ALTER that makes them NOT NULL', async () => {
    // Prepare: keyed by a unique index on a column declared nullable, its NULLs refused by a CHECK or by its domain.
    await bed.db.client.query(`
      CREATE DOMAIN public.present_id AS bigint NOT NULL;
      CREATE TABLE public.checked_key (id bigint UNIQUE CHECK (id IS NOT NULL), created_at timestamptz,
                                       actor text NOT NULL, payload jsonb);
      CREATE TABLE public.domain_key (id public.present_id UNIQUE, created_at timestamptz, actor text NOT NULL,
                                      payload jsonb);`);
    const key = dataKeys[2] ?? '';
    const targets = ['checked_key', 'domain_key'];

    // Act
    const refused = await Promise.all(
      targets.map((name) => restore({ targetTable: `public.${name}`, mode: 'key', key })),
    );
    for (const name of targets)
      await bed.db.client.query(`ALTER TABLE "public"."${name}" ALTER COLUMN "id" SET NOT NULL`);
    const restored = await Promise.all(
      targets.map((name) => restore({ targetTable: `public.${name}`, mode: 'key', key })),
    );

    // Assess: refused with nothing written, saying what to run; once it has run, restored.
    for (const [i, result] of refused.entries()) {
      const name = targets[i] ?? '';
      expect(result.execution.status).toBe('FAILED');
      expect(result.results[0]?.error).toMatch(
        new RegExp(
          `^SchemaDriftError: restore cannot recognise the archive's rows by the key \\(id\\) of "public"\\."${name}": its key column\\(s\\) "id" admit NULL .*ALTER TABLE "public"\\."${name}" ALTER COLUMN "id" SET NOT NULL`,
        ),
      );
      expect(result.results[0]?.error).toMatch(/a CHECK \(\.\.\. IS NOT NULL\) or a NOT NULL domain/);
    }
    for (const result of restored) expect(result.execution.status).toBe('SUCCEEDED');
    const counts = await bed.db.client.query(
      'SELECT (SELECT count(*) FROM public.checked_key)::int AS checked, (SELECT count(*) FROM public.domain_key)::int AS domain',
    );
    expect(counts.rows[0]).toEqual({
      checked: restored[0]?.results[0]?.inserted,
      domain: restored[1]?.results[0]?.inserted,
    });
    expect(restored[0]?.results[0]?.inserted).toBeGreaterThan(0);
  });

  it('refuses tampered, truncated and wrongly described archives with nothing of them written, and restores the rest', async () => {
    // Prepare: damage three archives in three ways; keep their bytes to put back afterwards.
    const s3 = s3ClientFor(bed.local);
    const bucket = bed.local.services.bucket;
    const [altered = '', truncated = '', described = ''] = dataKeys;
    const manifestOf = (key: string) => key.replace(/\/([^/]+)\.jsonl\.gz$/, '/_$1.manifest.json');
    const expected = (await readLiveArchives(bed.local, 'public', 'events'))
      .filter((a) => ![altered, truncated, described].includes(a.key))
      .flatMap((a) => a.lines)
      .sort();
    const saved = new Map<string, Buffer>();
    for (const key of [altered, truncated, manifestOf(described)])
      saved.set(key, await getObject(bed.local, key));
    const put = (key: string, body: Buffer | string) =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    const text = gunzipSync(saved.get(altered) ?? Buffer.alloc(0)).toString('utf8');
    const tampered = text.replace(/"actor" : "user_\d+"/, '"actor" : "intruder"');
    expect(tampered).not.toBe(text);
    await put(altered, gzipSync(tampered));
    const whole = saved.get(truncated) ?? Buffer.alloc(0);
    await put(truncated, whole.subarray(0, whole.length - 20));
    const manifest = saved.get(manifestOf(described))?.toString('utf8') ?? '';
    await put(
      manifestOf(described),
      manifest.replace(/"rowCount": (\d+)/, (_, n: string) => `"rowCount": ${Number(n) - 1}`),
    );

    try {
      // Act
      const result = await restore({ targetTable: 'public.partly' });

      // Assess
      expect(result.execution.status).toBe('FAILED');
      const failed = result.results.filter((r) => r.status === 'failed');
      expect(failed.map((r) => r.key).sort()).toEqual([altered, truncated, described].sort());
      for (const r of failed) expect(r.error).toMatch(/^ArchiveIntegrityError: /);
      expect(await lines(bed.db.client, 'partly')).toEqual(expected);
    } finally {
      for (const [key, body] of saved) await put(key, body);
    }
  });

  it('a row that arrives while the archive is copied into the target is handled as the strategy says', async () => {
    // Prepare: one archive, and a writer that inserts one of its keys and holds its transaction open, so the restore's
    // COPY into the target waits on that key; the writer commits (or rolls back) while the COPY waits.
    const key = dataKeys[0] ?? '';
    const archivedIds = gunzipSync(await getObject(bed.local, key))
      .toString('utf8')
      .trimEnd()
      .split('\n')
      .map((line) => Number((JSON.parse(line) as { id: string }).id));
    const arriving = archivedIds[Math.floor(archivedIds.length / 2)] ?? 0;
    await bed.db.client.query('CREATE TABLE public.racing (LIKE public.before_archive INCLUDING ALL)');
    const race = async (strategy: string, writer: 'COMMIT' | 'ROLLBACK') => {
      await bed.db.client.query('TRUNCATE public.racing');
      const other = new pg.Client({ connectionString: bed.db.url });
      await other.connect();
      try {
        await other.query('BEGIN');
        await other.query(
          `INSERT INTO public.racing SELECT id, created_at, 'arrived', payload FROM public.before_archive WHERE id = $1`,
          [arriving],
        );
        const restoring = restore({ targetTable: 'public.racing', mode: 'key', key, strategy });
        const waited = await waitFor(async () => {
          const copying = await bed.db.client.query(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'COPY "public"."racing"%'`,
          );
          return copying.rows[0].n > 0;
        });
        await other.query(writer);
        const result = await restoring;
        const rows = await bed.db.client.query<{ id: string; actor: string }>(
          'SELECT id::text, actor FROM public.racing ORDER BY id',
        );
        return { waited, result, rows: rows.rows };
      } finally {
        await other.end();
      }
    };
    const actorOf = (rows: { id: string; actor: string }[]) =>
      rows.find((r) => Number(r.id) === arriving)?.actor;
    const archivedActor = (
      await bed.db.client.query('SELECT actor FROM public.before_archive WHERE id = $1', [arriving])
    ).rows[0].actor as string;

    // Act
    const skipped = await race('skip', 'COMMIT');
    const overwritten = await race('overwrite', 'COMMIT');
    const failed = await race('fail', 'COMMIT');
    const rolledBack = await race('fail', 'ROLLBACK');

    // Assess: the COPY was under way each time, and the arriving row was judged by the strategy, as by INSERT.
    for (const run of [skipped, overwritten, failed, rolledBack]) expect(run.waited).toBe(true);
    expect(skipped.result.results[0]).toMatchObject({
      status: 'restored',
      inserted: archivedIds.length - 1,
      skipped: 1,
    });
    expect(skipped.rows).toHaveLength(archivedIds.length);
    expect(actorOf(skipped.rows)).toBe('arrived');
    expect(overwritten.result.results[0]).toMatchObject({ inserted: archivedIds.length - 1, overwritten: 1 });
    expect(actorOf(overwritten.rows)).toBe(archivedActor);
    expect(failed.result.results[0]?.error).toMatch(/^RestoreConflictError: /);
    expect(failed.rows).toEqual([{ id: String(arriving), actor: 'arrived' }]);
    expect(rolledBack.result.results[0]).toMatchObject({ status: 'restored', inserted: archivedIds.length });
    expect(rolledBack.rows).toHaveLength(archivedIds.length);
    expect(actorOf(rolledBack.rows)).toBe(archivedActor);
  });

  it('refuses a target with rules (ON CONFLICT refuses them, COPY would skip them), naming why, writing nothing', async () => {
    // Prepare: a rule that copies every inserted row's key into a side table.
    await bed.db.client.query(`
      CREATE TABLE public.ruled (LIKE public.before_archive INCLUDING ALL);
      CREATE TABLE public.ruled_seen (id bigint);
      CREATE RULE seen AS ON INSERT TO public.ruled DO ALSO INSERT INTO public.ruled_seen VALUES (NEW.id);`);

    // Act
    const result = await restore({ targetTable: 'public.ruled', mode: 'key', key: dataKeys[1] ?? '' });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.execution.error?.message).toMatch(/TableNotUsableError|has rules/);
    const counts = await bed.db.client.query(
      `SELECT (SELECT count(*) FROM public.ruled)::int AS rows, (SELECT count(*) FROM public.ruled_seen)::int AS seen`,
    );
    expect(counts.rows[0]).toEqual({ rows: 0, seen: 0 });
  });

  it('restores into a target whose rules were dropped or disabled (pg_class still says it has rules)', async () => {
    // Prepare: relhasrules stays true after DROP RULE, until a VACUUM clears it.
    await bed.db.client.query(`
      CREATE TABLE public.unruled (LIKE public.before_archive INCLUDING ALL);
      CREATE TABLE public.unruled_seen (id bigint);
      CREATE RULE seen AS ON INSERT TO public.unruled DO ALSO INSERT INTO public.unruled_seen VALUES (NEW.id);
      CREATE RULE seen_too AS ON INSERT TO public.unruled DO ALSO INSERT INTO public.unruled_seen VALUES (NEW.id);
      DROP RULE seen ON public.unruled;
      ALTER TABLE public.unruled DISABLE RULE seen_too;`);
    const flagged = await bed.db.client.query(
      `SELECT relhasrules FROM pg_catalog.pg_class WHERE oid = 'public.unruled'::regclass`,
    );
    expect(flagged.rows[0]).toEqual({ relhasrules: true });

    // Act
    const result = await restore({ targetTable: 'public.unruled', mode: 'key', key: dataKeys[1] ?? '' });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    const counts = await bed.db.client.query(
      `SELECT (SELECT count(*) FROM public.unruled)::int AS rows, (SELECT count(*) FROM public.unruled_seen)::int AS seen`,
    );
    expect(counts.rows[0]?.rows).toBeGreaterThan(0);
    expect(counts.rows[0]?.seen).toBe(0);
  });

  it('a target with row-level security gets its rows through INSERT under its policies (COPY FROM refuses it)', async () => {
    // Prepare: forced on the owner too, with a policy that admits every row.
    await bed.db.client.query(`
      CREATE TABLE public.secured (LIKE public.before_archive INCLUDING ALL);
      ALTER TABLE public.secured ENABLE ROW LEVEL SECURITY;
      ALTER TABLE public.secured FORCE ROW LEVEL SECURITY;
      CREATE POLICY everyone ON public.secured USING (true) WITH CHECK (true);`);
    const key = dataKeys[1] ?? '';

    // Act
    const result = await restore({ targetTable: 'public.secured', mode: 'key', key });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    const count = await bed.db.client.query(`SELECT count(*)::int AS n FROM public.secured`);
    expect(count.rows[0].n).toBe(result.results[0]?.inserted);
    expect(count.rows[0].n).toBeGreaterThan(0);
  });

  it('holds the target from the start of a group to its COMMIT: ALTER, DROP INDEX and DROP TABLE wait, DML does not', async () => {
    // Prepare: before the group's first archive is written, another session tries to change the target and to insert
    // a row of its own. A statement seen waiting on a lock is cancelled (a signal: no server timer, which faketime
    // would disturb), so it never runs after the restore.
    await bed.db.client.query('CREATE TABLE public.held (LIKE public.before_archive INCLUDING ALL)');
    const attempts: Record<string, string> = {};
    const attempt = async (sql: string): Promise<string> => {
      const other = new pg.Client({ connectionString: bed.db.url });
      await other.connect();
      try {
        const pid = (await other.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid')).rows[0]
          ?.pid;
        let finished = false;
        const outcome = other.query(sql).then(
          () => 'done',
          (error: { code?: string }) => error.code ?? 'error',
        );
        void outcome.then(() => {
          finished = true;
        });
        const waiting = await waitFor(async () => {
          if (finished) return true;
          const found = await bed.db.client.query(
            "SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
            [pid],
          );
          return found.rows[0].n > 0;
        });
        if (waiting && !finished) await bed.db.client.query('SELECT pg_catalog.pg_cancel_backend($1)', [pid]);
        const result = await outcome;
        return result === '57014' ? 'waited' : result;
      } finally {
        await other.end();
      }
    };
    let intruded = false;
    const intrude = (deps: StepDeps): StepDeps => {
      const store = Object.create(deps.store) as ArchiveStore;
      store.getStream = async (...args) => {
        if (!intruded) {
          intruded = true;
          attempts.alter = await attempt('ALTER TABLE public.held ADD COLUMN intruder int');
          attempts.dropIndex = await attempt('DROP INDEX public.held_pkey');
          attempts.drop = await attempt('DROP TABLE public.held');
          attempts.insert = await attempt(
            "INSERT INTO public.held SELECT -id, created_at, 'other', payload FROM public.before_archive LIMIT 1",
          );
        }
        return deps.store.getStream(...args);
      };
      return { ...deps, store };
    };

    // Act
    const run = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.events', targetTable: 'public.held' },
      { retryIntervalScale: 0, deps: intrude },
    );

    // Assess: the schema changes waited on the restore's lock; the insert went through; the restore is whole.
    expect(attempts).toEqual({ alter: 'waited', dropIndex: 'waited', drop: 'waited', insert: 'done' });
    expect(run.execution.status).toBe('SUCCEEDED');
    const columns = await bed.db.client.query(
      "SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'held' AND column_name = 'intruder'",
    );
    expect(columns.rows[0].n).toBe(0);
  });

  it('restores into the original table what the archiver deleted from it', async () => {
    // Act
    const result = await restore({});

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(await lines(bed.db.client, 'events')).toEqual(await lines(bed.db.client, 'before_archive'));
    expect((await listKeys(bed.local, '')).some((k) => k.includes('_quarantine'))).toBe(false);
  });

  it('a column removed from the archived table since: strict fails, lenient drops it with a warning', async () => {
    // Prepare
    const archivedRun = await runLocalArchive(
      bed.local,
      { tables: ['public.shrinking'] },
      { retryIntervalScale: 0 },
    );
    expect(archivedRun.execution.status).toBe('SUCCEEDED');
    await bed.db.client.query('ALTER TABLE public.shrinking DROP COLUMN payload');
    const back = (request: Record<string, unknown>) => restore({ table: 'public.shrinking', ...request });

    // Act
    const strict = await back({});
    const lenient = await back({ drift: 'lenient' });

    // Assess
    expect(strict.execution.status).toBe('FAILED');
    expect(strict.results[0]?.error).toMatch(/^SchemaDriftError: .*no longer has column\(s\) "payload"/);
    expect(lenient.execution.status).toBe('SUCCEEDED');
    expect(lenient.results[0]?.warnings.join('\n')).toMatch(/"payload" dropped/);
    const count = await bed.db.client.query(`SELECT count(*)::int AS n FROM public.shrinking`);
    expect(count.rows[0].n).toBe(100);
  });
});

/** More archives than one page of the restore Map, so the test covers paging. */
const RESTORE_PAGE_SIZE_FLOOR = 25;

/** Polls `condition` every 50 ms for up to 20 s: whether it became true. */
async function waitFor(condition: () => Promise<boolean>): Promise<boolean> {
  for (const started = Date.now(); Date.now() - started < 20_000; ) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

describe('strategy overwrite into a table with a GENERATED ALWAYS identity column outside the key', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.seq_events (id uuid PRIMARY KEY, seq bigint GENERATED ALWAYS AS IDENTITY,
                                        created_at timestamptz NOT NULL, note text);
        INSERT INTO public.seq_events (id, created_at, note)
        SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid,
               ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 hour', 'n' || g
          FROM generate_series(1, 10) AS g;`);
    },
    [{ schema: 'public', name: 'seq_events', timestampColumn: 'created_at' }],
  );

  it('fails with a named error saying why and what to do, and changes nothing', async () => {
    // Prepare: archived, restored, then edited.
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const restore = (request: Record<string, unknown>) =>
      runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.seq_events', ...request },
        { retryIntervalScale: 0 },
      );
    expect((await restore({})).execution.status).toBe('SUCCEEDED');
    await bed.db.client.query(`UPDATE public.seq_events SET note = 'edited'`);

    // Act
    const overwrite = await restore({ strategy: 'overwrite', ignoreWatermark: true });
    const edited = await bed.db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.seq_events WHERE note = 'edited'`,
    );

    // Assess
    expect(overwrite.execution.status).toBe('FAILED');
    expect(overwrite.results.length).toBeGreaterThan(0);
    for (const result of overwrite.results)
      expect(result.error).toMatch(
        /^SchemaDriftError: strategy "overwrite" cannot restore an identity column GENERATED ALWAYS/,
      );
    expect(edited.rows[0]?.n).toBe(10);
  });
});

describe('restore of a table that is gone (dropped after archiving) into a new table', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'gone', 80, 40),
    [{ schema: 'public', name: 'gone', timestampColumn: 'created_at' }],
  );
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.gone', targetTable: 'public.gone_copy', ...request },
      { retryIntervalScale: 0 },
    );

  it('dry-runs what the real restore then does, leaving no table behind, and restores every row', async () => {
    // Prepare
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const archived = (await readLiveArchives(bed.local, 'public', 'gone')).flatMap((a) => a.lines).length;
    await bed.db.client.query('DROP TABLE public.gone');

    // Act
    const dry = await restore({ dryRun: true });
    const left = await bed.db.client.query(`SELECT pg_catalog.to_regclass('public.gone_copy') AS t`);
    const real = await restore({});

    // Assess
    expect(dry.execution.status).toBe('SUCCEEDED');
    expect(dry.results.every((r) => r.status === 'dry-run')).toBe(true);
    expect(dry.results.reduce((n, r) => n + r.inserted, 0)).toBe(archived);
    expect(left.rows[0]?.t).toBeNull();
    expect(real.execution.status).toBe('SUCCEEDED');
    expect(real.results.reduce((n, r) => n + r.inserted, 0)).toBe(archived);
  });
});

describe('restore of a dropped table whose archives have two shapes (a column added between two runs)', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        `CREATE TABLE public.evolved (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL);
         INSERT INTO public.evolved (created_at, actor)
         SELECT ${TODAY_UTC_SQL} - interval '40 days' + g * interval '1 minute', 'old_' || g FROM generate_series(1, 5) g`,
      );
    },
    [{ schema: 'public', name: 'evolved', timestampColumn: 'created_at' }],
  );

  it('creates the target with every archived column, so the dry run and the restore take every archive', async () => {
    // Prepare: archived, a column added and rows of an older day backfilled with it, archived again, then dropped.
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    await bed.db.client.query(
      `ALTER TABLE public.evolved ADD COLUMN region text NOT NULL DEFAULT 'eu';
       INSERT INTO public.evolved (created_at, actor)
       SELECT ${TODAY_UTC_SQL} - interval '45 days' + g * interval '1 minute', 'new_' || g FROM generate_series(1, 5) g`,
    );
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const archived = (await readLiveArchives(bed.local, 'public', 'evolved')).flatMap((a) => a.lines);
    await bed.db.client.query('DROP TABLE public.evolved');
    const restore = (request: Record<string, unknown>) =>
      runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.evolved', targetTable: 'public.evolved_copy', ...request },
        { retryIntervalScale: 0 },
      );

    // Act
    const dry = await restore({ dryRun: true });
    const real = await restore({});

    // Assess: the column the older archive lacks is nullable in the new table, and its rows come back without it.
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'restores a dropped table whose archives have two shapes into a new table',
      held: dry.execution.status === 'SUCCEEDED' && real.execution.status === 'SUCCEEDED',
    });
    expect(archived).toHaveLength(10);
    expect(dry.execution.status).toBe('SUCCEEDED');
    expect(dry.results.reduce((n, r) => n + r.inserted, 0)).toBe(10);
    expect(real.execution.status).toBe('SUCCEEDED');
    const copied = await bed.db.client.query<{ actor: string; region: string | null }>(
      'SELECT actor, region FROM public.evolved_copy ORDER BY id',
    );
    expect(copied.rows.map((r) => `${r.actor}:${r.region}`)).toEqual([
      ...[1, 2, 3, 4, 5].map((g) => `old_${g}:null`),
      ...[1, 2, 3, 4, 5].map((g) => `new_${g}:eu`),
    ]);
  });
});

describe('restore of a dropped table one of whose manifests is damaged', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'torn', 40, 36),
    [{ schema: 'public', name: 'torn', timestampColumn: 'created_at' }],
  );

  it('creates the target from the manifests it can read and restores every other archive; the damaged one is refused by name', async () => {
    // Prepare
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const archives = await readLiveArchives(bed.local, 'public', 'torn');
    const [damaged] = archives;
    if (!damaged) throw new Error('nothing archived');
    await s3ClientFor(bed.local).send(
      new PutObjectCommand({
        Bucket: bed.local.services.bucket,
        Key: manifestKeyFor(damaged.key),
        Body: '{ not a manifest',
      }),
    );
    await bed.db.client.query('DROP TABLE public.torn');

    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.torn', targetTable: 'public.torn_copy' },
      { retryIntervalScale: 0 },
    );

    // Assess
    const copied = await bed.db.client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.torn_copy',
    );
    expect(restored.results.find((r) => r.key === damaged.key)).toMatchObject({ status: 'failed' });
    expect(copied.rows[0]?.n).toBe(archives.slice(1).flatMap((a) => a.lines).length);
  });
});

describe('restore into the archived table after it was made partitioned (its key widened to (id, created_at))', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'repartitioned', 60, 36),
    [{ schema: 'public', name: 'repartitioned', timestampColumn: 'created_at' }],
  );

  it('takes its old archives back, recognising rows by the wider key, and a repeat skips every row', async () => {
    // Prepare: archived under (id), then the table converted as PostgreSQL requires (the partition key in the key).
    const table = resolvedTable({ name: 'repartitioned', timestampColumn: 'created_at' });
    const original = (await tableLines(bed.db.client, table)).sort();
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    await bed.db.client.query(`
      ALTER TABLE public.repartitioned RENAME TO repartitioned_before;
      CREATE TABLE public.repartitioned (id bigint NOT NULL, created_at timestamptz NOT NULL, actor text NOT NULL,
                                         payload jsonb, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
      CREATE TABLE public.repartitioned_all PARTITION OF public.repartitioned DEFAULT;
      INSERT INTO public.repartitioned SELECT * FROM public.repartitioned_before;
      DROP TABLE public.repartitioned_before;`);
    const restore = () =>
      runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.repartitioned', ignoreWatermark: true },
        { retryIntervalScale: 0 },
      );

    // Act
    const restored = await restore();
    const repeated = await restore();

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'restores into the archived table made partitioned since (its key widened)',
      held: restored.execution.status === 'SUCCEEDED' && repeated.execution.status === 'SUCCEEDED',
    });
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, table)).sort()).toEqual(original);
    expect(repeated.execution.status).toBe('SUCCEEDED');
    expect(repeated.results.reduce((n, r) => n + r.inserted, 0)).toBe(0);
    expect(repeated.results.reduce((n, r) => n + r.skipped, 0)).toBe(
      restored.results.reduce((n, r) => n + r.inserted, 0),
    );
  });
});

describe("restore into the archived table re-keyed since, a key column the archive's key lacks retyped leniently", () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`
        CREATE TABLE public.rekeyed (id integer PRIMARY KEY, region varchar(20) NOT NULL,
                                     created_at timestamptz NOT NULL, actor text);
        INSERT INTO public.rekeyed
        SELECT g, 'r' || g % 3, ${TODAY_UTC_SQL} - interval '50 days' + g * interval '1 hour', 'a' || g
          FROM generate_series(1, 60) AS g;`);
    },
    [{ schema: 'public', name: 'rekeyed', timestampColumn: 'created_at' }],
  );

  it('takes its archives back under strict drift (int4 to int8, varchar(20) to varchar(40)), and a repeat skips every row', async () => {
    // Prepare: archived under (id); the table then made again keyed (id, region), both columns widened.
    const table = resolvedTable({ name: 'rekeyed', timestampColumn: 'created_at' });
    const original = (await tableLines(bed.db.client, table)).sort();
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    await bed.db.client.query(`
      DROP TABLE public.rekeyed;
      CREATE TABLE public.rekeyed (id bigint NOT NULL, region varchar(40) NOT NULL, created_at timestamptz NOT NULL,
                                   actor text, PRIMARY KEY (id, region));`);
    const restore = () =>
      runLocalRestore(
        bed.local,
        { database: 'app', table: 'public.rekeyed', ignoreWatermark: true },
        { retryIntervalScale: 0 },
      );

    // Act
    const restored = await restore();
    const repeated = await restore();

    // Assess: no key type check refuses a change that keeps every value and its equality.
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await tableLines(bed.db.client, table)).sort()).toEqual(original);
    expect(repeated.execution.status).toBe('SUCCEEDED');
    expect(repeated.results.reduce((n, r) => n + r.inserted, 0)).toBe(0);
    expect(repeated.results.reduce((n, r) => n + r.skipped, 0)).toBe(original.length);
  });
});

describe('restore of a dropped table whose columns have type modifiers', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        `CREATE TABLE public.gone_typed (id bigint PRIMARY KEY, created_at timestamptz(3) NOT NULL, code char(5),
                                         name varchar(12), amount numeric(10,2), flags bit(4), tags varchar(8)[],
                                         at time(0));
         INSERT INTO public.gone_typed
         SELECT g, ${TODAY_UTC_SQL} - interval '35 days' + g * interval '1 hour 0.123 seconds', 'c' || g % 10,
                'name ' || g, g * 1.5, (g % 16)::bit(4), ARRAY['t' || g, NULL], time '12:34:56'
           FROM generate_series(1, 40) AS g`,
      );
    },
    [{ schema: 'public', name: 'gone_typed', timestampColumn: 'created_at' }],
  );

  it('creates the target from the manifest with the archived columns’ modifiers, so char(n) values get their padding back', async () => {
    // Prepare: every row is past the cut-off; how each reads, its padding included, and each column's type.
    const rowsSql = (table: string) =>
      `SELECT id, created_at::text, code, octet_length(code) AS code_bytes, name, amount::text, flags::text,
              tags::text, at::text FROM public.${table} ORDER BY id`;
    const typesSql = (table: string) =>
      `SELECT attname, pg_catalog.format_type(atttypid, atttypmod) AS type, attnotnull FROM pg_catalog.pg_attribute
        WHERE attrelid = 'public.${table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`;
    const before = (await bed.db.client.query(rowsSql('gone_typed'))).rows;
    const types = (await bed.db.client.query(typesSql('gone_typed'))).rows;
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    await bed.db.client.query('DROP TABLE public.gone_typed');

    // Act
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.gone_typed', targetTable: 'public.typed_copy' },
      { retryIntervalScale: 0 },
    );

    // Assess
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect((await bed.db.client.query(typesSql('typed_copy'))).rows).toEqual(types);
    expect((await bed.db.client.query(rowsSql('typed_copy'))).rows).toEqual(before);
    expect(before[0]).toMatchObject({ code: 'c1   ', code_bytes: 5 });
  });
});

describe('rows restored into the archived table and archived again, after the compression level changed', () => {
  const bed = archiverTestbed(
    async (db) => seedEvents(db.client, 'recompressed', 120),
    [{ schema: 'public', name: 'recompressed', timestampColumn: 'created_at' }],
  );
  /** Rows older than `cutoff` (fixedCutoffSql, taken before the runs). */
  const oldRows = async (cutoff: string) =>
    (
      await bed.db.client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM public.recompressed WHERE created_at < ${cutoff}`,
      )
    ).rows[0]?.n;
  const level6 = (deps: StepDeps): StepDeps => ({
    ...deps,
    config: { ...deps.config, defaults: { ...deps.config.defaults, compressionLevel: 6 } },
  });

  it('go to the same archives, which keep their own bytes and manifests: the run succeeds and nothing is left', async () => {
    // Prepare: archived at the default level, restored into the table itself; the same content now compresses otherwise.
    const original = await lines(bed.db.client, 'recompressed');
    const cutoff = await fixedCutoffSql(bed.db.client);
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const archives = await readLiveArchives(bed.local, 'public', 'recompressed');
    const restored = await runLocalRestore(
      bed.local,
      { database: 'app', table: 'public.recompressed' },
      { retryIntervalScale: 0 },
    );
    expect(restored.execution.status).toBe('SUCCEEDED');
    expect(await oldRows(cutoff)).toBeGreaterThan(0);

    // Act
    const again = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0, deps: level6 });

    // Assess
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(await oldRows(cutoff)).toBe(0);
    const after = await readLiveArchives(bed.local, 'public', 'recompressed');
    expect(after.map((a) => [a.key, a.manifest.figures])).toEqual(
      archives.map((a) => [a.key, a.manifest.figures]),
    );
    const young = await lines(bed.db.client, 'recompressed');
    expect([...young, ...after.flatMap((a) => a.lines)].sort()).toEqual(original);
  });
});

describe('the target key must tell the archived rows apart as the archived table did', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'renamed', 60, 60);
      // 'k1' and 'K1' are two rows of the source, whose collation is deterministic.
      await db.client.query(
        `CREATE TABLE public.tagged (tag text PRIMARY KEY, created_at timestamptz NOT NULL, note text);
         INSERT INTO public.tagged (tag, created_at, note)
         SELECT CASE WHEN g % 2 = 0 THEN 'k' ELSE 'K' END || (g / 2),
                ${TODAY_UTC_SQL} - interval '45 days' + g * interval '1 hour', 'n' || g
           FROM generate_series(0, 19) AS g`,
      );
    },
    [
      { schema: 'public', name: 'renamed', timestampColumn: 'created_at' },
      { schema: 'public', name: 'tagged', timestampColumn: 'created_at' },
    ],
  );
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(bed.local, { database: 'app', ...request }, { retryIntervalScale: 0 });
  const count = async (table: string) =>
    (await bed.db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.${table}`)).rows[0]?.n;

  it('archives both tables first', async () => {
    // Act
    const run = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });

    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(await count('tagged')).toBe(0);
  });

  it('refuses lenient drift that would drop the key column renamed since: new keys would be made up, and a repeat would double every row', async () => {
    // Prepare
    await bed.db.client.query('ALTER TABLE public.renamed RENAME COLUMN id TO event_id');
    const before = await count('renamed');

    // Act
    const result = await restore({ table: 'public.renamed', drift: 'lenient' });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'a lenient restore into the archived table after its key column was renamed',
      held: result.execution.status === 'FAILED' && (await count('renamed')) === before,
    });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results.length).toBeGreaterThan(0);
    for (const r of result.results)
      expect(r.error).toMatch(
        /^SchemaDriftError: .*key \(event_id\).*"event_id" is not written from the archive/,
      );
    expect(await count('renamed')).toBe(before);
  });

  it.each([
    [
      'a case-insensitive collation',
      'text COLLATE public.ci',
      /"tag" compares under a nondeterministic collation/,
    ],
    [
      'character(n), which ignores trailing blanks',
      'character(4)',
      /"tag" was text when archived and is character\(4\)/,
    ],
  ])('refuses a target whose key compares more loosely, by %s, writing nothing', async (_, type, says) => {
    // Prepare
    await bed.db.client.query(`DROP TABLE IF EXISTS public.loose;
      CREATE COLLATION IF NOT EXISTS public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE public.loose (tag ${type} PRIMARY KEY, created_at timestamptz NOT NULL, note text)`);

    // Act
    const result = await restore({ table: 'public.tagged', targetTable: 'public.loose' });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: `a restore into a target whose key compares more loosely (${type})`,
      held: result.execution.status === 'FAILED' && (await count('loose')) === 0,
    });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    for (const r of result.results) expect(r.error).toMatch(says);
    expect(await count('loose')).toBe(0);
  });

  it('refuses a target keyed like the archive that also has a case-insensitive unique index on the key, writing nothing', async () => {
    // Prepare: the target's primary key tells 'k1' from 'K1'; a second unique index on the same column does not, and
    // INSERT ... ON CONFLICT (tag) arbitrates on every unique index of that column.
    await bed.db.client.query(`DROP TABLE IF EXISTS public.loose;
      CREATE COLLATION IF NOT EXISTS public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE public.loose (tag text PRIMARY KEY, created_at timestamptz NOT NULL, note text);
      CREATE UNIQUE INDEX loose_tag_ci ON public.loose (tag COLLATE public.ci)`);

    // Act
    const result = await restore({ table: 'public.tagged', targetTable: 'public.loose' });

    // Assess: without the check, half the archived rows were skipped as already there and the restore succeeded.
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack: 'a restore into a target with a case-insensitive unique index beside its key',
      held: result.execution.status === 'FAILED' && (await count('loose')) === 0,
    });
    expect(result.execution.status).toBe('FAILED');
    for (const r of result.results)
      expect(r.error).toMatch(
        /^SchemaDriftError: .*its unique index "loose_tag_ci" compares them under a nondeterministic collation/,
      );
    expect(await count('loose')).toBe(0);
  });

  it('refuses a target keyed like the archive that also has a unique index on the key under a looser operator class, writing nothing', async () => {
    // Prepare: bpchar_ops takes text's values as character's, blind to trailing blanks: 'k1 ' (a row already there)
    // and the archived 'k1' are one key to it, and INSERT ... ON CONFLICT (tag) arbitrates on that index too.
    await bed.db.client.query(`DROP TABLE IF EXISTS public.loose;
      CREATE TABLE public.loose (tag text PRIMARY KEY, created_at timestamptz NOT NULL, note text);
      CREATE UNIQUE INDEX loose_tag_blank_blind ON public.loose (tag bpchar_ops);
      INSERT INTO public.loose VALUES ('k1 ', now(), 'already there')`);

    // Act
    const result = await restore({ table: 'public.tagged', targetTable: 'public.loose' });

    // Assess: without the check, 'k1' was skipped as already there and the restore succeeded.
    recordProof({
      kind: 'threat',
      actor: 'database role',
      attack:
        'a restore into a target with a unique index on its key under a looser operator class (bpchar_ops on text)',
      held: result.execution.status === 'FAILED' && (await count('loose')) === 1,
    });
    expect(result.execution.status).toBe('FAILED');
    for (const r of result.results)
      expect(r.error).toMatch(
        /^SchemaDriftError: .*its unique index "loose_tag_blank_blind" compares them through an operator class other than/,
      );
    expect(await count('loose')).toBe(1);
  });

  it('takes a key whose type changed within one equality (text to varchar), every row back', async () => {
    // Prepare
    await bed.db.client.query(
      'CREATE TABLE public.retyped (tag varchar(10) PRIMARY KEY, created_at timestamptz NOT NULL, note text)',
    );

    // Act
    const result = await restore({ table: 'public.tagged', targetTable: 'public.retyped' });

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(await count('retyped')).toBe(20);
  });

  it('refuses under lenient drift a key whose values the target type changes (varchar(1) cuts k1 and K1 to one key), writing nothing', async () => {
    // Prepare: one equality (text, varchar), but a modifier that cuts: every archived key but the first of its
    // letter would meet one written before it, and skip would count it as already there.
    await bed.db.client.query(
      'CREATE TABLE public.cut (tag varchar(1) PRIMARY KEY, created_at timestamptz NOT NULL, note text)',
    );

    // Act
    const result = await restore({
      table: 'public.tagged',
      targetTable: 'public.cut',
      drift: 'lenient',
    });
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'a lenient restore into a target whose key type cuts the archived keys (text to varchar(1))',
      held: result.execution.status === 'FAILED' && (await count('cut')) === 0,
    });

    // Assess
    expect(result.execution.status).toBe('FAILED');
    expect(result.results.length).toBeGreaterThan(0);
    for (const r of result.results)
      expect(r.error).toMatch(/^SchemaDriftError: key column "tag": \d+ value\(s\) change when converted/);
    expect(await count('cut')).toBe(0);
  });

  it('restores into a partitioned target again after TRUNCATE: a new table to the watermark, as a truncated table is', async () => {
    // Prepare
    await bed.db.client.query(
      `CREATE TABLE public.parted (tag text PRIMARY KEY, created_at timestamptz NOT NULL, note text) PARTITION BY HASH (tag);
       CREATE TABLE public.parted_0 PARTITION OF public.parted FOR VALUES WITH (MODULUS 2, REMAINDER 0);
       CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES WITH (MODULUS 2, REMAINDER 1)`,
    );
    const first = await restore({ table: 'public.tagged', targetTable: 'public.parted' });
    await bed.db.client.query('TRUNCATE public.parted');

    // Act
    const again = await restore({ table: 'public.tagged', targetTable: 'public.parted' });

    // Assess
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(again.execution.status).toBe('SUCCEEDED');
    expect(again.results.map((r) => r.status)).not.toContain('already-restored');
    expect(await count('parted')).toBe(20);
  });
});

describe('what a restore marks as received, and what it reads back, after the table moved on', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'overlapped', 120);
      await seedEvents(db.client, 'kept', 60, 60);
      await db.client.query(
        `CREATE TABLE public.local_ts (id bigserial PRIMARY KEY, created_at timestamp NOT NULL, actor text NOT NULL);
         INSERT INTO public.local_ts (created_at, actor)
         SELECT (${TODAY_UTC_SQL} AT TIME ZONE 'America/New_York') - interval '60 days' + g * interval '7 hours', 'a' || g
           FROM generate_series(1, 200) AS g;
         CREATE TABLE public.instants AS
         SELECT id, created_at AT TIME ZONE 'America/New_York' AS at FROM public.local_ts
          WHERE created_at < (${cutoffSql()} AT TIME ZONE 'America/New_York')`,
      );
    },
    [
      { schema: 'public', name: 'overlapped', timestampColumn: 'created_at' },
      { schema: 'public', name: 'kept', timestampColumn: 'created_at' },
      {
        schema: 'public',
        name: 'local_ts',
        timestampColumn: 'created_at',
        timestampTimeZone: 'America/New_York',
      },
    ],
  );
  const restore = (request: Record<string, unknown>) =>
    runLocalRestore(bed.local, { database: 'app', ...request }, { retryIntervalScale: 0 });

  it('leaves an archive still in flight out (nothing else to restore: refused), so once its batch deletes the rows, a restore brings them back', async () => {
    // Prepare: a batch of the nightly run verified, its delete not yet run.
    const table = resolvedTable({ name: 'overlapped', timestampColumn: 'created_at' });
    const before = (await tableLines(bed.db.client, table)).sort();
    const deps = bed.local.deps();
    const task = await leasedTask(bed.local, 'public.overlapped', 'exec-nightly');
    await exportBatch({ ...task, progress: { batches: 0, rows: 0, bytes: 0 } }, deps);
    await uploadBatch(task, deps);
    await verifyBatch(task, deps);
    const during = await restore({ table: 'public.overlapped' });
    await deleteBatch({ ...task, progress: { batches: 0, rows: 0, bytes: 0 } }, deps);
    await deps.locks.release('app', 'public.overlapped', task.lease);
    const deleted = before.length - (await tableLines(bed.db.client, table)).length;

    // Act
    const after = await restore({ table: 'public.overlapped' });

    // Assess
    expect(during.execution.status).toBe('FAILED');
    expect(during.execution.error?.message).toMatch(
      /belong to the batch it has in flight: .*nothing to restore$/,
    );
    expect(during.results).toEqual([]);
    expect(deleted).toBeGreaterThan(0);
    expect(after.execution.status).toBe('SUCCEEDED');
    expect(after.results.reduce((n, r) => n + r.inserted, 0)).toBe(deleted);
    expect((await tableLines(bed.db.client, table)).sort()).toEqual(before);
  });

  it('strategy overwrite puts the archived values back over rows an earlier restore wrote with skip', async () => {
    // Prepare
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const [first] = await readLiveArchives(bed.local, 'public', 'kept');
    if (!first) throw new Error('nothing archived');
    const one = { table: 'public.kept', targetTable: 'public.kept_copy', mode: 'key', key: first.key };
    expect((await restore(one)).execution.status).toBe('SUCCEEDED');
    await bed.db.client.query(`UPDATE public.kept_copy SET actor = 'edited'`);

    // Act
    const overwrite = await restore({ ...one, strategy: 'overwrite' });
    const copied = await lines(bed.db.client, 'kept_copy');

    // Assess
    expect(overwrite.execution.status).toBe('SUCCEEDED');
    expect(overwrite.results.map((r) => r.status)).toEqual(['restored']);
    expect(overwrite.results[0]?.overwritten).toBe(first.lines.length);
    expect(copied).toEqual([...first.lines].sort());
  });

  it('reads the local times of a timestamp column migrated to timestamptz in the zone the manifest names', async () => {
    // Prepare: archived (a run finds nothing left if an earlier test ran one), then the migration such a table meets,
    // done right for the live rows.
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    await bed.db.client.query(
      `ALTER TABLE public.local_ts ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'America/New_York'`,
    );

    // Act
    const result = await restore({ table: 'public.local_ts' });
    const restored = await bed.db.client.query<{ archived: number; restored: number; wrong: number }>(
      `SELECT (SELECT count(*)::int FROM public.instants) AS archived, count(*)::int AS restored,
              count(*) FILTER (WHERE t.created_at IS DISTINCT FROM i.at)::int AS wrong
         FROM public.instants i JOIN public.local_ts t USING (id)`,
    );

    // Assess
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.results.flatMap((r) => r.warnings).join('\n')).toMatch(
      /converted from timestamp without time zone to timestamp with time zone: its local times read in America\/New_York/,
    );
    expect(restored.rows[0]?.archived).toBeGreaterThan(0);
    expect(restored.rows[0]).toMatchObject({ restored: restored.rows[0]?.archived, wrong: 0 });
  });

  it('finds the rows of local-time archives where their marks say, in a timestamp column and in one migrated to timestamptz: a repeated restore is answered from the marks', async () => {
    // Prepare: the archives restored into the migrated table (previous test) and into a copy that keeps local times.
    await bed.db.client.query(
      `CREATE TABLE public.local_copy (id bigint PRIMARY KEY, created_at timestamp NOT NULL, actor text NOT NULL)`,
    );
    const copy = { table: 'public.local_ts', targetTable: 'public.local_copy' };
    expect((await restore(copy)).execution.status).toBe('SUCCEEDED');

    // Act
    const migrated = await restore({ table: 'public.local_ts' });
    const local = await restore(copy);

    // Assess
    for (const again of [migrated, local]) {
      expect(again.execution.status).toBe('SUCCEEDED');
      expect(again.results.length).toBeGreaterThan(0);
      expect(again.results.map((r) => r.status)).toEqual(again.results.map(() => 'already-restored'));
    }
  });
});
