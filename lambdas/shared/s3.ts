import type { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ArchiveConflictError, classifyAwsError, StorageUnavailableError } from './errors.js';

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

export interface ObjectHead {
  size: number;
  metadata: Record<string, string>;
  storageClass?: string;
  /** `aws:kms`, `AES256`, ... as S3 reports it; undefined when the server says nothing (s3rver). */
  serverSideEncryption?: string;
}

const isNotFound = (error: unknown): boolean => {
  const err = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404;
};
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

/** The archive bucket as the steps use it. Every SDK error leaves here classified (transient ones are named). */
export class ArchiveStore {
  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
  ) {}

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

  async head(key: string): Promise<ObjectHead | undefined> {
    try {
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        size: head.ContentLength ?? 0,
        metadata: head.Metadata ?? {},
        storageClass: head.StorageClass,
        serverSideEncryption: head.ServerSideEncryption,
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw classifyAwsError(error, 's3');
    }
  }

  async getStream(key: string): Promise<Readable | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return object.Body as Readable;
    } catch (error) {
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
   */
  async copyOnce(
    sourceKey: string,
    destinationKey: string,
    options: WriteOptions,
    metadata: Record<string, string>,
  ): Promise<'copied' | 'existed'> {
    try {
      await this.s3.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: destinationKey,
          CopySource: copySource(this.bucket, sourceKey),
          IfNoneMatch: '*',
          MetadataDirective: 'REPLACE',
          Metadata: metadata,
          ContentType: 'application/x-ndjson',
          ContentEncoding: 'gzip',
          StorageClass: options.storageClass,
          ...encryption(options),
        }),
      );
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
