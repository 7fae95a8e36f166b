/**
 * The byte level of copy-text.ts: a growable output buffer, and the transcoder from an archive line (a JSON object
 * as PostgreSQL's json_object writes it) to a COPY text row without decoding it. Written by hand because it is
 * restore's hot loop: a JSON.parse per line, a string per value and an encode per row cost more CPU per row than
 * PostgreSQL's COPY itself. The transcoder copies a value's bytes through and rewrites only what the two formats
 * spell differently; anything it does not expect sends the line to the general path (JSON.parse), which decides.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const COLON = 0x3a;
const COMMA = 0x2c;
const TAB = 0x09;
const NEWLINE = 0x0a;

/** Bytes written row by row, handed out once per piece. */
export class RowBuffer {
  /** Written by the transcoder directly, within what `reserve` made room for. */
  buffer: Buffer;
  length = 0;

  constructor(capacity = 64 * 1024) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  /** Makes room for `more` bytes after `length`. */
  reserve(more: number): void {
    if (this.length + more <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + more));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  bytes(source: Buffer): void {
    this.reserve(source.length);
    this.length += source.copy(this.buffer, this.length);
  }

  /**
   * The bytes so far as a buffer of their own (the stream keeps it), leaving this one empty to be written again: a
   * copy of exactly the piece costs less than a fresh buffer of the whole capacity for every piece.
   */
  take(): Buffer | undefined {
    if (this.length === 0) return undefined;
    const out = Buffer.from(this.buffer.subarray(0, this.length));
    this.length = 0;
    return out;
  }
}

function skipSpace(line: Buffer, at: number, end: number): number {
  let i = at;
  for (; i < end; i++) {
    const b = line[i];
    if (b !== 0x20 && b !== TAB && b !== NEWLINE && b !== 0x0d) break;
  }
  return i;
}

const hexValue = (b: number | undefined): number => {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
};

/** The code unit of `\uXXXX` at `at`, or -1. */
function unicodeEscape(line: Buffer, at: number): number {
  let code = 0;
  for (let k = 2; k < 6; k++) {
    const digit = hexValue(line[at + k]);
    if (digit < 0) return -1;
    code = code * 16 + digit;
  }
  return code;
}

/**
 * Writes one character of a value at `at` as COPY text reads it: backslash, tab, newline and CR escaped; else
 * UTF-8. Returns the position after it. Never longer than the six-byte `\uXXXX` it comes from.
 */
function writeChar(buffer: Buffer, at: number, code: number): number {
  let i = at;
  if (code === BACKSLASH || code === TAB || code === NEWLINE || code === 0x0d) {
    buffer[i++] = BACKSLASH;
    buffer[i++] = code === BACKSLASH ? BACKSLASH : code === TAB ? 0x74 : code === NEWLINE ? 0x6e : 0x72;
  } else if (code < 0x80) {
    buffer[i++] = code;
  } else if (code < 0x800) {
    buffer[i++] = 0xc0 | (code >> 6);
    buffer[i++] = 0x80 | (code & 0x3f);
  } else if (code < 0x10000) {
    buffer[i++] = 0xe0 | (code >> 12);
    buffer[i++] = 0x80 | ((code >> 6) & 0x3f);
    buffer[i++] = 0x80 | (code & 0x3f);
  } else {
    buffer[i++] = 0xf0 | (code >> 18);
    buffer[i++] = 0x80 | ((code >> 12) & 0x3f);
    buffer[i++] = 0x80 | ((code >> 6) & 0x3f);
    buffer[i++] = 0x80 | (code & 0x3f);
  }
  return i;
}

/**
 * Transcodes a JSON string value starting at its opening quote into `out` (which has room: no escape is shorter
 * than what it stands for). Returns the index after its closing quote, or -1 for anything the general path must
 * judge (a raw control character, a bad escape, a lone surrogate, NUL). One pass that copies as it scans: a search
 * for the quote first, then a copy, read each byte twice.
 */
