import { describe, expect, it, vi } from 'vitest';
import { runLocalArchive, runLocalRestore } from '../../local/run.js';
import type { StepEvent } from '../../local/workflow.js';
import { archiverTestbed, getObject, listKeys, s3ClientFor } from '../support/fixtures.js';

// The functions log at DEBUG here, so that everything they could ever log is checked. Hoisted above the imports:
// Powertools reads its level once, when the logger module loads, and goes back to it on every invocation.
vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL = 'DEBUG';
});

const ROW_SENTINEL = 'Sentinel-Row-Value-7f3a';
const PASSWORD = 'Sentinel-Password-91bd';

/** Everything the process writes to stdout and stderr while `work` runs (the functions' JSON logs), kept out of the test output. */
async function captureOutput<T>(work: () => Promise<T>): Promise<{ value: T; output: string }> {
  const chunks: string[] = [];
  const original = { out: process.stdout.write, err: process.stderr.write };
  const capture = ((chunk: unknown) => {
    chunks.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  process.stdout.write = capture;
  process.stderr.write = capture;
  try {
    return { value: await work(), output: chunks.join('') };
  } finally {
    process.stdout.write = original.out;
    process.stderr.write = original.err;
  }
}

describe('logs and errors carry no row values and no secrets', () => {
  const spec = (name: string) => ({ schema: 'public', name, timestampColumn: 'created_at' });
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(`CREATE ROLE archiver LOGIN PASSWORD '${PASSWORD}'`);
      for (const name of ['people', 'people_tampered']) {
        await db.client.query(
          `CREATE TABLE ${name} (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, email text, note text)`,
        );
        await db.client.query(
          `INSERT INTO ${name} (created_at, email, note)
           SELECT now() - g * interval '1 day', 'person' || g || '@example.com', '${ROW_SENTINEL}' FROM generate_series(1, 90) g`,
        );
        await db.client.query(`GRANT SELECT, DELETE ON ${name} TO archiver`);
      }
      // The restore target exists, so the archiver role needs no CREATE privilege.
      await db.client.query(
        'CREATE TABLE people_back (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, email text, note text)',
      );
      await db.client.query('GRANT SELECT, INSERT, UPDATE ON people_back TO archiver');
      // The archiver connects as a role whose password is the sentinel.
      Object.assign(db, { url: db.url.replace(/\/\/[^@]*@/, `//archiver:${PASSWORD}@`) });
    },
    [spec('people'), spec('people_tampered')],
  );

  it('a full run, and a run that fails on a tampered archive, log nothing of the rows or the password', async () => {
    // Prepare: tamper with the first archive of the second table between upload and verify.
    const s3 = s3ClientFor(bed.local);
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    let tampered = false;
    // Once upload has published every object of the batch (its objects are published four at a time, so a fault point
    // inside one would race the others' writes).
    const afterStep = async (event: StepEvent) => {
      if (event.functionName !== 'upload' || tampered) return;
      const [key] = (await listKeys(bed.local, 'archive/app/public.people_tampered/')).filter((k) =>
        k.endsWith('.gz'),
      );
      if (!key) return;
      await s3.send(
        new PutObjectCommand({
          Bucket: bed.local.services.bucket,
          Key: key,
          Body: await getObject(bed.local, key),
        }),
      );
      await s3.send(new PutObjectCommand({ Bucket: bed.local.services.bucket, Key: key, Body: 'not gzip' }));
      tampered = true;
    };

    // Act
    const { value: runs, output } = await captureOutput(async () => [
      await runLocalArchive(bed.local, { tables: ['public.people'] }, { retryIntervalScale: 0 }),
      await runLocalArchive(
        bed.local,
        { tables: ['public.people_tampered'] },
        { afterStep, retryIntervalScale: 0 },
      ),
    ]);

    // Assess: logs were written (so the check means something), and none holds a row value or the password.
    expect(runs.map((r) => r.execution.status)).toEqual(['SUCCEEDED', 'FAILED']);
    expect(output).toContain('"message":"batch exported"');
    expect(output).toContain('"message":"batch withdrawn; its rows stay in the database"');
    for (const secret of [ROW_SENTINEL, PASSWORD, '@example.com']) {
      expect(output).not.toContain(secret);
      expect(JSON.stringify(runs)).not.toContain(secret);
    }
  });

  it('a restore run, and one whose every archive conflicts, log nothing of the rows or the password', async () => {
    // Prepare
    const request = { database: 'app', table: 'public.people', targetTable: 'public.people_back' };

    // Act: the second restore meets every row already there; PostgreSQL's own message would quote their keys.
    const { value: runs, output } = await captureOutput(async () => [
      await runLocalRestore(bed.local, request, { retryIntervalScale: 0 }),
      await runLocalRestore(
        bed.local,
        { ...request, strategy: 'fail', ignoreWatermark: true },
        { retryIntervalScale: 0 },
      ),
    ]);

    // Assess
    expect(runs.map((r) => r.execution.status)).toEqual(['SUCCEEDED', 'FAILED']);
    const restored = await bed.db.client.query('SELECT count(*)::int AS n FROM people_back');
    expect(restored.rows[0].n).toBeGreaterThan(50);
    expect(runs[1]?.results.every((r) => r.error?.startsWith('RestoreConflictError: '))).toBe(true);
    expect(output).toContain('"message":"archive restored"');
    for (const secret of [ROW_SENTINEL, PASSWORD, '@example.com']) {
      expect(output).not.toContain(secret);
      expect(JSON.stringify(runs)).not.toContain(secret);
    }
  });
});
