import type { ArchiveStore } from '../archive/store.js';
import type { ArchiverConfig } from '../config/schema.js';
import type { Database } from '../database/db.js';
import type { LockTable } from '../lock-table/lock-table.js';
import type { Publisher } from '../telemetry/notifications.js';
import type { Telemetry } from '../telemetry/powertools.js';

/** Named points inside the steps where a test can inject a crash; a no-op in production. */
export type FaultPoint =
  | 'export:midStream'
  | 'export:afterStaging'
  | 'upload:afterCopy'
  | 'upload:afterManifest'
  | 'verify:afterRead'
  | 'delete:beforeCommit'
  | 'delete:afterCommit'
  | 'restore:afterCommit';
export type FaultInjector = (point: FaultPoint) => Promise<void> | void;

/** Everything a step core needs, injected; cores never read process.env or create clients. */
export interface StepDeps {
  config: ArchiverConfig;
  store: ArchiveStore;
  locks: LockTable;
  database(name: string): Promise<Database>;
  telemetry: Telemetry;
  now(): Date;
  fault: FaultInjector;
  /** Milliseconds this invocation has left before the Lambda timeout (the handler sets it from the context). */
  remainingTimeMs?: () => number;
  /** Run notifications (summary step): SNS in AWS, a file in local mode; none when neither is configured. */
  publisher?: Publisher;
}
