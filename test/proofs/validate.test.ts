import {
  CopyObjectCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { type ValidationReport, validateArchives } from '../../cli/archive-validation.js';
import { listCommand, validateCommand } from '../../cli/archives.js';
import { RowDigest } from '../../lambdas/shared/archive/row-digest.js';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  archiverTestbed,
  getObject,
  readLiveArchives,
  s3ClientFor,
  seedEvents,
} from '../support/fixtures.js';
import { recordProof } from '../support/proof-ledger.js';

const manifestOf = (key: string) => key.replace(/\/([^/]+)\.jsonl\.gz$/, '/_$1.manifest.json');
const day = (key: string) => /year=(\d+)\/month=(\d+)\/day=(\d+)/.exec(key)?.slice(1).join('-') ?? '';

describe('validate and list archives', () => {
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'events', 400, 40);
      await seedEvents(db.client, 'others', 100, 40);
    },
    [
      { schema: 'public', name: 'events', timestampColumn: 'created_at' },
      { schema: 'public', name: 'others', timestampColumn: 'created_at' },
    ],
  );
  const run = async (command: typeof validateCommand, options: Record<string, unknown> = {}) => {
    const lines: string[] = [];
    const code = await command(
      bed.local.deps().store,
      bed.local.config,
      { table: ['public.events'], json: false, strict: false, ...options },
      (line) => lines.push(line),
    );
    return { code, text: lines.join('\n') };
  };
  const source = () => ({
    format: 'native' as const,
    location: { prefix: bed.local.config.s3.prefix, database: 'app', schema: 'public', table: 'events' },
  });

  it('passes intact archives and lists them with day, rows, bytes and storage class', async () => {
    // Prepare
    const archived = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    expect(archived.execution.status).toBe('SUCCEEDED');
    const archives = await readLiveArchives(bed.local, 'public', 'events');

    // Act
    const validated = await run(validateCommand);
    const listed = await run(listCommand, { json: true });

    // Assess
    expect(validated.code).toBe(0);
    expect(validated.text).toMatch(/OK: no errors, 0 warning/);
    const [table] = JSON.parse(listed.text) as {
      archives: { key: string; rows: number; storageClass: string }[];
    }[];
    expect(table?.archives.map((a) => a.key).sort()).toEqual(archives.map((a) => a.key).sort());
    expect(table?.archives.reduce((n, a) => n + a.rows, 0)).toBe(archives.flatMap((a) => a.lines).length);
    expect(table?.archives.every((a) => a.storageClass === 'STANDARD')).toBe(true);
  });

  it('finds each fault it claims to: corrupt data, missing sidecar, orphan sidecar, foreign archive, staging leftovers, day gaps (a run of days as one)', async () => {
    // Prepare
    const s3 = s3ClientFor(bed.local);
    const Bucket = bed.local.services.bucket;
    const keys = (await readLiveArchives(bed.local, 'public', 'events')).map((a) => a.key).sort();
    const [corrupt = '', noSidecar = '', noData = '', , gap = '', gapNext = ''] = keys.slice(1);
    const body = await getObject(bed.local, corrupt);
    await s3.send(new PutObjectCommand({ Bucket, Key: corrupt, Body: body.subarray(0, body.length - 9) }));
    await s3.send(new DeleteObjectCommand({ Bucket, Key: manifestOf(noSidecar) }));
    await s3.send(new DeleteObjectCommand({ Bucket, Key: noData }));
    for (const key of [gap, gapNext]) {
      await s3.send(new DeleteObjectCommand({ Bucket, Key: key }));
      await s3.send(new DeleteObjectCommand({ Bucket, Key: manifestOf(key) }));
    }
    const [foreign = ''] = (await readLiveArchives(bed.local, 'public', 'others')).map((a) => a.key);
    const planted = foreign.replace('public.others', 'public.events');
    await s3.send(new CopyObjectCommand({ Bucket, Key: planted, CopySource: `${Bucket}/${foreign}` }));
    // Its manifest points at where it now is, so only the table it names gives it away.
    const foreignManifest = (await getObject(bed.local, manifestOf(foreign))).toString('utf8');
    await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: manifestOf(planted),
        Body: foreignManifest.replaceAll(foreign, planted),
      }),
    );
    const staging = `${bed.local.config.s3.prefix}_staging/app/public.events/leftover.jsonl.gz`;
    await s3.send(new PutObjectCommand({ Bucket, Key: staging, Body: 'x' }));

    // Act: two days later, so the staging object is stale.
    const report = await validateArchives(
      bed.local.deps().store,
      source(),
      { database: 'app', schema: 'public', table: 'events' },
      {},
      new Date(Date.now() + 2 * 86_400_000),
    );
    const cli = await run(validateCommand);

    // Assess
    const found = report.problems.map((p) => `${p.severity} ${p.kind} ${p.key}`).sort();
    expect(found).toEqual(
      [
        `error corrupt ${corrupt}`,
        `error missing-sidecar ${noSidecar}`,
        `error orphan-sidecar ${manifestOf(noData)}`,
        `error wrong-table ${planted}`,
        `warning stale-staging ${staging}`,
        `warning day-gap ${bed.local.config.s3.prefix}app/public.events/${day(noData)}`,
        `warning day-gap ${bed.local.config.s3.prefix}app/public.events/${day(gap)}..${day(gapNext)}`,
      ].sort(),
    );
    expect(cli.code).toBe(1);
    // Now, the archive without its manifest is young: a batch that may still be in flight, a warning.
    expect(cli.text).toMatch(/FAILED: 3 error\(s\)/);
    expect(cli.text).toMatch(/WARNING in-flight: /);
  });

  it('checks an archive written before batches spanned days by the row digest its manifest carries', async () => {
    // Prepare: two archives of `others` given the manifest the earlier version wrote (figures with the row digest
    // of their lines), one of them with a digest that its lines do not have.
    const [, older, forged] = await readLiveArchives(bed.local, 'public', 'others');
    if (!older || !forged) throw new Error('fewer than three archives of public.others');
    const s3 = s3ClientFor(bed.local);
    const withDigest = async (archive: typeof older, rowDigest: string) =>
      s3.send(
        new PutObjectCommand({
          Bucket: bed.local.services.bucket,
          Key: manifestOf(archive.key),
          Body: JSON.stringify({ ...archive.manifest, figures: { ...archive.manifest.figures, rowDigest } }),
        }),
      );
    const digestOf = (lines: string[]) => {
      const digest = new RowDigest();
      for (const line of lines) digest.add(Buffer.from(line));
      return digest.value();
    };
    await withDigest(older, digestOf(older.lines));
    await withDigest(forged, digestOf(forged.lines.slice(1)));

    // Act
    const report = await validateArchives(
      bed.local.deps().store,
      {
        format: 'native',
        location: { prefix: bed.local.config.s3.prefix, database: 'app', schema: 'public', table: 'others' },
      },
      { database: 'app', schema: 'public', table: 'others' },
    );

    // Assess: the intact one passes; the other is corrupt by its row digest alone (every other figure holds).
    const errors = report.problems.filter((p) => p.severity === 'error');
    expect(errors.map((p) => [p.kind, p.key])).toEqual([['corrupt', forged.key]]);
    expect(errors[0]?.detail).toMatch(/^rowDigest: expected [0-9a-f]{32}, found [0-9a-f]{32}$/);
  });
});

