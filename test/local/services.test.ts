import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { startLocalServices } from '../../local/services.js';

const root = mkdtempSync(join(tmpdir(), 'local-services-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The pid of the local S3 server serving a state dir (its command line names the directory). */
const s3ServerPid = (stateDir: string): number =>
  Number(
    execFileSync('pgrep', ['-f', `s3-server.mjs ${join(stateDir, 's3')}`], { encoding: 'utf8' }).split(
      '\n',
    )[0],
  );

const exited = (pid: number) =>
  new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      try {
        process.kill(pid, 0);
      } catch {
        clearInterval(poll);
        resolve();
      }
    }, 20);
  });

/** A client of the local S3 server, as local mode's functions have, with the SDK's attempts per request. */
const s3ClientOf = (services: Awaited<ReturnType<typeof startLocalServices>>, maxAttempts?: number) =>
  new S3Client({
    endpoint: services.s3Endpoint,
    forcePathStyle: true,
    region: services.env.AWS_REGION,
    credentials: {
      accessKeyId: services.env.AWS_ACCESS_KEY_ID ?? '',
      secretAccessKey: services.env.AWS_SECRET_ACCESS_KEY ?? '',
    },
    ...(maxAttempts ? { maxAttempts } : {}),
  });

describe('local services', () => {
  it('refuses a state dir that is a file as a usage error naming --state-dir, not with a bare EEXIST', async () => {
    // Prepare
    const file = join(root, 'not-a-dir');
    writeFileSync(file, 'notes');

    // Act
    const started = startLocalServices(file, 'bucket');

    // Assess
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(`--state-dir: ${file} is a file, not a directory`);
  });

  it('stop() ends and says so when the local S3 server was killed by a signal, instead of never resolving', async () => {
    // Prepare: the server dies as the OOM killer would end it
    const stateDir = join(root, 'killed');
    const services = await startLocalServices(stateDir, 'killed-bucket');
    const pid = s3ServerPid(stateDir);
    process.kill(pid, 'SIGKILL');
    await exited(pid);

    // Act
    const stopped = await Promise.race([
      services.stop().then(
        () => 'resolved',
        (error: Error) => error.message,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 5_000)),
    ]);

    // Assess
    expect(stopped).toMatch(/^the local S3 server ended \(SIGKILL\) before the command did/);
  });

  it('requestCounts() and requestLog() fail, rather than crash the process or wait forever, once the local S3 server is gone', async () => {
    // Prepare: the server dies as the OOM killer would end it, and this process hears of it
    const stateDir = join(root, 'gone');
    const services = await startLocalServices(stateDir, 'gone-bucket');
    const pid = s3ServerPid(stateDir);
    process.kill(pid, 'SIGKILL');
    await exited(pid);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const outcome = (asked: Promise<unknown>) =>
      Promise.race([
        asked.then(
          () => 'resolved',
          (error: Error) => error.message,
        ),
        new Promise((resolve) => setTimeout(() => resolve('still waiting'), 5_000)),
      ]);

    // Act
    const counts = await outcome(services.requestCounts());
    const log = await outcome(services.requestLog());
    await services.stop().catch(() => undefined);

    // Assess
    expect(counts).toMatch(/^local S3 server exited \(SIGKILL\)/);
    expect(log).toMatch(/^local S3 server exited \(SIGKILL\)/);
  });

  it('keeps the state only its owner reads: the dirs 0700, also where they existed readable, the archives 0600', async () => {
    // Prepare: a state dir an earlier version left for everyone to read
    const stateDir = join(root, 'private');
    mkdirSync(join(stateDir, 's3'), { recursive: true, mode: 0o755 });
    chmodSync(join(stateDir, 's3'), 0o755);
    const fresh = join(root, 'fresh', 'state');
    const services = await startLocalServices(stateDir, 'private-bucket');
    const freshServices = await startLocalServices(fresh, 'fresh-bucket');
    const s3 = s3ClientOf(services);

    try {
      // Act
      await s3.send(
        new PutObjectCommand({ Bucket: 'private-bucket', Key: 'archive/a.jsonl.gz', Body: 'rows' }),
      );

      // Assess
      const mode = (path: string) => statSync(path).mode & 0o777;
      expect(mode(fresh)).toBe(0o700);
      expect(mode(join(stateDir, 's3'))).toBe(0o700);
      expect(mode(join(stateDir, 'dynamodb'))).toBe(0o700);
      const objects = (readdirSync(join(stateDir, 's3'), { recursive: true }) as string[]).filter((file) =>
        file.endsWith('a.jsonl.gz._S3rver_object'),
      );
      expect(objects).toHaveLength(1);
      expect(mode(join(stateDir, 's3', objects[0] ?? '')) & 0o077).toBe(0);
    } finally {
      s3.destroy();
      await services.stop();
      await freshServices.stop();
    }
  });

  it('deletes the objects of one folder from requests at once, and writes into that folder meanwhile, as S3 does', async () => {
    // Prepare: rounds of eight objects in one folder (a batch's staged objects)
    const services = await startLocalServices(join(root, 'deletes'), 'deletes-bucket');
    // Each failure counts: a retry would hide one.
    const s3 = s3ClientOf(services, 1);
    const keys = (round: number) =>
      Array.from({ length: 8 }, (_, i) => `archive/_staging/app/public.events/${round}-${i}.jsonl.gz`);
    const failures: string[] = [];
    try {
      for (let round = 0; round < 10; round++) {
        await Promise.all(
          keys(round).map((Key) =>
            s3.send(new PutObjectCommand({ Bucket: 'deletes-bucket', Key, Body: 'x' })),
          ),
        );

        // Act: two uploads of one batch delete its staged objects at once, while another object goes into the folder
        const deleteAll = () =>
          s3.send(
            new DeleteObjectsCommand({
              Bucket: 'deletes-bucket',
              Delete: { Objects: keys(round).map((Key) => ({ Key })) },
            }),
          );
        const written = `archive/_staging/app/public.events/${round}-written.jsonl.gz`;
        const settled = await Promise.allSettled([
          deleteAll(),
          deleteAll(),
          s3.send(new PutObjectCommand({ Bucket: 'deletes-bucket', Key: written, Body: 'x' })),
        ]);
        for (const outcome of settled)
          if (outcome.status === 'rejected')
            failures.push(`${round} ${settled.indexOf(outcome)}: ${String(outcome.reason)}`);
        await s3.send(
          new DeleteObjectsCommand({ Bucket: 'deletes-bucket', Delete: { Objects: [{ Key: written }] } }),
        );
      }
      const left = await s3.send(new ListObjectsV2Command({ Bucket: 'deletes-bucket' }));

      // Assess: before, one of the two deletes failed with a 500 (InternalError) in most rounds.
      expect(failures).toEqual([]);
      expect(left.Contents ?? []).toEqual([]);
    } finally {
      s3.destroy();
      await services.stop();
    }
  });
});
