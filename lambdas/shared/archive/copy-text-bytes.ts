/**
 * The byte level of copy-text.ts: a growable output buffer, and the transcoder from an archive line (a JSON object
 * as PostgreSQL's json_object writes it) to a COPY text row without decoding it. Written by hand because it is
 * restore's hot loop: a JSON.parse per line, a string per value and an encode per row cost more CPU per row than
 * PostgreSQL's COPY itself. The transcoder copies a value's bytes through and rewrites only what the two formats
 * spell differently; anything it does not expect sends the line to the general path (JSON.parse), which decides.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Bytes written row by row, handed out once per chunk. */
export class RowBuffer {
  private buffer = Buffer.allocUnsafe(64 * 1024);
  length = 0;

  private ensure(more: number): void {
    if (this.length + more <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + more));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  byte(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }

  two(first: number, second: number): void {
    this.ensure(2);
    this.buffer[this.length++] = first;
    this.buffer[this.length++] = second;
  }

  bytes(source: Buffer, start = 0, end = source.length): void {
    const count = end - start;
    this.ensure(count);
    // A value is a few dozen bytes: a loop beats the native call's fixed cost there.
    if (count < 64) {
      const buffer = this.buffer;
      let at = this.length;
      for (let k = start; k < end; k++) buffer[at++] = source[k] as number;
      this.length = at;
    } else {
      this.length += source.copy(this.buffer, this.length, start, end);
    }
  }

  /** The bytes so far as a buffer of their own (the stream keeps it), leaving this one empty. */
  take(): Buffer | undefined {
    if (this.length === 0) return undefined;
    const out = Buffer.from(this.buffer.subarray(0, this.length));
    this.length = 0;
    return out;
  }
}

const isSpace = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

const hexValue = (b: number | undefined): number => {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
};

/** Writes one character of a value as COPY text reads it: backslash, tab, newline and CR escaped; else UTF-8. */
function writeChar(out: RowBuffer, code: number): void {
  if (code === BACKSLASH) out.two(BACKSLASH, BACKSLASH);
  else if (code === 0x09) out.two(BACKSLASH, 0x74);
  else if (code === 0x0a) out.two(BACKSLASH, 0x6e);
  else if (code === 0x0d) out.two(BACKSLASH, 0x72);
  else if (code < 0x80) out.byte(code);
  else out.bytes(Buffer.from(String.fromCodePoint(code), 'utf8'));
}

/**
 * Transcodes a JSON string value starting at its opening quote. Returns the index after its closing quote, or -1
 * for anything the general path must judge (a raw control character, a bad escape, a lone surrogate, NUL).
 */
function transcodeString(line: Buffer, at: number, out: RowBuffer): number {
  let i = at + 1;
  let run = i;
  for (;;) {
    const b = line[i];
    if (b === undefined || b < 0x20) return -1;
    if (b === QUOTE) {
      out.bytes(line, run, i);
      return i + 1;
    }
    if (b !== BACKSLASH) {
      i += 1;
      continue;
    }
    out.bytes(line, run, i);
    const escaped = line[i + 1];
    if (escaped === 0x6e || escaped === 0x72 || escaped === 0x74 || escaped === BACKSLASH) {
      // \n \r \t \\ mean in COPY text what they mean in JSON.
      out.two(BACKSLASH, escaped);
      i += 2;
    } else if (escaped === QUOTE || escaped === 0x2f) {
      out.byte(escaped);
      i += 2;
    } else if (escaped === 0x62 || escaped === 0x66) {
      out.byte(escaped === 0x62 ? 0x08 : 0x0c);
      i += 2;
    } else if (escaped === 0x75) {
      let code = unicodeEscape(line, i);
      i += 6;
      if (code >= 0xd800 && code <= 0xdbff && line[i] === BACKSLASH && line[i + 1] === 0x75) {
        const low = unicodeEscape(line, i);
        if (low < 0xdc00 || low > 0xdfff) return -1;
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i += 6;
      }
      // NUL has no place in a PostgreSQL text value; a lone surrogate no UTF-8 spelling.
      if (code <= 0 || (code >= 0xd800 && code <= 0xdfff)) return -1;
      writeChar(out, code);
    } else {
      return -1;
    }
    run = i;
  }
}

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
 * Writes the COPY text row of `line` when it is an object whose keys are exactly `keys` (each column's name as a
 * JSON string), in that order, each with a string or null value: what json_object wrote for the archived columns.
 * Returns false, having written nothing, for any other line.
 */
export function transcodeLine(line: Buffer, keys: Buffer[], out: RowBuffer): boolean {
  const start = out.length;
  const fail = () => {
    out.length = start;
    return false;
  };
  let i = 0;
  const skip = () => {
    while (isSpace(line[i])) i += 1;
  };
  skip();
  if (line[i] !== 0x7b) return fail();
  i += 1;
  for (let c = 0; c < keys.length; c++) {
    const key = keys[c] as Buffer;
    skip();
    for (let k = 0; k < key.length; k++) if (line[i + k] !== key[k]) return fail();
    i += key.length;
    skip();
    if (line[i] !== 0x3a) return fail();
    i += 1;
    skip();
    if (c > 0) out.byte(0x09);
    if (line[i] === QUOTE) {
      i = transcodeString(line, i, out);
      if (i < 0) return fail();
    } else if (line[i] === 0x6e && line[i + 1] === 0x75 && line[i + 2] === 0x6c && line[i + 3] === 0x6c) {
      out.two(BACKSLASH, 0x4e);
      i += 4;
    } else {
      return fail();
    }
    skip();
    if (line[i] !== (c === keys.length - 1 ? 0x7d : 0x2c)) return fail();
    i += 1;
  }
  skip();
  if (i !== line.length || keys.length === 0) return fail();
  out.byte(0x0a);
  return true;
}
