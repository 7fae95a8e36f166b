import { archiveKey, type Manifest } from '../../lambdas/shared/archive/format.js';

/** The day of the fixture archive. */
export const FIXTURE_DAY = '2025-01-07';
const SHA = 'a'.repeat(64);

/** The content-addressed key the fixture manifest names: app's public.events, on FIXTURE_DAY. */
export const FIXTURE_ARCHIVE_KEY = archiveKey(
  { prefix: 'archive/', database: 'app', schema: 'public', table: 'events' },
  FIXTURE_DAY,
  SHA,
);

/**
 * A manifest of two rows under FIXTURE_ARCHIVE_KEY that every check of readExpectation passes, keyed by `id` and
 * timed by `created_at`; `overrides` replace whole fields, so a test changes only what it is about.
 */
export function fixtureManifest(overrides: Partial<Manifest> = {}): Manifest {
  return {
    formatVersion: 1,
    tool: { name: 'audit-archiver', version: '0.1.0' },
    database: 'app',
    schema: 'public',
    table: 'events',
    columns: [
      { name: 'id', type: 'bigint', nullable: false, generated: false },
      { name: 'created_at', type: 'timestamp with time zone', nullable: false, generated: false },
    ],
    keyColumns: ['id'],
    timestampColumn: 'created_at',
    timestampType: 'timestamptz',
    timestampTimeZone: 'UTC',
    day: FIXTURE_DAY,
    cutoff: '2025-02-01T00:00:00.000Z',
    bounds: {
      from: `${FIXTURE_DAY}T00:00:00.000Z`,
      to: '2025-01-08T00:00:00.000Z',
      firstKey: ['1'],
      lastKey: ['2'],
    },
    keyRange: { first: ['1'], last: ['2'] },
    timestampRange: { min: `${FIXTURE_DAY}T01:00:00.000Z`, max: `${FIXTURE_DAY}T02:00:00.000Z` },
    figures: {
      rowCount: 2,
      contentSha256: SHA,
      compressedSha256: SHA,
      uncompressedBytes: 10,
      compressedBytes: 10,
    },
    compression: { format: 'gzip', level: 3 },
    encoding: 'jsonl-pg-text',
    runId: 'run-1',
    exportedAt: '2025-02-01T00:00:00.000Z',
    dataKey: FIXTURE_ARCHIVE_KEY,
    ...overrides,
  };
}
