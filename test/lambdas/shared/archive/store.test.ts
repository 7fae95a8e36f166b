import { DeleteObjectsCommand, HeadObjectCommand, type ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import { recordingClient } from '../../../support/recording-s3.js';

// The SDK is stood in for: the local S3 authorizes nothing, and only S3 answers a missing key with 403 to a caller it
// does not let list that key.

const denied = Object.assign(new Error('Forbidden'), { name: '403', $metadata: { httpStatusCode: 403 } });

describe('ArchiveStore reads of a key S3 answers with 403', () => {
  it('find the key missing when listing it shows no such key', async () => {
    // Prepare: the listing's first key under the prefix is a longer one, not the key itself.
    const { client, sent } = recordingClient((command) =>
      command instanceof HeadObjectCommand ? denied : { Contents: [{ Key: 'a/key.jsonl.gz.other' }] },
    );

    // Act
    const head = await new ArchiveStore(client, 'b').head('a/key.jsonl.gz');

    // Assess
    expect(head).toBeUndefined();
    expect((sent[1] as ListObjectsV2Command).input).toEqual({
      Bucket: 'b',
      Prefix: 'a/key.jsonl.gz',
      MaxKeys: 1,
    });
  });

  it('let the 403 stand when the key is listed, or the listing is refused too', async () => {
    // Prepare
    const listed = recordingClient((command) =>
      command instanceof HeadObjectCommand ? denied : { Contents: [{ Key: 'a/key.jsonl.gz' }] },
    );
    const unlisted = recordingClient(() => denied);

    // Act
    const [there, unknown] = await Promise.allSettled([
      new ArchiveStore(listed.client, 'b').head('a/key.jsonl.gz'),
      new ArchiveStore(unlisted.client, 'b').getText('a/key.jsonl.gz'),
    ]);

    // Assess
    expect(there).toEqual({ status: 'rejected', reason: denied });
    expect(unknown).toEqual({ status: 'rejected', reason: denied });
  });
});

describe('ArchiveStore.deleteKeys, for the keys DeleteObjects lists as not deleted', () => {
  const keys = Array.from({ length: 8 }, (_, i) => `staging/b/${i}.jsonl.gz`);
  const answering = (code: string) =>
    recordingClient((command) =>
      command instanceof DeleteObjectsCommand
        ? { Errors: [{ Key: keys[3], Code: code, Message: `${code} message` }] }
        : {},
    ).client;

  it('names a key S3 could not delete now (SlowDown, InternalError) a storage outage, which is retried', async () => {
    // Act
    const [slowDown, internal] = await Promise.allSettled([
      new ArchiveStore(answering('SlowDown'), 'b').deleteKeys(keys),
      new ArchiveStore(answering('InternalError'), 'b').deleteKeys(keys),
    ]);

    // Assess
    expect(slowDown).toMatchObject({ status: 'rejected', reason: { name: 'StorageUnavailableError' } });
    expect(internal).toMatchObject({ status: 'rejected', reason: { name: 'StorageUnavailableError' } });
  });

  it('does not retry a refusal (AccessDenied) as an outage, and names its code and key', async () => {
    // Act
    const denied = new ArchiveStore(answering('AccessDenied'), 'b').deleteKeys(keys);

    // Assess
    await expect(denied).rejects.toThrow(
      new Error('could not delete 1 of 8 objects (AccessDenied: staging/b/3.jsonl.gz)'),
    );
    await expect(denied).rejects.not.toMatchObject({ name: 'StorageUnavailableError' });
  });
});
