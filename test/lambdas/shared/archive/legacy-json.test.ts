import { describe, expect, it } from 'vitest';
import { LegacyFormatError } from '../../../../lambdas/shared/archive/legacy-format.js';
import { parseLegacyJson } from '../../../../lambdas/shared/archive/legacy-json.js';
import { convertLegacyRow } from '../../../../lambdas/shared/archive/legacy-rows.js';

describe('legacy JSON parsing', () => {
  it('keep number literals as their source text', () => {
    // Act
    const value = parseLegacyJson('[9007199254740993, -0, 1.50, 1e-05, 2E+300, NaN, Infinity, -Infinity]');

    // Assess
    expect(value.kind === 'array' && value.items).toEqual(
      ['9007199254740993', '-0', '1.50', '1e-05', '2E+300', 'NaN', 'Infinity', '-Infinity'].map((text) => ({
        kind: 'number',
        text,
      })),
    );
  });

  it('decode every escape, surrogate pairs, and raw U+2028/U+2029', () => {
    // Act
    const value = parseLegacyJson('"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00😀\u2028\u2029\\u2028"');

    // Assess
    expect(value).toEqual({ kind: 'string', value: '"\\/\b\f\n\r\té😀😀\u2028\u2029\u2028' });
  });

  it.each([
    ['{"name": "Jane Secret", "ok": tru}', 30],
    ['{"name": "Jane Secret",}', 23],
    ["{'name': 'Jane Secret'}", 1],
    ['{"name": "Jane Secret"', 22],
    ['{"name": "Jane Secret"} x', 24],
    ['{"name": "Jane\tSecret"}', 14],
    ['{"name": "Jane Secret\\x"}', 21],
    ['{"name": "Jane Secret\\ud83d"}', 27],
    ['{"name": "Jane Secret\\ude00"}', 21],
    ['{"name": "Jane Secret\\u12"}', 21],
    ['{"n": 012, "name": "Jane Secret"}', 7],
    ['{"n": +1, "name": "Jane Secret"}', 6],
    ['{"n": .5, "name": "Jane Secret"}', 6],
    ['{"n": nan, "name": "Jane Secret"}', 6],
    ['{"n": 1., "name": "Jane Secret"}', 7],
    ['{"é": "Jane Secret" "x": 1}', 21],
    ['', 0],
  ])('reject %j at byte %i without quoting it', (line, byte) => {
    // Act
    const attempt = () => convertLegacyRow(line, () => undefined);

    // Assess
    expect(attempt).toThrow(LegacyFormatError);
    expect(attempt).toThrow(new RegExp(`^malformed legacy JSON at byte ${byte}: expected `));
    expect(attempt).not.toThrow(/Jane|Secret/);
  });

  it('reject a lone surrogate character and runaway nesting', () => {
    expect(() => parseLegacyJson('"\ud800"')).toThrow(/expected a complete surrogate pair/);
    expect(() => parseLegacyJson(`${'['.repeat(2000)}${']'.repeat(2000)}`)).toThrow(
      /nesting of at most 1000/,
    );
  });
});
