import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local Secrets Manager endpoint answering GetSecretValue (the JSON 1.1 protocol the SDK speaks), since no
 * emulator ships on npm. The real SecretsManagerClient reaches it through its endpoint setting.
 */
export async function startSecretsManager(secrets: Record<string, string>): Promise<{
  endpoint: string;
  /** The served secrets; a test may change them (rotation). */
  secrets: Record<string, string>;
  /**
   * While set, every request is answered with this status and error type instead (e.g. 429 ThrottlingException,
   * 503 ServiceUnavailable), as Secrets Manager does under load.
   */
  failWith?: { status: number; type: string };
  requests: string[];
  stop(): Promise<void>;
}> {
  const requests: string[] = [];
  const state: { failWith?: { status: number; type: string } } = {};
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const { SecretId } = JSON.parse(body || '{}') as { SecretId?: string };
      requests.push(`${target} ${SecretId}`);
      res.setHeader('content-type', 'application/x-amz-json-1.1');
      if (state.failWith) {
        res.statusCode = state.failWith.status;
        res.end(JSON.stringify({ __type: state.failWith.type, message: 'Rate exceeded' }));
        return;
      }
      const secret = SecretId === undefined ? undefined : secrets[SecretId];
      if (target !== 'secretsmanager.GetSecretValue' || secret === undefined) {
        res.statusCode = 400;
        res.end(
          JSON.stringify({
            __type: 'ResourceNotFoundException',
            message: 'Secrets Manager can’t find the specified secret.',
          }),
        );
        return;
      }
      res.end(JSON.stringify({ ARN: SecretId, Name: SecretId, SecretString: secret, VersionId: 'v1' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    secrets,
    get failWith() {
      return state.failWith;
    },
    set failWith(value) {
      state.failWith = value;
    },
    requests,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
