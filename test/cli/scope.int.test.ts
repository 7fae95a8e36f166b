import { PutObjectLegalHoldCommand, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { listCommand, validateCommand } from '../../cli/archives.js';
import { setObjectLegalHold } from '../../cli/holds.js';
import { listAuditEvents } from '../../lambdas/shared/telemetry/audit-trail.js';
import { runLocalArchive } from '../../local/run.js';
import { archiverTestbed, readLiveArchives, seedEvents } from '../support/fixtures.js';

/**
 * A scope that selects nothing, by a reversed day range or a mistyped table, is refused rather than read as a success:
 * an auditor or a CI gate would take "OK" on 0 archives for "these days are intact", and a legal hold placed on no
 * object for archives protected.
 */
describe('validate, list and legal-hold on a scope that selects nothing', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 200, 40);
    },
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );

  /**
   * The testbed's config with a second database entry, crm, of the same server: public.events is listed under `events`
   * (app, as in the testbed, or crm, as if it moved there), public.contacts under the other.
   */
  const twoDatabases = (events: 'app' | 'crm') => {
    const [app] = bed.local.config.databases;
    const [table] = app?.tables ?? [];
    if (!app || !table) throw new Error('setup: no database');
    const contacts = [{ ...table, name: 'contacts' }];
    return {
      ...bed.local.config,
      databases: [
        { ...app, tables: events === 'app' ? [table] : contacts },
        { ...app, name: 'crm', tables: events === 'crm' ? [table] : contacts },
      ],
    };
  };

  /** The command's exit code, or the error it ended with. */
  const outcome = async (run: (write: (line: string) => void) => Promise<number>) => {
    const lines: string[] = [];
    try {
      return { code: await run((line) => lines.push(line)), error: undefined, text: lines.join('\n') };
    } catch (error) {
      return { code: undefined, error: error as Error, text: lines.join('\n') };
    }
  };
  const validate = (options: Record<string, unknown>) =>
    outcome((write) =>
      validateCommand(
        bed.local.deps().store,
        bed.local.config,
        { json: false, strict: false, ...options },
        write,
        bed.local.deps().inventory,
      ),
    );

  it('validate refuses a reversed --from/--to instead of reporting "OK" on 0 archives', async () => {
    // Prepare: archives on about ten days, all committed and intact.
    const archived = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    expect(archived.execution.status).toBe('SUCCEEDED');
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    expect(archives.length).toBeGreaterThan(1);
    const days = archives.map((a) => a.manifest.day).sort();
    const [first = '', last = ''] = [days[0], days.at(-1)];

    // Act: the operator swapped the two days (--from is the later one).
    const swapped = await validate({ table: ['public.events'], from: last, to: first });

    // Assess
    expect(swapped.text).not.toMatch(/^OK: no errors/m);
    expect(swapped.error?.name).toBe('ConfigError');
    expect(swapped.error?.message).toBe(`--to ${first} is before --from ${last}: the range selects no day`);
  });

  it('validate says that a --from/--to range holding no archive checked nothing, where the table has archives on other days', async () => {
    // Prepare: archives on about ten days (a run that finds them archived already adds none); a range a year after
    // the last of them (a mistyped year)
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    const last =
      archives
        .map((a) => a.manifest.day)
        .sort()
        .at(-1) ?? '';
    const yearLater = `${Number(last.slice(0, 4)) + 1}${last.slice(4)}`;
    expect(archives.length).toBeGreaterThan(1);

    // Act
    const text = await validate({ table: ['public.events'], from: yearLater, to: yearLater });
    const json = await validate({ table: ['public.events'], from: yearLater, json: true });

    // Assess: still no error (nothing in range is broken), but not a bare "OK"
    expect(text.code).toBe(0);
    expect(text.text).toContain(
      `NOTE no archive of it lies between ${yearLater} and ${yearLater}, though the bucket holds archives of it on other days`,
    );
    expect(JSON.parse(json.text).tables[0].notes).toEqual([
      `no archive of it lies on or after ${yearLater}, though the bucket holds archives of it on other days: nothing in this range was checked (a mistyped --from or --to?)`,
    ]);
  });

  it('list refuses a reversed --from/--to instead of listing 0 archives', async () => {
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    const days = archives.map((a) => a.manifest.day).sort();

    // Act
    const listed = await outcome((write) =>
      listCommand(
        bed.local.deps().store,
        bed.local.config,
        { table: ['public.events'], from: days.at(-1), to: days[0], json: false },
        write,
      ),
    );

    // Assess
    expect(listed.error?.name).toBe('ConfigError');
  });

  it('validate does not call a table that is not in the config and has no archive at all "OK"', async () => {
    // Act: a typo (events → event): no such table in the config, no object under its prefix, no inventory.
    const typo = await validate({ table: ['public.event'] });

    // Assess
    expect(typo.code).toBe(1);
    expect(typo.text).toContain(
      'ERROR not-configured: archive/app/public.event/: public.event is no table of database app in the config, and no archive of it is here: a mistyped name?',
    );
    expect(typo.text).toMatch(/^FAILED: 1 error\(s\)/m);
  });

  it('list refuses a table that is not in the config and has no archive at all instead of listing 0 archives', async () => {
    // Act: the same typo (events → event), and the configured table beside it.
    const typo = await outcome((write) =>
      listCommand(
        bed.local.deps().store,
        bed.local.config,
        { table: ['public.events', 'public.event'], json: false },
        write,
      ),
    );

    // Assess: a usage error naming the typo and the table it was likely meant to be; nothing listed as if empty.
    expect(typo.error?.name).toBe('ConfigError');
    expect(typo.error?.message).toBe(
      'public.event is no table of database app in the config, and no archive of it is here: a mistyped name?',
    );
    expect(typo.text).toBe('');
  });

  it('validate -t looks for a table in the databases that configure it, so an intact one passes in a config of several', async () => {
    // Prepare: a second database that archives another table
    const config = twoDatabases('app');
    const lines: string[] = [];

    // Act
    const code = await validateCommand(
      bed.local.deps().store,
      config,
      { table: ['public.events'], json: false, strict: false },
      (line) => lines.push(line),
      bed.local.deps().inventory,
    );

    // Assess
    expect(lines.join('\n')).not.toContain('crm/');
    expect(lines.at(-1)).toMatch(/^OK: no errors/);
    expect(code).toBe(0);
  });

  it('validate -d -t reports a table that database does not configure, though another one does', async () => {
    // Prepare
    const config = twoDatabases('app');

    // Act
    const wrong = await outcome((write) =>
      validateCommand(
        bed.local.deps().store,
        config,
        { database: 'crm', table: ['public.events'], json: false, strict: false },
        write,
        bed.local.deps().inventory,
      ),
    );

    // Assess
    expect(wrong.code).toBe(1);
    expect(wrong.text).toContain('public.events is no table of database crm in the config');
  });

  it('list and validate -t still show the archives an entry holds of a table it no longer configures', async () => {
    // Prepare: public.events moved from entry "app" to entry "crm"; app's archives of it stay in the bucket
    const config = twoDatabases('crm');

    // Act
    const listed = await outcome((write) =>
      listCommand(bed.local.deps().store, config, { table: ['public.events'], json: false }, write),
    );
    const validated = await outcome((write) =>
      validateCommand(
        bed.local.deps().store,
        config,
        { table: ['public.events'], json: false, strict: false },
        write,
        bed.local.deps().inventory,
      ),
    );

    // Assess
    expect(listed.text).toMatch(/^app\/public\.events: [1-9]\d* archives/m);
    expect(validated.text).toMatch(/^app\/public\.events: [1-9]\d* archives/m);
    expect(validated.code).toBe(0);
  });

  it('list -d -t shows 0 archives in range, not a mistyped name, for a table an entry no longer configures whose archives lie before --from', async () => {
    // Prepare: public.events moved from entry "app" to entry "crm"; app's archives of it are all of days before today
    const config = twoDatabases('crm');
    const today = new Date().toISOString().slice(0, 10);
    expect((await readLiveArchives(bed.local, 'public', 'events')).length).toBeGreaterThan(0);

    // Act
    const listed = await outcome((write) =>
      listCommand(
        bed.local.deps().store,
        config,
        { database: 'app', table: ['public.events'], from: today, json: false },
        write,
      ),
    );

    // Assess: the name is right, only the range holds nothing of it
    expect(listed.error).toBeUndefined();
    expect(listed.code).toBe(0);
    expect(listed.text).toBe('app/public.events: 0 archives, 0 rows, 0 bytes');
  });

  it('validate -d -t without the lock table does not call a table an entry no longer configures mistyped when its archives lie before --from', async () => {
    // Prepare: as above; no inventory, so only the bucket tells whether the table was ever archived there
    const config = twoDatabases('crm');
    const today = new Date().toISOString().slice(0, 10);

    // Act
    const validated = await outcome((write) =>
      validateCommand(
        bed.local.deps().store,
        config,
        { database: 'app', table: ['public.events'], from: today, json: false, strict: false },
        write,
      ),
    );

    // Assess
    expect(validated.text).not.toContain('a mistyped name?');
    expect(validated.text).toMatch(/^app\/public\.events: 0 archives/m);
  });

  it('legal-hold place refuses a reversed --from/--to instead of placing the hold on nothing and recording it', async () => {
    // Prepare: Object Lock calls go to a recorder (s3rver has none); the archives are listed from the real local S3.
    const archives = await readLiveArchives(bed.local, 'public', 'events');
    const days = archives.map((a) => a.manifest.day).sort();
    const sent: PutObjectLegalHoldCommand[] = [];
    const s3 = {
      send: async (command: unknown) => {
        if (command instanceof PutObjectLegalHoldCommand) sent.push(command);
        return {};
      },
    } as unknown as S3Client;
    const deps = bed.local.deps();
    const ctx = { config: bed.local.config, holds: deps.holds, store: deps.store, actor: 'test', s3 };

    // Act: a legal hold on the table's archived days, the two days swapped.
    const placed = await setObjectLegalHold(ctx, 'app', 'public.events', 'ON', {
      fromDay: days.at(-1),
      toDay: days[0],
    }).then(
      (done) => ({ done, error: undefined }),
      (error: Error) => ({ done: undefined, error }),
    );

    const none = await setObjectLegalHold(ctx, 'app', 'public.events', 'ON', {
      fromDay: '2999-01-01',
      toDay: '2999-12-31',
    }).then(
      (done) => ({ done, error: undefined }),
      (error: Error) => ({ done: undefined, error }),
    );
    const recorded = await listAuditEvents(bed.local.deps().store, bed.local.config.s3.prefix, {
      kinds: ['legal-hold-changed'],
    });

    // Assess: nothing held, nothing recorded as held
    expect(placed.error?.name).toBe('ConfigError');
    expect(none.error?.message).toBe(
      'no archives of public.events in app between 2999-01-01 and 2999-12-31 (under archive/app/public.events/): no legal hold was placed',
    );
    expect(sent).toEqual([]);
    expect(recorded).toEqual([]);
  });
});
