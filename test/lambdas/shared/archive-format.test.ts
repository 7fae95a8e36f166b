import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  archiveKey,
  keySegment,
  manifestKeyFor,
  stagingKey,
  tablePrefix,
} from '../../../lambdas/shared/archive-format.js';

describe('archive keys', () => {
  it('derive the day partition and a content-addressed name', () => {
    // Act
    const key = archiveKey(
      { prefix: 'p/', database: 'app', schema: 'public', table: 'audit_logs' },
      '2024-02-29',
      'ab'.repeat(32),
    );

    // Assess
    expect(key).toBe(
      `p/app/public.audit_logs/year=2024/month=02/day=29/20240229-${'ab'.repeat(12)}.jsonl.gz`,
    );
    expect(manifestKeyFor(key)).toBe(
      `p/app/public.audit_logs/year=2024/month=02/day=29/_20240229-${'ab'.repeat(12)}.manifest.json`,
    );
  });

  it('encode identifiers so "/", "." and ".." cannot form paths', () => {
    expect(keySegment('../etc/passwd')).toBe('%2E%2E%2Fetc%2Fpasswd');
    expect(keySegment('a.b')).toBe('a%2Eb');
    expect(keySegment('Événements 😀')).toBe('%C3%89v%C3%A9nements%20%F0%9F%98%80');
  });

  it('never leave the prefix, and keep schema and table apart, for any identifiers', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.string({ minLength: 1 }),
        fc.string({ minLength: 1 }),
        (database, schema, table) => {
          // Act
          const prefix = tablePrefix({ prefix: 'tenant/', database, schema, table });
          const staging = stagingKey({ prefix: 'tenant/', database, schema, table }, '2024-01-01', ['1']);

          // Assess
          for (const key of [prefix, staging]) {
            expect(key.startsWith('tenant/')).toBe(true);
            expect(key.split('/').some((part) => part === '..' || part === '.')).toBe(false);
          }
          expect(prefix.split('/')).toHaveLength(4);
          expect(prefix.split('/')[2]?.split('.')).toHaveLength(2);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('give distinct tables distinct prefixes', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.string({ minLength: 1 }),
        fc.string({ minLength: 1 }),
        fc.string({ minLength: 1 }),
        (s1, t1, s2, t2) => {
          fc.pre(s1 !== s2 || t1 !== t2);
          expect(tablePrefix({ prefix: '', database: 'd', schema: s1, table: t1 })).not.toBe(
            tablePrefix({ prefix: '', database: 'd', schema: s2, table: t2 }),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
