import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  buildConfig,
  type Candidate,
  chooseTimestampColumn,
  DEMO_NOTE,
  logicalDatabaseName,
  parseWizardOptions,
  rankCandidates,
  runWizard,
  selectTables,
  suggestRetention,
} from '../../cli/wizard.js';
import { ArchiverConfigSchema } from '../../lambdas/shared/config/config.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';

const candidate = (c: Partial<Candidate> & { name: string }): Candidate => ({
  schema: 'public',
  bytes: 0,
  estimatedRows: 0,
  keyKind: 'primary key',
  auditLike: false,
  timestamp: { name: 'created_at', kind: 'timestamptz', notNull: true, indexed: true },
  ...c,
});

describe('wizard: choosing', () => {
  it('prefers an event-time column, indexed and NOT NULL, and never a last-modified one', () => {
    // Act
    const chosen = chooseTimestampColumn([
      { name: 'updated_at', kind: 'timestamptz', notNull: true, indexed: true },
      { name: 'logged_at', kind: 'timestamptz', notNull: false, indexed: false },
      { name: 'shipped', kind: 'timestamp', notNull: true, indexed: true },
    ]);

    // Assess
    expect(chosen?.name).toBe('logged_at');
  });

  it.each([['updated_at'], ['modified_at'], ['last_seen_at']])(
    'chooses no column of a table whose only timestamp column is mutable-sounding: %s',
    (name) => {
      // Act
      const chosen = chooseTimestampColumn([{ name, kind: 'timestamptz', notNull: true, indexed: true }]);

      // Assess
      expect(chosen).toBeUndefined();
    },
  );

  it('ranks usable audit-like tables first, then other usable ones by size, unusable ones last', () => {
    // Act
    const ranked = rankCandidates([
      candidate({ name: 'orders', bytes: 900 }),
      candidate({ name: 'bad_log', auditLike: true, unusable: 'no key' }),
      candidate({ name: 'audit_log', auditLike: true, bytes: 1 }),
      candidate({ name: 'big', bytes: 5000 }),
    ]);

    // Assess
    expect(ranked.map((c) => c.name)).toEqual(['audit_log', 'big', 'orders', 'bad_log']);
  });

  it('suggests the longest usual retention that archives at least a quarter of the rows, and says why', () => {
    // Act
    const uniform400 = suggestRetention({
      rows: 400,
      oldestDays: 400,
      olderThan: { 730: 0, 365: 35, 180: 220, 90: 310 },
    });
    const young = suggestRetention({
      rows: 100,
      oldestDays: 40,
      olderThan: { 730: 0, 365: 0, 180: 0, 90: 0 },
    });

    // Assess
    expect(uniform400).toEqual({
      days: 180,
      reason:
        '180 days archives 55% of the rows (220) and keeps the last 180 days queryable; 365 days would archive only 9%',
    });
    expect(young.days).toBe(365);
    expect(young.reason).toMatch(/oldest row is 40 days old/);
  });

  it('selects by name or number, defaults to the audit-like ones, and names the field of a bad pick', () => {
    // Prepare
    const list = [candidate({ name: 'audit', auditLike: true }), candidate({ name: 'other' })];

    // Act / Assess
    expect(selectTables(list, undefined).map((c) => c.name)).toEqual(['audit']);
    expect(selectTables(list, ['2', 'public.audit']).map((c) => c.name)).toEqual(['other', 'audit']);
    expect(() => selectTables(list, ['public.nope'])).toThrow(/--tables: "public.nope" is not a table/);
    expect(() => parseWizardOptions({ databaseUrl: 'mysql://x' })).toThrow(
      /databaseUrl: must be a postgres:\/\/ URL/,
    );
    expect(logicalDatabaseName('my db.prod')).toBe('my_db_prod');
  });
});

