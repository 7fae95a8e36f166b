import { CopyObjectCommand, DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { validateArchives } from '../../cli/archive-validation.js';
import { listCommand, validateCommand } from '../../cli/archives.js';
import { RowDigest } from '../../lambdas/shared/archive/row-digest.js';
import { runLocalArchive } from '../../local/run.js';
import {
  archiverTestbed,
  getObject,
  readLiveArchives,
  s3ClientFor,
  seedEvents,
} from '../support/fixtures.js';

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

  it('finds each fault it claims to: corrupt data, missing sidecar, orphan sidecar, foreign archive, staging leftovers, day gaps', async () => {
    // Prepare
    const s3 = s3ClientFor(bed.local);
    const Bucket = bed.local.services.bucket;
    const keys = (await readLiveArchives(bed.local, 'public', 'events')).map((a) => a.key).sort();
    const [corrupt = '', noSidecar = '', noData = '', , gap = ''] = keys.slice(1);
    const body = await getObject(bed.local, corrupt);
    await s3.send(new PutObjectCommand({ Bucket, Key: corrupt, Body: body.subarray(0, body.length - 9) }));
    await s3.send(new DeleteObjectCommand({ Bucket, Key: manifestOf(noSidecar) }));
    await s3.send(new DeleteObjectCommand({ Bucket, Key: noData }));
    await s3.send(new DeleteObjectCommand({ Bucket, Key: gap }));
    await s3.send(new DeleteObjectCommand({ Bucket, Key: manifestOf(gap) }));
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
        `warning day-gap ${bed.local.config.s3.prefix}app/public.events/${day(gap)}`,
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
