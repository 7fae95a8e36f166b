/**
 * `npm run proof`: runs the zero-data-loss proof suite against one embedded PostgreSQL with the proof ledger on, then
 * prints what it checked. Exits non-zero if a test failed, a row was lost or doubled, or a tampering went uncaught.
 *
 *   PROOF_PG=14|18   the PostgreSQL project (default 18)
 *   PROOF_SOAK=N     multiplies the iterations (crashes per fault point, SIGKILLs, fuzz cases) for a longer soak
 *   PROOF_SEED=N     reproduces a run's seeded choices
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PROOF_SEED, PROOF_SOAK, type ProofEntry } from './proof-ledger.js';

/** The proof suite: every test file that records into the ledger, and the ones that back a claim without figures. */
const PROOF_FILES = [
  'test/proofs/faults.test.ts',
  'test/proofs/month-objects.test.ts',
  'test/proofs/tamper.test.ts',
  'test/proofs/bucket-writer.test.ts',
  'test/proofs/restore-faults.test.ts',
  'test/proofs/tables.test.ts',
  'test/proofs/outages.test.ts',
  'test/proofs/sigkill.test.ts',
  'test/local/workflow.test.ts',
  'test/proofs/types-and-identifiers.test.ts',
  'test/proofs/logs.test.ts',
  'test/proofs/database-role.test.ts',
  'test/proofs/execution-input.test.ts',
  'test/lambdas/delete/core.int.test.ts',
  'test/lambdas/delete/row-versions.int.test.ts',
  'test/lambdas/shared/lock-table/lease-store.int.test.ts',
  'test/lambdas/shared/batch/batch.int.test.ts',
  'test/lambdas/shared/database/db.int.test.ts',
  'test/lambdas/shared/database/db.test.ts',
  'test/lambdas/schemas.fuzz.test.ts',
  'test/lambdas/shared/archive/format.test.ts',
  'test/lib/security.test.ts',
  'test/proofs/wide-row.test.ts',
  'test/proofs/schema-change.test.ts',
  'test/proofs/value-settings.test.ts',
  'test/proofs/withdrawal.test.ts',
  'test/proofs/restore-watermark.test.ts',
  'test/proofs/restore.test.ts',
  'test/proofs/config-change.test.ts',
  'test/proofs/restore-inventory.test.ts',
  'test/lambdas/upload/core.int.test.ts',
  'test/cli/batch-settle.int.test.ts',
  'test/cli/doctor.int.test.ts',
  'test/proofs/standby.test.ts',
  'test/proofs/restored-cluster.test.ts',
  'test/proofs/restore-versions.test.ts',
  'test/proofs/restore-legacy.test.ts',
  'test/proofs/restore-fidelity.test.ts',
  'test/proofs/cold-archives.test.ts',
  'test/proofs/restore-messages.test.ts',
  'test/proofs/self-reference.test.ts',
  'test/proofs/fixed-length-keys.test.ts',
  'test/proofs/long-names.test.ts',
  'test/proofs/unusual-keys.test.ts',
  'test/proofs/unusual-shapes.test.ts',
  'test/proofs/unusual-values.test.ts',
  'test/proofs/withdrawn-every-batch.test.ts',
  'test/proofs/ddl-between-steps.test.ts',
  'test/proofs/restore-in-flight.test.ts',
  'test/lambdas/restore-plan/target-created-meanwhile.int.test.ts',
  'test/lambdas/export/core.int.test.ts',
  'test/proofs/planted-archives.test.ts',
  'test/proofs/time-zones.test.ts',
  'test/proofs/redefined-between-steps.test.ts',
  'test/proofs/attach-partition.test.ts',
  'test/proofs/session-defaults.test.ts',
  'test/proofs/wide-tables.test.ts',
  'test/proofs/at-least-once/duplicate-acquire.test.ts',
  'test/proofs/at-least-once/duplicated-steps.test.ts',
  'test/proofs/at-least-once/stale-upload.test.ts',
  'test/proofs/at-least-once/stale-withdrawal.test.ts',
  'test/proofs/at-least-once/invoked-twice.test.ts',
  'test/proofs/lossy-encodings.test.ts',
  'test/proofs/large-objects.test.ts',
  'test/proofs/at-least-once/duplicate-child.test.ts',
  'test/proofs/archived-again.test.ts',
  'test/proofs/two-deployments.test.ts',
  'test/proofs/lock-table-restored.test.ts',
  'test/proofs/late-arrivals.test.ts',
  'test/proofs/application-locks.test.ts',
];

interface ProofSummary {
  faults: { points: Map<string, number>; injections: number };
  invariant: { checks: number; rows: number; lost: number; doubled: number };
  tamper: { cases: number; caught: number; missed: string[] };
  fuzz: { properties: number; cases: number };
  threats: { attacks: Map<string, number>; held: number; broken: string[] };
}

