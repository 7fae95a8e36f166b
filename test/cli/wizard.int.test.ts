import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { discoverCandidates, type Prompter, parseWizardOptions, runWizard } from '../../cli/wizard.js';
import { ArchiverConfigSchema, loadConfigFile } from '../../lambdas/shared/config/config.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { createTestDatabase, seedEvents, type TestDatabase } from '../support/fixtures.js';

/** Names that need quoting everywhere: a quote, spaces, unicode. */
const HOSTILE_SCHEMA = 'Ops "Audit"';
const HOSTILE_TABLE = 'Événements d’audit ✓';

describe('audit-archiver wizard: finds the audit tables of a database and writes a config that validates', () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'audit-archiver-wizard-'));
    await seedEvents(db.client, 'audit_events', 400, 400);
    await db.client.query(`CREATE SCHEMA "Ops ""Audit"""`);
    // A composite NOT NULL unique key (no primary key), a timestamp without time zone, no index on it.
    await db.client.query(`
      CREATE TABLE "Ops ""Audit"""."${HOSTILE_TABLE}" (
        tenant int NOT NULL, seq bigint NOT NULL, updated_at timestamptz, "Logged At" timestamp NOT NULL,
        UNIQUE (tenant, seq));
      INSERT INTO "Ops ""Audit"""."${HOSTILE_TABLE}"
        SELECT g % 3, g, now(), (now() AT TIME ZONE 'UTC') - make_interval(days => g) FROM generate_series(1, 200) g;
      CREATE TABLE customers (id int PRIMARY KEY, name text);
      CREATE TABLE change_log (note text, created_at timestamptz);`);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ranks usable audit-like tables first, with key, timestamp column, index, rows and a retention', async () => {
    // Act
    const candidates = await discoverCandidates(db.client);

    // Assess
    const names = candidates.map((c) => `${c.schema}.${c.name}`);
    expect(names.slice(0, 2).sort()).toEqual(
      [`${HOSTILE_SCHEMA}.${HOSTILE_TABLE}`, 'public.audit_events'].sort(),
    );
    const hostile = candidates.find((c) => c.name === HOSTILE_TABLE);
    expect(hostile).toMatchObject({
      keyKind: 'unique index',
      keyColumns: ['tenant', 'seq'],
      timestamp: { name: 'Logged At', kind: 'timestamp', indexed: false },
      age: { rows: 200 },
    });
    const events = candidates.find((c) => c.name === 'audit_events');
    expect(events).toMatchObject({
      keyKind: 'primary key',
      timestamp: { name: 'created_at', indexed: true },
    });
    // 400 rows over 400 days: about 45% older than 180 days, 9% older than 365.
    expect(events?.retention?.days).toBe(180);
    expect(candidates.find((c) => c.name === 'change_log')?.unusable).toMatch(/no primary key/);
    expect(candidates.find((c) => c.name === 'customers')?.unusable).toMatch(/no timestamptz/);
    expect(names.at(-1)).not.toBe('public.audit_events');
  });

  it('measures a table’s age by the rows the archiver can take, past -infinity, infinity and BC sentinels', async () => {
    // Prepare: 100 rows over 100 days, and the sentinels an application writes for "always" and "never".
    await db.client.query(`
      CREATE TABLE public.sentinel_events (id bigint PRIMARY KEY, created_at timestamptz);
      CREATE INDEX ON public.sentinel_events (created_at);
      INSERT INTO public.sentinel_events SELECT g, now() - make_interval(days => g) FROM generate_series(1, 100) g;
      INSERT INTO public.sentinel_events VALUES
        (1001, '-infinity'), (1002, 'infinity'), (1003, '0044-03-15 12:00:00+00 BC'), (1004, NULL);`);

    try {
      // Act
      const candidates = await discoverCandidates(db.client);

      // Assess: the oldest row is 100 days old (a run never archives the sentinels), and none is older than 180.
      const sentinels = candidates.find((c) => c.name === 'sentinel_events');
      expect(sentinels?.age?.rows).toBe(104);
      expect(Math.floor(sentinels?.age?.oldestDays ?? Number.NaN)).toBe(100);
      expect(sentinels?.age?.olderThan[180]).toBe(0);
    } finally {
      await db.client.query('DROP TABLE public.sentinel_events');
    }
  });

  it('marks a table whose only timestamp columns change with its rows unusable, naming them, rather than choose one', async () => {
    // Prepare
    await db.client.query(
      'CREATE TABLE session_log (id int PRIMARY KEY, updated_at timestamptz NOT NULL, last_seen_at timestamptz)',
    );

    try {
      // Act
      const candidates = await discoverCandidates(db.client);

      // Assess
      const sessions = candidates.find((c) => c.name === 'session_log');
      expect(sessions?.timestamp).toBeUndefined();
      expect(sessions?.unusable).toMatch(
        /^its only timestamp columns \((updated_at, last_seen_at|last_seen_at, updated_at)\) change when a row is touched/,
      );
      expect(sessions?.unusable).toContain('timestampColumn yourself');
    } finally {
      await db.client.query('DROP TABLE session_log');
    }
  });

  it('suggests as key only a unique index the archiver takes, past deferrable, invalid and case-insensitive ones', async () => {
    // Prepare: every single-column unique index here is one the run refuses; the two-column one serves
    await db.client.query(`
      CREATE COLLATION wizard_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE ledger_log (id int NOT NULL, ref text NOT NULL, tenant int NOT NULL, seq int NOT NULL,
        created_at timestamptz NOT NULL, CONSTRAINT ledger_log_id UNIQUE (id) DEFERRABLE, UNIQUE (tenant, seq));
      CREATE UNIQUE INDEX ledger_log_ref ON ledger_log (ref COLLATE wizard_ci);
      INSERT INTO ledger_log VALUES (1, 'a', 1, 1, now()), (2, 'b', 1, 2, now()), (3, 'c', 2, 1, now());
      ALTER TABLE ledger_log ADD COLUMN code int NOT NULL DEFAULT 0;`);
    await expect(
      db.client.query('CREATE UNIQUE INDEX CONCURRENTLY ledger_log_code ON ledger_log (code)'),
    ).rejects.toThrow(/could not create unique index/);

    try {
      // Act
      const candidates = await discoverCandidates(db.client);

      // Assess
      const ledger = candidates.find((c) => c.name === 'ledger_log');
      expect(ledger).toMatchObject({ keyKind: 'unique index', keyColumns: ['tenant', 'seq'] });
      expect(ledger?.unusable).toBeUndefined();
    } finally {
      await db.client.query('DROP TABLE ledger_log; DROP COLLATION wizard_ci');
    }
  });

  it('writes a table name with line breaks as one escaped comment line and lists it escaped: no setting is added', async () => {
    // Prepare: any role with CREATE on a schema can name a table so; "log" makes it audit-like
    const hostile = 'log\naws: {notifications: {emails: [a@ev.il]}}\n\u001b[2J#';
    await db.client.query(
      `CREATE TABLE public."${hostile}" (id int PRIMARY KEY, created_at timestamptz NOT NULL)`,
    );
    const out = join(dir, 'injected.yaml');
    const lines: string[] = [];

    try {
      // Act
      await runWizard(
        parseWizardOptions({ urlEnv: 'WIZARD_TEST_URL', out, yes: true, tables: [`public.${hostile}`] }),
        {
          write: (line) => lines.push(line),
          env: { WIZARD_TEST_URL: db.url },
          now: () => new Date('2026-01-02T00:00:00Z'),
        },
      );

      // Assess
      const written = parseYaml(readFileSync(out, 'utf8')) as Record<string, unknown>;
      expect(Object.keys(written)).toEqual(['s3', 'defaults', 'databases']);
      expect(loadConfigFile(out).databases[0]?.tables.map((t) => t.name)).toEqual([hostile]);
      const listed = lines[0]?.split('\n').find((line) => line.includes('public.log'));
      expect(listed).toContain(
        'public.log\\u000aaws: {notifications: {emails: [a@ev.il]}}\\u000a\\u001b[2J#',
      );
      expect(lines.join('\n')).not.toContain('\u001b');
    } finally {
      await db.client.query(`DROP TABLE public."${hostile}"`);
    }
  });

  /** `name`, partitioned by range on created_at into `name`_old (before 2020) and `name`_new, with 2,000 rows. */
  const partitionedSql = (name: string) => `
      CREATE TABLE ${name} (id int, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at))
        PARTITION BY RANGE (created_at);
      CREATE TABLE ${name}_old PARTITION OF ${name} FOR VALUES FROM ('2000-01-01') TO ('2020-01-01');
      CREATE TABLE ${name}_new PARTITION OF ${name} FOR VALUES FROM ('2020-01-01') TO ('2100-01-01');
      INSERT INTO ${name} SELECT g, CASE WHEN g % 2 = 0 THEN '2010-01-01'::timestamptz ELSE now() END
        FROM generate_series(1, 2000) g;`;

  it('sizes a plain table and a partitioned one (all its partitions) as PostgreSQL does', async () => {
    // Prepare: a plain table and a partitioned one of two partitions, both analyzed so reltuples is known.
    await db.client.query(`
      CREATE TABLE sized_plain (id int PRIMARY KEY, created_at timestamptz NOT NULL);
      INSERT INTO sized_plain SELECT g, now() FROM generate_series(1, 3000) g;
      ${partitionedSql('sized_parted')}
      ANALYZE sized_plain; ANALYZE sized_parted_old; ANALYZE sized_parted_new;`);
    const expected = await db.client.query<{ plain: string; parted: string }>(
      `SELECT pg_total_relation_size('sized_plain')::text AS plain,
              (pg_total_relation_size('sized_parted_old') + pg_total_relation_size('sized_parted_new'))::text AS parted`,
    );

    // Act
    const candidates = await discoverCandidates(db.client);

    // Assess
    const plain = candidates.find((c) => c.name === 'sized_plain');
    const parted = candidates.find((c) => c.name === 'sized_parted');
    expect(plain?.bytes).toBe(Number(expected.rows[0]?.plain));
    expect(plain?.bytes).toBeGreaterThan(0);
    expect(plain?.estimatedRows).toBe(3000);
    expect(parted?.bytes).toBe(Number(expected.rows[0]?.parted));
    expect(parted?.estimatedRows).toBe(2000);
  });

  it('counts the rows of a partitioned table analyzed as a whole once, not again as its own', async () => {
    // Prepare: ANALYZE of the partitioned table (autovacuum never runs it; operators do) analyzes its partitions and
    // records their rows as its own reltuples too.
    await db.client.query(`
      ${partitionedSql('counted_parted')}
      ANALYZE counted_parted;`);
    try {
      // Act
      const candidates = await discoverCandidates(db.client);

      // Assess
      expect(candidates.find((c) => c.name === 'counted_parted')?.estimatedRows).toBe(2000);
    } finally {
      await db.client.query('DROP TABLE counted_parted');
    }
  });

  it('calls a timestamp column whose only index a failed CREATE INDEX CONCURRENTLY left invalid not indexed', async () => {
    // Prepare: the build fails on two equal times and leaves the index behind, invalid: no query ever uses it.
    await db.client.query(`
      CREATE TABLE failed_index_rows (id int PRIMARY KEY, created_at timestamptz NOT NULL);
      INSERT INTO failed_index_rows VALUES (1, now() - interval '400 days'), (2, now() - interval '400 days');`);
    try {
      await expect(
        db.client.query(
          'CREATE UNIQUE INDEX CONCURRENTLY failed_index_rows_at ON failed_index_rows (created_at)',
        ),
      ).rejects.toThrow(/could not create unique index/);

      // Act
      const candidates = await discoverCandidates(db.client);

      // Assess
      expect(candidates.find((c) => c.name === 'failed_index_rows')?.timestamp).toMatchObject({
        name: 'created_at',
        indexed: false,
      });
    } finally {
      await db.client.query('DROP TABLE failed_index_rows');
    }
  });

  it("measures a table with an inheritance child by its own rows, which a run archives, not the child's", async () => {
    // Prepare: 10 rows of the last days in the table, 1,000 of three years ago in its inheritance child (a run
    // archives the table ONLY: the child's rows stay). Neither name looks like an audit table's: no other test picks it.
    await db.client.query(`
      CREATE TABLE parent_rows (id int PRIMARY KEY, created_at timestamptz NOT NULL);
      CREATE TABLE parent_rows_old () INHERITS (parent_rows);
      INSERT INTO parent_rows SELECT g, now() - make_interval(days => g) FROM generate_series(1, 10) g;
      INSERT INTO parent_rows_old SELECT g, now() - interval '1100 days' FROM generate_series(11, 1010) g;`);
    try {
      // Act
      const candidates = await discoverCandidates(db.client);

      // Assess: a retention of 90 days would archive none of the table's rows; 365 days keeps its year queryable.
      expect(candidates.find((c) => c.name === 'parent_rows')).toMatchObject({
        age: { rows: 10, olderThan: { 90: 0, 730: 0 } },
        retention: { days: 365 },
      });
    } finally {
      await db.client.query('DROP TABLE parent_rows CASCADE');
    }
  });

  it('names what failed when it cannot connect, as every command does: a database the server lacks is a usage error', async () => {
    // Prepare: the test server, a database name it does not have, and a wrong password.
    const missing = new URL(db.url);
    missing.pathname = '/no_such_database';
    const wrongPassword = new URL(db.url);
    wrongPassword.username = 'wizard_nobody';
    wrongPassword.password = 'Hunter2Secret';
    const io = { write: () => undefined, env: {}, now: () => new Date('2026-01-02T00:00:00Z') };

    // Act
    const errors = await Promise.all(
      [missing, wrongPassword].map((url) =>
        runWizard(
          parseWizardOptions({ databaseUrl: url.href, out: join(dir, 'never.yaml'), yes: true }),
          io,
        ).then(
          () => undefined,
          (error: Error) => error,
        ),
      ),
    );

    // Assess: before, the driver's own error (exit 1), which named neither the class nor what to correct.
    expect(errors[0]).toBeInstanceOf(ConfigError);
    expect(errors[0]?.message).toMatch(/name a database this server does not have/);
    expect(errors[1]?.name).toBe('DatabaseAccessError');
    expect(String(errors[1]?.message)).not.toContain('Hunter2Secret');
  });

  it('writes, without asking, a config the schema accepts, in which the hostile names round-trip', async () => {
    // Prepare
    const out = join(dir, 'archiver.yaml');
    const lines: string[] = [];

    // Act
    await runWizard(parseWizardOptions({ urlEnv: 'WIZARD_TEST_URL', out, yes: true }), {
      write: (line) => lines.push(line),
      env: { WIZARD_TEST_URL: db.url },
      now: () => new Date('2026-01-02T00:00:00Z'),
    });

    // Assess
    const text = readFileSync(out, 'utf8');
    const parsed = ArchiverConfigSchema.parse(parseYaml(text));
    expect(loadConfigFile(out)).toEqual(parsed);
    const database = parsed.databases[0];
    expect(database).toMatchObject({
      name: db.name,
      credentials: { urlEnv: 'WIZARD_TEST_URL' },
      tls: 'disable',
    });
    expect(database?.tables).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          schema: HOSTILE_SCHEMA,
          name: HOSTILE_TABLE,
          timestampColumn: 'Logged At',
          keyColumns: ['tenant', 'seq'],
        }),
        expect.objectContaining({ schema: 'public', name: 'audit_events', timestampColumn: 'created_at' }),
      ]),
    );
    expect(parsed.defaults.retentionDays).toBe(180);
    expect(text).not.toContain(db.url);
    expect(lines.at(-1)).toMatch(/^Wrote .*: 2 table\(s\), retention 180 days/);
  });

  it('keeps an overwritten config that now holds the password private (0600), though the file it replaces was not', async () => {
    // Prepare: an earlier config, readable by every user (the umask's 0644)
    const out = join(dir, 'overwritten.yaml');
    writeFileSync(out, '# an older config\n');
    chmodSync(out, 0o644);

    // Act: the URL (with its password) goes into the config
    await runWizard(
      parseWizardOptions({ databaseUrl: db.url, tables: ['public.audit_events'], out, yes: true }),
      {
        write: () => undefined,
        env: {},
        now: () => new Date('2026-01-02T00:00:00Z'),
      },
    );

    // Assess
    expect(readFileSync(out, 'utf8')).toContain(db.url);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('asks for tables, retention and file when interactive, asks again after a typo, and refuses an unusable table by name', async () => {
    // Prepare
    const out = join(dir, 'asked.yaml');
    // A typo at each prompt first: a prompter asks again while the wizard's check refuses the answer.
    const answers = ['99', 'public.audit_events', 'half a year', '120', out];
    const questions: string[] = [];
    const refusals: string[] = [];
    const prompter: Prompter = {
      ask: async (question, _fallback, check) => {
        questions.push(question);
        for (;;) {
          const answer = answers.shift() ?? '';
          const refused = check?.(answer);
          if (!refused) return answer;
          refusals.push(refused);
        }
      },
    };
    const io = { prompter, write: () => undefined, env: {}, now: () => new Date() };

    // Act
    await runWizard(parseWizardOptions({ databaseUrl: db.url }), io);
    const refused = runWizard(
      parseWizardOptions({ databaseUrl: db.url, tables: ['public.change_log'], yes: true, out }),
      io,
    );

    // Assess
    expect(questions).toEqual([
      expect.stringMatching(/^Tables to archive/),
      'Retention in days',
      'Write the config to',
    ]);
    expect(refusals).toEqual([
      expect.stringMatching(/^"99" is not a table of this database/),
      'a whole number of days, such as 365',
    ]);
    const config = loadConfigFile(out);
    expect(config.defaults.retentionDays).toBe(120);
    expect(config.databases[0]?.tables.map((t) => t.name)).toEqual(['audit_events']);
    expect(config.databases[0]?.credentials).toEqual({ url: db.url });
    await expect(refused).rejects.toThrow(ConfigError);
    await expect(refused).rejects.toThrow(/--tables: public.change_log cannot be archived: no primary key/);
  });
});

