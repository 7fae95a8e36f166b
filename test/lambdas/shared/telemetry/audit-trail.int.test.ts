import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import {
  appendAuditEvent,
  auditEventKey,
  readAuditEvents,
} from '../../../../lambdas/shared/telemetry/audit-trail.js';
import { type LocalServices, startLocalServices } from '../../../../local/services.js';

describe('the audit trail read from a bucket a writer padded', () => {
  let dir = '';
  let services: LocalServices;
  let s3: S3Client;
  let store: ArchiveStore;
  const bucket = 'trail';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-trail-'));
    services = await startLocalServices(dir, bucket);
    s3 = new S3Client({
      endpoint: services.s3Endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    store = new ArchiveStore(s3, bucket);
  });
  afterAll(async () => {
    s3?.destroy();
    await services?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A valid event under its own key, its details padded with `members` strings of 1,000 characters. */
  const plantEvent = async (members: number) => {
    const event = {
      formatVersion: 1,
      id: randomUUID(),
      kind: 'run-started' as const,
      time: new Date().toISOString(),
      actor: 'step:plan',
      details: Object.fromEntries(Array.from({ length: members }, (_, i) => [`k${i}`, 'x'.repeat(1000)])),
    };
    const key = auditEventKey('', event);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(event) }));
    return key;
  };

  it('lists the events beside an event padded to megabytes, naming it as unreadable rather than failing whole or holding it', async () => {
    // Prepare: two genuine events, one planted past the longest text the store reads whole (4 MiB), one of 2.2 MB
    // that the format admits (details of any number of members) but no step writes.
    await appendAuditEvent(
      store,
      { prefix: '' },
      { kind: 'run-started', time: new Date().toISOString(), actor: 'step:plan', details: { tables: 1 } },
    );
    const huge = await plantEvent(4300);
    const large = await plantEvent(2300);
    await appendAuditEvent(
      store,
      { prefix: '' },
      {
        kind: 'run-finished',
        time: new Date().toISOString(),
        actor: 'step:summary',
        details: { status: 'succeeded' },
      },
    );

    // Act
    const { events, unreadable } = await readAuditEvents(store, '');

    // Assess
    expect(events.map((e) => e.kind)).toEqual(['run-started', 'run-finished']);
    expect(unreadable.map((u) => u.key).sort()).toEqual([huge, large].sort());
    for (const { reason } of unreadable) expect(reason).toMatch(/longer than \d+ bytes/);
  });
});
