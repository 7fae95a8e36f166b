const TWO_32 = 2 ** 32;

/**
 * Order-independent digest of the row versions a batch exported: the sum, modulo 2^64, of one int8 per row that
 * PostgreSQL computes from the version's identity (table-sql.ts rowVersionSql). The delete sums the same expression
 * over the rows it removes (`sum(int8)`, exact in PostgreSQL) and compares. It says nothing about an archive's
 * content, so it is kept with the batch in flight, never in the archive or its manifest.
 */
export class VersionDigest {
  /** The sum as two 32-bit words in Numbers: exact, and no BigInt per row. */
  private hi = 0;
  private lo = 0;

  /** Adds the big-endian int8 at `offset` (two's complement, so adding its unsigned value is the same mod 2^64). */
  add(bytes: Buffer, offset = 0): void {
    const lo = this.lo + bytes.readUInt32BE(offset + 4);
    this.hi = (this.hi + bytes.readUInt32BE(offset) + (lo >= TWO_32 ? 1 : 0)) >>> 0;
    this.lo = lo >>> 0;
  }

  value(): string {
    return formatVersionDigest((BigInt(this.hi) << 32n) | BigInt(this.lo));
  }
}

const formatVersionDigest = (sum: bigint): string => BigInt.asUintN(64, sum).toString(16).padStart(16, '0');

/** The digest from the exact `sum(int8)` PostgreSQL returns as numeric text. */
export const versionDigestFromSql = (sum: string): string => formatVersionDigest(BigInt(sum));
