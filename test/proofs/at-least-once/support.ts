import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { breakLease } from '../../../cli/leases.js';
import type { ArchiveStore } from '../../../lambdas/shared/archive/store.js';
import type { StepDeps } from '../../../lambdas/shared/step/step-deps.js';
import type { LocalEnvironment } from '../../../local/run.js';
import { s3ClientFor } from '../../support/fixtures.js';

export class InjectedCrash extends Error {
  override name = 'InjectedCrash';
}

export const ZERO = { batches: 0, rows: 0, bytes: 0 };

/** A promise and its resolver: a gate a paused invocation waits at, or a signal that it got somewhere. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const unquoted = (etag: string | undefined) => etag?.replaceAll('"', '');

/**
 * The functions' store, but `copyOnce` copies as it does in AWS, where every archive is copied in parts
 * (store-copy.ts DEFAULT_COPY: CreateMultipartUpload, UploadPartCopy of the staged source with its ETag as
 * condition, then CompleteMultipartUpload with If-None-Match). s3rver has no UploadPartCopy, so the parts are stood in
 * for by a read of the source (the part copies, which read the source then), and the completion by a write-once PUT
 * of those bytes (the object appears only at CompleteMultipartUpload). `sourceRead` is called once the source has
 * been read; the completion waits for `complete`: a Lambda that stalls between its last part and the completion.
 */
export function copyingInParts(
  local: LocalEnvironment,
  deps: StepDeps,
  sourceRead: () => void,
  complete: Promise<void>,
): StepDeps {
  const store = Object.create(deps.store) as ArchiveStore;
  store.copyOnce = async (sourceKey, destinationKey, _options, metadata, _sizeBytes, sourceEtag) => {
    const s3 = s3ClientFor(local);
    let body: Buffer;
    try {
      const object = await s3.send(new GetObjectCommand({ Bucket: deps.store.bucket, Key: sourceKey }));
      if (sourceEtag && unquoted(object.ETag) !== unquoted(sourceEtag)) return 'refused';
      body = Buffer.from(
        await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      );
    } catch (error) {
      if ((error as Error).name === 'NoSuchKey') return 'refused';
      throw error;
    }
    sourceRead();
    await complete;
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: deps.store.bucket,
          Key: destinationKey,
          Body: body,
          Metadata: metadata,
          ContentType: 'application/x-ndjson',
          ContentEncoding: 'gzip',
          IfNoneMatch: '*',
        }),
      );
      return 'copied';
    } catch (error) {
      const err = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.name === 'PreconditionFailed' || err.$metadata?.httpStatusCode === 412) return 'refused';
      throw error;
    }
  };
  return { ...deps, store };
}

/** `lease break` of public.events by an operator who knows its execution was stopped (its Lambdas run on). */
export async function breakStoppedLease(local: LocalEnvironment): Promise<boolean> {
  const deps = local.deps();
  const outcome = await breakLease(
    { ...deps, leases: deps.locks, actor: 'operator', holderRunning: async () => false },
    'app',
    'public.events',
  );
  return outcome.broken;
}

/**
 * Runs `during` while cancelling every statement that has waited on a lock for over `seconds`: lock_timeout's part,
 * played by a client. Under faketime (the suite at another hour) PostgreSQL's timers never fire, so a step waiting on
 * rows another invocation holds would wait for good. Set above the config's lockTimeoutSeconds, it only acts there; a
 * cancelled statement fails with 57014, which the steps treat as lock_timeout's 55P03 (both transient). Only in the
 * test's own database: the other test files share the server, and their waits are not this test's to cancel.
 */
export async function cancellingLockWaits<T>(
  client: pg.ClientBase,
  seconds: number,
  during: () => Promise<T>,
): Promise<T> {
  let done = false;
  const watch = (async () => {
    while (!done) {
      await client.query(
        `SELECT pg_catalog.pg_cancel_backend(pid) FROM pg_catalog.pg_stat_activity
          WHERE datname = pg_catalog.current_database() AND wait_event_type = 'Lock' AND state = 'active'
            AND pid <> pg_catalog.pg_backend_pid()
            AND pg_catalog.clock_timestamp() - query_start > pg_catalog.make_interval(secs => $1)`,
        [seconds],
      );
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  try {
    return await during();
  } finally {
    done = true;
    await watch;
  }
}
