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

describe('the audit trail in a bucket others can write', () => {
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

  /** An event of `kind` with `details` at `time` under id `id`, planted under its key below `prefix`. */
  const plant = async (prefix: string, id: string, time: string, details: Record<string, string>) => {
    const event = {
      formatVersion: 1,
      id,
      kind: 'table-outcome' as const,
      time,
      actor: 'step:summary',
      details,
    };
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: auditEventKey(prefix, event),
        Body: JSON.stringify(event),
      }),
    );
  };

  it('writes an event whose key a bucket writer took with other content under an id of its own: both are read', async () => {
    // Prepare: the writer predicted the event's id and time and planted a success in its place.
    const prefix = 'taken/';
    const id = randomUUID();
    const time = '2026-12-01T10:00:00.000Z';
    await plant(prefix, id, time, { status: 'succeeded' });

    // Act
    const written = await appendAuditEvent(
      store,
      { prefix },
      { id, kind: 'table-outcome', time, actor: 'step:summary', details: { status: 'failed' } },
    );
    const { events } = await readAuditEvents(store, prefix);

    // Assess
    expect(written.event.id).not.toBe(id);
    expect(events.map((e) => e.details.status).sort()).toEqual(['failed', 'succeeded']);
  });

  it('lists an event beside an earlier object of its id that says something else; a retry that says the same is listed once', async () => {
    // Prepare: a planted object of the event's id a minute before it, and a retry of the event a minute after.
    const prefix = 'earlier/';
    const id = randomUUID();
    await plant(prefix, id, '2026-12-01T09:59:00.000Z', { status: 'succeeded' });
    const event = {
      id,
      kind: 'table-outcome' as const,
      actor: 'step:summary',
      details: { status: 'failed' },
    };
    await appendAuditEvent(store, { prefix }, { ...event, time: '2026-12-01T10:00:00.000Z' });
    await appendAuditEvent(store, { prefix }, { ...event, time: '2026-12-01T10:01:00.000Z' });

    // Act
    const { events } = await readAuditEvents(store, prefix);

    // Assess
    expect(events.map((e) => [e.time, e.details.status])).toEqual([
      ['2026-12-01T09:59:00.000Z', 'succeeded'],
      ['2026-12-01T10:00:00.000Z', 'failed'],
    ]);
  });

  it('takes an event written again with the very same text (a retry after a lost response) as the one written', async () => {
    // Prepare
    const prefix = 'again/';
    const event = {
      id: randomUUID(),
      kind: 'run-finished' as const,
      time: '2026-12-01T10:00:00.000Z',
      actor: 'step:summary',
      details: { status: 'succeeded' },
    };
    const first = await appendAuditEvent(store, { prefix }, event);

    // Act
    const again = await appendAuditEvent(store, { prefix }, event);
    const { events } = await readAuditEvents(store, prefix);

    // Assess
    expect(again.key).toBe(first.key);
    expect(events).toHaveLength(1);
  });

  it('sets aside an object whose key names another event than it holds', async () => {
    // Prepare: a genuine event copied under a key a minute earlier.
    const prefix = 'renamed/';
    const { event } = await appendAuditEvent(
      store,
      { prefix },
      { kind: 'run-started', time: '2026-12-01T10:00:00.000Z', actor: 'step:plan', details: { tables: 1 } },
    );
    const earlier = auditEventKey(prefix, { ...event, time: '2026-12-01T09:59:00.000Z' });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: earlier, Body: JSON.stringify(event) }));

    // Act
    const { events, unreadable } = await readAuditEvents(store, prefix);

    // Assess
    expect(events.map((e) => e.time)).toEqual(['2026-12-01T10:00:00.000Z']);
    expect(unreadable).toEqual([{ key: earlier, reason: expect.stringMatching(/names another event/) }]);
  });
});
