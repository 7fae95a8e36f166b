import type { Readable } from 'node:stream';
import { PutObjectCommand, type S3Client, type StorageClass } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ArchiveConflictError, classifyAwsError } from '../errors/step-errors.js';

/**
 * How ArchiveStore (store.ts) writes objects: streamed uploads, plain overwrites for staging, and write-once objects.
 * Every SDK error leaves here classified, as from the store.
 */

/** How archives are written: storage class and SSE-KMS key come from the config. */
export interface WriteOptions {
  storageClass: StorageClass;
  kmsKeyId?: string;
  /** User metadata of the object (e.g. the batch that wrote it, which decides who may remove it). */
  metadata?: Record<string, string>;
}

/** The client and bucket an ArchiveStore works on. */
export interface BucketClient {
  s3: S3Client;
  bucket: string;
}

export const encryption = (options: WriteOptions) =>
  options.kmsKeyId ? { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: options.kmsKeyId } : {};

export const isPreconditionFailed = (error: unknown): boolean => {
  const err = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'PreconditionFailed' || err.$metadata?.httpStatusCode === 412;
};

/** Runs one S3 call, classifying its error (transient ones are named). */
export async function s3Call<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw classifyAwsError(error, 's3');
  }
}

/** Upload parts: two in flight (queueSize) bound what export holds while it streams an object. */
const PART_BYTES = 8 * 1024 * 1024;

/** Streams a body into an object with multipart upload; the caller hashes what flows through. */
export async function putStream(
  { s3, bucket }: BucketClient,
  key: string,
  body: Readable,
  options: WriteOptions,
): Promise<string | undefined> {
  const stored = await s3Call(() =>
    new Upload({
      client: s3,
      params: {
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: 'application/x-ndjson',
        ContentEncoding: 'gzip',
        Metadata: options.metadata,
        ...encryption(options),
      },
      partSize: PART_BYTES,
      queueSize: 2,
      leavePartsOnError: false,
    }).done(),
  );
  return 'ETag' in stored ? stored.ETag : undefined;
}

/** A PUT that S3 refuses (412) when an object is at the key already (If-None-Match: *). */
export async function putIfAbsent(
  { s3, bucket }: BucketClient,
  key: string,
  body: string,
  options: WriteOptions,
): Promise<'written' | 'refused'> {
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
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
    if (isPreconditionFailed(error)) return 'refused';
    throw classifyAwsError(error, 's3');
  }
}

/**
 * Writes an object once. An existing object that `isSame` accepts is success (a retry, or the same content
 * written before); anything else there is an ArchiveConflictError. S3 enforces it with If-None-Match (as the local
 * S3 server does), so the object is read (`readText`) only when the write was refused.
 */
export async function putTextOnce(
  client: BucketClient,
  key: string,
  body: string,
  options: WriteOptions,
  isSame: (existing: string) => boolean,
  readText: (key: string) => Promise<string | undefined>,
): Promise<'written' | 'existed'> {
  if ((await putIfAbsent(client, key, body, options)) === 'written') return 'written';
  if (!isSame((await readText(key)) ?? ''))
    throw new ArchiveConflictError(`s3://${client.bucket}/${key} exists with other content`);
  return 'existed';
}