function summarize(entries: ProofEntry[]): ProofSummary {
  const summary: ProofSummary = {
    faults: { points: new Map(), injections: 0 },
    invariant: { checks: 0, rows: 0, lost: 0, doubled: 0 },
    tamper: { cases: 0, caught: 0, missed: [] },
    fuzz: { properties: 0, cases: 0 },
    threats: { attacks: new Map(), held: 0, broken: [] },
  };
  for (const entry of entries) {
    if (entry.kind === 'fault') {
      summary.faults.points.set(entry.point, (summary.faults.points.get(entry.point) ?? 0) + 1);
      summary.faults.injections += 1;
    } else if (entry.kind === 'invariant') {
      summary.invariant.checks += 1;
      summary.invariant.rows += entry.rows;
      summary.invariant.lost += entry.lost;
      summary.invariant.doubled += entry.doubled;
    } else if (entry.kind === 'tamper') {
      summary.tamper.cases += 1;
      if (entry.caught) summary.tamper.caught += 1;
      else summary.tamper.missed.push(entry.case);
    } else if (entry.kind === 'threat') {
      const name = `${entry.actor}: ${entry.attack}`;
      summary.threats.attacks.set(name, (summary.threats.attacks.get(name) ?? 0) + 1);
      if (entry.held) summary.threats.held += 1;
      else summary.threats.broken.push(name);
    } else {
      summary.fuzz.properties += 1;
      summary.fuzz.cases += entry.cases;
    }
  }
  return summary;
}

/** The problems that make the proof fail, besides a failed test. */
function verdict(summary: ProofSummary): string[] {
  const problems: string[] = [];
  if (summary.invariant.checks === 0) problems.push('no invariant check was recorded');
  if (summary.invariant.lost > 0) problems.push(`${summary.invariant.lost} rows lost`);
  if (summary.invariant.doubled > 0) problems.push(`${summary.invariant.doubled} rows doubled`);
  if (summary.tamper.missed.length > 0)
    problems.push(`tampering not caught: ${summary.tamper.missed.join(', ')}`);
  if (summary.threats.broken.length > 0)
    problems.push(`threats not held: ${summary.threats.broken.join(', ')}`);
  return problems;
}

const number = (n: number) => n.toLocaleString('en-US');

function print(summary: ProofSummary, pg: string, testsPassed: boolean, problems: string[]): void {
  const { faults, invariant, tamper, fuzz, threats } = summary;
  const lines = [
    '',
    `Zero data loss: the evidence (PostgreSQL ${pg}, PROOF_SEED=${PROOF_SEED}, PROOF_SOAK=${PROOF_SOAK})`,
    `  tests                  ${testsPassed ? 'all passed' : 'FAILED'}`,
    `  fault points           ${faults.points.size} (crashes, kills, outages, a takeover, concurrency), ${PROOF_SOAK} iteration(s) each: ${number(faults.injections)} injections`,
    ...[...faults.points].map(([point, n]) => `      ${String(n).padStart(4)} × ${point}`),
    '    each followed by a row-for-row check, and a re-run where the fault stopped the run',
    `  invariant checks       ${number(invariant.checks)} (database + live archives = original, row for row)`,
    `  rows checked           ${number(invariant.rows)}`,
    `  rows lost              ${number(invariant.lost)}`,
    `  rows doubled           ${number(invariant.doubled)}`,
    `  tamper cases caught    ${tamper.caught} of ${tamper.cases} (named error and VerificationFailures metric, before any delete)`,
    `  fuzz cases run         ${number(fuzz.cases)} over ${fuzz.properties} properties`,
    `  threats attempted      ${threats.attacks.size} of the threat model (docs/reference.md), ${threats.held} attempt(s) held`,
    ...[...threats.attacks].map(([attack, n]) => `      ${String(n).padStart(4)} × ${attack}`),
    `  verdict                ${testsPassed && problems.length === 0 ? 'PROVEN' : `NOT PROVEN: ${[...(testsPassed ? [] : ['a test failed']), ...problems].join('; ')}`}`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

function main(): number {
  const pg = process.env.PROOF_PG ?? '18';
  const ledgerDir = mkdtempSync(join(tmpdir(), 'audit-archiver-proof-'));
  const ledger = join(ledgerDir, 'ledger.jsonl');
  try {
    const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
    const run = spawnSync(
      process.execPath,
      [vitest, 'run', '--project', `pg${pg}*`, '--project', 'unit', '--project', 'cdk', ...PROOF_FILES],
      { stdio: 'inherit', env: { ...process.env, PROOF_LEDGER: ledger } },
    );
    let text = '';
    try {
      text = readFileSync(ledger, 'utf8');
    } catch {
      // No test recorded anything: the verdict says so.
    }
    const entries = text
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as ProofEntry);
    const summary = summarize(entries);
    const problems = verdict(summary);
    const testsPassed = run.status === 0;
    print(summary, pg, testsPassed, problems);
    return testsPassed && problems.length === 0 ? 0 : 1;
  } finally {
    rmSync(ledgerDir, { recursive: true, force: true });
  }
}

process.exitCode = main();
