import type { S3Client } from '@aws-sdk/client-s3';

/**
 * An S3 client that records the commands it is sent and answers each as `answer` says (an Error is thrown). It stands
 * in for the AWS SDK only where no local server can show what S3 does: a copy in parts (s3rver answers UploadPartCopy
 * with NotImplemented), and the 403 S3 gives a caller it does not let list a missing key (the local S3 authorizes
 * nothing). Each test that uses it says which.
 */
export function recordingClient(answer: (command: object) => unknown = () => ({})) {
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
