import pg from 'pg';
import type { DatabaseConfig } from './config.js';
import { classifyDatabaseError } from './errors.js';

/** A resolved connection: what credentials.ts produces from a secret, a URL or an env var. */
export interface ConnectionSettings {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface SessionLimits {
  statementTimeoutSeconds: number;
  lockTimeoutSeconds: number;
}

/**
 * Session settings every archiver connection uses. The row text the archive stores (and the digest computed
 * over it in SQL) depends on them, so export, verify and delete must all see the same values.
 */
export function sessionSetupSql(limits: SessionLimits): string {
  return [
    "SET client_encoding = 'UTF8'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET TimeZone = 'UTC'",
    'SET extra_float_digits = 1',
    "SET bytea_output = 'hex'",
    `SET statement_timeout = ${Math.round(limits.statementTimeoutSeconds * 1000)}`,
    `SET lock_timeout = ${Math.round(limits.lockTimeoutSeconds * 1000)}`,
    // An invocation that dies mid-transaction must not hold row locks until TCP keepalive notices.
    `SET idle_in_transaction_session_timeout = ${Math.round(Math.max(60, limits.statementTimeoutSeconds) * 1000)}`,
    "SET application_name = 'audit-archiver'",
  ].join('; ');
}

export function tlsOption(mode: DatabaseConfig['tls']): pg.PoolConfig['ssl'] {
  if (mode === 'disable') return false;
  // verify-full checks the chain and host name; the RDS CA bundle reaches Node through NODE_EXTRA_CA_CERTS.
  return mode === 'verify-full' ? { rejectUnauthorized: true } : { rejectUnauthorized: false };
}

export interface Database {
  /** Runs `work` on one pooled connection with the archiver's session settings; maps driver errors to named ones. */
  withConnection<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  end(): Promise<void>;
}

export interface DatabaseOptions {
  tls: DatabaseConfig['tls'];
  maxConnections: number;
  limits: SessionLimits;
  /** Fetched for every new connection, so a rotated secret reaches a warm container (cached by the source). */
  password?: () => Promise<string>;
  /** Called when the server rejects the password: the source forgets what it cached, and the connect is retried once. */
  onAuthFailure?: () => void;
}

export function createDatabase(settings: ConnectionSettings, options: DatabaseOptions): Database {
  const pool = new pg.Pool({
    ...settings,
    password: options.password ?? settings.password,
    ssl: tlsOption(options.tls),
    max: options.maxConnections,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
  });
  // Without a listener, a server-side disconnect of an idle client crashes the whole process.
  pool.on('error', () => undefined);
  const setup = sessionSetupSql(options.limits);
  // Session settings last as long as the connection, and no statement of the archiver changes them: a pooled
  // connection is set up once, not on every checkout (one round trip less per step).
  const prepared = new WeakSet<pg.PoolClient>();
  return {
    async withConnection(work) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        if ((error as { code?: string }).code !== '28P01' || !options.onAuthFailure)
          throw classifyDatabaseError(error);
        options.onAuthFailure();
        try {
          client = await pool.connect();
        } catch (retryError) {
          throw classifyDatabaseError(retryError);
        }
      }
      let broken = false;
      // A server-side disconnect while the client is checked out is emitted here; the failing query reports it.
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      try {
        if (!prepared.has(client)) {
          await client.query(setup);
          prepared.add(client);
        }
        return await work(client);
      } catch (error) {
        broken = true;
        throw classifyDatabaseError(error);
      } finally {
        client.off('error', onError);
        // A failed client may sit in an aborted transaction or a half-read COPY: never hand it out again.
        client.release(broken);
      }
    },
    end: () => pool.end(),
  };
}

/** Runs `work` in a transaction and rolls back on any error, including errors thrown by `work` itself. */
export async function inTransaction<T>(client: pg.PoolClient, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Runs `work` in a transaction that always rolls back: a dry run sees what would happen and leaves nothing. */
export async function inRolledBackTransaction<T>(client: pg.PoolClient, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    return await work();
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}