/** A database whose sessions start in `sessions`, with a table its LOCALTIMESTAMP fills with local times. */
function databaseInZone(sessions: string): { db: TestDatabase; dir: string } {
  const bed = { db: undefined as unknown as TestDatabase, dir: '' };
  beforeAll(async () => {
    bed.db = await createTestDatabase();
    bed.dir = mkdtempSync(join(tmpdir(), 'audit-archiver-wizard-zone-'));
    await bed.db.client.query(`
      ALTER DATABASE ${bed.db.name} SET TimeZone = '${sessions}';
      CREATE TABLE audit_log (id bigint PRIMARY KEY, created_at timestamp NOT NULL DEFAULT LOCALTIMESTAMP);
      INSERT INTO audit_log (id) SELECT g FROM generate_series(1, 10) g;`);
  });
  afterAll(async () => {
    await bed.db.drop();
    rmSync(bed.dir, { recursive: true, force: true });
  });
  return bed;
}

describe.each([
  { sessions: 'America/New_York', written: 'America/New_York' },
  // PostgreSQL's AT TIME ZONE reads CET as a fixed offset (an abbreviation), so the config refuses it: a region.
  { sessions: 'CET', written: 'Europe/Paris' },
  // A POSIX zone without summer time names no region: the fixed zone of its offset (Etc/GMT's sign is reversed).
  { sessions: '<-05>+5', written: 'Etc/GMT+5' },
  { sessions: 'UTC+3', written: 'Etc/GMT+3' },
])(
  'audit-archiver wizard: the zone of a timestamp column, sessions in $sessions',
  ({ sessions, written }) => {
    const bed = databaseInZone(sessions);

    it('writes the zone sessions of the database start in, though its own session runs in UTC', async () => {
      // Prepare
      const out = join(bed.dir, 'archiver.yaml');

      // Act
      await runWizard(
        parseWizardOptions({
          databaseUrl: bed.db.url,
          tables: ['public.audit_log'],
          retentionDays: 30,
          out,
          yes: true,
        }),
        { write: () => undefined, env: {}, now: () => new Date() },
      );

      // Assess: read as UTC, every New York row would look 4 to 5 hours older than it is, and be deleted that early.
      const config = parseYaml(readFileSync(out, 'utf8')) as {
        databases: { tables: { name: string; timestampTimeZone?: string }[] }[];
      };
      expect(config.databases[0]?.tables[0]).toMatchObject({ name: 'audit_log', timestampTimeZone: written });
    });

    it('measures a table holding the ends of the type’s range, whose instants lie outside timestamptz’s in the zone', async () => {
      // Prepare: 294276 AD read west of UTC and 4714 BC read east of it cannot convert to an instant.
      await bed.db.client.query(`INSERT INTO audit_log VALUES
        (11, '294276-12-31 23:59:59.999999'), (12, '4714-11-24 00:00:00 BC'), (13, 'infinity'), (14, '-infinity')`);
      const client = new pg.Client({ connectionString: bed.db.url });
      await client.connect();

      // Act
      const candidates = await discoverCandidates(client).finally(async () => {
        await client.end();
        await bed.db.client.query('DELETE FROM audit_log WHERE id > 10');
      });

      // Assess: every row counted; the age is that of the rows written now, which none of the ends changes.
      const audit = candidates.find((c) => c.name === 'audit_log');
      expect(audit?.age?.rows).toBe(14);
      expect(audit?.age?.oldestDays).toBeLessThan(1);
    });
  },
);

describe('audit-archiver wizard: the zone of a timestamp column, sessions in a half-hour POSIX zone', () => {
  const sessions = '<+0530>-5:30';
  const bed = databaseInZone(sessions);

  it('marks the table unusable: no zone the config takes keeps that offset', async () => {
    // Prepare: a session of the database as it is set up now.
    const client = new pg.Client({ connectionString: bed.db.url });
    await client.connect();

    // Act
    const candidates = await discoverCandidates(client).finally(() => client.end());

    // Assess: no zone is suggested rather than UTC, which would read every row hours off its age.
    const audit = candidates.find((c) => c.name === 'audit_log');
    expect(audit?.timestampTimeZone).toBeUndefined();
    expect(audit?.unusable).toContain(`sessions start in ${sessions}`);
    expect(audit?.unusable).toContain('timestampTimeZone yourself');
  });
});
