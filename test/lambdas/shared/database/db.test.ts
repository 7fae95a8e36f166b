import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../lambdas/shared/config/config.js';
import { tlsOption } from '../../../../lambdas/shared/database/db.js';

/** A config naming only what it must: every database setting it leaves out takes its default. */
const minimalConfig = () =>
  parseConfig({
    s3: { bucket: 'archive-bucket' },
    databases: [
      {
        name: 'app',
        credentials: { url: 'postgres://u:p@db.example/app' },
        tables: [{ name: 'audit', timestampColumn: 'at' }],
      },
    ],
  });

describe('TLS to the database is required by default', () => {
  it('defaults every database to verify-full, which checks the certificate chain and host name', () => {
    // Act
    const tls = minimalConfig().databases[0]?.tls;

    // Assess
    expect(tls).toBe('verify-full');
    expect(tlsOption('verify-full')).toEqual({ rejectUnauthorized: true });
    expect(tlsOption('require')).toEqual({ rejectUnauthorized: false });
    expect(tlsOption('disable')).toBe(false);
  });
});