function transcodeString(line: Buffer, from: number, end: number, out: RowBuffer): number {
  const buffer = out.buffer;
  let at = out.length;
  let i = from + 1;
  while (i < end) {
    const b = line[i] as number;
    if (b === QUOTE) {
      out.length = at;
      return i + 1;
    }
    if (b !== BACKSLASH) {
      if (b < 0x20) return -1;
      buffer[at++] = b;
      i += 1;
      continue;
    }
    const escaped = i + 1 < end ? line[i + 1] : undefined;
    if (escaped === 0x6e || escaped === 0x72 || escaped === 0x74 || escaped === BACKSLASH) {
      // \n \r \t \\ mean in COPY text what they mean in JSON.
      buffer[at++] = BACKSLASH;
      buffer[at++] = escaped;
      i += 2;
    } else if (escaped === QUOTE || escaped === 0x2f) {
      buffer[at++] = escaped;
      i += 2;
    } else if (escaped === 0x62 || escaped === 0x66) {
      buffer[at++] = escaped === 0x62 ? 0x08 : 0x0c;
      i += 2;
    } else if (escaped === 0x75 && i + 6 <= end) {
      let code = unicodeEscape(line, i);
      i += 6;
      if (code >= 0xd800 && code <= 0xdbff && i + 6 <= end && line[i] === BACKSLASH && line[i + 1] === 0x75) {
        const low = unicodeEscape(line, i);
        if (low < 0xdc00 || low > 0xdfff) return -1;
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i += 6;
      }
      // NUL has no place in a PostgreSQL text value; a lone surrogate no UTF-8 spelling.
      if (code <= 0 || (code >= 0xd800 && code <= 0xdfff)) return -1;
      at = writeChar(buffer, at, code);
    } else {
      return -1;
    }
  }
  return -1;
}

/**
 * Writes the COPY text row of the line `line[start, end)` when it is an object whose keys are exactly `keys` (each
 * column's name as a JSON string), in that order, each with a string or null value: what json_object wrote for the
 * archived columns. Returns false, having written nothing, for any other line.
 */
export function transcodeLine(
  line: Buffer,
  keys: readonly Buffer[],
  out: RowBuffer,
  start = 0,
  end = line.length,
): boolean {
  // A row is never longer than its line and its newline: keys, quotes and separators shrink, no escape grows.
  out.reserve(end - start + 1);
  const mark = out.length;
  if (keys.length > 0 && transcodeObject(line, keys, out, start, end)) {
    out.buffer[out.length++] = NEWLINE;
    return true;
  }
  out.length = mark;
  return false;
}

/** The byte at `i` when it is inside the line. */
const at = (line: Buffer, i: number, end: number) => (i < end ? line[i] : undefined);

function transcodeObject(line: Buffer, keys: readonly Buffer[], out: RowBuffer, start: number, end: number) {
  let i = skipSpace(line, start, end);
  if (at(line, i, end) !== OPEN_BRACE) return false;
  i += 1;
  for (let c = 0; c < keys.length; c++) {
    const key = keys[c] as Buffer;
    i = skipSpace(line, i, end);
    if (i + key.length > end) return false;
    for (let k = 0; k < key.length; k++) if (line[i + k] !== key[k]) return false;
    i = skipSpace(line, i + key.length, end);
    if (at(line, i, end) !== COLON) return false;
    i = skipSpace(line, i + 1, end);
    if (c > 0) out.buffer[out.length++] = TAB;
    const first = at(line, i, end);
    if (first === QUOTE) {
      i = transcodeString(line, i, end, out);
      if (i < 0) return false;
    } else if (
      first === 0x6e &&
      i + 4 <= end &&
      line[i + 1] === 0x75 &&
      line[i + 2] === 0x6c &&
      line[i + 3] === 0x6c
    ) {
      out.buffer[out.length++] = BACKSLASH;
      out.buffer[out.length++] = 0x4e;
      i += 4;
    } else {
      return false;
    }
    i = skipSpace(line, i, end);
    if (at(line, i, end) !== (c === keys.length - 1 ? CLOSE_BRACE : COMMA)) return false;
    i += 1;
  }
  return skipSpace(line, i, end) === end;
}