/**
 * A bucket writer against `validate`, the tool that reports a bucket writer's damage: it must name it, not crash on it
 * or call it harmless.
 */
describe('validate against a bucket writer', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      await seedEvents(db.client, 'planted', 80, 40);
      await seedEvents(db.client, 'after', 80, 40);
      await seedEvents(db.client, 'committed', 80, 40);
    },
    [spec('planted'), spec('after'), spec('committed')],
  );
  const s3 = () => s3ClientFor(bed.local);
  const Bucket = () => bed.local.services.bucket;
  const prefixOf = (table: string) => `${bed.local.config.s3.prefix}app/public.${table}/`;
  /** `validate --json` with the inventory; a throw is kept as the outcome, so the proof can record it. */
  const validate = async (tables: string[]) => {
    const lines: string[] = [];
    try {
      const code = await validateCommand(
        bed.local.deps().store,
        bed.local.config,
        { table: tables, json: true, strict: false },
        (line) => lines.push(line),
        bed.local.deps().inventory,
      );
      const { tables: reports } = JSON.parse(lines.join('\n')) as {
        tables: (ValidationReport & { table: string })[];
      };
      return { code, reports, error: undefined };
    } catch (error) {
      return { code: undefined, reports: [], error: `${(error as Error).name}: ${(error as Error).message}` };
    }
  };
  const problemsOf = (report: ValidationReport | undefined) =>
    report?.problems.map((p) => `${p.severity} ${p.kind} ${p.key}`).sort();

  it('names objects planted in folders that are no calendar day, and checks every other archive and table', async () => {
    // Prepare: empty objects in a day folder of month 00 day 00, in February 30, and a month object of month 13.
    const archived = await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 });
    expect(archived.execution.status).toBe('SUCCEEDED');
    const archives = await readLiveArchives(bed.local, 'public', 'planted');
    const others = await readLiveArchives(bed.local, 'public', 'after');
    const planted = [
      `${prefixOf('planted')}year=2025/month=00/day=00/20250000-000000000000000000000000.jsonl.gz`,
      `${prefixOf('planted')}year=2025/month=02/day=30/20250230-000000000000000000000000.jsonl.gz`,
      `${prefixOf('planted')}year=2025/month=13/202513-000000000000000000000000.jsonl.gz`,
    ];
    for (const Key of planted)
      await s3().send(new PutObjectCommand({ Bucket: Bucket(), Key, Body: Buffer.alloc(0) }));

    // Act
    const validated = await validate(['public.planted', 'public.after']);
    const listed: string[] = [];
    await listCommand(
      bed.local.deps().store,
      bed.local.config,
      { table: ['public.planted'], json: true },
      (line) => listed.push(line),
    );
    const restored = await runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.planted',
        targetTable: 'public.planted_copy',
        mode: 'key',
        key: planted[0],
      },
      { retryIntervalScale: 0 },
    );
    const [plantedReport, afterReport] = validated.reports;
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: 'object planted in a folder that is no calendar day (month=00/day=00)',
      held:
        validated.code === 1 &&
        planted.every((key) => plantedReport?.problems.some((p) => p.key === key && p.severity === 'error')),
    });

    // Assess: each planted object is an error naming it; the real archives of both tables are all checked whole.
    expect(validated.error, 'validate threw instead of reporting').toBeUndefined();
    expect(validated.code).toBe(1);
    expect(problemsOf(plantedReport)).toEqual(planted.map((key) => `error not-an-archive ${key}`).sort());
    expect(plantedReport?.archives).toBe(archives.length);
    expect(plantedReport?.rows).toBe(archives.flatMap((a) => a.lines).length);
    expect(afterReport?.table).toBe('public.after');
    expect(problemsOf(afterReport)).toEqual([]);
    expect(afterReport?.rows).toBe(others.flatMap((a) => a.lines).length);
    // List and restore do not take them for archives: list leaves them out, restore refuses the key by name.
    const [table] = JSON.parse(listed.join('\n')) as { archives: { key: string }[] }[];
    expect(table?.archives.map((a) => a.key).sort()).toEqual(archives.map((a) => a.key).sort());
    expect(restored.execution.status).toBe('FAILED');
    expect(restored.execution.error).toMatchObject({ name: 'ConfigError' });
    expect(restored.execution.error?.message).toContain(planted[0]);
  });

  it('calls a committed archive whose manifest was deleted an error however young its object, unlike a batch in flight', async () => {
    // Prepare: the bucket writer deletes a committed archive's manifest and puts the same bytes again, so the object
    // is young (as a batch's data is before its manifest). Beside it, a young object the inventory does not list.
    const [victim, other] = await readLiveArchives(bed.local, 'public', 'committed');
    if (!victim || !other) throw new Error('fewer than two archives of public.committed');
    expect((await validate(['public.committed'])).code).toBe(0);
    const head = await s3().send(new HeadObjectCommand({ Bucket: Bucket(), Key: victim.key }));
    await s3().send(new DeleteObjectCommand({ Bucket: Bucket(), Key: manifestOf(victim.key) }));
    await s3().send(
      new PutObjectCommand({
        Bucket: Bucket(),
        Key: victim.key,
        Body: await getObject(bed.local, victim.key),
        Metadata: head.Metadata,
      }),
    );
    const uncommitted = other.key.replace(/\/([^/]+)\.jsonl\.gz$/, '/uncommitted-$1.jsonl.gz');
    await s3().send(
      new CopyObjectCommand({ Bucket: Bucket(), Key: uncommitted, CopySource: `${Bucket()}/${other.key}` }),
    );

    // Act
    const validated = await validate(['public.committed']);
    const restored = await runLocalRestore(
      bed.local,
      {
        database: 'app',
        table: 'public.committed',
        targetTable: 'public.committed_copy',
        mode: 'key',
        key: victim.key,
      },
      { retryIntervalScale: 0 },
    );
    const [report] = validated.reports;
    recordProof({
      kind: 'threat',
      actor: 'bucket writer',
      attack: "committed archive's manifest deleted, the object re-put to look in flight",
      held:
        validated.code === 1 &&
        (report?.problems.some((p) => p.key === victim.key && p.severity === 'error') ?? false),
    });

    // Assess: restore cannot read it any more, and validate says so with an error; only the object the inventory
    // does not list may still be a batch in flight.
    expect(validated.error).toBeUndefined();
    expect(restored.results[0]?.status).toBe('failed');
    expect(validated.code).toBe(1);
    expect(problemsOf(report)).toEqual(
      [`error missing-sidecar ${victim.key}`, `warning in-flight ${uncommitted}`].sort(),
    );
  });
});
