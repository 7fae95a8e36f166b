import { HeadObjectCommand, type ListObjectsV2Command } from '@aws-sdk/client-s3';
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
    const there = new ArchiveStore(listed.client, 'b').head('a/key.jsonl.gz');
    const unknown = new ArchiveStore(unlisted.client, 'b').getText('a/key.jsonl.gz');

    // Assess
    await expect(there).rejects.toBe(denied);
    await expect(unknown).rejects.toBe(denied);
  });
});
