import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { ArchiveStore } from '../archive/store.js';
import { formatIssues } from '../config/config.js';
import type { ArchiverConfig } from '../config/schema.js';
import {
  ArchiveConflictError,
  ArchiveIntegrityError,
  ArchiverError,
  InvalidInputError,
  StorageUnavailableError,
} from '../errors/step-errors.js';

/**
 * The audit trail: one small JSON object per event, written once (If-None-Match: *, and under the bucket's Object
 * Lock default retention when it has one), under `{prefix}_audit/events/YYYY/MM/DD/<time>-<kind>-<id>.json`.
 * The leading "_" keeps it apart from every archive area (database names start with a letter or digit), so list
 * and validate, which only look below a table's own prefix, never see it. Keys sort by time.
 */
const AUDIT_FORMAT_VERSION = 1;

export const AUDIT_EVENT_KINDS = [
  'run-started',
  'run-finished',
  'table-outcome',
  'schema-drift',
  'restore-finished',
  'legal-hold-changed',
  'lease-broken',
  'batch-settled',
  'config-changed',
] as const;
export const AuditEventKindSchema = z.enum(AUDIT_EVENT_KINDS);
export type AuditEventKind = z.infer<typeof AuditEventKindSchema>;

/** Counts, statuses, names and short messages: never row values (key values included). */
const DetailValueSchema = z.union([
  z.number().finite(),
  z.boolean(),
  z.null(),
  z.string().max(1000),
  z.array(z.string().max(300)).max(200),
]);

export const AuditEventSchema = z
  .object({
    formatVersion: z.literal(AUDIT_FORMAT_VERSION),
    /** Unique per event; a retried step writes it again, which readers list once when all but the time is alike. */
    id: z.uuid(),
    kind: AuditEventKindSchema,
    time: z.iso.datetime(),
    /** The archive run (execution name) or restore id the event belongs to. */
    runId: z.string().min(1).optional(),
    executionId: z.string().min(1).optional(),
    database: z.string().min(1).optional(),
    /** "schema.name". */
    table: z.string().min(1).optional(),
    /** Who caused it: the step that wrote it (`step:plan`), or the operator's identity for manual changes. */
    actor: z.string().min(1).max(300),
    details: z.record(z.string(), DetailValueSchema),
  })
  .strict();
export type AuditEvent = z.infer<typeof AuditEventSchema>;
/** What a writer gives: the id defaults to a random one, the version is filled in. */
export type AuditEventInput = Omit<AuditEvent, 'formatVersion' | 'id'> & { id?: string };

export interface AuditLocation {
  /** The config's s3.prefix ("" or ending in "/"). */
  prefix: string;
  kmsKeyId?: string;
}

export const auditEventsPrefix = (prefix: string) => `${prefix}_audit/events/`;

/**
 * Longer than any event a step writes: the longest, schema drift's, holds five lists of at most 200 column
 * descriptions of at most 300 characters, which JSON may escape to 6 bytes apiece (1.8 MB). Readers take no more of an
 * object, so a bucket writer's padded one costs them this much, not the 4 MiB a text read allows, and is set aside.
 */
export const AUDIT_EVENT_MAX_BYTES = 2 * 1024 * 1024;

/** ISO-8601 basic format (no ":"), so it is a safe key segment and still sorts by time. */
const compactTime = (iso: string) => new Date(iso).toISOString().replaceAll('-', '').replaceAll(':', '');

export function auditEventKey(prefix: string, event: Pick<AuditEvent, 'time' | 'kind' | 'id'>): string {
  const day = new Date(event.time).toISOString().slice(0, 10).replaceAll('-', '/');
  return `${auditEventsPrefix(prefix)}${day}/${compactTime(event.time)}-${event.kind}-${event.id}.json`;
}

const KEY_NAME = /\/(\d{8}T\d{6}\.\d{3}Z)-([a-z-]+)-([0-9a-f-]{36})\.json$/;

/** Time, kind and id of an event key, or undefined for any other object. */
export function parseAuditEventKey(key: string): { time: string; kind: string; id: string } | undefined {
  const match = KEY_NAME.exec(key);
  if (!match?.[1] || !match[2] || !match[3]) return undefined;
  const t = match[1];
  const time = `${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(9, 11)}:${t.slice(11, 13)}:${t.slice(13)}`;
  return { time, kind: match[2], id: match[3] };
}

