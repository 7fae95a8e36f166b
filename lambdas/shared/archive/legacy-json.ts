import { LegacyFormatError } from './legacy-format.js';

/**
 * Lossless JSON for the lines of the predecessor tool's data files (see legacy-format.ts): JSON.parse would round
 * big integers and refuse the NaN and infinity tokens Python writes. Pure: no I/O.
 */

/**
 * A parsed legacy JSON value. Numbers keep their source text (JSON.parse rounds past 2^53 and rejects Python's
 * `NaN`/`Infinity`/`-Infinity`, which are kept as number tokens). Arrays and objects keep their exact source text.
 */
export type LegacyJsonValue =
  | { kind: 'null' }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'number'; text: string }
  | { kind: 'string'; value: string }
  | { kind: 'array'; items: LegacyJsonValue[]; source: string }
  | { kind: 'object'; entries: [string, LegacyJsonValue][]; source: string };

// PostgreSQL arrays have at most 6 dimensions and the tool wrote jsonb as strings: deeper nesting is not a row.
const MAX_DEPTH = 1000;
/**
 * Values one line may hold, array elements and members counted: parsing keeps each as an object, some 150 bytes a value
 * all told, so a line of 16 MiB of `1,` (8 million elements, a few KiB of gzip) took 1.3 GB, past the restore function's
 * 1,024 MB. With a line of MAX_LEGACY_LINE_BYTES (legacy-rows.ts) beside them, half a million took 800 MB. A row has at
 * most 1,600 columns: this leaves room for arrays of hundreds of thousands of elements.
 */
export const MAX_LEGACY_VALUES = 500_000;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

class LegacyJsonParser {
  private pos = 0;
  private values = 0;

  constructor(private readonly text: string) {}

  parseDocument(): LegacyJsonValue {
    const value = this.value(0);
    this.skipWhitespace();
    if (this.pos !== this.text.length) this.fail('the end of the line after the value');
    return value;
  }

  /** Positions are reported in UTF-8 bytes, as a reader of the file counts them; the input itself is never quoted. */
  private fail(expected: string): never {
    const found = this.pos >= this.text.length ? 'the end of the line' : 'something else';
    const byte = Buffer.byteLength(this.text.slice(0, this.pos), 'utf8');
    throw new LegacyFormatError(
      `malformed legacy JSON at byte ${byte}: expected ${expected}, found ${found}`,
    );
  }

