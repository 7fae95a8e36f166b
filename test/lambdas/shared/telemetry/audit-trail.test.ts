import { describe, expect, it } from 'vitest';
import type { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import { InvalidInputError } from '../../../../lambdas/shared/errors/step-errors.js';
import {
  AUDIT_EVENT_MAX_BYTES,
  AuditEventSchema,
  appendAuditEvent,
  auditEventId,
  auditEventKey,
  parseAuditEventKey,
} from '../../../../lambdas/shared/telemetry/audit-trail.js';

describe('audit event keys', () => {
  it('sort by time under the day, outside every archive area, and parse back', () => {
    // Prepare
    const id = auditEventId('run-started', 'run-1');
    // Act
    const key = auditEventKey('archive/', { time: '2025-01-07T03:15:00.123Z', kind: 'run-started', id });
    const later = auditEventKey('archive/', { time: '2025-01-07T03:15:00.124Z', kind: 'config-changed', id });
    // Assess
    expect(key).toBe(`archive/_audit/events/2025/01/07/20250107T031500.123Z-run-started-${id}.json`);
    expect(key < later).toBe(true);
    expect(parseAuditEventKey(key)).toEqual({ time: '2025-01-07T03:15:00.123Z', kind: 'run-started', id });
    expect(parseAuditEventKey('archive/_audit/events/README')).toBeUndefined();
  });

  it('gives a retried event the same id, and different events different ids', () => {
    // Act & Assess
    expect(auditEventId('run-finished', 'run-1')).toBe(auditEventId('run-finished', 'run-1'));
    expect(auditEventId('run-finished', 'run-1')).not.toBe(auditEventId('run-finished', 'run-2'));
    expect(AuditEventSchema.shape.id.safeParse(auditEventId('x')).success).toBe(true);
  });

  it('accepts counts and names in details, and refuses nested objects (where row values could hide)', () => {
    // Prepare
    const event = {
      formatVersion: 1,
      id: auditEventId('x'),
      kind: 'table-outcome',
      time: '2025-01-07T03:15:00.000Z',
      actor: 'step:lock',
      details: { rows: 3, status: 'succeeded', paths: ['s3'] },
    };
    // Act & Assess
    expect(AuditEventSchema.safeParse(event).success).toBe(true);
    expect(AuditEventSchema.safeParse({ ...event, details: { row: { email: 'a@b' } } }).success).toBe(false);
    expect(AuditEventSchema.safeParse({ ...event, kind: 'party' }).success).toBe(false);
  });

  it('writes the longest event a step writes: schema drift of five full lists of escaped column descriptions', async () => {
    // Prepare: 200 descriptions of 300 control characters per list, each escaped to 6 bytes in JSON
    const list = Array.from({ length: 200 }, () => '\u0001'.repeat(300));
    const details = {
      action: 'continue',
      added: list,
      removed: list,
      retyped: list,
      nullability: list,
      reordered: list,
    };
    const written: string[] = [];
    const store = {
      putTextOnce: async (_key: string, text: string) => {
        written.push(text);
      },
    } as unknown as ArchiveStore;

    // Act
    await appendAuditEvent(
      store,
      { prefix: '' },
      { kind: 'schema-drift', time: new Date().toISOString(), actor: 'step:export', details },
    );

    // Assess
    expect(written).toHaveLength(1);
    expect(Buffer.byteLength(written[0] ?? '')).toBeGreaterThan(1_800_000);
  });

  it('refuses to write an event longer than readers take, before the bucket is touched', async () => {
    // Prepare: the format admits details of any number of members; readers set aside an object past the cap.
    const details = Object.fromEntries(Array.from({ length: 2300 }, (_, i) => [`k${i}`, 'x'.repeat(1000)]));
    const store = {} as ArchiveStore;

    // Act
    const written = appendAuditEvent(
      store,
      { prefix: '' },
      { kind: 'run-started', time: new Date().toISOString(), actor: 'step:plan', details },
    );

    // Assess
    await expect(written).rejects.toThrow(InvalidInputError);
    await expect(written).rejects.toThrow(`longer than ${AUDIT_EVENT_MAX_BYTES} bytes`);
  });
});
