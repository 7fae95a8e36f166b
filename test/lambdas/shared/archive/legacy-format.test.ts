import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  LegacyFormatError,
  LegacyManifestSchema,
  LegacyMetadataSchema,
  legacyManifestKeyFor,
  legacyMetadataKeyFor,
  legacyTablePrefix,
  parseLegacyDataKey,
} from '../../../../lambdas/shared/archive/legacy-format.js';
import { writeLegacyArchive } from '../../../support/legacy-archive.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('legacy keys', () => {
  it('parse a data key whose table name contains underscores', () => {
    // Prepare
    const key =
      'archives/app_db/audit_log_entries/year=2024/month=03/day=05/audit_log_entries_20240305T123456Z_batch_007.jsonl.gz';

    // Act
    const parsed = parseLegacyDataKey(key, 'archives/');

    // Assess
    expect(parsed).toEqual({
      database: 'app_db',
      table: 'audit_log_entries',
      day: '2024-03-05',
      runStamp: '20240305T123456Z',
      batch: 7,
    });
  });

  it('treat a prefix with or without its trailing slash alike, and an empty prefix as none', () => {
    // Prepare
    const key = 'p/db/t/year=2024/month=01/day=02/t_20240102T000000Z_batch_001.jsonl.gz';

    // Act
    const results = [
      parseLegacyDataKey(key, 'p'),
      parseLegacyDataKey(key, 'p/'),
      parseLegacyDataKey(key, 'p//'),
    ];
    const unprefixed = parseLegacyDataKey(key.slice(2), '');

    // Assess
    for (const result of [...results, unprefixed])
      expect(result).toMatchObject({ database: 'db', table: 't' });
    expect(parseLegacyDataKey(key, 'other/')).toBeUndefined();
    expect(legacyTablePrefix('p', 'db', 't')).toBe('p/db/t/');
    expect(legacyTablePrefix('p/', 'db', 't')).toBe('p/db/t/');
    expect(legacyTablePrefix('', 'db', 't')).toBe('db/t/');
  });

  it('read batch numbers past 999 and refuse spellings the tool never wrote', () => {
    const folder = 'db/t/year=2024/month=01/day=02/';
    expect(parseLegacyDataKey(`${folder}t_20240102T000000Z_batch_1234.jsonl.gz`, '')?.batch).toBe(1234);
    expect(parseLegacyDataKey(`${folder}t_20240102T000000Z_batch_01.jsonl.gz`, '')).toBeUndefined();
    expect(parseLegacyDataKey(`${folder}t_20240102T000000Z_batch_0001.jsonl.gz`, '')).toBeUndefined();
    expect(parseLegacyDataKey(`${folder}t_20240102T000000Z_batch_000.jsonl.gz`, '')).toBeUndefined();
  });

  it('return undefined for sidecars, other tables and other objects', () => {
    const folder = 'db/audit/year=2024/month=01/day=02/';
    for (const key of [
      `${folder}audit_20240102T000000Z_batch_001.metadata.json`,
      `${folder}audit_20240102T000000Z_batch_001.manifest.json`,
      `${folder}audit_log_20240102T000000Z_batch_001.jsonl.gz`,
      `${folder}audit_2024-01-02_batch_001.jsonl.gz`,
      'db/audit/.watermark.json',
      'db/audit/year=2024/month=1/day=02/audit_20240102T000000Z_batch_001.jsonl.gz',
      'audit/db/audit/year=2024/month=01/day=02/audit_20240102T000000Z_batch_001.jsonl.gz',
    ]) {
      expect(parseLegacyDataKey(key, '')).toBeUndefined();
    }
  });

  it('name the sidecars by replacing .jsonl.gz', () => {
    // Prepare
    const dataKey = 'p/db/t/year=2024/month=01/day=02/t_20240102T000000Z_batch_001.jsonl.gz';

    // Act
    const metadataKey = legacyMetadataKeyFor(dataKey);
    const manifestKey = legacyManifestKeyFor(dataKey);

    // Assess
    expect(metadataKey).toBe('p/db/t/year=2024/month=01/day=02/t_20240102T000000Z_batch_001.metadata.json');
    expect(manifestKey).toBe('p/db/t/year=2024/month=01/day=02/t_20240102T000000Z_batch_001.manifest.json');
    expect(() => legacyMetadataKeyFor('p/db/t/x.json')).toThrow(LegacyFormatError);
  });

  it('agree with the keys the test helper writes like the tool', () => {
    // Act
    const archive = writeLegacyArchive({
      prefix: 'tenant/',
      database: 'app',
      schema: 'public',
      table: 'audit_logs',
      runStamp: '20241231T235959Z',
      batch: 12,
      rows: [{ id: 1 }],
    });

    // Assess
    expect(parseLegacyDataKey(archive.dataKey, 'tenant')).toEqual({
      database: 'app',
      table: 'audit_logs',
      day: '2024-12-31',
      runStamp: '20241231T235959Z',
      batch: 12,
    });
    expect(legacyMetadataKeyFor(archive.dataKey)).toBe(archive.metadataKey);
    expect(legacyManifestKeyFor(archive.dataKey)).toBe(archive.manifestKey);
    expect(archive.dataKey.startsWith(legacyTablePrefix('tenant', 'app', 'audit_logs'))).toBe(true);
  });
});

