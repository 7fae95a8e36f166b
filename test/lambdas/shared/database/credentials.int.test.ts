import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../../../lambdas/shared/config/schema.js';
import {
  forgetCachedConnection,
  parseConnectionUrl,
  resolveConnection,
} from '../../../../lambdas/shared/database/credentials.js';
import { createDatabase } from '../../../../lambdas/shared/database/db.js';
import {
  DatabaseAccessError,
  DatabaseUnavailableError,
} from '../../../../lambdas/shared/errors/step-errors.js';
import { createTestDatabase, type TestDatabase } from '../../../support/fixtures.js';
import { startSecretsManager } from '../../../support/secrets-manager.js';

const ARN = (name: string) => `arn:aws:secretsmanager:us-east-1:000000000000:secret:${name}`;

describe('database credentials from Secrets Manager', () => {
  let db: TestDatabase;
  let secretsManager: Awaited<ReturnType<typeof startSecretsManager>>;
  let secrets: SecretsManagerClient;
  const dbConfig = (secretName: string): DatabaseConfig => ({
    name: 'app',
    credentials: { secretArn: ARN(secretName) },
    tls: 'disable',
    maxConnections: 1,
    tables: [],
  });

  beforeAll(async () => {
    db = await createTestDatabase();
    const url = parseConnectionUrl(db.url);
    const rds = (password: string) =>
      JSON.stringify({
        engine: 'postgres',
        host: url.host,
        port: url.port,
        username: url.user,
        password,
        dbname: url.database,
      });
    secretsManager = await startSecretsManager({
      [ARN('good')]: rds(url.password),
      [ARN('wrong-password')]: rds('not-the-password-s3cr3t'),
      [ARN('not-json')]: 'hunter2-plaintext',
    });
    secrets = new SecretsManagerClient({
      endpoint: secretsManager.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
  });

  afterAll(async () => {
    await secretsManager?.stop();
    await db?.drop();
  });

  it('reads an RDS-shaped secret, connects with it, and caches it', async () => {
    // Act
    const first = await resolveConnection(dbConfig('good'), { secrets, env: {} });
    const second = await resolveConnection(dbConfig('good'), { secrets, env: {} });
    const database = createDatabase(first, {
      tls: 'disable',
      maxConnections: 1,
      limits: { statementTimeoutSeconds: 5, lockTimeoutSeconds: 1 },
    });
    const row = await database.withConnection((client) => client.query('SELECT current_database() AS name'));
    await database.end();

    // Assess
    expect(second).toEqual(first);
    expect(row.rows[0].name).toBe(db.name);
    expect(secretsManager.requests.filter((r) => r.endsWith(ARN('good')))).toHaveLength(1);
  });

  it('turns a wrong password into DatabaseAccessError without repeating the password', async () => {
    // Prepare
    const settings = await resolveConnection(dbConfig('wrong-password'), { secrets, env: {} });
    const database = createDatabase(settings, {
      tls: 'disable',
      maxConnections: 1,
      limits: { statementTimeoutSeconds: 5, lockTimeoutSeconds: 1 },
    });

    // Act
    const attempt = database.withConnection((client) => client.query('SELECT 1'));

    // Assess
    await expect(attempt).rejects.toThrow(DatabaseAccessError);
    await expect(attempt).rejects.not.toThrow(/s3cr3t/);
    await database.end();
  });

  it.each([
    ['not-json', /database app: its secret is not JSON/],
    ['missing', /database app: cannot read its secret: ResourceNotFoundException/],
  ])(
    'refuses a %s secret with a message that names the database, never the secret value',
    async (name, message) => {
      // Act
      const attempt = resolveConnection(dbConfig(name), { secrets, env: {} });

      // Assess
      await expect(attempt).rejects.toThrow(DatabaseAccessError);
      await expect(attempt).rejects.toThrow(message);
      await expect(attempt).rejects.not.toThrow(/hunter2/);
    },
  );

  it.each([
    [429, 'ThrottlingException'],
    [400, 'ThrottlingException'],
    [503, 'ServiceUnavailable'],
    [500, 'InternalServiceError'],
  ])(
    'turns Secrets Manager answering %s %s into the retryable DatabaseUnavailableError',
    async (status, type) => {
      // Prepare: the endpoint sheds load; one SDK attempt, so the ASL's Retry is what retries.
      const busy = new SecretsManagerClient({
        endpoint: secretsManager.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
        maxAttempts: 1,
      });
      secretsManager.failWith = { status, type };

      // Act
      const attempt = resolveConnection(dbConfig('good-uncached'), { secrets: busy, env: {} });

      // Assess
      await expect(attempt).rejects.toThrow(DatabaseUnavailableError);
      await expect(attempt).rejects.toThrow(`database app: cannot read its secret: ${type}`);
      secretsManager.failWith = undefined;
      busy.destroy();
    },
  );

  it('turns an unreachable Secrets Manager endpoint into the retryable DatabaseUnavailableError', async () => {
    // Prepare: a port nothing listens on.
    const gone = await startSecretsManager({});
    await gone.stop();
    const unreachable = new SecretsManagerClient({
      endpoint: gone.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });

    // Act
    const attempt = resolveConnection(dbConfig('good-uncached'), { secrets: unreachable, env: {} });

    // Assess
    await expect(attempt).rejects.toThrow(DatabaseUnavailableError);
    unreachable.destroy();
  });

  it('reads a URL from the named environment variable, or says which variable is missing', async () => {
    // Act / Assess
    await expect(
      resolveConnection(
        { ...dbConfig('x'), credentials: { urlEnv: 'APP_DB_URL' } },
        { env: { APP_DB_URL: db.url } },
      ),
    ).resolves.toMatchObject({
      database: db.name,
    });
    await expect(
      resolveConnection({ ...dbConfig('x'), credentials: { urlEnv: 'APP_DB_URL' } }, { env: {} }),
    ).rejects.toThrow('environment variable APP_DB_URL is not set');
    await expect(
      resolveConnection(
        { ...dbConfig('x'), credentials: { urlEnv: 'APP_DB_URL' } },
        { env: { APP_DB_URL: ' ' } },
      ),
    ).rejects.toThrow('environment variable APP_DB_URL is set but empty');
  });

  it('follows a rotated secret: a rejected password makes the pool read the secret again', async () => {
    // Prepare: a role whose password the secret holds, and a pool of two connections.
    const url = parseConnectionUrl(db.url);
    await db.client.query("CREATE ROLE rotating LOGIN PASSWORD 'first-password'");
    const secret = (password: string) =>
      JSON.stringify({
        host: url.host,
        port: url.port,
        username: 'rotating',
        password,
        dbname: url.database,
      });
    const rotating = await startSecretsManager({ [ARN('rotating')]: secret('first-password') });
    const client = new SecretsManagerClient({
      endpoint: rotating.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const config = dbConfig('rotating');
    const resolve = () => resolveConnection(config, { secrets: client, env: {} });
    const database = createDatabase(await resolve(), {
      tls: 'disable',
      maxConnections: 2,
      limits: { statementTimeoutSeconds: 5, lockTimeoutSeconds: 1 },
      password: async () => (await resolve()).password,
      onAuthFailure: () => forgetCachedConnection(config),
    });
    // Act: while the first connection is held, the secret rotates; a second connection must authenticate anew.
    const user = await database.withConnection(async () => {
      await db.client.query("ALTER ROLE rotating PASSWORD 'second-password'");
      rotating.secrets[ARN('rotating')] = secret('second-password');
      return database.withConnection((c) => c.query('SELECT current_user AS u'));
    });

    // Assess
    expect(user.rows[0].u).toBe('rotating');
    expect(rotating.requests.filter((r) => r.endsWith(ARN('rotating'))).length).toBe(2);
    await database.end();
    await rotating.stop();
  });
});
