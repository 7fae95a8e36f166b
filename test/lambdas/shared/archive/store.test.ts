import { HeadObjectCommand, type ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';

/**
 * A client that answers each command as `answer` says. The AWS SDK is stood in for because the local S3 authorizes
 * nothing: only S3 answers a missing key with 403 to a caller it does not let list that key.
 */
function answeringClient(answer: (command: object) => unknown) {
  const sent: object[] = [];
  const client = {
    send: async (command: object) => {
      sent.push(command);
      const result = answer(command);
      if (result instanceof Error) throw result;
      return result;
    },
  } as unknown as S3Client;
  return { client, sent };
}

const denied = Object.assign(new Error('Forbidden'), { name: '403', $metadata: { httpStatusCode: 403 } });

describe('ArchiveStore reads of a key S3 answers with 403', () => {
  it('find the key missing when listing it shows no such key', async () => {
    // Prepare: the listing's first key under the prefix is a longer one, not the key itself.
    const { client, sent } = answeringClient((command) =>
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
    const listed = answeringClient((command) =>
      command instanceof HeadObjectCommand ? denied : { Contents: [{ Key: 'a/key.jsonl.gz' }] },
    );
    const unlisted = answeringClient(() => denied);

    // Act
    const there = new ArchiveStore(listed.client, 'b').head('a/key.jsonl.gz');
    const unknown = new ArchiveStore(unlisted.client, 'b').getText('a/key.jsonl.gz');

    // Assess
    await expect(there).rejects.toBe(denied);
    await expect(unknown).rejects.toBe(denied);
  });
});
