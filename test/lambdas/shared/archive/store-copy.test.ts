import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import { StorageUnavailableError } from '../../../../lambdas/shared/errors/step-errors.js';
import { recordingClient } from '../../../support/recording-s3.js';

// The SDK is stood in for: s3rver, the local S3, answers UploadPartCopy with NotImplemented
// (test/lambdas/shared/archive/store.int.test.ts shows it), so no local server can run a copy in parts.

const write = { storageClass: 'STANDARD_IA' as const, kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/k' };
const metadata = { 'content-sha256': 'c'.repeat(64) };

describe('ArchiveStore.copyOnce', () => {
  it('copies above the threshold in byte-range parts of the named source and completes only if the destination does not exist', async () => {
    // Prepare
    const { client, sent } = recordingClient((command) =>
      command instanceof CreateMultipartUploadCommand
        ? { UploadId: 'u1' }
        : command instanceof UploadPartCopyCommand
          ? { CopyPartResult: { ETag: `"p${command.input.PartNumber}"` } }
          : {},
    );
    const store = new ArchiveStore(client, 'b', { inPartsAboveBytes: 10, partBytes: 4 });

    // Act
    const result = await store.copyOnce('s/x.jsonl.gz', 'a/day=01/x.jsonl.gz', write, metadata, 11, '"e1"');

    // Assess
    expect(result).toBe('copied');
    expect(sent.map((c) => c.constructor.name)).toEqual([
      'CreateMultipartUploadCommand',
      'UploadPartCopyCommand',
      'UploadPartCopyCommand',
      'UploadPartCopyCommand',
      'CompleteMultipartUploadCommand',
    ]);
    const [create, ...rest] = sent as [CreateMultipartUploadCommand, ...UploadPartCopyCommand[]];
    expect(create.input).toMatchObject({
      Bucket: 'b',
      Key: 'a/day=01/x.jsonl.gz',
      Metadata: metadata,
      StorageClass: 'STANDARD_IA',
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: write.kmsKeyId,
      ContentEncoding: 'gzip',
    });
    expect(
      rest
        .slice(0, 3)
        .map((c) => [
          c.input.PartNumber,
          c.input.CopySourceRange,
          c.input.CopySource,
          c.input.CopySourceIfMatch,
        ]),
    ).toEqual([
      // Every part is copied only from the source object named by its ETag.
      [1, 'bytes=0-3', 'b/s/x.jsonl.gz', '"e1"'],
      [2, 'bytes=4-7', 'b/s/x.jsonl.gz', '"e1"'],
      [3, 'bytes=8-10', 'b/s/x.jsonl.gz', '"e1"'],
    ]);
    const complete = sent.at(-1) as CompleteMultipartUploadCommand;
    expect(complete.input).toMatchObject({
      UploadId: 'u1',
      IfNoneMatch: '*',
      MultipartUpload: {
        Parts: [
          { PartNumber: 1, ETag: '"p1"' },
          { PartNumber: 2, ETag: '"p2"' },
          { PartNumber: 3, ETag: '"p3"' },
        ],
      },
    });
  });

  it('aborts the upload and reports an existing destination when the completion finds one (412)', async () => {
    // Prepare
    const precondition = Object.assign(
      new Error('At least one of the pre-conditions you specified did not hold'),
      {
        name: 'PreconditionFailed',
        $metadata: { httpStatusCode: 412 },
      },
    );
    const { client, sent } = recordingClient((command) =>
      command instanceof CreateMultipartUploadCommand
        ? { UploadId: 'u2' }
        : command instanceof CompleteMultipartUploadCommand
          ? precondition
          : {},
    );
    const store = new ArchiveStore(client, 'b', { inPartsAboveBytes: 0, partBytes: 1024 });

    // Act
    const result = await store.copyOnce('s/x', 'a/x', write, metadata, 100);

    // Assess
    expect(result).toBe('refused');
    const abort = sent.at(-1);
    expect(abort).toBeInstanceOf(AbortMultipartUploadCommand);
    expect((abort as AbortMultipartUploadCommand).input).toEqual({ Bucket: 'b', Key: 'a/x', UploadId: 'u2' });
  });

  it('refuses when the SDK retried a completion S3 had carried out (404 NoSuchUpload), so the caller reads what is there', async () => {
    // Prepare: the first completion's answer was lost; the SDK's own retry finds the upload gone.
    const gone = Object.assign(new Error('The specified upload does not exist'), {
      name: 'NoSuchUpload',
      $metadata: { httpStatusCode: 404 },
    });
    const { client } = recordingClient((command) =>
      command instanceof CreateMultipartUploadCommand
        ? { UploadId: 'u5' }
        : command instanceof CompleteMultipartUploadCommand
          ? gone
          : { CopyPartResult: { ETag: '"p"' } },
    );
    const store = new ArchiveStore(client, 'b', { inPartsAboveBytes: 0, partBytes: 1024 });

    // Act
    const result = await store.copyOnce('s/x', 'a/x', write, metadata, 100, '"e"');

    // Assess
    expect(result).toBe('refused');
  });

  it('asks for a retry when S3 answers two conditional writes at once with 409 ConditionalRequestConflict', async () => {
    // Prepare
    const conflict = Object.assign(new Error('conflicting conditional operation'), {
      name: 'ConditionalRequestConflict',
      $metadata: { httpStatusCode: 409 },
    });
    const copying = recordingClient((command) =>
      command instanceof CreateMultipartUploadCommand
        ? { UploadId: 'u6' }
        : command instanceof CompleteMultipartUploadCommand
          ? conflict
          : { CopyPartResult: { ETag: '"p"' } },
    );
    const writing = recordingClient(() => conflict);

    // Act
    const [copied, written] = await Promise.allSettled([
      new ArchiveStore(copying.client, 'b', { inPartsAboveBytes: 0, partBytes: 1024 }).copyOnce(
        's/x',
        'a/x',
        write,
        metadata,
        100,
        '"e"',
      ),
      new ArchiveStore(writing.client, 'b').putTextOnce('a/_x.manifest.json', '{}', write),
    ]);

    // Assess: the manifest's write-once PUT is retried like the copy.
    expect(copied).toMatchObject({ status: 'rejected', reason: expect.any(StorageUnavailableError) });
    expect(written).toMatchObject({ status: 'rejected', reason: expect.any(StorageUnavailableError) });
  });

  it('refuses, aborting the upload, when a part finds the source changed (412) or gone (404) under its ETag', async () => {
    // Prepare
    const answer = (error: Error) => (command: object) =>
      command instanceof CreateMultipartUploadCommand
        ? { UploadId: 'u3' }
        : command instanceof UploadPartCopyCommand
          ? error
          : {};
    const changed = recordingClient(
      answer(
        Object.assign(new Error('precondition'), {
          name: 'PreconditionFailed',
          $metadata: { httpStatusCode: 412 },
        }),
      ),
    );
    const gone = recordingClient(
      answer(
        Object.assign(new Error('no such key'), { name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } }),
      ),
    );
    const copy = (client: S3Client) =>
      new ArchiveStore(client, 'b', { inPartsAboveBytes: 0, partBytes: 1024 }).copyOnce(
        's/x',
        'a/x',
        write,
        metadata,
        100,
        '"e1"',
      );

    // Act
    const outcomes = [await copy(changed.client), await copy(gone.client)];

    // Assess
    expect(outcomes).toEqual(['refused', 'refused']);
    for (const { sent } of [changed, gone]) {
      expect(sent.at(-1)).toBeInstanceOf(AbortMultipartUploadCommand);
      expect(sent.some((c) => c instanceof CompleteMultipartUploadCommand)).toBe(false);
    }
  });

  it('copies whole objects at or below the threshold, with If-None-Match', async () => {
    // Prepare
    const { client, sent } = recordingClient();
    const store = new ArchiveStore(client, 'b', { inPartsAboveBytes: 100 });

    // Act
    await store.copyOnce('s/x', 'a/x', write, metadata, 100);

    // Assess
    expect(sent).toHaveLength(1);
    expect(sent[0]).toBeInstanceOf(CopyObjectCommand);
    expect((sent[0] as CopyObjectCommand).input).toMatchObject({
      IfNoneMatch: '*',
      MetadataDirective: 'REPLACE',
    });
  });

  it('copies in parts by default (AWS), whatever the size', async () => {
    // Prepare
    const { client, sent } = recordingClient((command) =>
      command instanceof CreateMultipartUploadCommand ? { UploadId: 'u3' } : {},
    );

    // Act
    await new ArchiveStore(client, 'b').copyOnce('s/x', 'a/x', write, metadata, 20);

    // Assess
    expect(sent.map((c) => c.constructor.name)).toEqual([
      'CreateMultipartUploadCommand',
      'UploadPartCopyCommand',
      'CompleteMultipartUploadCommand',
    ]);
    expect((sent[1] as UploadPartCopyCommand).input.CopySourceRange).toBe('bytes=0-19');
  });
});
