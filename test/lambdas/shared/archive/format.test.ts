import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  archiveKey,
  isCalendarDay,
  keySegment,
  longestKeyBytes,
  manifestKeyFor,
  quarantineKey,
  S3_MAX_KEY_BYTES,
  spanCutoff,
  spanEnd,
  spanLastDay,
  stagingKey,
  suggestedObjectSpan,
  tablePrefix,
  WITHDRAW_REASONS,
  writeOnceProbeKey,
} from '../../../../lambdas/shared/archive/format.js';
import { PROOF_SOAK, recordProof } from '../../../support/proof-ledger.js';

const UNICODE_RUNS = 1000 * PROOF_SOAK;
/** Any identifier PostgreSQL accepts: 1 to 63 bytes of any Unicode (quotes, "/", ".", spaces, emoji), no NUL. */
const identifier = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 63 })
  .filter((s) => !s.includes('\u0000') && Buffer.byteLength(s, 'utf8') <= 63);
/** A prefix the config accepts, built of non-empty segments other than "." and "..". */
const configuredPrefix = fc.oneof(
  fc.constant(''),
  fc
    .array(
      fc
        .string({ unit: 'binary', minLength: 1, maxLength: 8 })
        .filter((s) => !s.includes('/') && s !== '.' && s !== '..'),
      { minLength: 1, maxLength: 3 },
    )
    .map((segments) => `${segments.join('/')}/`),
);

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
          const staging = stagingKey({ prefix: 'tenant/', database, schema, table }, '2024-01-01', 'b1');

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

  it('stay under the configured prefix for any Unicode identifiers: no ".." segment, no "//", nothing but safe bytes', () => {
    fc.assert(
      fc.property(
        configuredPrefix,
        identifier,
        identifier,
        identifier,
        fc.date({
          min: new Date('0001-01-01T00:00:00Z'),
          max: new Date('9999-12-31T00:00:00Z'),
          noInvalidDate: true,
        }),
        fc.stringMatching(/^[0-9a-f]{64}$/),
        fc.array(identifier, { minLength: 1, maxLength: 3 }),
        (prefix, database, schema, table, date, sha, firstKey) => {
          // Act
          const loc = { prefix, database, schema, table };
          const day = date.toISOString().slice(0, 10);
          const data = archiveKey(loc, day, sha);
          const keys = [
            tablePrefix(loc),
            data,
            manifestKeyFor(data),
            stagingKey(loc, day, firstKey.join(',')),
            quarantineKey(prefix, data, 'integrity'),
          ];

          // Assess
          for (const key of keys) {
            expect(key.startsWith(prefix)).toBe(true);
            const rest = key.slice(prefix.length);
            expect(rest).toMatch(/^[A-Za-z0-9_%.=-][A-Za-z0-9_%.=/-]*$/);
            expect(key).not.toContain('//');
            expect(key.split('/')).not.toContain('..');
            expect(key.split('/')).not.toContain('.');
          }
          // The table's own folder holds its archives, and only its own.
          expect(data.startsWith(tablePrefix(loc))).toBe(true);
          expect(tablePrefix(loc).slice(prefix.length).split('/')).toHaveLength(3);
        },
      ),
      { numRuns: UNICODE_RUNS },
    );
    recordProof({
      kind: 'fuzz',
      property: 'archive keys stay under the prefix (Unicode identifiers)',
      cases: UNICODE_RUNS,
    });
  });

  it('reach at most longestKeyBytes, whatever the names, the day and the withdrawal reason', () => {
    fc.assert(
      fc.property(
        configuredPrefix,
        identifier,
        identifier,
        fc.constantFrom(...WITHDRAW_REASONS),
        fc.date({
          min: new Date('0001-01-01T00:00:00Z'),
          max: new Date('9999-12-31T00:00:00Z'),
          noInvalidDate: true,
        }),
        (prefix, schema, table, reason, date) => {
          // Prepare: the database is a config name (its safe alphabet), up to 63 characters.
          const loc = { prefix, database: 'd'.repeat(63), schema, table };
          const day = date.toISOString().slice(0, 10);

          // Act
          const data = archiveKey(loc, day, 'a'.repeat(64), 'month');
          const staging = stagingKey(loc, day, 'some batch');
          const keys = [data, manifestKeyFor(data), staging, writeOnceProbeKey(staging)].flatMap((key) => [
            key,
            quarantineKey(prefix, key, reason, date),
          ]);

          // Assess
          for (const key of keys) expect(Buffer.byteLength(key)).toBeLessThanOrEqual(longestKeyBytes(loc));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('come to 569 bytes below the prefix for the longest names: 63-byte schema and table names percent-encoded whole', () => {
    // Prepare
    const longest = '€'.repeat(21);

    // Act
    const bytes = longestKeyBytes({ prefix: '', database: 'd'.repeat(63), schema: longest, table: longest });

    // Assess: so a prefix of up to 455 bytes fits any table.
    expect(bytes).toBe(569);
    expect(S3_MAX_KEY_BYTES - bytes).toBe(455);
  });
});

describe('object spans', () => {
  const loc = { prefix: 'p/', database: 'app', schema: 'public', table: 'audit_logs' };

  it('name a month object in its month folder, and its day object in the day folder', () => {
    // Act
    const month = archiveKey(loc, '2024-02-01', 'cd'.repeat(32), 'month');
    const day = archiveKey(loc, '2024-02-29', 'cd'.repeat(32));

    // Assess
    expect(month).toBe(`p/app/public.audit_logs/year=2024/month=02/202402-${'cd'.repeat(12)}.jsonl.gz`);
    expect(day).toBe(
      `p/app/public.audit_logs/year=2024/month=02/day=29/20240229-${'cd'.repeat(12)}.jsonl.gz`,
    );
  });

  it('end a month on its last day, leap years and December included', () => {
    // Act and assess
    expect(
      ['2024-02-01', '2023-02-01', '2024-12-01', '2024-04-01'].map((d) => spanLastDay(d, 'month')),
    ).toEqual(['2024-02-29', '2023-02-28', '2024-12-31', '2024-04-30']);
    expect(spanEnd('2024-12-01', 'month')).toBe('2025-01-01T00:00:00.000Z');
    expect(spanEnd('2024-02-29', 'day')).toBe('2024-03-01T00:00:00.000Z');
    expect(spanLastDay('2024-02-29', 'day')).toBe('2024-02-29');
    // Years 1 to 99 are themselves (Date.UTC would read them as 1901 to 1999).
    expect(spanEnd('0050-03-04', 'day')).toBe('0050-03-05T00:00:00.000Z');
    expect(spanEnd('0001-12-01', 'month')).toBe('0002-01-01T00:00:00.000Z');
    expect(spanLastDay('0024-02-01', 'month')).toBe('0024-02-29');
    expect(spanCutoff('0050-03-04T00:00:00.000Z', 'month')).toBe('0050-03-01T00:00:00.000Z');
  });

  it('let a month table take only the months that ended before the cut-off', () => {
    // Act and assess: a cut-off on the first of a month takes the month before it; any later day, not its own month
    expect(spanCutoff('2024-03-01T00:00:00.000Z', 'month')).toBe('2024-03-01T00:00:00.000Z');
    expect(spanCutoff('2024-03-31T00:00:00.000Z', 'month')).toBe('2024-03-01T00:00:00.000Z');
    expect(spanCutoff('2024-03-31T00:00:00.000Z', 'day')).toBe('2024-03-31T00:00:00.000Z');
  });

  it('suggest month objects below 128 KiB a day', () => {
    // Act and assess
    expect(suggestedObjectSpan(200, 60)).toEqual({ span: 'month', dayObjectBytes: 12_000 });
    expect(suggestedObjectSpan(2500, 75)).toEqual({ span: 'day', dayObjectBytes: 187_500 });
  });
});

describe('days of the calendar', () => {
  it('takes only a YYYY-MM-DD that reads back the same: no February 30th, no month 13, no other shape', () => {
    // Act and assess
    expect(['2024-02-29', '2023-12-31', '0001-01-01'].map(isCalendarDay)).toEqual([true, true, true]);
    expect(
      ['2023-02-29', '2020-02-30', '2021-13-01', '2021-00-10', '2021-1-2', '20210102', ''].map(isCalendarDay),
    ).toEqual([false, false, false, false, false, false, false]);
  });
});
