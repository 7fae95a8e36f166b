/** DynamoDB's limit on one item. */
export const ITEM_LIMIT_BYTES = 400 * 1024;

/** The most a JavaScript number takes: 17 significant digits at one byte per two, a byte of exponent, one of sign. */
const NUMBER_BYTES = 12;

/**
 * What a value takes in a DynamoDB item as the document client writes it, by AWS's rules: strings (and map keys) in
 * UTF-8, a number about a byte per two digits, a map or list 3 bytes and 1 more per element. An upper bound, never
 * less than AWS counts; JSON's length would overstate a map of short values by about a quarter.
 */
export function attributeBytes(value: unknown): number {
  if (value === undefined) return 0;
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number') return NUMBER_BYTES;
  if (Array.isArray(value))
    return value.reduce((sum: number, element) => sum + 1 + attributeBytes(element), 3);
  if (typeof value === 'object') {
    let bytes = 3;
    for (const [name, element] of Object.entries(value)) {
      // The document client drops undefined members (removeUndefinedValues).
      if (element !== undefined) bytes += 1 + Buffer.byteLength(name, 'utf8') + attributeBytes(element);
    }
    return bytes;
  }
  throw new TypeError(`no DynamoDB size for a ${typeof value}`);
}
