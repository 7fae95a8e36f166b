import { randomUUID } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, inject, it } from 'vitest';
import { type CheckResult, doctorExitCode, localDoctorDeps, runDoctor } from '../../cli/doctor.js';
import {
  type DeploymentConfig,
  parseDeploymentConfig,
} from '../../lambdas/shared/config/deployment-schema.js';
import { freePort } from '../../local/postgres.js';
import { archiverTestbed, seedEvents, type TableSpec } from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const EVENTS: TableSpec = { schema: 'public', name: 'events', timestampColumn: 'created_at' };

describe('audit-archiver local doctor: every check against embedded PostgreSQL, s3rver and dynalite', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 50, 40);
      // The same shape without the index on its timestamp column.
      await db.client.query(
        'CREATE TABLE "no index" (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)',
      );
    },
    [EVENTS],
  );

  const config = (url: string, tables: TableSpec[] = [EVENTS]): DeploymentConfig =>
    parseDeploymentConfig({
      s3: { bucket: bed.local.services.bucket, prefix: 'archive/' },
      databases: [{ name: 'app', credentials: { url }, tls: 'disable', tables }],
    });
  const doctor = (overrides: { config?: DeploymentConfig; s3?: S3Client } = {}) =>
    runDoctor({ ...localDoctorDeps(bed.local, {}), ...overrides });
  const find = (results: CheckResult[], check: string) => results.find((r) => r.check === check);

  it('is all green on a usable table with its index, the local bucket and lock table: exit 0', async () => {
    // Act
    const results = await doctor();

    // Assess
    expect(results.filter((r) => r.status !== 'ok' && r.status !== 'skipped')).toEqual([]);
    expect(results.map((r) => r.check)).toEqual(
      expect.arrayContaining([
        'credentials',
        'reachable',
        'tls',
        'table',
        'privileges',
        'index',
        'bucket',
        'bucket writable',
        'lock table',
      ]),
    );
    expect(find(results, 'last executions')?.status).toBe('skipped');
    expect(doctorExitCode(results)).toBe(0);
  });

  it('warns that a table with inheritance children is archived ONLY as itself, naming the children: exit 0, 1 with --strict', async () => {
    // Prepare
    await bed.db.client.query(
      'CREATE TABLE public.events_2020 (legacy text) INHERITS (public.events); CREATE TABLE public.events_2021 () INHERITS (public.events)',
    );

    try {
      // Act
      const results = await doctor();

      // Assess
      expect(find(results, 'inheritance children')).toMatchObject({
        status: 'warning',
        subject: 'app/public.events',
        detail: expect.stringContaining('the rows of public.events_2020, public.events_2021 stay'),
      });
      expect(doctorExitCode(results)).toBe(0);
      expect(doctorExitCode(results, true)).toBe(1);
    } finally {
      await bed.db.client.query('DROP TABLE public.events_2020, public.events_2021');
    }
  });

  it('warns about constraints added NOT VALID, on the table or a column’s domain, which older rows may break', async () => {
    // Prepare: old rows break both (a restore into the table would refuse them).
    await bed.db.client.query(`
      CREATE DOMAIN public.short_actor AS text;
      CREATE DOMAIN public.tag AS text;
      CREATE TYPE public.label AS (tag public.tag);
      CREATE TABLE public.constrained (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor public.short_actor,
                                       amount int NOT NULL, tags public.tag[], label public.label);
      CREATE INDEX ON public.constrained (created_at);
      INSERT INTO public.constrained VALUES (1, now() - interval '40 days', 'a rather long actor', -5);
      ALTER TABLE public.constrained ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID;
      ALTER DOMAIN public.short_actor ADD CONSTRAINT actor_short CHECK (length(VALUE) < 8) NOT VALID;
      ALTER DOMAIN public.tag ADD CONSTRAINT tag_lower CHECK (VALUE = lower(VALUE)) NOT VALID;`);
    const tables: TableSpec[] = [{ schema: 'public', name: 'constrained', timestampColumn: 'created_at' }];

    // Act
    const results = await doctor({ config: config(bed.db.url, tables) });

    // Assess
    expect(find(results, 'constraints not validated')).toMatchObject({
      status: 'warning',
      subject: 'app/public.constrained',
      detail: expect.stringContaining(
        '"actor_short" on domain public.short_actor, "tag_lower" on domain public.tag, "amount_positive" on table public.constrained: added NOT VALID',
      ),
    });
    expect(find(results, 'table')?.status).toBe('ok');
    expect(doctorExitCode(results, true)).toBe(1);
  });

  // PostgreSQL 18 marks a NOT ENFORCED constraint not validated too; it checks no row, a restored one neither.
  it.skipIf(inject('postgresVersion') < 18)(
    'does not warn about a CHECK constraint NOT ENFORCED (PostgreSQL 18+), which no restore checks',
    async () => {
      // Prepare: an old row breaks it, and PostgreSQL inserts another such row all the same.
      await bed.db.client.query(`
        CREATE TABLE public.unenforced (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, amount int NOT NULL);
        CREATE INDEX ON public.unenforced (created_at);
        INSERT INTO public.unenforced VALUES (1, now() - interval '40 days', -5);
        ALTER TABLE public.unenforced ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT ENFORCED;
        INSERT INTO public.unenforced VALUES (2, now() - interval '40 days', -6);`);
      const tables: TableSpec[] = [{ schema: 'public', name: 'unenforced', timestampColumn: 'created_at' }];

      // Act
      const results = await doctor({ config: config(bed.db.url, tables) });

      // Assess
      expect(find(results, 'constraints not validated')).toBeUndefined();
      expect(find(results, 'table')?.status).toBe('ok');
    },
  );

  it('is critical when two config entries reach one database and list the same table: exit 1', async () => {
    // Prepare: another connection string for the same database, as a second entry written for other tables would be.
    const direct = `${bed.db.url}?application_name=direct`;
    const twice = parseDeploymentConfig({
      s3: { bucket: bed.local.services.bucket, prefix: 'archive/' },
      databases: [
        { name: 'app', credentials: { url: bed.db.url }, tls: 'disable', tables: [EVENTS] },
        { name: 'app_direct', credentials: { url: direct }, tls: 'disable', tables: [EVENTS] },
      ],
    });

    // Act
    const results = await doctor({ config: twice });

    // Assess
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'one table under two databases entries that reach the same database',
      held: find(results, 'configured twice')?.status === 'critical',
    });
    expect(find(results, 'configured twice')).toMatchObject({
      status: 'critical',
      subject: 'app/public.events, app_direct/public.events',
      detail: expect.stringContaining('a restore or validate through one misses the rows the other archived'),
    });
    expect(doctorExitCode(results)).toBe(1);
  });

  it('warns when two config entries reach one database, whatever their tables: a hold is kept per entry', async () => {
    // Prepare: a second entry for the same database, for another table and restores into public.*.
    const shared = parseDeploymentConfig({
      s3: { bucket: bed.local.services.bucket, prefix: 'archive/' },
      databases: [
        { name: 'app', credentials: { url: bed.db.url }, tls: 'disable', tables: [EVENTS] },
        {
          name: 'app_restores',
          credentials: { url: `${bed.db.url}?application_name=restores` },
          tls: 'disable',
          tables: [{ schema: 'public', name: 'no index', timestampColumn: 'created_at' }],
          restoreTargets: ['public.*'],
        },
      ],
    });

    // Act
    const results = await doctor({ config: shared });

    // Assess: before, doctor said nothing, and a hold set on public.events through "app" did not stop an overwrite
    // restore into it through "app_restores".
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'two databases entries that reach one database, for different tables',
      held: find(results, 'one database, two entries')?.status === 'warning',
    });
    expect(find(results, 'one database, two entries')).toMatchObject({
      status: 'warning',
      subject: 'app, app_restores',
      detail: expect.stringContaining('a hold set through one does not stop an overwrite restore'),
    });
    expect(find(results, 'configured twice')).toBeUndefined();
    expect([doctorExitCode(results), doctorExitCode(results, true)]).toEqual([0, 1]);
  });

  it('warns about a timestamp column without an index: exit 0, 1 with --strict', async () => {
    // Prepare
    const tables: TableSpec[] = [{ schema: 'public', name: 'no index', timestampColumn: 'created_at' }];

    // Act
    const results = await doctor({ config: config(bed.db.url, tables) });

    // Assess
    expect(find(results, 'index')).toMatchObject({ status: 'warning', subject: 'app/public.no index' });
    expect(doctorExitCode(results)).toBe(0);
    expect(doctorExitCode(results, true)).toBe(1);
  });

  it('warns about a timestamp column whose only index a failed CREATE INDEX CONCURRENTLY left invalid', async () => {
    // Prepare: the build fails on two equal times and leaves the index behind, invalid: no query ever uses it.
    await bed.db.client.query(`
      CREATE TABLE "failed index" (id bigint PRIMARY KEY, created_at timestamptz NOT NULL);
      INSERT INTO "failed index" VALUES (1, now() - interval '40 days'), (2, now() - interval '40 days');`);
    await expect(
      bed.db.client.query('CREATE UNIQUE INDEX CONCURRENTLY failed_at ON "failed index" (created_at)'),
    ).rejects.toThrow(/could not create unique index/);
    const tables: TableSpec[] = [{ schema: 'public', name: 'failed index', timestampColumn: 'created_at' }];

    // Act
    const results = await doctor({ config: config(bed.db.url, tables) });

    // Assess
    expect(find(results, 'index')).toMatchObject({
      status: 'warning',
      subject: 'app/public.failed index',
      detail: expect.stringContaining('failed_at'),
    });
  });

  it('says of a partitioned table whose index a partition lacks that the partition is scanned, not the table', async () => {
    // Prepare: the index is created ON ONLY the partitioned table, and attached for one partition of two.
    await bed.db.client.query(`
      CREATE TABLE "parted index" (id bigint, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at))
        PARTITION BY RANGE (created_at);
      CREATE TABLE "parted index old" PARTITION OF "parted index" FOR VALUES FROM ('2000-01-01') TO ('2020-01-01');
      CREATE TABLE "parted index new" PARTITION OF "parted index" FOR VALUES FROM ('2020-01-01') TO ('2100-01-01');
      CREATE INDEX parted_at ON ONLY "parted index" (created_at);
      CREATE INDEX parted_old_at ON "parted index old" (created_at);
      ALTER INDEX parted_at ATTACH PARTITION parted_old_at;`);
    const tables: TableSpec[] = [{ schema: 'public', name: 'parted index', timestampColumn: 'created_at' }];

    // Act
    const results = await doctor({ config: config(bed.db.url, tables) });

    // Assess
    expect(find(results, 'index')).toMatchObject({
      status: 'warning',
      detail: expect.stringContaining('parted_at, is invalid: some partition has no index attached to it'),
    });
  });

  /**
   * Runs `act` with the database's sessions starting in `zone` and a table `name` whose LOCALTIMESTAMP default writes
   * local times, undoing both after; `table(timestampTimeZone, retentionDays)` configures it beside EVENTS.
   */
  async function withLocalTimes(
    zone: string,
    name: string,
    act: (table: (timestampTimeZone?: string, retentionDays?: number) => TableSpec[]) => Promise<void>,
  ): Promise<void> {
    await bed.db.client.query(`
      ALTER DATABASE "${bed.db.name}" SET TimeZone = '${zone}';
      CREATE TABLE public.${name} (id bigint PRIMARY KEY, created_at timestamp NOT NULL DEFAULT LOCALTIMESTAMP);
      CREATE INDEX ON public.${name} (created_at);`);
    try {
      await act((timestampTimeZone, retentionDays) => [
        { schema: 'public', name, timestampColumn: 'created_at', timestampTimeZone, retentionDays },
        EVENTS,
      ]);
    } finally {
      await bed.db.client.query(`ALTER DATABASE "${bed.db.name}" RESET TimeZone; DROP TABLE public.${name}`);
    }
  }

  it('warns when a timestamp column is read in another zone than the database’s sessions write local times in, naming the zone to set', async () => {
    // Prepare: sessions start in Los Angeles, whose LOCALTIMESTAMP fills the column; the config leaves it at UTC, so a
    // row written 8 hours before a cut-off in truth reads as written 16 hours before it (in summer, 7 and 15).
    await withLocalTimes('America/Los_Angeles', 'local_times', async (table) => {
      // Act
      const utc = await doctor({ config: config(bed.db.url, table()) });
      const set = await doctor({ config: config(bed.db.url, table('America/Los_Angeles')) });
      const alike = await doctor({ config: config(bed.db.url, table('US/Pacific')) });

      // Assess: warned at UTC, naming the zone; not once the zone (or another name of it) is set; never for timestamptz.
      const warning = find(utc, 'timestamp zone');
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack:
          'leaves timestampTimeZone at UTC for a timestamp column filled with now() in a database whose sessions start in Los Angeles',
        held:
          warning?.status === 'warning' &&
          warning.detail.includes('set timestampTimeZone: America/Los_Angeles'),
      });
      expect(utc.filter((r) => r.check === 'timestamp zone')).toEqual([
        {
          check: 'timestamp zone',
          subject: 'app/public.local_times',
          status: 'warning',
          detail: expect.stringContaining(
            "read in UTC (timestampTimeZone), but this database's sessions start in America/Los_Angeles, where now(), CURRENT_TIMESTAMP and LOCALTIMESTAMP write local time: if the application writes it so, set timestampTimeZone: America/Los_Angeles",
          ),
        },
      ]);
      expect(find(set, 'timestamp zone')).toBeUndefined();
      expect(find(alike, 'timestamp zone')).toBeUndefined();
      expect(doctorExitCode(utc)).toBe(0);
      expect(doctorExitCode(utc, true)).toBe(1);
    });
  });

  it('reads a POSIX sessions zone as the sessions do, and names the zone the config takes for it', async () => {
    // Prepare: TimeZone 'UTC+3' is three hours west of UTC for a session (POSIX); a config cannot name it (it takes zone
    // names), so the warning must name the zone it takes for it.
    await withLocalTimes('UTC+3', 'posix_times', async (table) => {
      // Act
      const utc = await doctor({ config: config(bed.db.url, table('UTC')) });
      const fixed = await doctor({ config: config(bed.db.url, table('Etc/GMT+3')) });

      // Assess: warned at UTC, naming the Etc/GMT zone (config validation refuses 'UTC+3'); silent once it is set.
      expect(find(utc, 'timestamp zone')).toMatchObject({
        status: 'warning',
        detail: expect.stringContaining('sessions start in UTC+3, where now()'),
      });
      expect(find(utc, 'timestamp zone')?.detail).toContain('set timestampTimeZone: Etc/GMT+3');
      expect(find(fixed, 'timestamp zone')).toBeUndefined();
    });
  });

  it('compares the zones back to the oldest rows a retention archives: Istanbul kept summer time until 2016', async () => {
    // Prepare: since September 2016 Istanbul is UTC+3 all year, as Etc/GMT-3 is; before, it had summer time, so rows
    // of those years a long retention archives read an hour off in winter.
    await withLocalTimes('Europe/Istanbul', 'istanbul_times', async (table) => {
      // Act: a century of retention reaches back past 2016 whatever the date the test runs on.
      const century = await doctor({ config: config(bed.db.url, table('Etc/GMT-3', 36_500)) });
      const oneYear = await doctor({ config: config(bed.db.url, table('Etc/GMT-3', 365)) });

      // Assess
      expect(find(century, 'timestamp zone')).toMatchObject({
        status: 'warning',
        detail: expect.stringContaining('set timestampTimeZone: Europe/Istanbul'),
      });
      expect(find(oneYear, 'timestamp zone')).toBeUndefined();
    });
  });

  it('warns when the zones agree in January and July but not in between (Cairo starts summer time four weeks after Athens)', async () => {
    // Prepare: both zones are UTC+2 in winter and UTC+3 in summer, but Egypt moves its clocks on the last Friday of
    // April and Greece on the last Sunday of March: through most of April a local time Cairo's now() writes reads in
    // Athens as an instant an hour earlier than it was written, so those rows are archived an hour before their time.
    await withLocalTimes('Africa/Cairo', 'cairo_times', async (table) => {
      // Act
      const athens = await doctor({ config: config(bed.db.url, table('Europe/Athens')) });
      const cairo = await doctor({ config: config(bed.db.url, table('Africa/Cairo')) });
      const egypt = await doctor({ config: config(bed.db.url, table('Egypt')) });

      // Assess: warned for Athens, naming Cairo; silent for Cairo and for another name of it.
      const warning = find(athens, 'timestamp zone');
      recordProof({
        kind: 'threat',
        actor: 'operator',
        attack:
          'sets timestampTimeZone to a zone with the same winter and summer offsets as the sessions’ zone but other change dates',
        held: warning?.status === 'warning' && warning.detail.includes('set timestampTimeZone: Africa/Cairo'),
      });
      expect(warning).toMatchObject({
        status: 'warning',
        detail: expect.stringContaining('set timestampTimeZone: Africa/Cairo'),
      });
      expect(find(cairo, 'timestamp zone')).toBeUndefined();
      expect(find(egypt, 'timestamp zone')).toBeUndefined();
    });
  });

  it('is critical when the role may SELECT but not DELETE: exit 1', async () => {
    // Prepare
    const role = `reader_${randomUUID().slice(0, 8)}`;
    await bed.db.client.query(`CREATE ROLE ${role} LOGIN PASSWORD 'reader-pw'`);
    await bed.db.client.query(`GRANT SELECT ON public.events TO ${role}`);
    const url = bed.db.url.replace(/\/\/[^@]*@/, `//${role}:reader-pw@`);

    try {
      // Act
      const results = await doctor({ config: config(url) });

      // Assess
      expect(find(results, 'privileges')).toMatchObject({
        status: 'critical',
        detail: expect.stringMatching(/lacks DELETE/),
      });
      expect(doctorExitCode(results)).toBe(1);
    } finally {
      await bed.db.client.query(`REVOKE ALL ON public.events FROM ${role}; DROP ROLE ${role}`);
    }
  });

  it('names the error class of a wrong password and never prints the password: exit 1', async () => {
    // Prepare
    const wrong = 'Wr0ng-S3cret';
    const url = bed.db.url.replace(/:[^:@/]*@/, `:${wrong}@`);

    // Act
    const results = await doctor({ config: config(url) });

    // Assess
    expect(find(results, 'reachable')).toMatchObject({
      status: 'critical',
      detail: expect.stringMatching(/^DatabaseAccessError: /),
    });
    expect(JSON.stringify(results)).not.toContain(wrong);
    expect(doctorExitCode(results)).toBe(1);
  });

  it('refuses a URL whose unencoded "@" and "/" would make part of the password the host, and prints no part of it', async () => {
    // Prepare
    const env = { APP_URL: 'postgres://archiver:Tr0ub@dorSecretPart/horse@127.0.0.1:5432/app' };
    const fromEnv = parseDeploymentConfig({
      s3: { bucket: bed.local.services.bucket, prefix: 'archive/' },
      databases: [{ name: 'app', credentials: { urlEnv: 'APP_URL' }, tls: 'disable', tables: [EVENTS] }],
    });

    // Act
    const results = await runDoctor({ ...localDoctorDeps(bed.local, env), config: fromEnv });

    // Assess
    expect(find(results, 'credentials')).toMatchObject({
      status: 'critical',
      detail: expect.stringContaining('environment variable APP_URL is ambiguous'),
    });
    expect(JSON.stringify(results)).not.toContain('dorSecretPart');
    expect(doctorExitCode(results)).toBe(1);
  });

  it('says which server and database the credentials reach, not the user name', async () => {
    // Act
    const results = await doctor();

    // Assess
    const { hostname, port } = new URL(bed.db.url);
    expect(find(results, 'credentials')?.detail).toMatch(
      new RegExp(`^url resolves to ${hostname}:${port}, database "[^"]+"$`),
    );
  });

  it('is critical when S3 cannot be reached: exit 1', async () => {
    // Prepare: a port nothing listens on
    const s3 = new S3Client({
      endpoint: `http://127.0.0.1:${await freePort()}`,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });

    // Act
    const results = await doctor({ s3 });

    // Assess
    expect(find(results, 'bucket')).toMatchObject({
      status: 'critical',
      detail: expect.stringMatching(/^not reachable: /),
    });
    expect(doctorExitCode(results)).toBe(1);
  });
});
