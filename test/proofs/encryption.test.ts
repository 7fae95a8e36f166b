import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { refuseCriticalTablesLocally } from '../../cli/plan.js';
import type { ArchiverConfigInput } from '../../lambdas/shared/config/schema.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';
import { type LocalEnvironment, openLocalEnvironment, runLocalArchive } from '../../local/run.js';
import {
  createTestDatabase,
  expectRequestsWithinRoles,
  seedEvents,
  type TestDatabase,
} from '../support/fixtures.js';

/**
 * Critical tables need SSE-KMS archives. Local S3 (s3rver) accepts the KMS request headers but stores and reports
 * no encryption, which is exactly the case upload must refuse.
 */
describe('encryption enforcement: a critical table in local mode', () => {
  let db: TestDatabase | undefined;
  let local: LocalEnvironment | undefined;
  let dir: string | undefined;
  const ready = () => {
    if (!db || !local) throw new Error('set up failed');
    return { db, local };
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'payments', 12, 37);
    await seedEvents(db.client, 'plain', 12, 37);
    dir = mkdtempSync(join(tmpdir(), 'audit-archiver-test-'));
    const config: ArchiverConfigInput = {
      s3: {
        bucket: 'test-archive',
        prefix: 'archive/',
        kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      },
      defaults: { retentionDays: 30 },
      databases: [
        {
          name: 'app',
          credentials: { url: db.url },
          tls: 'disable',
          tables: [
            { name: 'payments', timestampColumn: 'created_at', critical: true },
            { name: 'plain', timestampColumn: 'created_at' },
          ],
        },
      ],
    };
    writeFileSync(join(dir, 'config.yaml'), stringify(config));
    local = await openLocalEnvironment(join(dir, 'config.yaml'), join(dir, 'state'), { clock: db.now });
  });
  afterAll(async () => {
    try {
      if (local) await expectRequestsWithinRoles(local);
    } finally {
      await local?.close();
    }
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('local run refuses critical tables before starting, and lets the others through', () => {
    // Act / Assess
    const { local } = ready();
    expect(() => refuseCriticalTablesLocally(local.config, {})).toThrow(ConfigError);
    expect(() => refuseCriticalTablesLocally(local.config, {})).toThrow(
      "critical tables need AWS KMS (SSE-KMS archives), which local mode's S3 does not provide: app/public.payments",
    );
    expect(() => refuseCriticalTablesLocally(local.config, { tables: ['public.plain'] })).not.toThrow();
  });

  it('upload refuses to publish a critical table’s archive that S3 reports unencrypted: nothing is deleted', async () => {
    // Act: the workflow itself, past the CLI's refusal.
    const { db, local } = ready();
    const run = await runLocalArchive(local, {}, { retryIntervalScale: 0 });

    // Assess
    const outcomes = new Map(run.outcomes.map((o) => [o.table, o]));
    expect(outcomes.get('public.payments')).toMatchObject({
      status: 'failed',
      rowsArchived: 0,
      error: expect.stringMatching(
        /^EncryptionRequiredError: app\/public\.payments is critical: its archive .* must be SSE-KMS encrypted, S3 reports no encryption/,
      ),
    });
    expect(outcomes.get('public.plain')).toMatchObject({ status: 'succeeded', rowsArchived: 2 });
    const counts = await db.client.query(
      'SELECT (SELECT count(*) FROM payments)::int AS payments, (SELECT count(*) FROM plain)::int AS plain',
    );
    expect(counts.rows[0]).toEqual({ payments: 12, plain: 10 });
  });
});
