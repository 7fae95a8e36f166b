import { describe, expect, it } from 'vitest';
import { sourcesInScope, validateCommand } from '../../cli/archives.js';
import type { ArchiveStore } from '../../lambdas/shared/archive/store.js';
import { parseConfig } from '../../lambdas/shared/config/config.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';

describe('the archives in scope of list, validate and holds', () => {
  const config = parseConfig(
    {
      s3: { bucket: 'archive' },
      databases: [
        {
          name: 'app',
          credentials: { urlEnv: 'DB_URL' },
          tables: [{ name: 'events', timestampColumn: 'at' }],
        },
      ],
    },
    'test',
  );
  const scope = (days: { from?: string; to?: string }) => sourcesInScope(config, { ...days, json: false });

  it('refuses a --from or --to that is no day of the calendar, naming the option, rather than reading it as another day', () => {
    // Act & Assess
    expect(scope({ from: '2020-02-29', to: '2020-03-01' })).toHaveLength(1);
    expect(() => scope({ from: '2020-02-30' })).toThrow(ConfigError);
    expect(() => scope({ from: '2020-02-30' })).toThrow(
      '--from must be a day of the calendar YYYY-MM-DD, got "2020-02-30"',
    );
    expect(() => scope({ to: '2021-13-01' })).toThrow(/^--to must be a day of the calendar/);
  });

  it('refuses -t without a schema as a usage error that suggests the configured tables of that name', () => {
    // Act & Assess
    expect(() => sourcesInScope(config, { table: ['events'], json: false })).toThrow(
      new ConfigError('-t events: must be "schema.name" (did you mean public.events?)'),
    );
    expect(() => sourcesInScope(config, { table: ['nope'], json: false })).toThrow(
      new ConfigError('-t nope: must be "schema.name"'),
    );
    expect(sourcesInScope(config, { table: ['public.events'], json: false })).toHaveLength(1);
  });

  it('says ok: false in --json exactly when it exits 1: with --strict a warning fails, and a script reading ok must see it', async () => {
    // Prepare: a bucket holding only a quarantined archive of the table, a warning and no error
    const quarantined = '_quarantine/app/public.events/x.jsonl.gz';
    const store = {
      bucket: 'archive',
      async *list(prefix: string) {
        if (quarantined.startsWith(prefix)) yield { key: quarantined, size: 1, storageClass: 'STANDARD' };
      },
    } as unknown as ArchiveStore;
    const validate = async (strict: boolean) => {
      const lines: string[] = [];
      const code = await validateCommand(store, config, { json: true, strict }, (line) => lines.push(line));
      return {
        code,
        report: JSON.parse(lines.join('\n')) as { ok: boolean; errors: number; warnings: number },
      };
    };

    // Act
    const lenient = await validate(false);
    const strict = await validate(true);

    // Assess
    expect(lenient).toMatchObject({ code: 0, report: { ok: true, errors: 0, warnings: 1 } });
    expect(strict).toMatchObject({ code: 1, report: { ok: false, errors: 0, warnings: 1 } });
    const text: string[] = [];
    await validateCommand(store, config, { json: false, strict: true }, (line) => text.push(line));
    expect(text.at(-1)).toBe('FAILED (--strict: warnings fail): 0 error(s), 1 warning(s)');
  });

  it('takes a table named twice with -t once, so list and validate neither print nor count its archives twice', () => {
    // Act & Assess: a script summing `list --json` rows or `validate --json` figures would double them
    expect(sourcesInScope(config, { table: ['public.events', 'public.events'], json: false })).toHaveLength(
      1,
    );
  });

  it('refuses --legacy-prefix without --legacy-database rather than reading the native archives instead', () => {
    // Act
    const prefixAlone = () => sourcesInScope(config, { legacyPrefix: 'old/', json: false });
    const both = sourcesInScope(config, { legacyPrefix: 'old/', legacyDatabase: 'prod', json: false });

    // Assess
    expect(prefixAlone).toThrow(ConfigError);
    expect(prefixAlone).toThrow(/--legacy-prefix needs --legacy-database/);
    expect(both[0]?.source).toMatchObject({ format: 'legacy', prefix: 'old/', database: 'prod' });
  });
});
