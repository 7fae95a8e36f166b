import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { z } from 'zod';
import { connectionUrlProblem, type DatabaseConfig } from '../config/schema.js';
import {
  ConfigError,
  DatabaseAccessError,
  DatabaseUnavailableError,
  isTransientAwsError,
} from '../errors/step-errors.js';
import type { ConnectionSettings } from './db.js';

/** The JSON shape of an RDS-managed (or rotation-compatible) database secret. */
const RdsSecretSchema = z.object({
  host: z.string().min(1),
  port: z.union([z.number(), z.string().regex(/^\d+$/)]).optional(),
  username: z.string().min(1),
  password: z.string(),
  dbname: z.string().min(1).optional(),
});

export function parseConnectionUrl(url: string, source = 'the connection URL'): ConnectionSettings {
  // URL's own error carries the whole input, password included: it never leaves here.
  const problem = connectionUrlProblem(url);
  if (problem) throw new ConfigError(`${source} ${problem}`);
  const parsed = new URL(url);
  return {
    host: decodeURIComponent(parsed.hostname),
    port: parsed.port ? Number(parsed.port) : 5432,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'postgres',
  };
}

export interface CredentialSources {
  secrets?: SecretsManagerClient;
  env: Record<string, string | undefined>;
  /** Secrets are cached across invocations so a busy run does not call Secrets Manager per step. */
  cacheSeconds?: number;
}

const cache = new Map<string, { value: ConnectionSettings; until: number }>();

/** Drops a database's cached secret, so the next resolve reads it again (after rotation). */
export function forgetCachedConnection(db: DatabaseConfig): void {
  if ('secretArn' in db.credentials) cache.delete(db.credentials.secretArn);
}

/** Resolves a database's connection from its configured source. Messages name the source, never the secret. */
export async function resolveConnection(
  db: DatabaseConfig,
  sources: CredentialSources,
): Promise<ConnectionSettings> {
  const creds = db.credentials;
  if ('url' in creds) return parseConnectionUrl(creds.url, `database ${db.name}: credentials.url`);
  if ('urlEnv' in creds) {
    const url = sources.env[creds.urlEnv];
    if (url === undefined)
      throw new ConfigError(`database ${db.name}: environment variable ${creds.urlEnv} is not set`);
    if (url.trim() === '')
      throw new ConfigError(
        `database ${db.name}: environment variable ${creds.urlEnv} is set but empty; it must hold the database's URL`,
      );
    return parseConnectionUrl(url, `database ${db.name}: environment variable ${creds.urlEnv}`);
  }
  const cached = cache.get(creds.secretArn);
  if (cached && cached.until > Date.now()) return cached.value;
  if (!sources.secrets)
    throw new ConfigError(`database ${db.name}: no Secrets Manager client to read its secret`);
  let text: string | undefined;
  try {
    const secret = await sources.secrets.send(new GetSecretValueCommand({ SecretId: creds.secretArn }));
    text = secret.SecretString;
  } catch (error) {
    const message = `database ${db.name}: cannot read its secret: ${(error as Error).name}`;
    // Throttling, 5xx and network errors pass: the ASL retries DatabaseUnavailableError. Denied or missing does not.
    if (isTransientAwsError(error)) throw new DatabaseUnavailableError(message, { cause: error });
    throw new DatabaseAccessError(message);
  }
  let json: unknown;
  try {
    json = JSON.parse(text ?? '');
  } catch {
    // The parser's message would quote part of the secret.
    throw new DatabaseAccessError(`database ${db.name}: its secret is not JSON`);
  }
  const parsed = RdsSecretSchema.safeParse(json);
  if (!parsed.success) {
    throw new DatabaseAccessError(
      `database ${db.name}: secret lacks host/username/password (RDS secret JSON shape)`,
    );
  }
  const value: ConnectionSettings = {
    host: parsed.data.host,
    port: Number(parsed.data.port ?? 5432),
    user: parsed.data.username,
    password: parsed.data.password,
    database: parsed.data.dbname ?? 'postgres',
  };
  cache.set(creds.secretArn, { value, until: Date.now() + (sources.cacheSeconds ?? 300) * 1000 });
  return value;
}
