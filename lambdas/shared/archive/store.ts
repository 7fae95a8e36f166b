import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { z } from 'zod';
import {
  ArchiveInColdStorageError,
  ArchiveIntegrityError,
  ConfigError,
  classifyAwsError,
  isTransientAwsError,
  StorageUnavailableError,
} from '../errors/step-errors.js';
import { type CopyOptions, copyOnce, DEFAULT_COPY } from './store-copy.js';
import {
  type BucketClient,
  isPreconditionFailed,
  putIfAbsent,
  putStream,
  putTextOnce,
  s3Call,
  type WriteOptions,
} from './store-writes.js';

/** The longest text object read whole (getText): a manifest of 1,600 columns with long key bounds is well under. */
const TEXT_MAX_BYTES = 4 * 1024 * 1024;
/** Up to this many keys are deleted one request each, in parallel. */
const FEW_KEYS = 4;
/** S3's limit of keys per DeleteObjects request. */
const DELETE_OBJECTS_MAX = 1000;

/** One object of a listing. */
export interface ListedObject {
  key: string;
  size: number;
  storageClass: string;
  lastModified?: Date;
}

/**
 * Which stored object a reader means: the ETag S3 gave the bytes verify read, and their version id where the bucket
 * keeps versions. Any later write to the key gets another ETag (and version), so a pinned read never sees it.
 */
export const ObjectPinSchema = z.object({ etag: z.string().min(1), versionId: z.string().min(1).optional() });
export type ObjectPin = z.infer<typeof ObjectPinSchema>;

export interface ObjectHead {
  size: number;
  /** The stored object's identity (ETag, version id when versioned). */
  pin?: ObjectPin;
  metadata: Record<string, string>;
  storageClass?: string;
  /**
   * S3's restore status of an object in cold storage (`x-amz-restore`): `ongoing-request="true"` while a restore
   * runs, `ongoing-request="false", expiry-date="…"` once its copy can be read; undefined when never restored.
   */
  restore?: string;
  /** `aws:kms`, `AES256`, ... as S3 reports it; undefined when the server says nothing (s3rver). */
  serverSideEncryption?: string;
  /** When the object was written, as S3 dates it (whole seconds). */
  lastModified?: Date;
}

const isNotFound = (error: unknown): boolean => {
  const err = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404;
};
const pinOf = (etag?: string, versionId?: string): ObjectPin | undefined =>
  etag ? { etag, ...(versionId && versionId !== 'null' ? { versionId } : {}) } : undefined;

/**
 * The conditions of a pinned read: the version itself where known, and If-Match on its ETag. S3 refuses a read of
 * other bytes (412); s3rver ignores If-Match, so `pinMismatch` also compares the ETag the response carries.
 */
const pinned = (pin?: ObjectPin) => (pin ? { IfMatch: pin.etag, VersionId: pin.versionId } : {});
const pinMismatch = (pin: ObjectPin | undefined, etag: string | undefined): boolean =>
  pin !== undefined && etag !== pin.etag;

/**
 * S3 refuses to read an object in GLACIER or DEEP_ARCHIVE (403 InvalidObjectState) until a restore from cold storage
 * has completed: said as such, which retrying cannot cure, rather than as an unnamed 403.
 */
function coldStorageRefusal(error: unknown, key: string): ArchiveInColdStorageError | undefined {
  const err = error as { name?: string; StorageClass?: string };
  if (err.name !== 'InvalidObjectState') return undefined;
  return new ArchiveInColdStorageError(
    `${key} is in ${err.StorageClass ?? 'cold storage'} and not restored from it: restore it in S3 (RestoreObject) and read it once the restore has completed`,
  );
}

/** A pinned read found other bytes under the key than those pinned (overwritten, or another version). */
const pinMismatchError = (key: string, pin: ObjectPin, found?: string) =>
  new ArchiveIntegrityError(
    `${key} is not the pinned object (ETag ${pin.etag}${pin.versionId ? `, version ${pin.versionId}` : ''}; S3 holds ${found ? `ETag ${found}` : 'another'})`,
  );

/**
 * The archive bucket as the steps use it. Every SDK error leaves here classified (transient ones are named). Reads,
 * listing and deletes are here; writes are in store-writes.ts, the write-once copy in store-copy.ts.
 */