describe('wizard: the config it writes', () => {
  it('from the demo database, says the url lasts only as long as the command and points at --demo instead', () => {
    // Act
    const result = buildConfig({
      database: 'shop',
      credentials: { url: 'postgres://postgres:postgres@127.0.0.1:38159/shop' },
      tls: 'disable',
      tables: [candidate({ name: 'audit_logs', retention: { days: 90, reason: 'test' } })],
      now: new Date('2026-01-01T00:00:00Z'),
      demo: true,
    });

    // Assess
    expect(result.yaml).toContain(`# ${DEMO_NOTE}`);
    expect(result.yaml).not.toContain('local doctor -c <this file>');
  });

  it('gives a table whose day objects would be under 128 KiB one object a month, and says why', () => {
    // Prepare: 2,000 rows over 100 days in 1 MB (about 75 archive bytes a row): 1.5 KiB a day; and 100 times more
    const age = { rows: 2_000, oldestDays: 100, olderThan: {} };
    const small = candidate({ name: 'logins', bytes: 1_000_000, estimatedRows: 2_000, age });
    const large = candidate({
      name: 'events',
      bytes: 100_000_000,
      estimatedRows: 200_000,
      age: { ...age, rows: 200_000 },
    });

    // Act
    const result = buildConfig({
      database: 'app',
      credentials: { urlEnv: 'APP_DB' },
      tls: 'verify-full',
      tables: [small, large],
      now: new Date('2026-01-01T00:00:00Z'),
    });

    // Assess
    const [logins, events] = result.config.databases[0]?.tables ?? [];
    expect(logins?.objectSpan).toBe('month');
    expect(events?.objectSpan).toBeUndefined();
    expect(result.yaml).toContain(
      `# "public.logins": ; objectSpan month: a day's archive would be about 1 KiB, and Standard-IA and Glacier bill each object as 128 KiB at least`,
    );
  });

  it('gives each table its own suggested retention: an empty table beside a real one does not lengthen its', () => {
    // Prepare: 180 days for a table with rows, a year for an empty one
    const withRows = candidate({
      name: 'audit_logs',
      age: { rows: 100, oldestDays: 400, olderThan: {} },
      retention: { days: 180, reason: '180 days archives 55%' },
    });
    const empty = candidate({
      name: 'new_log',
      age: { rows: 0, oldestDays: null, olderThan: {} },
      retention: { days: 365, reason: 'the table is empty' },
    });

    // Act
    const { config } = buildConfig({
      database: 'app',
      credentials: { urlEnv: 'APP_DB' },
      tls: 'verify-full',
      tables: [withRows, empty],
      now: new Date('2026-01-01T00:00:00Z'),
    });

    // Assess
    const retentionOf = (name: string) =>
      config.databases[0]?.tables.find((t) => t.name === name)?.retentionDays ??
      config.defaults.retentionDays;
    expect(retentionOf('audit_logs')).toBe(180);
    expect(retentionOf('new_log')).toBe(365);
  });

  it('gives every table the retention given with --retention-days', () => {
    // Act
    const { config } = buildConfig({
      database: 'app',
      credentials: { urlEnv: 'APP_DB' },
      tls: 'verify-full',
      tables: [
        candidate({ name: 'a_log', retention: { days: 180, reason: 'r' } }),
        candidate({ name: 'b_log', retention: { days: 730, reason: 'r' } }),
      ],
      retentionDays: 90,
      now: new Date('2026-01-01T00:00:00Z'),
    });

    // Assess
    expect(config.defaults.retentionDays).toBe(90);
    expect(config.databases[0]?.tables.map((t) => t.retentionDays)).toEqual([undefined, undefined]);
  });

  it('is YAML the config schema accepts, in which quotes, spaces, unicode and YAML syntax in names round-trip', () => {
    // Prepare
    const names = [
      'He said "hi"',
      "it's: # not a comment",
      'Événements ✓',
      '- [x]',
      'yes',
      'log\naws: {notifications: {emails: [a@ev.il]}}\n#',
      'evil\r\ns3: {bucket: pwned}\n#',
      '\u001b[31mred\u2028line',
    ];

    // Act
    const result = buildConfig({
      database: 'app',
      credentials: { urlEnv: 'APP_DB' },
      tls: 'verify-full',
      tables: names.map((name) =>
        candidate({
          schema: name,
          name,
          keyColumns: [name],
          timestamp: { name, kind: 'timestamp', notNull: true, indexed: false },
          timestampTimeZone: 'Europe/Paris',
          retention: { days: 90, reason: 'test' },
        }),
      ),
      now: new Date('2026-01-01T00:00:00Z'),
    });

    // Assess
    const parsed = ArchiverConfigSchema.parse(parseYaml(result.yaml));
    expect(parsed.databases[0]?.tables).toEqual(
      names.map((name) => ({
        schema: name,
        name,
        timestampColumn: name,
        timestampTimeZone: 'Europe/Paris',
        keyColumns: [name],
      })),
    );
    expect(parsed.defaults.retentionDays).toBe(90);
    expect(Object.keys(parseYaml(result.yaml))).toEqual(['s3', 'defaults', 'databases']);
    expect(result.yaml).toMatch(/^# Written by `audit-archiver wizard` on 2026-01-01/);
    expect(result.yaml).toContain(`index "yes" first`);
    expect(result.yaml).toContain('# "log\\naws: {notifications: {emails: [a@ev.il]}}\\n#.log\\naws:');
  });
});

describe('wizard: where it writes', () => {
  it('refuses an --out in a folder that does not exist before it connects to anything', async () => {
    // Prepare: a database nothing listens on, so only a check made before connecting can answer.
    const options = parseWizardOptions({
      databaseUrl: 'postgres://u:p@127.0.0.1:1/app',
      out: join(tmpdir(), `no-such-folder-${randomUUID()}`, 'archiver.yaml'),
      yes: true,
    });

    // Act
    const refused = runWizard(options, { write: () => undefined, env: {}, now: () => new Date() });

    // Assess: named as the option, with the folder, never as a temporary file's ENOENT.
    await expect(refused).rejects.toThrow(ConfigError);
    await expect(refused).rejects.toThrow(/^--out: the folder .*no-such-folder-.* does not exist/);
  });
});
