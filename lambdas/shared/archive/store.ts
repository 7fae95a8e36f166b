import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type StorageClass,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { z } from 'zod';
import {
  ArchiveConflictError,
  ArchiveIntegrityError,
  classifyAwsError,
  StorageUnavailableError,
} from '../errors/step-errors.js';

/** How archives are written: storage class and SSE-KMS key come from the config. */
export interface WriteOptions {
  storageClass: StorageClass;
  kmsKeyId?: string;
  /** User metadata of the object (e.g. the batch that wrote it, which decides who may remove it). */
  metadata?: Record<string, string>;
}

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
  /** `aws:kms`, `AES256`, ... as S3 reports it; undefined when the server says nothing (s3rver). */
  serverSideEncryption?: string;
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

/** A pinned read found other bytes under the key than those pinned (overwritten, or another version). */
const pinMismatchError = (key: string, pin: ObjectPin, found?: string) =>
  new ArchiveIntegrityError(
    `${key} is not the pinned object (ETag ${pin.etag}${pin.versionId ? `, version ${pin.versionId}` : ''}; S3 holds ${found ? `ETag ${found}` : 'another'})`,
  );

const isPreconditionFailed = (error: unknown): boolean => {
  const err = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'PreconditionFailed' || err.$metadata?.httpStatusCode === 412;
};

/** URL-encodes a copy source; "=" (in every day partition) stays literal, which S3 and s3rver both read. */
const copySource = (bucket: string, key: string) =>
  `${bucket}/${key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replaceAll('%3D', '='))
    .join('/')}`;

const encryption = (options: WriteOptions) =>
  options.kmsKeyId ? { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: options.kmsKeyId } : {};

/**
 * How `copyOnce` copies. In parts (UploadPartCopy, completed with If-None-Match) above `inPartsAboveBytes`: that is
 * the only way past CopyObject's 5 GiB limit, and the only copy into a write-once area the bucket policy allows (S3
 * refuses CopyObject there), so AWS copies every object in parts (the default, 0). s3rver answers UploadPartCopy
 * with NotImplemented: local mode copies whole objects up to S3's limit.
 */
export interface CopyOptions {
  inPartsAboveBytes: number;
  /** Bytes per copied part: S3 takes 5 MiB to 5 GiB, at most 10,000 parts (1 GiB parts reach S3's 5 TiB maximum). */
  partBytes: number;
}

/** S3's largest CopyObject. */
export const COPY_OBJECT_MAX_BYTES = 5 * 1024 ** 3;
const DEFAULT_COPY: CopyOptions = { inPartsAboveBytes: 0, partBytes: 1024 ** 3 };

