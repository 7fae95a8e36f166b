import { describe, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../../../lambdas/shared/config/schema.js';
import { parseConnectionUrl, resolveConnection } from '../../../../lambdas/shared/database/credentials.js';
import { ConfigError } from '../../../../lambdas/shared/errors/step-errors.js';

const database = (urlEnv: string): DatabaseConfig => ({
  name: 'app',
  credentials: { urlEnv },
  tls: 'disable',
  maxConnections: 1,
  tables: [],
});

describe('connection URLs read from the environment', () => {
  it('refuses a URL whose unencoded "@" and "/" would make part of the password the host, naming the variable only', async () => {
    // Prepare
    const env = { APP_URL: 'postgres://archiver:Tr0ub@dorSecretPart/horse@127.0.0.1:5432/app' };

    // Act
    const refused = await resolveConnection(database('APP_URL'), { env }).catch((error: Error) => error);

    // Assess
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toMatch(/^database app: environment variable APP_URL is ambiguous/);
    expect((refused as Error).message).toContain('percent-encoded');
    expect((refused as Error).message).not.toContain('dorSecretPart');
  });

  it('reads a percent-encoded password whole', () => {
    // Act
    const settings = parseConnectionUrl('postgres://archiver:Tr0ub%40dor%2Fhorse@db.internal:6432/app');

    // Assess
    expect(settings).toEqual({
      host: 'db.internal',
      port: 6432,
      user: 'archiver',
      password: 'Tr0ub@dor/horse',
      database: 'app',
    });
  });
});
