import type { ArchiveStore } from '../archive/store.js';
import type { ArchiverConfig } from '../config/schema.js';
import type { Database } from '../database/db.js';
import type { ArchiveInventory } from '../lock-table/archive-inventory.js';
import type { LeaseStore } from '../lock-table/lease-store.js';
import type { LegalHolds } from '../lock-table/legal-holds.js';
import type { RestoreRecords } from '../lock-table/restore-records.js';
import type { RunRecords } from '../lock-table/run-records.js';
import type { Publisher } from '../telemetry/notifications.js';
import type { Telemetry } from '../telemetry/powertools.js';

/** Named points inside the steps where a test can inject a crash; a no-op in production. */
export type FaultPoint =
  | 'export:midStream'
  | 'export:betweenObjects'
  | 'export:afterStaging'
  | 'upload:afterCopy'
  | 'upload:afterManifest'
  | 'verify:afterRead'
  | 'delete:afterDelete'
  | 'delete:beforeCommit'
  | 'delete:afterCommit'
  | 'restore:beforeCommit'
  | 'restore:afterCommit';
export type FaultInjector = (point: FaultPoint) => Promise<void> | void;

/** Everything a step core needs, injected; cores never read process.env or create clients. */
export interface StepDeps {
  config: ArchiverConfig;
  store: ArchiveStore;
  /** Each table's lease, its batch in flight and its totals. */
  locks: LeaseStore;
  /** The committed archives of each table. */
  inventory: ArchiveInventory;
  /** Operators' legal holds. */
  holds: LegalHolds;
  /** Each run's table outcomes and the config fingerprint. */
  runRecords: RunRecords;
  /** Each restore's per-archive results and the restore watermarks. */
  restoreRecords: RestoreRecords;
  database(name: string): Promise<Database>;
  telemetry: Telemetry;
  now(): Date;
  fault: FaultInjector;
  /** Milliseconds this invocation has left before the Lambda timeout (the handler sets it from the context). */
  remainingTimeMs?: () => number;
  /** Run notifications (summary step): SNS in AWS, a file in local mode; none when neither is configured. */
  publisher?: Publisher;
}
