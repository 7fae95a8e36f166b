import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { classifyAwsError } from '../errors/step-errors.js';
import { type BucketClient, encryption, isPreconditionFailed, type WriteOptions } from './store-writes.js';

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
export const DEFAULT_COPY: CopyOptions = { inPartsAboveBytes: 0, partBytes: 1024 ** 3 };

/** URL-encodes a copy source; "=" (in every day partition) stays literal, which S3 and s3rver both read. */
const copySource = (bucket: string, key: string) =>
  `${bucket}/${key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replaceAll('%3D', '='))
    .join('/')}`;

/**
 * Server-side copy that never replaces an existing destination (If-None-Match: *), and with `sourceEtag` copies only
 * that source object (x-amz-copy-source-if-match, on every part). Returns 'refused' when the destination is already
 * there (a racing writer) or, with `sourceEtag`, the source is another object (both 412) or gone (404): the caller
 * tells them apart by reading the destination. `sizeBytes` (the source's size) decides between one CopyObject
 * and a copy in parts (see CopyOptions).
 */
export async function copyOnce(
  { s3, bucket }: BucketClient,
  copying: CopyOptions,
  { sourceKey, sourceEtag }: { sourceKey: string; sourceEtag?: string },
  destinationKey: string,
  options: WriteOptions,
  metadata: Record<string, string>,
  sizeBytes: number,
): Promise<'copied' | 'refused'> {
  const target = {
    Bucket: bucket,
    Key: destinationKey,
    Metadata: metadata,
    ContentType: 'application/x-ndjson',
    ContentEncoding: 'gzip',
    StorageClass: options.storageClass,
    ...encryption(options),
  };
  const source = { CopySource: copySource(bucket, sourceKey), CopySourceIfMatch: sourceEtag };
  try {
    if (sizeBytes > copying.inPartsAboveBytes) {
      await copyInParts(s3, target, source, sizeBytes, copying.partBytes);
    } else {
      await s3.send(
        new CopyObjectCommand({
          ...target,
          ...source,
          IfNoneMatch: '*',
          MetadataDirective: 'REPLACE',
        }),
      );
    }
    return 'copied';
  } catch (error) {
    if (isPreconditionFailed(error)) return 'refused';
    const { name } = error as { name?: string };
    // The source is gone (404 NoSuchKey): refused like a source that changed, when the caller named the one it meant.
    if (sourceEtag && name === 'NoSuchKey') return 'refused';
    // The SDK retried a completion whose answer was lost, and S3 had completed it: the caller reads what is there.
    if (name === 'NoSuchUpload') return 'refused';
    throw classifyAwsError(error, 's3');
  }
}

/** A multipart upload of byte ranges of the source, completed only if the destination does not exist yet. */
async function copyInParts(
  s3: S3Client,
  target: { Bucket: string; Key: string } & Record<string, unknown>,
  source: { CopySource: string; CopySourceIfMatch: string | undefined },
  sizeBytes: number,
  partBytes: number,
): Promise<void> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand(target));
  const upload = { Bucket: target.Bucket, Key: target.Key, UploadId };
  try {
    const parts: { PartNumber: number; ETag?: string }[] = [];
    for (let start = 0; start < sizeBytes; start += partBytes) {
      const PartNumber = parts.length + 1;
      const end = Math.min(sizeBytes, start + partBytes) - 1;
      const part = await s3.send(
        new UploadPartCopyCommand({
          ...upload,
          PartNumber,
          ...source,
          CopySourceRange: `bytes=${start}-${end}`,
        }),
      );
      parts.push({ PartNumber, ETag: part.CopyPartResult?.ETag });
    }
    await s3.send(
      new CompleteMultipartUploadCommand({
        ...upload,
        MultipartUpload: { Parts: parts },
        IfNoneMatch: '*',
      }),
    );
  } catch (error) {
    // Parts of an abandoned upload cost storage until aborted (the lifecycle rule aborts them after 7 days too).
    await s3.send(new AbortMultipartUploadCommand(upload)).catch(() => undefined);
    throw error;
  }
}