export class ArchiveStore {
  private readonly copying: CopyOptions;
  private readonly client: BucketClient;

  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    copying: Partial<CopyOptions> = {},
  ) {
    this.copying = { ...DEFAULT_COPY, ...copying };
    this.client = { s3, bucket };
  }

  /**
   * Streams a body into an object with multipart upload; the caller hashes what flows through. Returns the stored
   * object's ETag, which a copy can be made conditional on.
   */
  async putStream(key: string, body: Readable, options: WriteOptions): Promise<string | undefined> {
    return putStream(this.client, key, body, options);
  }

  /** The object's head, with its identity (pin) as S3 reports it. */
  async head(key: string): Promise<ObjectHead | undefined> {
    try {
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        size: head.ContentLength ?? 0,
        pin: pinOf(head.ETag, head.VersionId),
        metadata: head.Metadata ?? {},
        storageClass: head.StorageClass,
        restore: head.Restore,
        serverSideEncryption: head.ServerSideEncryption,
        lastModified: head.LastModified,
      };
    } catch (error) {
      if (await this.isMissing(error, key)) return undefined;
      throw classifyAwsError(error, 's3');
    }
  }

  /**
   * Whether a read's error says the key holds no object. S3 answers a missing key 404 only to a caller that may list
   * it, else 403; whether a ListBucket grant limited by `s3:prefix` (what each step gets) counts for that, AWS does not
   * document. So a 403 is settled by listing the key itself, which that grant allows: a key listed is there and the
   * 403 stands (a read of a version or a key the caller may not read).
   */
  private async isMissing(error: unknown, key: string): Promise<boolean> {
    if (isNotFound(error)) return true;
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 403)
      return false;
    const listed = await this.s3
      .send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: key, MaxKeys: 1 }))
      .catch(() => undefined);
    return listed !== undefined && listed.Contents?.[0]?.Key !== key;
  }

  /** The object's bytes; with `pin`, ArchiveIntegrityError unless they are the pinned object's. */
  async getStream(key: string, pin?: ObjectPin): Promise<Readable | undefined> {
    return (await this.open(key, pin))?.body;
  }

  /** The object's bytes and the identity (pin) of the object they are, to pin what a reader checked. */
  async open(key: string, pin?: ObjectPin): Promise<{ body: Readable; pin?: ObjectPin } | undefined> {
    try {
      const object = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...pinned(pin) }),
      );
      const body = object.Body as Readable;
      if (pin && pinMismatch(pin, object.ETag)) {
        body.destroy();
        throw pinMismatchError(key, pin, object.ETag);
      }
      return { body, pin: pinOf(object.ETag, object.VersionId) };
    } catch (error) {
      if (error instanceof ArchiveIntegrityError) throw error;
      if (pin && isPreconditionFailed(error)) throw pinMismatchError(key, pin);
      const cold = coldStorageRefusal(error, key);
      if (cold) throw cold;
      if (await this.isMissing(error, key)) return undefined;
      throw classifyAwsError(error, 's3');
    }
  }

  /**
   * The first `bytes` of an object's text, and whether they are all of it: for a sidecar whose fields come before a
   * list as long as its batch (the Python tool's manifest lists every key it deleted).
   */
  async getTextHead(key: string, bytes: number): Promise<{ text: string; whole: boolean } | undefined> {
    try {
      const object = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${bytes - 1}` }),
      );
      const head = Buffer.from(
        await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      );
      // Content-Range: bytes 0-(n-1)/size; a server that ignores the range sends the whole object.
      const size = Number(/\/(\d+)$/.exec(object.ContentRange ?? '')?.[1] ?? head.length);
      return { text: head.subarray(0, bytes).toString('utf8'), whole: size <= bytes };
    } catch (error) {
      // S3 answers a range of an empty object with 416.
      if ((error as { name?: string }).name === 'InvalidRange') return { text: '', whole: true };
      const cold = coldStorageRefusal(error, key);
      if (cold) throw cold;
      if (await this.isMissing(error, key)) return undefined;
      throw classifyAwsError(error, 's3');
    }
  }

  /**
   * A small object's text (a manifest, legacy metadata, an audit event). One longer than TEXT_MAX_BYTES is refused
   * with ArchiveIntegrityError naming it, before more of it is held: none the archiver writes comes near, and a
   * bucket writer's padded sidecar must not exhaust a reader's memory (or V8's longest string) and fail every read.
   */
  async getText(key: string): Promise<string | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const body = object.Body as Readable;
      const tooLong = () => {
        body.destroy();
        return new ArchiveIntegrityError(
          `object ${key} is longer than ${TEXT_MAX_BYTES} bytes, more than any manifest, metadata or event the archiver writes`,
        );
      };
      if ((object.ContentLength ?? 0) > TEXT_MAX_BYTES) throw tooLong();
      const chunks: Buffer[] = [];
      let bytes = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes > TEXT_MAX_BYTES) throw tooLong();
        chunks.push(chunk);
      }
      return Buffer.concat(chunks).toString('utf8');
    } catch (error) {
      if (error instanceof ArchiveIntegrityError) throw error;
      const cold = coldStorageRefusal(error, key);
      if (cold) throw cold;
      if (await this.isMissing(error, key)) return undefined;
      throw classifyAwsError(error, 's3');
    }
  }

  /**
   * Writes an object once. An existing object that `isSame` accepts is success (a retry, or the same content
   * written before); anything else there is an ArchiveConflictError.
   */
  async putTextOnce(
    key: string,
    body: string,
    options: WriteOptions,
    isSame: (existing: string) => boolean = (existing) => existing === body,
  ): Promise<'written' | 'existed'> {
    return putTextOnce(this.client, key, body, options, isSame, (existing) => this.getText(existing));
  }

  /**
   * Throws ConfigError unless the server refuses a conditional write (If-None-Match: *) into an existing key: the
   * archive's write-once objects (copies and manifests) rely on it, and a server that ignored it would let a retry
   * replace an archive an earlier batch published. `key` is written once (twice, if the first write created it).
   */
  async requireWriteOnce(key: string, options: WriteOptions): Promise<void> {
    const probe = () => putIfAbsent(this.client, key, 'write-once probe', options);
    if ((await probe()) === 'refused' || (await probe()) === 'refused') return;
    throw new ConfigError(
      `the S3 endpoint wrote s3://${this.bucket}/${key} twice despite If-None-Match: *; write-once archives need an S3 that enforces conditional writes`,
    );
  }

  /**
   * Server-side copy that never replaces an existing destination, and with `sourceEtag` copies only that source
   * object. 'refused' when the destination is already there (a racing writer) or the source is not that object
   * (changed or gone): the caller tells which by reading the destination.
   */
  async copyOnce(
    sourceKey: string,
    destinationKey: string,
    options: WriteOptions,
    metadata: Record<string, string>,
    sizeBytes: number,
    sourceEtag?: string,
  ): Promise<'copied' | 'refused'> {
    return copyOnce(
      this.client,
      this.copying,
      { sourceKey, sourceEtag },
      destinationKey,
      options,
      metadata,
      sizeBytes,
    );
  }

  /**
   * Objects under `prefix` in key order, one page at a time (S3 returns at most 1,000 a call). `startAfter`
   * resumes a listing deterministically, so a state machine can page through it with only a key as its cursor.
   */
  async *list(prefix: string, startAfter?: string): AsyncGenerator<ListedObject> {
    let token: string | undefined;
    do {
      const page = await s3Call(() =>
        this.s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ContinuationToken: token,
            StartAfter: token ? undefined : startAfter,
          }),
        ),
      );
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        yield {
          key: object.Key,
          size: object.Size ?? 0,
          storageClass: object.StorageClass ?? 'STANDARD',
          lastModified: object.LastModified,
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async deleteKeys(keys: string[]): Promise<void> {
    // A few keys are each deleted in parallel: one round trip, no request body to build. The staging keys of a whole
    // batch go in DeleteObjects requests of up to 1,000 keys: one request where there were two per object.
    if (keys.length <= FEW_KEYS) {
      await Promise.all(
        keys.map((Key) => s3Call(() => this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })))),
      );
      return;
    }
    for (let start = 0; start < keys.length; start += DELETE_OBJECTS_MAX) {
      const chunk = keys.slice(start, start + DELETE_OBJECTS_MAX);
      const deleted = await s3Call(() =>
        this.s3.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
      );
      // DeleteObjects answers 200 and lists the keys it could not delete (a missing key is not one of them). Only a
      // key S3 could not delete now (SlowDown, InternalError) is worth a retry; AccessDenied is not an outage.
      const failed = deleted.Errors ?? [];
      const first = failed[0];
      if (first) {
        const message = `could not delete ${failed.length} of ${chunk.length} objects (${first.Code ?? 'unknown'}: ${first.Key ?? ''})`;
        const transient = failed.every((e) => isTransientAwsError({ name: e.Code, message: e.Message }));
        throw transient ? new StorageUnavailableError(message) : new Error(message);
      }
    }
  }
}
