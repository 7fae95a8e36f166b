import { PutObjectCommand, PutObjectLegalHoldCommand, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { clearHold, type HoldContext, setHold, setObjectLegalHold } from '../../cli/holds.js';
import { manifestKeyFor, tablePrefix } from '../../lambdas/shared/archive/format.js';
import { ConfigError, StorageUnavailableError } from '../../lambdas/shared/errors/step-errors.js';
import { listAuditEvents } from '../../lambdas/shared/telemetry/audit-trail.js';
import { archiverTestbed, s3ClientFor } from '../support/fixtures.js';

describe('audit-archiver legal-hold place|lift and hold set', () => {
  const bed = archiverTestbed(async () => undefined, [{ name: 'events', timestampColumn: 'created_at' }]);
  const context = (): HoldContext => {
    const deps = bed.local.deps();
    return { config: bed.local.config, holds: deps.holds, store: deps.store, actor: 'test-operator' };
  };

  /**
   * s3rver implements no Object Lock: a client that takes PutObjectLegalHold and records each as "<status> <key>".
   */
  const legalHoldRecorder = () => {
    const sent: string[] = [];
    const s3 = {
      send: async (command: PutObjectLegalHoldCommand) => {
        sent.push(`${command.input.LegalHold?.Status} ${command.input.Key}`);
        return {};
      },
    } as unknown as S3Client;
    return { s3, sent };
  };

  /** Three days of archives in the real local S3, each data object with its manifest, and a stray object. */
  async function writeArchives(): Promise<string[]> {
    const prefix = tablePrefix({ prefix: 'archive/', database: 'app', schema: 'public', table: 'events' });
    const s3 = s3ClientFor(bed.local);
    const data = ['01', '02', '03'].map(
      (day) => `${prefix}year=2025/month=01/day=${day}/202501${day}-${day.repeat(12)}.jsonl.gz`,
    );
    for (const key of [...data, ...data.map(manifestKeyFor), `${prefix}notes.txt`]) {
      await s3.send(new PutObjectCommand({ Bucket: bed.local.services.bucket, Key: key, Body: 'x' }));
    }
    return data;
  }

  it('sets the legal hold on every data object and manifest of the day range, and records it', async () => {
    // Prepare: s3rver implements no Object Lock, so only PutObjectLegalHold goes to a fake client that records
    // the commands; the archives are listed from the real local S3.
    const data = await writeArchives();
    const sent: PutObjectLegalHoldCommand[] = [];
    const s3 = {
      send: async (command: unknown) => {
        if (!(command instanceof PutObjectLegalHoldCommand)) throw new Error('unexpected command');
        sent.push(command);
        return {};
      },
    } as unknown as S3Client;

    // Act
    const placed = await setObjectLegalHold({ ...context(), s3 }, 'app', 'public.events', 'ON', {
      fromDay: '2025-01-02',
      toDay: '2025-01-03',
    });
    const lifted = await setObjectLegalHold({ ...context(), s3 }, 'app', 'public.events', 'OFF');

    // Assess
    expect(placed).toEqual({ archives: 2, objects: 4 });
    const selected = data.slice(1);
    expect(sent.slice(0, 4).map((c) => c.input)).toEqual(
      selected.flatMap((key) =>
        [key, manifestKeyFor(key)].map((Key) => ({
          Bucket: bed.local.services.bucket,
          Key,
          LegalHold: { Status: 'ON' },
        })),
      ),
    );
    expect(lifted).toEqual({ archives: 3, objects: 6 });
    expect(sent.slice(4).every((c) => c.input.LegalHold?.Status === 'OFF')).toBe(true);
    const events = await listAuditEvents(bed.local.deps().store, 'archive/', {
      kinds: ['legal-hold-changed'],
    });
    expect(events.map((e) => e.details)).toEqual([
      {
        action: 'object-legal-hold-placed',
        scope: 'objects',
        fromDay: '2025-01-02',
        toDay: '2025-01-03',
        archives: 2,
        objects: 4,
      },
      {
        action: 'object-legal-hold-lifted',
        scope: 'objects',
        fromDay: null,
        toDay: null,
        archives: 3,
        objects: 6,
      },
    ]);
  });

  it('holds a whole month object for some of its days, and refuses to lift it for only some of them', async () => {
    // Prepare: a month object of February 2025 (objectSpan month) and its manifest
    const prefix = tablePrefix({ prefix: 'archive/', database: 'app', schema: 'public', table: 'events' });
    const month = `${prefix}year=2025/month=02/202502-${'ab'.repeat(12)}.jsonl.gz`;
    const local = s3ClientFor(bed.local);
    for (const Key of [month, manifestKeyFor(month)])
      await local.send(new PutObjectCommand({ Bucket: bed.local.services.bucket, Key, Body: 'x' }));
    const { s3, sent } = legalHoldRecorder();
    const days = { fromDay: '2025-02-10', toDay: '2025-02-12' };

    // Act
    const placed = await setObjectLegalHold({ ...context(), s3 }, 'app', 'public.events', 'ON', days);
    const lifting = setObjectLegalHold({ ...context(), s3 }, 'app', 'public.events', 'OFF', days);

    // Assess
    expect(placed).toEqual({ archives: 1, objects: 2 });
    await expect(lifting).rejects.toThrow(
      `1 month archive(s) reach beyond 2025-02-10..2025-02-12 (${month}): lifting their hold would lift it on days outside the range; give whole months`,
    );
    expect(sent).toEqual([`ON ${month}`, `ON ${manifestKeyFor(month)}`]);
    expect(
      await setObjectLegalHold({ ...context(), s3 }, 'app', 'public.events', 'OFF', {
        fromDay: '2025-02-01',
        toDay: '2025-02-28',
      }),
    ).toEqual({ archives: 1, objects: 2 });
  });

  it('refuses to lift the Object Lock holds of a table still under legal hold, whose archives would then expire', async () => {
    // Prepare: archives held by Object Lock, and the table held for a case
    await writeArchives();
    const { s3, sent } = legalHoldRecorder();
    await setHold(context(), 'app', 'public.events', 'case 7');

    // Act
    const lifting = setObjectLegalHold({ ...context(), s3 }, 'app', 'public.events', 'OFF');

    // Assess: nothing lifted while the table is held (its lifecycle's expireAfterDays would delete them)
    await expect(lifting).rejects.toThrow(/app\/public\.events is under legal hold \(case 7\)/);
    expect(sent).toEqual([]);
    await clearHold(context(), 'app', 'public.events');
  });

  it('records a hold clear whose audit event could not be written when the clear is run again, and only once', async () => {
    // Prepare: a held table, and a bucket that refuses the audit event of the first clear
    const since = new Date().toISOString();
    await setHold(context(), 'app', 'public.events', 'case 9');
    const store = bed.local.deps().store;
    const refusing = Object.assign(Object.create(store) as typeof store, {
      putTextOnce: async () => {
        throw new Error('S3 unavailable');
      },
    });

    // Act: the clear fails on its event, and the operator runs it again
    const failed = clearHold({ ...context(), store: refusing }, 'app', 'public.events');
    await expect(failed).rejects.toThrow(StorageUnavailableError);
    const held = await bed.local.deps().holds.list();
    const again = await clearHold(context(), 'app', 'public.events');

    // Assess: the failed clear left the hold in place (before, it was gone, and the second clear found none and
    // recorded nothing: a hold lifted with no trace in the audit trail); the second clears it and records it once
    expect(held).toMatchObject([{ table: 'public.events', reason: 'case 9' }]);
    expect(again).toBe(true);
    expect(await bed.local.deps().holds.list()).toEqual([]);
    const events = await listAuditEvents(store, 'archive/', { kinds: ['legal-hold-changed'], since });
    expect(events.map((e) => [e.table, e.actor, e.details.action])).toEqual([
      ['public.events', 'test-operator', 'hold-set'],
      ['public.events', 'test-operator', 'hold-cleared'],
    ]);
  });

  it('leaves a hold set again while a clear was lifting the one before, and says so', async () => {
    // Prepare: case 3 is held; between this clear's read of it and its removal, another operator clears case 3 and
    // holds the table for case 4.
    await setHold(context(), 'app', 'public.events', 'case 3');
    const other = { ...context(), actor: 'other-operator' };
    const racing: HoldContext = {
      ...context(),
      holds: Object.assign(Object.create(context().holds), {
        get: async (database: string, table: string) => {
          const read = await context().holds.get(database, table);
          await clearHold(other, database, table);
          await new Promise((resolve) => setTimeout(resolve, 5)); // a later setAt
          await setHold(other, database, table, 'case 4');
          return read;
        },
      }),
    };

    // Act
    const clearing = clearHold(racing, 'app', 'public.events');

    // Assess: case 4's hold stands
    await expect(clearing).rejects.toThrow(/changed while it was being cleared .* it stays/);
    expect(await bed.local.deps().holds.list()).toMatchObject([{ table: 'public.events', reason: 'case 4' }]);
    expect(await clearHold(context(), 'app', 'public.events')).toBe(true);
  });

  it('refuses bad input naming what is wrong', async () => {
    // Act / Assess
    const s3 = { send: async () => ({}) } as unknown as S3Client;
    await expect(
      setObjectLegalHold({ ...context(), s3 }, 'app', 'public.events', 'ON', { fromDay: '2025-1-2' }),
    ).rejects.toThrow('--from must be a day of the calendar YYYY-MM-DD, got "2025-1-2"');
    // Not read as March 1st, as Date.parse would.
    await expect(
      setObjectLegalHold({ ...context(), s3 }, 'app', 'public.events', 'ON', { toDay: '2025-02-30' }),
    ).rejects.toThrow('--to must be a day of the calendar YYYY-MM-DD, got "2025-02-30"');
    await expect(setHold(context(), 'app', 'public.nope', 'x')).rejects.toThrow(ConfigError);
    await expect(setHold(context(), 'app', 'public.events', ' ')).rejects.toThrow(
      '--reason must not be empty',
    );
    expect(await bed.local.deps().holds.list()).toEqual([]);
  });
  it('refuses a second hold on a held table rather than replace the first, which one clear would then lift for both', async () => {
    // Prepare: a table held for one case
    await setHold(context(), 'app', 'public.events', 'case 1');

    // Act: a hold for another case, and the first one's reason again (a repeat)
    const second = setHold({ ...context(), actor: 'bob' }, 'app', 'public.events', 'case 2');
    await expect(second).rejects.toThrow(ConfigError);
    await expect(setHold({ ...context(), actor: 'bob' }, 'app', 'public.events', 'case 2')).rejects.toThrow(
      /already under legal hold: case 1 \(set .* by test-operator\)/,
    );
    const repeated = await setHold(context(), 'app', 'public.events', 'case 1');

    // Assess: case 1's hold stands (before, it became case 2's, and clearing case 2 freed the table for the next run)
    expect(repeated.reason).toBe('case 1');
    expect(await bed.local.deps().holds.list()).toMatchObject([{ table: 'public.events', reason: 'case 1' }]);
    expect(await clearHold(context(), 'app', 'public.events')).toBe(true);
  });
});
