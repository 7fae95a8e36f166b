import type { SNSClient } from '@aws-sdk/client-sns';
import { describe, expect, it } from 'vitest';
import { NotificationsConfigSchema } from '../../../../lambdas/shared/config/schema.js';
import {
  inQuietHours,
  type RunSummaryLike,
  runNotifications,
  snsPublisher,
} from '../../../../lambdas/shared/telemetry/notifications.js';

const table = (name: string, status: string, error?: string) => ({
  database: 'app',
  table: name,
  status,
  rowsArchived: 1500,
  bytesArchived: 2048,
  batches: 3,
  budgetReached: false,
  durationSeconds: 1.5,
  ...(error ? { error } : {}),
});
const summary = (failed: boolean): RunSummaryLike => ({
  runId: 'run-1',
  tables: 2,
  succeeded: failed ? 1 : 2,
  skipped: 0,
  held: 0,
  failed: failed ? 1 : 0,
  rowsArchived: 3000,
  bytesArchived: 4096,
  batches: 6,
  perTable: [
    ...(failed
      ? [table('public.b', 'failed', 'RowsChangedError: rows changed')]
      : [table('public.b', 'succeeded')]),
    table('public.a', 'succeeded'),
  ],
  perTableTruncated: false,
});
const config = (input: object = {}) => NotificationsConfigSchema.parse(input);
const NIGHT = new Date('2025-01-02T23:30:00Z');
const DAY = new Date('2025-01-02T12:00:00Z');

describe('runNotifications', () => {
  it('digest: one readable message per run, failures first', () => {
    // Act
    const { send } = runNotifications(summary(true), config(), DAY);
    // Assess
    expect(send).toHaveLength(1);
    expect(send[0]).toMatchObject({
      scope: 'run',
      failure: true,
      subject: 'audit-archiver run FAILED (1 of 2 tables)',
    });
    expect(send[0]?.text.split('\n')).toEqual([
      'Run run-1: 1 succeeded, 0 skipped, 0 held, 1 failed of 2 tables.',
      'Archived 3,000 rows in 6 batches (4.0 KiB).',
      '',
      'Tables (failed first):',
      '  app/public.b: failed (RowsChangedError: rows changed); 1,500 rows, 3 batches, 2.0 KiB, 1.5 s',
      '  app/public.a: succeeded; 1,500 rows, 3 batches, 2.0 KiB, 1.5 s',
    ]);
  });

  it('per-table: one message per table outcome; notifyOn failures keeps only the failed ones', () => {
    // Act
    const all = runNotifications(summary(true), config({ mode: 'per-table' }), DAY).send;
    const failures = runNotifications(
      summary(true),
      config({ mode: 'per-table', notifyOn: 'failures' }),
      DAY,
    ).send;
    const quietRun = runNotifications(summary(false), config({ notifyOn: 'failures' }), DAY).send;
    // Assess
    expect(all.map((m) => m.subject)).toEqual([
      'audit-archiver app/public.b: failed',
      'audit-archiver app/public.a: succeeded',
    ]);
    expect(failures.map((m) => m.subject)).toEqual(['audit-archiver app/public.b: failed']);
    expect(quietRun).toEqual([]);
  });

  it('keeps a per-table subject within what SNS accepts: ASCII, under 100 characters', () => {
    // Prepare: a long, non-ASCII table name (identifiers reach 63 bytes; a schema adds as many)
    const long: RunSummaryLike = {
      ...summary(true),
      perTable: [
        { ...table(`"Événements d’audit ✓ ${'x'.repeat(50)}".${'y'.repeat(40)}`, 'failed'), database: 'app' },
      ],
    };

    // Act
    const [message] = runNotifications(long, config({ mode: 'per-table' }), DAY).send;

    // Assess
    expect(message?.subject.length).toBe(99);
    expect(message?.subject).toMatch(/^audit-archiver app\/"\?v\?nements d\?audit \? x+/);
    expect(message?.subject).toMatch(/^[\x20-\x7E]+$/);
  });

  it('quiet hours hold back messages about nothing failing, never failures', () => {
    // Prepare
    const quiet = config({ quietHours: { start: '22:00', end: '07:00', timeZone: 'UTC' } });
    // Act
    const calm = runNotifications(summary(false), quiet, NIGHT);
    const failing = runNotifications(summary(true), quiet, NIGHT);
    const daytime = runNotifications(summary(false), quiet, DAY);
    // Assess
    expect([calm.send.length, calm.suppressed]).toEqual([0, 1]);
    expect([failing.send.length, failing.suppressed]).toEqual([1, 0]);
    expect([daytime.send.length, daytime.suppressed]).toEqual([1, 0]);
  });

  it('reads quiet hours on the wall clock of their zone, across midnight and within a day', () => {
    // Act & Assess: 23:30 UTC is 00:30 in Paris in January, 08:30 in Tokyo.
    const overnight = { start: '22:00', end: '07:00', timeZone: 'Europe/Paris' };
    expect(inQuietHours(NIGHT, overnight)).toBe(true);
    expect(inQuietHours(NIGHT, { ...overnight, timeZone: 'Asia/Tokyo' })).toBe(false);
    expect(inQuietHours(DAY, { start: '12:00', end: '13:00', timeZone: 'UTC' })).toBe(true);
    expect(inQuietHours(DAY, { start: '11:00', end: '12:00', timeZone: 'UTC' })).toBe(false);
  });

  it('refuses bad quiet hours with the field and the reason', () => {
    // Act
    const bad = NotificationsConfigSchema.safeParse({
      quietHours: { start: '25:00', end: '07:00', timeZone: 'Mars/Base' },
    });
    // Assess
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'quietHours.start: must be a time of day such as "22:00"',
      'quietHours.timeZone: must be an IANA time zone name such as "UTC" or "Europe/Paris"',
    ]);
  });
});

describe('snsPublisher', () => {
  it('publishes plain text for email and AWS Chatbot JSON for Slack/Teams in one message', async () => {
    // Prepare: no local SNS stand-in exists, so the client is a fake that records the command it is sent.
    const sent: { input: Record<string, string> }[] = [];
    const client = { send: async (command: { input: Record<string, string> }) => sent.push(command) };
    const [message] = runNotifications(summary(true), config(), DAY).send;
    // Act
    await snsPublisher(client as unknown as SNSClient, 'arn:aws:sns:eu-west-1:123456789012:alarms').publish(
      message ?? ({} as never),
    );
    // Assess
    const input = sent[0]?.input ?? {};
    expect([input.TopicArn, input.MessageStructure, input.Subject]).toEqual([
      'arn:aws:sns:eu-west-1:123456789012:alarms',
      'json',
      'audit-archiver run FAILED (1 of 2 tables)',
    ]);
    const bodies = JSON.parse(input.Message ?? '{}') as Record<string, string>;
    expect(bodies.email).toBe(message?.text);
    expect(bodies.https).toBe(bodies.default);
    expect(JSON.parse(bodies.default ?? '{}')).toEqual({
      version: '1.0',
      source: 'custom',
      content: { textType: 'client-markdown', title: message?.title, description: message?.markdown },
    });
  });
});