  private skipWhitespace(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.pos++;
    }
  }

  private word(word: string): boolean {
    if (!this.text.startsWith(word, this.pos)) return false;
    this.pos += word.length;
    return true;
  }

  private value(depth: number): LegacyJsonValue {
    if (++this.values > MAX_LEGACY_VALUES)
      throw new LegacyFormatError(
        `it holds more than ${MAX_LEGACY_VALUES} values (array elements and members counted), more than restore converts within its memory`,
      );
    this.skipWhitespace();
    const c = this.text[this.pos];
    if (c === '{') return this.object(depth + 1);
    if (c === '[') return this.array(depth + 1);
    if (c === '"') return { kind: 'string', value: this.string() };
    if (this.word('true')) return { kind: 'boolean', value: true };
    if (this.word('false')) return { kind: 'boolean', value: false };
    if (this.word('null')) return { kind: 'null' };
    // Python's json.dumps writes float NaN and infinities as these bare tokens.
    for (const token of ['NaN', 'Infinity', '-Infinity']) {
      if (this.word(token)) return { kind: 'number', text: token };
    }
    NUMBER.lastIndex = this.pos;
    const number = NUMBER.exec(this.text);
    if (number === null) this.fail('a JSON value');
    this.pos += number[0].length;
    return { kind: 'number', text: number[0] };
  }

  private array(depth: number): LegacyJsonValue {
    if (depth > MAX_DEPTH) this.fail(`nesting of at most ${MAX_DEPTH} levels`);
    const start = this.pos++;
    const items: LegacyJsonValue[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
    } else {
      for (;;) {
        items.push(this.value(depth));
        this.skipWhitespace();
        const c = this.text[this.pos++];
        if (c === ']') break;
        if (c !== ',') {
          this.pos--;
          this.fail("',' or ']' in an array");
        }
      }
    }
    return { kind: 'array', items, source: this.text.slice(start, this.pos) };
  }

  private object(depth: number): LegacyJsonValue {
    if (depth > MAX_DEPTH) this.fail(`nesting of at most ${MAX_DEPTH} levels`);
    const start = this.pos++;
    const entries: [string, LegacyJsonValue][] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
    } else {
      for (;;) {
        this.skipWhitespace();
        if (this.text[this.pos] !== '"') this.fail('a double-quoted member name');
        const key = this.string();
        this.skipWhitespace();
        if (this.text[this.pos] !== ':') this.fail("':' after a member name");
        this.pos++;
        entries.push([key, this.value(depth)]);
        this.skipWhitespace();
        const c = this.text[this.pos++];
        if (c === '}') break;
        if (c !== ',') {
          this.pos--;
          this.fail("',' or '}' in an object");
        }
      }
    }
    return { kind: 'object', entries, source: this.text.slice(start, this.pos) };
  }

  /** At the opening quote; returns the decoded string. Raw U+2028/U+2029 are ordinary characters in JSON. */
  private string(): string {
    const text = this.text;
    let out = '';
    let run = ++this.pos;
    for (;;) {
      if (this.pos >= text.length) this.fail("'\"' closing the string");
      const c = text.charCodeAt(this.pos);
      if (c === 0x22) {
        out += text.slice(run, this.pos++);
        return out;
      }
      if (c === 0x5c) {
        out += text.slice(run, this.pos);
        out += this.escape();
        run = this.pos;
      } else if (c < 0x20) {
        this.fail('a control character in a string to be escaped');
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const next = text.charCodeAt(this.pos + 1);
        if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) this.fail('a complete surrogate pair');
        this.pos += 2;
      } else {
        this.pos++;
      }
    }
  }

  /** At the backslash; consumes the escape (a surrogate pair as one) and returns its characters. */
  private escape(): string {
    const letter = this.text[this.pos + 1] ?? '';
    const simple = ESCAPES[letter];
    if (simple !== undefined) {
      this.pos += 2;
      return simple;
    }
    if (letter !== 'u') return this.fail('a valid escape sequence');
    const unit = this.unicodeEscape(this.pos);
    if (unit >= 0xdc00 && unit <= 0xdfff) this.fail('a high surrogate before a low surrogate');
    if (unit < 0xd800 || unit > 0xdbff) {
      this.pos += 6;
      return String.fromCharCode(unit);
    }
    // PostgreSQL text cannot hold a lone surrogate: a high one must be followed by an escaped low one.
    const low = this.text.startsWith('\\u', this.pos + 6) ? this.unicodeEscape(this.pos + 6) : -1;
    if (!(low >= 0xdc00 && low <= 0xdfff)) {
      this.pos += 6;
      this.fail('an escaped low surrogate after a high surrogate');
    }
    this.pos += 12;
    return String.fromCharCode(unit, low);
  }

  private unicodeEscape(at: number): number {
    const hex = this.text.slice(at + 2, at + 6);
    if (!HEX4.test(hex)) {
      this.pos = at;
      this.fail('four hex digits after \\u');
    }
    return Number.parseInt(hex, 16);
  }
}

/**
 * Parses one JSON text as Python's json module wrote it: standard JSON plus bare `NaN`, `Infinity`, `-Infinity`.
 * @throws LegacyFormatError naming the byte offset and what was expected, never the input.
 */
export function parseLegacyJson(text: string): LegacyJsonValue {
  return new LegacyJsonParser(text).parseDocument();
}