/** A stable UUID-shaped id from the parts that make an event unique, so a retried step repeats the same id. */
export function auditEventId(...parts: string[]): string {
  const hex = createHash('sha256').update(JSON.stringify(parts)).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Writes one event once. Any failure is a StorageUnavailableError (retryable), so the step fails and is retried:
 * an event is never silently skipped. A malformed event is a wiring bug (InvalidInputError).
 */
export async function appendAuditEvent(
  store: ArchiveStore,
  location: AuditLocation,
  input: AuditEventInput,
): Promise<{ key: string; event: AuditEvent }> {
  const parsed = AuditEventSchema.safeParse({
    formatVersion: AUDIT_FORMAT_VERSION,
    ...input,
    id: input.id ?? randomUUID(),
  });
  if (!parsed.success) throw new InvalidInputError(`audit event is invalid:\n${formatIssues(parsed.error)}`);
  const event = parsed.data;
  const text = JSON.stringify(event);
  if (Buffer.byteLength(text) > AUDIT_EVENT_MAX_BYTES)
    throw new InvalidInputError(`audit event ${event.kind} is longer than ${AUDIT_EVENT_MAX_BYTES} bytes`);
  // Small objects: STANDARD avoids the 128 KiB minimum charge of the IA classes.
  const options = { storageClass: 'STANDARD' as const, kmsKeyId: location.kmsKeyId };
  const key = auditEventKey(location.prefix, event);
  try {
    // The same key holding the same text is this event written before (a retry after a lost response).
    if ((await putOnceUnlessTaken(store, key, text, options)) === 'written') return { key, event };
    // Anything else under its key was planted there by a bucket writer who predicted the id (a step's ids derive
    // from the run): the event goes under an id of its own, so the planted object neither stands for it nor hides
    // it. Readers list both.
    const moved = AuditEventSchema.parse({ ...event, id: randomUUID() });
    const movedKey = auditEventKey(location.prefix, moved);
    try {
      await store.putTextOnce(movedKey, JSON.stringify(moved), options);
    } catch (error) {
      throw writeFailed(event, `${key}, taken, nor to ${movedKey}`, error);
    }
    return { key: movedKey, event: moved };
  } catch (error) {
    throw writeFailed(event, key, error);
  }
}

/** Any failure to write an event is retryable (StorageUnavailableError unless it is one already). */
function writeFailed(event: AuditEvent, where: string, error: unknown): Error {
  if (error instanceof ArchiverError && error.retryable) return error;
  return new StorageUnavailableError(
    `audit event ${event.kind} could not be written to ${where}: ${(error as Error).message}`,
    { cause: error },
  );
}

/** Writes `text` under `key` once: 'taken' when the key holds other content. */
async function putOnceUnlessTaken(
  store: ArchiveStore,
  key: string,
  text: string,
  options: { storageClass: 'STANDARD'; kmsKeyId?: string },
): Promise<'written' | 'taken'> {
  try {
    await store.putTextOnce(key, text, options);
    return 'written';
  } catch (error) {
    if (error instanceof ArchiveConflictError) return 'taken';
    throw error;
  }
}

/** appendAuditEvent into the bucket and prefix of the steps' config. */
export function recordAuditEvent(
  deps: { store: ArchiveStore; config: Pick<ArchiverConfig, 's3'> },
  input: AuditEventInput,
): Promise<{ key: string; event: AuditEvent }> {
  return appendAuditEvent(
    deps.store,
    { prefix: deps.config.s3.prefix, kmsKeyId: deps.config.s3.kmsKeyId },
    input,
  );
}

export const AuditFilterSchema = z
  .object({
    since: z.iso.datetime({ offset: true }).optional(),
    until: z.iso.datetime({ offset: true }).optional(),
    kinds: z.array(AuditEventKindSchema).optional(),
    database: z.string().min(1).optional(),
    /** "schema.name". */
    table: z.string().min(1).optional(),
  })
  .strict();
export type AuditFilter = z.infer<typeof AuditFilterSchema>;

/** An object under the trail's prefix that is no audit event, by key and why: never its content. */
export interface UnreadableAuditEvent {
  key: string;
  reason: string;
}

/**
 * Events in time order, filtered by time range, kind, database and table, and the objects in range that are no
 * event. The listing starts at the `since` day and stops after `until`; kind and time are read from the key, so only
 * matching events are fetched. Retries of the same event (same id, all but the time alike) appear once, at their first
 * time; an object of the same id that says anything else is listed too. An object that does not parse, or whose key
 * names another event, is set aside, not fatal: whoever can write the bucket could otherwise hide the whole trail.
 */
export async function readAuditEvents(
  store: ArchiveStore,
  prefix: string,
  filter: AuditFilter = {},
): Promise<{ events: AuditEvent[]; unreadable: UnreadableAuditEvent[] }> {
  const since = filter.since ? Date.parse(filter.since) : undefined;
  const until = filter.until ? Date.parse(filter.until) : undefined;
  const root = auditEventsPrefix(prefix);
  const startAfter =
    since === undefined
      ? undefined
      : `${root}${new Date(since).toISOString().slice(0, 10).replaceAll('-', '/')}/`;
  const events: AuditEvent[] = [];
  const unreadable: UnreadableAuditEvent[] = [];
  /** By id, a digest of what each event of that id said (all of it but its time). */
  const seen = new Map<string, Set<string>>();
  for await (const object of store.list(root, startAfter)) {
    const name = parseAuditEventKey(object.key);
    if (!name) continue;
    const time = Date.parse(name.time);
    if (until !== undefined && time > until) break;
    if (since !== undefined && time < since) continue;
    if (filter.kinds && !(filter.kinds as string[]).includes(name.kind)) continue;
    const head = await store.getTextHead(object.key, AUDIT_EVENT_MAX_BYTES);
    if (head === undefined) continue;
    if (!head.whole) {
      unreadable.push({
        key: object.key,
        reason: `longer than ${AUDIT_EVENT_MAX_BYTES} bytes, more than any event`,
      });
      continue;
    }
    const event = parseEvent(head.text);
    if (typeof event === 'string') {
      unreadable.push({ key: object.key, reason: event });
      continue;
    }
    if (event.id !== name.id || event.kind !== name.kind || Date.parse(event.time) !== time) {
      unreadable.push({ key: object.key, reason: 'its key names another event (time, kind or id)' });
      continue;
    }
    if (filter.database && event.database !== filter.database) continue;
    if (filter.table && event.table !== filter.table) continue;
    // A retry repeats the event but its time; a planted object of the same id that says something else is not it.
    const { time: _time, ...said } = event;
    const retryOf = createHash('sha256').update(JSON.stringify(said)).digest('hex');
    if (seen.get(event.id)?.has(retryOf)) continue;
    seen.set(event.id, (seen.get(event.id) ?? new Set()).add(retryOf));
    events.push(event);
  }
  return { events, unreadable };
}

/** As readAuditEvents, for readers that trust the trail: an object that is no event is an ArchiveIntegrityError. */
export async function listAuditEvents(
  store: ArchiveStore,
  prefix: string,
  filter: AuditFilter = {},
): Promise<AuditEvent[]> {
  const { events, unreadable } = await readAuditEvents(store, prefix, filter);
  const [first] = unreadable;
  if (first) throw new ArchiveIntegrityError(`audit event ${first.key}: ${first.reason}`);
  return events;
}

const EVENT_FIELDS = new Set(Object.keys(AuditEventSchema.shape));

/**
 * The event, or why it is none. The reason names only the format's own fields that are wrong: the issues' messages
 * could repeat what the object holds (a key the format lacks), and whoever planted it chose that.
 */
function parseEvent(text: string): AuditEvent | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  const parsed = AuditEventSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const fields = [
    ...new Set(
      parsed.error.issues.map((issue) => String(issue.path[0] ?? '')).filter((f) => EVENT_FIELDS.has(f)),
    ),
  ];
  return `not an audit event${fields.length ? ` (${fields.join(', ')})` : ''}`;
}