describe('legacy sidecar schemas', () => {
  const realistic = `{
  "version": "1.0",
  "batch_info": {
    "database": "app",
    "schema": "public",
    "table": "audit_logs",
    "batch_number": 1,
    "batch_id": "3f1c0a9b8d7e6f50",
    "archived_at": "2024-03-05T12:34:56.789012+00:00"
  },
  "data_info": {
    "record_count": 2,
    "uncompressed_size_bytes": 731,
    "compressed_size_bytes": 402,
    "compression_ratio": 45.00683994528044
  },
  "checksums": {
    "jsonl_sha256": "${'a1'.repeat(32)}",
    "compressed_sha256": "${'0f'.repeat(32)}"
  },
  "primary_keys": {
    "count": 2,
    "sample": [
      9007199254740993,
      "2"
    ]
  },
  "timestamp_range": {
    "min": "2023-01-01T00:00:00",
    "max": null
  },
  "table_schema": {
    "table_name": "audit_logs",
    "schema_name": "public",
    "columns": [
      {
        "name": "id",
        "data_type": "bigint",
        "udt_name": "int8",
        "character_maximum_length": null,
        "numeric_precision": 64,
        "numeric_scale": 0,
        "is_nullable": false,
        "default": "nextval('audit_logs_id_seq'::regclass)",
        "ordinal_position": 1
      }
    ],
    "primary_key": {
      "constraint_name": "audit_logs_pkey",
      "columns": [
        "id"
      ]
    },
    "foreign_keys": [],
    "indexes": [],
    "check_constraints": [],
    "unique_constraints": []
  },
  "added_by_a_later_version": true
}`;

  it('accept a realistic metadata file, extra fields included', () => {
    // Act
    const metadata = LegacyMetadataSchema.parse(JSON.parse(realistic));

    // Assess
    expect(metadata.data_info.record_count).toBe(2);
    expect(metadata.checksums.jsonl_sha256).toBe('a1'.repeat(32));
    expect(metadata.batch_info).toMatchObject({ database: 'app', schema: 'public', table: 'audit_logs' });
    expect(metadata.table_schema?.columns[0]?.data_type).toBe('bigint');
    expect(metadata.added_by_a_later_version).toBe(true);
  });

  it('reject metadata whose relied-on fields are wrong', () => {
    // Prepare
    const base = JSON.parse(realistic);
    const broken = [
      { ...base, version: '2.0' },
      { ...base, checksums: { ...base.checksums, jsonl_sha256: 'A1'.repeat(32) } },
      { ...base, checksums: { ...base.checksums, compressed_sha256: 'ab' } },
      { ...base, data_info: { ...base.data_info, record_count: -1 } },
      { ...base, data_info: { ...base.data_info, record_count: undefined } },
      { ...base, batch_info: { ...base.batch_info, table: '' } },
      { ...base, batch_info: { ...base.batch_info, schema: undefined } },
    ];

    // Act / Assess
    for (const metadata of broken) expect(LegacyMetadataSchema.safeParse(metadata).success).toBe(false);
  });

  it('accept the sidecars the helper writes, the table schema left out after the first batch', () => {
    // Prepare
    const archive = writeLegacyArchive({
      prefix: '',
      database: 'app',
      schema: 'audit',
      table: 'événements',
      runStamp: '20240305T123456Z',
      batch: 2,
      rows: [{ id: 1 }, { id: 2 }],
    });

    // Act
    const metadataText = archive.files.get(archive.metadataKey)?.toString('utf8') ?? '';
    const metadata = LegacyMetadataSchema.parse(JSON.parse(metadataText));
    const manifest = LegacyManifestSchema.parse(
      JSON.parse(archive.files.get(archive.manifestKey)?.toString('utf8') ?? ''),
    );

    // Assess
    expect(metadataText).toContain('"table": "\\u00e9v\\u00e9nements"');
    expect(metadata.batch_info.table).toBe('événements');
    expect(metadata.table_schema).toBeUndefined();
    expect(metadata.checksums.jsonl_sha256).toBe(sha256(archive.content));
    expect(metadata.checksums.compressed_sha256).toBe(
      sha256(archive.files.get(archive.dataKey) ?? Buffer.alloc(0)),
    );
    expect(manifest.manifest_info.primary_key_column).toBe('id');
    expect(manifest.deletion_info).toMatchObject({ expected_count: 2, deleted_count: 2 });
    expect(manifest.primary_keys).toEqual([1, 2]);
  });
});
