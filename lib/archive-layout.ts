import { keySegment } from '../lambdas/shared/archive/format.js';
import type { ArchiverConfig } from '../lambdas/shared/config/schema.js';

/**
 * The key areas of the archive bucket, as IAM key patterns, mirroring lambdas/shared/archive/format.ts:
 * staging objects under `{prefix}_staging/`, quarantined evidence under `{prefix}_quarantine/`, audit events under
 * `{prefix}_audit/events/`, and each database's
 * archives and manifests under `{prefix}{database}/`. Database names start with a letter or digit, so an archive
 * area never overlaps the two underscore areas, and grants can tell them apart.
 */
export interface ArchiveLayout {
  /** The configured prefix ("" or ending in "/"). */
  readonly prefix: string;
  /** Objects an export writes and upload consumes. */
  readonly staging: string;
  /** Copies of archives that failed verification, kept as evidence. */
  readonly quarantine: string;
  /** The audit trail: one write-once event object per run start/end, table outcome, restore, drift, change. */
  readonly audit: string;
  /** One pattern per configured database: published archives and their manifests. */
  readonly archives: readonly string[];
}

export function archiveLayout(config: ArchiverConfig): ArchiveLayout {
  const prefix = config.s3.prefix;
  return {
    prefix,
    staging: `${prefix}_staging/*`,
    quarantine: `${prefix}_quarantine/*`,
    audit: `${prefix}_audit/events/*`,
    archives: config.databases.map((db) => `${prefix}${keySegment(db.name)}/*`),
  };
}
