import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from '../../../../lambdas/shared/config/config.js';
import { resolveTable } from '../../../../lambdas/shared/config/resolved-table.js';
import { configErrorOf } from '../../../support/config-errors.js';

const minimal = () => ({
  s3: { bucket: 'archive-bucket' },
  databases: [
    {
      name: 'app',
      credentials: { url: 'postgres://u:p@h/db' },
      tables: [{ name: 'audit', timestampColumn: 'at' }],
    },
  ],
});

const errorOf = configErrorOf;

describe('config schema', () => {
  it('accepts the shipped example and applies defaults', () => {
    // Act
    const config = loadConfigFile(
      new URL('../../../../config/archiver.example.yaml', import.meta.url).pathname,
    );

    // Assess
    expect(config.databases[0]?.tables).toHaveLength(2);
    expect(resolveTable(config, 'billing', 'billing.Invoice Events')).toMatchObject({
      keyColumns: ['tenant_id', 'event_id'],
      batchSize: 20000,
      retentionDays: 365,
      timestampTimeZone: 'Europe/Paris',
    });
  });

  it('fills defaults for a minimal config', () => {
    // Act
    const config = parseConfig(minimal());

    // Assess
    expect(config.s3).toEqual({ bucket: 'archive-bucket', prefix: '', storageClass: 'STANDARD' });
    expect(config.defaults.batchSize).toBe(50_000);
    expect(config.databases[0]?.tls).toBe('verify-full');
    expect(config.databases[0]?.tables[0]?.schema).toBe('public');
  });

  it.each([
    ['an unencoded "/" in the password', 'postgres://archiver:Hunter2/Secret@127.0.0.1:5432/billing'],
    ['a "%" that escapes nothing', 'postgres://archiver:Hunter2%zzSecret@127.0.0.1:5432/billing'],
  ])('refuses a connection URL with %s, naming the field, never the password', (_case, url) => {
    // Prepare
    const config = minimal();
    const [database] = config.databases;
    if (database) database.credentials = { url };

    // Act
    const error = errorOf(config);

    // Assess
    expect(error).toContain('databases.0.credentials.url: is not a valid URL: postgres://user:password@host');
    expect(error).not.toContain('Hunter2');
  });

  it.each([
    ['a raw "@" and "/" in the password', 'postgres://archiver:Tr0ub@dorSecretPart/horse@127.0.0.1:5432/app'],
    ['two raw "@" in the authority', 'postgres://archiver:Tr0ub@dorSecretPart@127.0.0.1:5432/app'],
    ['a raw "#" in the password', 'postgres://archiver:1234#dorSecretPart@127.0.0.1:5432/app'],
    ['a raw "?" in the password', 'postgres://archiver:1234?dorSecretPart@127.0.0.1:5432/app'],
    ['a fragment', 'postgres://archiver:pw@127.0.0.1:5432/app#dorSecretPart'],
  ])('refuses a connection URL that parses with part of the password elsewhere: %s', (_case, url) => {
    // Prepare
    const config = minimal();
    const [database] = config.databases;
    if (database) database.credentials = { url };

    // Act
    const error = errorOf(config);

    // Assess: the field and the fix are named, no fragment of the password
    expect(error).toContain('databases.0.credentials.url:');
    expect(error).toContain('percent-encoded (%2F %3F %23 %40 %3A %25)');
    expect(error).not.toContain('dorSecretPart');
  });

  it('accepts a password whose "@", "/", "?" and "#" are percent-encoded, and a query', () => {
    // Prepare
    const config = minimal();
    const [database] = config.databases;
    if (database)
      database.credentials = {
        url: 'postgres://archiver:Tr0ub%40dor%2Fho%3Frse%23@127.0.0.1:5432/app?sslmode=disable',
      };

    // Act
    const parsed = parseConfig(config);

    // Assess
    expect(parsed.databases[0]?.credentials).toEqual(database?.credentials);
  });

  it('refuses a timestampTimeZone that is no IANA zone, naming the field, as it does the schedule’s', () => {
    // Prepare
    const config = minimal();
    const [table] = config.databases[0]?.tables ?? [];
    if (table) Object.assign(table, { timestampTimeZone: 'Mars/Olympus' });

    // Act
    const error = errorOf(config);

    // Assess
    expect(error).toContain(
      'databases.0.tables.0.timestampTimeZone: must be an IANA time zone name such as "UTC" or "Europe/Paris"',
    );
  });

  it.each(['CET', 'EET', 'MET', 'WET', 'cet'])(
    'refuses timestampTimeZone %s, which PostgreSQL reads as a fixed offset with no summer time, naming a region',
    (zone) => {
      // Prepare
      const config = minimal();
      const [table] = config.databases[0]?.tables ?? [];
      if (table) Object.assign(table, { timestampTimeZone: zone });

      // Act
      const error = errorOf(config);

      // Assess
      expect(error).toMatch(
        new RegExp(
          `databases\\.0\\.tables\\.0\\.timestampTimeZone: PostgreSQL reads "${zone}" as an abbreviation of a fixed offset, with no summer time.*such as "Europe/`,
        ),
      );
    },
  );

  it.each(['EST', 'UTC', 'Europe/Paris', 'EST5EDT'])('accepts timestampTimeZone %s', (zone) => {
    // Prepare
    const config = minimal();
    const [table] = config.databases[0]?.tables ?? [];
    if (table) Object.assign(table, { timestampTimeZone: zone });

    // Act
    const parsed = parseConfig(config);

    // Assess
    expect(parsed.databases[0]?.tables[0]?.timestampTimeZone).toBe(zone);
  });

  it('refuses two database entries with the same credentials that list the same table', () => {
    // Prepare: the same URL under two names, both archiving public.audit
    const [app] = minimal().databases;
    if (!app) throw new Error('setup');
    const config = { ...minimal(), databases: [app, { ...app, name: 'app_copy' }] };

    // Act
    const error = errorOf(config);

    // Assess
    expect(error).toContain(
      'databases.1.credentials: database entries "app" and "app_copy" have the same credentials, so they reach the same database, and both list public.audit: list it under one of them',
    );
    expect(() =>
      parseConfig({
        ...config,
        databases: [app, { ...app, name: 'app_copy', tables: [{ name: 'other', timestampColumn: 'at' }] }],
      }),
    ).not.toThrow();
  });

  it.each([
    [30, 30],
    [60, 30],
  ])(
    'refuses lockTimeoutSeconds %i with statementTimeoutSeconds %i, naming both and why',
    (lock, statement) => {
      // Act
      const error = errorOf({
        ...minimal(),
        defaults: { lockTimeoutSeconds: lock, statementTimeoutSeconds: statement },
      });

      // Assess: a lock wait would end as the statement's timeout, which fails the table, not as a retried lock wait.
      expect(error).toContain(
        `defaults.lockTimeoutSeconds: ${lock} must be below defaults.statementTimeoutSeconds (${statement}): statement_timeout counts a statement's wait for locks too, so a wait would end as a statement timeout, which fails the table, instead of as a lock timeout, which is retried`,
      );
      expect(() =>
        parseConfig({
          ...minimal(),
          defaults: { lockTimeoutSeconds: statement - 1, statementTimeoutSeconds: statement },
        }),
      ).not.toThrow();
    },
  );

  it('refuses an s3.prefix with an empty segment', () => {
    // Act
    const error = errorOf({ ...minimal(), s3: { bucket: 'archive-bucket', prefix: 'arch//ive/' } });

    // Assess
    expect(error).toContain('s3.prefix: must not contain an empty segment ("//")');
    expect(() =>
      parseConfig({ ...minimal(), s3: { bucket: 'archive-bucket', prefix: 'arch/ive/' } }),
    ).not.toThrow();
  });

  it("refuses a table whose keys would pass S3's 1,024 bytes under s3.prefix, naming it; a long prefix fits short names", () => {
    // Prepare: a prefix of 600 bytes, and a table whose schema and table names percent-encode to 189 characters each.
    const prefix = `${'p'.repeat(599)}/`;
    const longNames = { schema: '€'.repeat(21), name: '€'.repeat(21), timestampColumn: 'at' };
    const withTables = (tables: unknown[]) => ({
      ...minimal(),
      s3: { bucket: 'archive-bucket', prefix },
      databases: [{ name: 'app', credentials: { url: 'postgres://u:p@h/db' }, tables }],
    });

    // Act
    const error = errorOf(withTables([{ name: 'audit', timestampColumn: 'at' }, longNames]));

    // Assess
    expect(error).toContain(
      "databases.0.tables.1.name: under s3.prefix (600 bytes) this table's keys would reach 1109 bytes, past the 1024 S3 takes",
    );
    expect(error).not.toContain('databases.0.tables.0');
    expect(() => parseConfig(withTables([{ name: 'audit', timestampColumn: 'at' }]))).not.toThrow();
  });

  it('never prints an unknown key that is no field name: a JSON comment or a URL split at a comma may hold a password', () => {
    // Prepare: a JSON config with a // comment (editors allow it; YAML reads it and the next key as one key), and a
    // flow map whose misplaced url is split at a comma in its password.
    const dir = mkdtempSync(join(tmpdir(), 'config-keys-'));
    const jsonc = join(dir, 'archiver.json');
    writeFileSync(
      jsonc,
      `{
  "s3": {"bucket": "audit-bucket"},
  // previous database postgres://archiver:Hunter2Secret@db-old.internal:5432/app
  "databases": [{"name": "app", "credentials": {"urlEnv": "APP_DB_URL"},
                 "tables": [{"name": "events", "timestampColumn": "created_at"}]}]
}
`,
    );
    const flow = join(dir, 'archiver.yaml');
    writeFileSync(
      flow,
      `s3: {bucket: audit-bucket}
databases:
  - {name: app, credentials: {urlEnv: APP_DB_URL}, url: postgres://archiver:Hunter2,Secret@db/app, tables: [{name: events, timestampColumn: created_at}]}
`,
    );

    // Act
    const messages = [jsonc, flow].map((path) => {
      try {
        loadConfigFile(path);
        return 'loaded';
      } catch (error) {
        return (error as Error).message;
      }
    });

    // Assess: before, both quoted the keys, the first the whole URL and the second the password's tail and the host.
    expect(messages[0]).toMatch(
      /\(root\): Unrecognized key: a key that is no field name \(\d+ characters, not shown\)$/m,
    );
    expect(messages[1]).toMatch(
      /databases\.0: Unrecognized keys: "url", a key that is no field name \(13 characters, not shown\)$/m,
    );
    for (const message of messages) expect(message).not.toMatch(/Hunter2|Secret|db-old/);
  });

  it('keeps an aws section as written without validating it: the functions never read it', () => {
    // Prepare: a section the deployment schema refuses (see deployment-schema.test.ts).
    const aws = { schedule: { expression: '0 3 * * *' }, logRetentionDays: 100 };

    // Act
    const config = parseConfig({ ...minimal(), aws });

    // Assess
    expect(config.aws).toEqual(aws);
    expect(errorOf({ ...minimal(), awz: aws })).toContain('(root): Unrecognized key: "awz"');
  });

  it.each([
    [
      'a batch size of 0',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0]?.tables[0] ?? {}, { batchSize: 0 }),
      'databases.0.tables.0.batchSize: ',
    ],
    [
      'an unknown field',
      (c: ReturnType<typeof minimal>) => Object.assign(c.s3, { bukket: 'x' }),
      's3: Unrecognized key: "bukket"',
    ],
    [
      'a restore target without a schema',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0] ?? {}, { restoreTargets: ['accounts'] }),
      'databases.0.restoreTargets.0: must be "schema.name" or "schema.*"',
    ],
    [
      'a restore target in every schema',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0] ?? {}, { restoreTargets: ['*.accounts'] }),
      'databases.0.restoreTargets.0: the schema cannot be a wildcard',
    ],
    [
      'a restore target named past 63 bytes, which PostgreSQL would read as the table its first 63 bytes name',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0] ?? {}, { restoreTargets: [`public.${'a'.repeat(64)}`] }),
      'databases.0.restoreTargets.0: each name must be at most 63 bytes',
    ],
    [
      'a prefix starting with "/"',
      (c: ReturnType<typeof minimal>) => Object.assign(c.s3, { prefix: '/a/' }),
      's3.prefix: must be empty or end with "/"',
    ],
    [
      'a prefix with ".."',
      (c: ReturnType<typeof minimal>) => Object.assign(c.s3, { prefix: 'a/../' }),
      's3.prefix: must not contain',
    ],
    [
      'an archival storage class',
      (c: ReturnType<typeof minimal>) => Object.assign(c.s3, { storageClass: 'DEEP_ARCHIVE' }),
      's3.storageClass: ',
    ],
    [
      'a database name with "/"',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0] ?? {}, { name: 'a/b' }),
      'databases.0.name: must be',
    ],
    [
      'a 64-byte identifier',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0]?.tables[0] ?? {}, { name: 'é'.repeat(32) }),
      'databases.0.tables.0.name: must be at most 63 bytes',
    ],
    [
      'no credentials',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0] ?? {}, { credentials: {} }),
      'databases.0.credentials: must hold exactly one of secretArn (a Secrets Manager secret), url (postgres://...) or urlEnv (an environment variable holding the URL); it holds none',
    ],
    [
      'credentials given both as url and urlEnv',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0] ?? {}, {
          credentials: { url: 'postgres://u:p@h/db', urlEnv: 'DB_URL' },
        }),
      'databases.0.credentials: must hold exactly one of secretArn (a Secrets Manager secret), url (postgres://...) or urlEnv (an environment variable holding the URL); it holds "url", "urlEnv"',
    ],
    [
      'credentials as RDS secret fields',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0] ?? {}, { credentials: { username: 'u', password: 'p' } }),
      'it holds "username", "password"',
    ],
    [
      'a url written as the credentials themselves',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0] ?? {}, { credentials: 'postgres://u:p@h/db' }),
      'databases.0.credentials: must be a map holding exactly one of secretArn',
    ],
    [
      'a url written as a key, without `url:`',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0] ?? {}, { credentials: { 'postgres://u:p@h/db': null } }),
      '; it holds a key that is no field name',
    ],
    [
      'a url that is no string',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0] ?? {}, { credentials: { url: 5 } }),
      'databases.0.credentials: its url must be a string',
    ],
    [
      'an empty table list',
      (c: ReturnType<typeof minimal>) => Object.assign(c.databases[0] ?? {}, { tables: [] }),
      'databases.0.tables: must list at least one table',
    ],
    [
      'a duplicate table',
      (c: ReturnType<typeof minimal>) => c.databases[0]?.tables.push({ name: 'audit', timestampColumn: 'x' }),
      'databases.0.tables.1: duplicate table public.audit',
    ],
    [
      'a key column named twice',
      (c: ReturnType<typeof minimal>) =>
        Object.assign(c.databases[0]?.tables[0] ?? {}, { keyColumns: ['id', 'id'] }),
      'databases.0.tables.0.keyColumns: must not name a column twice',
    ],
    [
      'two tables whose names differ only in where the dot falls',
      (c: ReturnType<typeof minimal>) => {
        const dotted = [
          { schema: 'a.b', name: 'c', timestampColumn: 'x' },
          { schema: 'a', name: 'b.c', timestampColumn: 'x' },
        ];
        c.databases[0]?.tables.push(...dotted);
      },
      'databases.0.tables.2: table "a"."b.c" has the name a.b.c in the lock table (its lease, progress and inventory), as "a.b"."c" does',
    ],
  ])('rejects %s and names the field', (_case, mutate, expected) => {
    // Prepare
    const raw = minimal();
    mutate(raw);

    // Act
    const message = errorOf(raw);

    // Assess
    expect(message).toContain(expected);
  });

  it('reports unreadable and malformed files with their path', () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'config-test-'));
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 's3: [unclosed');

    // Act / Assess
    expect(() => loadConfigFile(join(dir, 'missing.yaml'))).toThrow(
      /cannot read config file .*missing\.yaml/,
    );
    expect(() => loadConfigFile(broken)).toThrow(/broken\.yaml is not valid YAML/);
  });

  it('refuses a file whose aliases expand past the yaml library’s bound as a ConfigError naming it', () => {
    // Prepare: each level repeats the one before ten times (the "billion laughs")
    const dir = mkdtempSync(join(tmpdir(), 'config-test-'));
    const laughs = join(dir, 'laughs.yaml');
    const levels = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 9; i++)
      levels.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    writeFileSync(laughs, levels.join('\n'));

    // Act
    const refusal = (() => {
      try {
        loadConfigFile(laughs);
      } catch (error) {
        return error as Error;
      }
    })();

    // Assess
    expect(refusal?.name).toBe('ConfigError');
    expect(refusal?.message).toMatch(/laughs\.yaml is not valid YAML: Excessive alias count/);
  });
});
