import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { z } from 'zod';
import type { NotificationsConfig } from '../config/schema.js';

/** One message, in the two forms it is read in: plain text (email) and a title + Markdown (Slack/Teams). */
export const NotificationSchema = z.object({
  /** `run`: the digest of a run; `table`: one table's outcome. */
  scope: z.enum(['run', 'table']),
  runId: z.string(),
  failure: z.boolean(),
  /** Email subject: ASCII, at most 100 characters (SNS's limit). */
  subject: z.string().max(100),
  text: z.string(),
  title: z.string(),
  markdown: z.string(),
});
export type Notification = z.infer<typeof NotificationSchema>;

/** Where notifications go: SNS in AWS, a JSON-lines file in local mode, a fake in tests. */
export interface Publisher {
  publish(message: Notification): Promise<void>;
}

/** What the summary step knows about a run: totals and the (capped) per-table lines. */
export interface RunSummaryLike {
  runId: string;
  tables: number;
  succeeded: number;
  skipped: number;
  held?: number;
  failed: number;
  rowsArchived: number;
  bytesArchived: number;
  batches: number;
  perTable: {
    database: string;
    table: string;
    status: string;
    rowsArchived: number;
    bytesArchived: number;
    batches: number;
    budgetReached: boolean;
    durationSeconds?: number;
    reason?: string;
    error?: string;
  }[];
  perTableTruncated: boolean;
}

const MAX_TABLE_LINES = 25;

const formatBytes = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
const n = (value: number) => value.toLocaleString('en-US');
/** SNS refuses a subject that is not printable ASCII or not "less than 100 characters long", and the message with it. */
const subjectOf = (text: string) => text.replace(/[^\x20-\x7E]/g, '?').slice(0, 99);

type TableLine = RunSummaryLike['perTable'][number];

function tableLine(t: TableLine): string {
  const figures = `${n(t.rowsArchived)} rows, ${t.batches} batches, ${formatBytes(t.bytesArchived)}`;
  const duration = t.durationSeconds === undefined ? '' : `, ${t.durationSeconds.toFixed(1)} s`;
  const why = t.error ?? t.reason;
  return `${t.database}/${t.table}: ${t.status}${why ? ` (${why})` : ''}; ${figures}${duration}${t.budgetReached ? '; batch budget reached, the next run continues' : ''}`;
}

function runDigest(summary: RunSummaryLike): Notification {
  const failure = summary.failed > 0;
  const status = failure ? `FAILED (${summary.failed} of ${summary.tables} tables)` : 'succeeded';
  const counts = `${summary.succeeded} succeeded, ${summary.skipped} skipped, ${summary.held ?? 0} held, ${summary.failed} failed of ${summary.tables} tables`;
  const totals = `Archived ${n(summary.rowsArchived)} rows in ${n(summary.batches)} batches (${formatBytes(summary.bytesArchived)}).`;
  const lines = summary.perTable.slice(0, MAX_TABLE_LINES).map(tableLine);
  const more =
    summary.perTable.length > MAX_TABLE_LINES || summary.perTableTruncated
      ? [`... more tables: see the execution's output or the audit trail of run ${summary.runId}.`]
      : [];
  return {
    scope: 'run',
    runId: summary.runId,
    failure,
    subject: subjectOf(`audit-archiver run ${status}`),
    text: [
      `Run ${summary.runId}: ${counts}.`,
      totals,
      '',
      'Tables (failed first):',
      ...lines.map((l) => `  ${l}`),
      ...more,
    ].join('\n'),
    title: `audit-archiver run ${status}`,
    markdown: [
      `*Run* \`${summary.runId}\`: ${counts}. ${totals}`,
      ...lines.map((l) => `• ${l}`),
      ...more,
    ].join('\n'),
  };
}

function tableMessage(runId: string, t: TableLine): Notification {
  const line = tableLine(t);
  return {
    scope: 'table',
    runId,
    failure: t.status === 'failed',
    subject: subjectOf(`audit-archiver ${t.database}/${t.table}: ${t.status}`),
    text: `Run ${runId}\n${line}`,
    title: `audit-archiver ${t.database}/${t.table}: ${t.status}`,
    markdown: `*Run* \`${runId}\`\n${line}`,
  };
}

/** "HH:MM" of `now` in `timeZone`. */
function clockIn(now: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(now);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '00';
  return `${part('hour')}:${part('minute')}`;
}

/** Whether `now` falls in the window [start, end) of the zone's wall clock; the window may span midnight. */
export function inQuietHours(now: Date, quiet: NonNullable<NotificationsConfig['quietHours']>): boolean {
  const time = clockIn(now, quiet.timeZone);
  return quiet.start < quiet.end
    ? time >= quiet.start && time < quiet.end
    : time >= quiet.start || time < quiet.end;
}

/**
 * The messages a finished run sends: one digest, or one per table outcome; only failures with `notifyOn:
 * failures`. In quiet hours messages about nothing failing are not sent (they are not queued for later: the audit
 * trail and the execution keep the run's summary); failures always go out.
 */
export function runNotifications(
  summary: RunSummaryLike,
  config: NotificationsConfig,
  now: Date,
): { send: Notification[]; suppressed: number } {
  const all =
    config.mode === 'digest'
      ? [runDigest(summary)]
      : summary.perTable.map((table) => tableMessage(summary.runId, table));
  const wanted = config.notifyOn === 'failures' ? all.filter((m) => m.failure) : all;
  const quiet = config.quietHours !== undefined && inQuietHours(now, config.quietHours);
  const send = quiet ? wanted.filter((m) => m.failure) : wanted;
  return { send, suppressed: wanted.length - send.length };
}

/**
 * Publishes to an SNS topic with one body per protocol: email subscribers get the plain text, AWS Chatbot (an
 * HTTPS subscription) gets its custom-notification JSON, which it renders in Slack and Teams.
 */
export function snsPublisher(client: SNSClient, topicArn: string): Publisher {
  return {
    async publish(message) {
      const chat = JSON.stringify({
        version: '1.0',
        source: 'custom',
        content: { textType: 'client-markdown', title: message.title, description: message.markdown },
      });
      await client.send(
        new PublishCommand({
          TopicArn: topicArn,
          Subject: message.subject,
          MessageStructure: 'json',
          Message: JSON.stringify({ default: chat, https: chat, email: message.text }),
        }),
      );
    },
  };
}

/** Local mode has no SNS: each would-be message becomes one JSON line of a file in the state dir. */
export function filePublisher(path: string): Publisher {
  return {
    async publish(message) {
      mkdirSync(dirname(path), { recursive: true });
      appendFileSync(path, `${JSON.stringify({ ...message, publishedAt: new Date().toISOString() })}\n`);
    },
  };
}
