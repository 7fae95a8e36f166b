import { describe, expect, it } from 'vitest';
import { changedPaths, configFingerprint } from '../../../../lambdas/shared/batch/config-fingerprint.js';
import { parseConfig } from '../../../../lambdas/shared/config/config.js';

describe('config fingerprint', () => {
  const config = (url: string, batchSize: number) =>
    parseConfig({
      s3: { bucket: 'b-1' },
      defaults: { batchSize },
      databases: [{ name: 'app', credentials: { url }, tables: [{ name: 't', timestampColumn: 'ts' }] }],
    });

  it('names the changed top-level paths and ignores credentials in URLs', () => {
    // Act
    const before = configFingerprint(config('postgres://u:secret1@h/db', 100));
    const rotated = configFingerprint(config('postgres://u:secret2@h/db', 100));
    const resized = configFingerprint(config('postgres://u:secret1@h/db', 200));
    // Assess
    expect(rotated.hash).toBe(before.hash);
    expect(changedPaths(before.paths, resized.paths)).toEqual(['defaults']);
    expect(changedPaths({}, before.paths)).toContain('databases.app');
    expect(JSON.stringify(before)).not.toContain('secret1');
  });
});
