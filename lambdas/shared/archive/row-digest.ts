import { createHash, type Hash } from 'node:crypto';

const mask64 = (1n << 64n) - 1n;
const hex64 = (value: bigint): string => (value & mask64).toString(16).padStart(16, '0');

/**
 * Order-independent digest of a multiset of archive lines: the sums, modulo 2^64, of the two signed 64-bit
 * halves of each line's MD5. PostgreSQL computes the same figure over the same rows (table-sql.ts
 * digestSelectSql), so a batch can be compared between the archive object and the database without sorting.
 * It detects accidental change (updated, missing or extra rows); tampering is caught by the SHA-256s.
 */
export class RowDigest {
  private hi = 0n;
  private lo = 0n;
  private count = 0;
  private line: Hash | undefined;

  add(line: Buffer): void {
    this.sum(createHash('md5').update(line).digest());
  }

  /** Feeds the next bytes of the current line: a line of any length is digested as it streams by, never held. */
  update(part: Buffer): void {
    this.line ??= createHash('md5');
    this.line.update(part);
  }

  /** Adds the line fed through `update` (an empty one if nothing was). */
  endLine(): void {
    this.sum((this.line ?? createHash('md5')).digest());
    this.line = undefined;
  }

  private sum(md5: Buffer): void {
    this.hi += md5.readBigInt64BE(0);
    this.lo += md5.readBigInt64BE(8);
    this.count += 1;
  }

  get rows(): number {
    return this.count;
  }

  value(): string {
    return formatRowDigest(this.hi, this.lo);
  }
}

export function formatRowDigest(hi: bigint, lo: bigint): string {
  return `${hex64(hi)}${hex64(lo)}`;
}

/** The digest from the numeric sums PostgreSQL returns as text. */
export function rowDigestFromSql(result: { hi: string; lo: string }): string {
  return formatRowDigest(BigInt(result.hi), BigInt(result.lo));
}