/** The archive bucket as the steps use it. Every SDK error leaves here classified (transient ones are named). */
export class ArchiveStore {
  private readonly copying: CopyOptions;

  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    copying: Partial<CopyOptions> = {},
  ) {
    this.copying = { ...DEFAULT_COPY, ...copying };
  }

  private async call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw classifyAwsError(error, 's3');
    }
  }

  /** Streams a body into an object with multipart upload; the caller hashes what flows through. */
  async putStream(
    key: string,
    body: Readable,
    options: WriteOptions & { partSizeBytes?: number },
  ): Promise<void> {
    await this.call(() =>
      new Upload({
        client: this.s3,
        params: {
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/x-ndjson',
          ContentEncoding: 'gzip',
          Metadata: options.metadata,
          ...encryption(options),
        },
        partSize: options.partSizeBytes ?? 8 * 1024 * 1024,
        queueSize: 2,
        leavePartsOnError: false,
      }).done(),
    );
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
        serverSideEncryption: head.ServerSideEncryption,
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw classifyAwsError(error, 's3');
    }
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
      if (isNotFound(error)) return undefined;
      throw classifyAwsError(error, 's3');
    }
  }

  async getText(key: string): Promise<string | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await (object.Body as { transformToString(): Promise<string> }).transformToString();
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw classifyAwsError(error, 's3');
    }
  }

  /** Plain overwrite: only for staging objects, which a retried export replaces. */
  async putText(key: string, body: string, options: WriteOptions): Promise<void> {
    await this.call(() =>
      this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          Metadata: options.metadata,
          ...encryption(options),
        }),
      ),
    );
  }

  /**
   * Writes an object once. An existing object that `isSame` accepts is success (a retry, or the same content
   * written before); anything else there is an ArchiveConflictError. S3 enforces it with If-None-Match; the read
   * first also covers servers without conditional writes.
   */
  async putTextOnce(
    key: string,
    body: string,
    options: WriteOptions,
    isSame: (existing: string) => boolean = (existing) => existing === body,
  ): Promise<'written' | 'existed'> {
    const check = (existing: string): 'existed' => {
      if (!isSame(existing))
        throw new ArchiveConflictError(`s3://${this.bucket}/${key} exists with other content`);
      return 'existed';
    };
    const existing = await this.getText(key);
    if (existing !== undefined) return check(existing);
    try {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          IfNoneMatch: '*',
          Metadata: options.metadata,
          StorageClass: options.storageClass,
          ...encryption(options),
        }),
      );
      return 'written';
    } catch (error) {
      if (!isPreconditionFailed(error)) throw classifyAwsError(error, 's3');
      return check((await this.getText(key)) ?? '');
    }
  }

  /**
   * Server-side copy that never replaces an existing destination (If-None-Match: *). Returns 'existed' when the
   * destination is already there (a racing writer); the caller decides whether that object is acceptable.
   * `sizeBytes` (the source's size) decides between one CopyObject and a copy in parts (see CopyOptions).
   */
  async copyOnce(
    sourceKey: string,
    destinationKey: string,
    options: WriteOptions,
    metadata: Record<string, string>,
    sizeBytes: number,
  ): Promise<'copied' | 'existed'> {
    const target = {
      Bucket: this.bucket,
      Key: destinationKey,
      Metadata: metadata,
      ContentType: 'application/x-ndjson',
      ContentEncoding: 'gzip',
      StorageClass: options.storageClass,
      ...encryption(options),
    };
    const source = copySource(this.bucket, sourceKey);
    try {
      if (sizeBytes > this.copying.inPartsAboveBytes) {
        await this.copyInParts(target, source, sizeBytes);
      } else {
        await this.s3.send(
          new CopyObjectCommand({
            ...target,
            CopySource: source,
            IfNoneMatch: '*',
            MetadataDirective: 'REPLACE',
          }),
        );
      }
      return 'copied';
    } catch (error) {
      if (isPreconditionFailed(error)) return 'existed';
      // 409 ConditionalRequestConflict: a concurrent conditional write; S3 asks for a retry.
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 409)
        throw new StorageUnavailableError(`conflicting write to ${destinationKey}; retry`, { cause: error });
      throw classifyAwsError(error, 's3');
    }
  }

  /** A multipart upload of byte ranges of the source, completed only if the destination does not exist yet. */
  private async copyInParts(
    target: { Bucket: string; Key: string } & Record<string, unknown>,
    source: string,
    sizeBytes: number,
  ): Promise<void> {
    const { UploadId } = await this.s3.send(new CreateMultipartUploadCommand(target));
    const upload = { Bucket: target.Bucket, Key: target.Key, UploadId };
    try {
      const parts: { PartNumber: number; ETag?: string }[] = [];
      for (let start = 0; start < sizeBytes; start += this.copying.partBytes) {
        const PartNumber = parts.length + 1;
        const end = Math.min(sizeBytes, start + this.copying.partBytes) - 1;
        const part = await this.s3.send(
          new UploadPartCopyCommand({
            ...upload,
            PartNumber,
            CopySource: source,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ PartNumber, ETag: part.CopyPartResult?.ETag });
      }
      await this.s3.send(
        new CompleteMultipartUploadCommand({
          ...upload,
          MultipartUpload: { Parts: parts },
          IfNoneMatch: '*',
        }),
      );
    } catch (error) {
      // Parts of an abandoned upload cost storage until aborted (the lifecycle rule aborts them after 7 days too).
      await this.s3.send(new AbortMultipartUploadCommand(upload)).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Objects under `prefix` in key order, one page at a time (S3 returns at most 1,000 a call). `startAfter`
   * resumes a listing deterministically, so a state machine can page through it with only a key as its cursor.
   */
  async *list(prefix: string, startAfter?: string): AsyncGenerator<ListedObject> {
    let token: string | undefined;
    do {
      const page = await this.call(() =>
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
    // The few keys of one batch (staging data and manifest, archive and manifest), each deleted in parallel: one
    // round trip, and no DeleteObjects request body to build (s3rver answers those several times slower).
    await Promise.all(
      keys.map((Key) => this.call(() => this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })))),
    );
  }
}
