import { createHash } from 'node:crypto';
import type { ArchiverConfig } from '../config/schema.js';
import type { StepDeps } from '../step/step-deps.js';
import { auditEventId, recordAuditEvent } from '../telemetry/audit-trail.js';

/** A hash of the effective config and one per top-level path (`databases.<name>` per database). */
export interface ConfigFingerprint {
  hash: string;
  paths: Record<string, string>;
}

const hashOf = (value: unknown) =>
  createHash('sha256')
    .update(JSON.stringify(value ?? null))
    .digest('hex');

/**
 * Connection URLs can hold a password: they are replaced before hashing, so nothing derived from a credential is
 * stored (a password changed inside a URL is therefore not a config change). Secret ARNs and env var names stay.
 */
function withoutSecrets(config: ArchiverConfig): ArchiverConfig {
  return {
    ...config,
    databases: config.databases.map((db) =>
      'url' in db.credentials ? { ...db, credentials: { url: '(redacted)' } } : db,
    ),
  };
}

export function configFingerprint(config: ArchiverConfig): ConfigFingerprint {
  const safe = withoutSecrets(config);
  const paths: Record<string, string> = {};
  for (const [key, value] of Object.entries(safe)) {
    if (key === 'databases') {
      for (const db of safe.databases) paths[`databases.${db.name}`] = hashOf(db);
    } else {
      paths[key] = hashOf(value);
    }
  }
  return { hash: hashOf(Object.entries(paths).sort()), paths };
}

/** Paths whose hash differs, was added or removed, sorted. */
export function changedPaths(previous: Record<string, string>, current: Record<string, string>): string[] {
  const keys = new Set([...Object.keys(previous), ...Object.keys(current)]);
  return [...keys].filter((key) => previous[key] !== current[key]).sort();
}

/**
 * Compares the effective config with the fingerprint the last run recorded in the lock table and, when it
 * changed (or none was recorded yet), writes a `config-changed` event naming the changed top-level paths, then
 * records the new fingerprint. In that order, so a crash between the two repeats the same event (same id).
 */
export async function recordConfigChange(
  deps: Pick<StepDeps, 'config' | 'runRecords' | 'store' | 'now'>,
  runId: string,
): Promise<void> {
  const current = configFingerprint(deps.config);
  const previous = await deps.runRecords.getConfigFingerprint();
  if (previous?.hash === current.hash) return;
  const paths = changedPaths(previous?.paths ?? {}, current.paths);
  await recordAuditEvent(deps, {
    id: auditEventId('config-changed', previous?.hash ?? '', current.hash),
    kind: 'config-changed',
    time: deps.now().toISOString(),
    runId,
    actor: 'step:plan',
    details: {
      changedPaths: paths,
      firstRecorded: previous === undefined,
      previousHash: previous?.hash ?? null,
      hash: current.hash,
    },
  });
  await deps.runRecords.putConfigFingerprint({ ...current, recordedAt: deps.now().toISOString(), runId });
}
