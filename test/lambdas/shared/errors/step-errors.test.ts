import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  classifyAwsError,
  classifyDatabaseError,
  DatabaseAccessError,
  DatabaseUnavailableError,
  LockStoreUnavailableError,
  StorageUnavailableError,
  TableNotUsableError,
} from '../../../../lambdas/shared/errors/step-errors.js';

const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('error classification', () => {
  it.each([
    ['28P01', DatabaseAccessError],
    ['42501', DatabaseAccessError],
    ['42P01', TableNotUsableError],
    ['23503', TableNotUsableError],
    ['57P01', DatabaseUnavailableError],
    ['40001', DatabaseUnavailableError],
    ['55P03', DatabaseUnavailableError],
    ['ECONNREFUSED', DatabaseUnavailableError],
  ])('maps %s to %s', (code, type) => {
    expect(classifyDatabaseError(pgError(code, 'x'))).toBeInstanceOf(type);
  });

  it('names a certificate verify-full cannot accept as a config error, with what to change', () => {
    // Act
    const error = classifyDatabaseError(pgError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'));

    // Assess: not retried as an outage; the message says which setting decides.
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/verify-full.*databaseCaBundlePath.*tls: require/);
  });

  it('treats a dropped connection as transient', () => {
    expect(
      classifyDatabaseError(new Error('Client has encountered a connection error and is not queryable')),
    ).toBeInstanceOf(DatabaseUnavailableError);
  });

  it('never repeats the message of a data exception, which may quote row values', () => {
    // Act
    const error = classifyDatabaseError(
      pgError('22P02', 'invalid input syntax for type integer: "alice@example.com"'),
    );

    // Assess
    expect(error.message).toBe(
      'database error 22P02: data exception (message withheld: it may quote row values)',
    );
  });

  it('names transient AWS failures and leaves the rest alone', () => {
    const throttled = Object.assign(new Error('slow down'), {
      name: 'SlowDown',
      $metadata: { httpStatusCode: 503 },
    });
    const denied = Object.assign(new Error('denied'), {
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    expect(classifyAwsError(throttled, 's3')).toBeInstanceOf(StorageUnavailableError);
    expect(classifyAwsError(throttled, 'dynamodb')).toBeInstanceOf(LockStoreUnavailableError);
    expect(classifyAwsError(denied, 's3')).toBe(denied);
  });
});
