import { appendFileSync } from 'node:fs';

/**
 * The proof ledger: the zero-data-loss tests record what they checked as JSON lines in the file PROOF_LEDGER names
 * (set by `npm run proof`, see proof-report.ts); without it recording is a no-op. Several test files (and worker
 * processes) append to the same file, one short line per write.
 */
export type ProofEntry =
  /** One check of the invariant: `rows` original rows, of which `lost` were missing and `doubled` present twice. */
  | { kind: 'invariant'; rows: number; lost: number; doubled: number }
  /** One crash, outage or takeover injected at `point`, followed by a check and a re-run. */
  | { kind: 'fault'; point: string; iteration: number }
  /** One tampering case: whether it was caught before any delete (named error and metric). */
  | { kind: 'tamper'; case: string; caught: boolean }
  /** Property-test cases run against hostile input. */
  | { kind: 'fuzz'; property: string; cases: number }
  /**
   * One entry of the threat model (docs/reference.md), attempted for real: `actor` (another database role, a bucket writer,
   * whoever starts executions, a crashed or duplicated invocation) tried `attack`; `held` when it achieved nothing
   * the model forbids (no row lost, doubled or changed, nothing deleted that no verified archive holds).
   */
  | { kind: 'threat'; actor: ThreatActor; attack: string; held: boolean };

/** Who can attack the archiver, as the threat model (docs/reference.md) names them. */
export type ThreatActor = 'database role' | 'bucket writer' | 'execution starter' | 'invocation' | 'operator';

export function recordProof(entry: ProofEntry): void {
  const file = process.env.PROOF_LEDGER;
  if (file) appendFileSync(file, `${JSON.stringify(entry)}\n`);
}

const positiveInteger = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
};

/** PROOF_SOAK=N multiplies the iterations of the proof tests for a longer soak; 1 (the default) in `npm test`. */
export const PROOF_SOAK = positiveInteger(process.env.PROOF_SOAK, 1);

/** PROOF_SEED reproduces a run: the seeded choices (which batch a crash hits, and the like) derive from it. */
export const PROOF_SEED = positiveInteger(process.env.PROOF_SEED, 20261124);

/** A small seeded PRNG (mulberry32), so every choice a proof test makes is reproducible from PROOF_SEED. */
export function seededRandom(seed: number = PROOF_SEED): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
