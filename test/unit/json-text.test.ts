import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findJsonTextProblem, MAX_JSON_DEPTH, parseStorableJson, readStoredJson, UNREADABLE_STORED_JSON } from '../../src/lib/json-text';

/** Reference: what Postgres and the renderer would choke on, computed on the parsed value. */
function expectedProblem(value: unknown, depth = 0): string | null {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return 'nul';
    return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value) ? 'lone_surrogate' : null;
  }
  if (value === null || typeof value !== 'object') return null;
  if (depth + 1 > MAX_JSON_DEPTH) return 'too_deep';
  const entries = Array.isArray(value) ? value.map((v) => [null, v] as const) : Object.entries(value);
  for (const [key, v] of entries) {
    const problem = (key !== null ? expectedProblem(key, depth) : null) ?? expectedProblem(v, depth + 1);
    if (problem) return problem;
  }
  return null;
}

const nasty = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('\u0000', 'a\uD800', '\uDC00b', '\\u0000', '"]}[{', '😀'));

describe('findJsonTextProblem', () => {
  it('agrees with a walk of the parsed value for arbitrary JSON (keys and strings with any code unit)', () => {
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, nasty, fc.integer(), fc.constant(null), fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(nasty, tie('node'), { maxKeys: 3 })),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        const problem = findJsonTextProblem(JSON.stringify(v));
        // Depth and string problems can both be present; the scanner reports whichever comes first.
        expect(problem === null).toBe(expectedProblem(v) === null);
      }),
      { numRuns: 500 },
    );
  });

  it('counts nesting, not brackets inside strings', () => {
    const nest = (n: number) => '['.repeat(n) + ']'.repeat(n);
    expect(findJsonTextProblem(nest(MAX_JSON_DEPTH))).toBeNull();
    expect(findJsonTextProblem(nest(MAX_JSON_DEPTH + 1))).toBe('too_deep');
    expect(findJsonTextProblem(`["${'['.repeat(1000)}"]`)).toBeNull();
    expect(findJsonTextProblem(`["\\"${'['.repeat(1000)}"]`)).toBeNull();
    expect(findJsonTextProblem('{"a":' + '{"a":'.repeat(70) + '1' + '}'.repeat(71))).toBe('too_deep');
  });

  it('any mix of arrays and objects: refused exactly when deeper than the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 200 }), (kinds) => {
        const text = kinds.map((obj) => (obj ? '{"k":' : '[')).join('') + '0' + [...kinds].reverse().map((obj) => (obj ? '}' : ']')).join('');
        expect(findJsonTextProblem(text)).toBe(kinds.length > MAX_JSON_DEPTH ? 'too_deep' : null);
      }),
    );
  });

  it('finds NUL and unpaired surrogate escapes, and only real ones', () => {
    expect(findJsonTextProblem('["\\u0000"]')).toBe('nul');
    expect(findJsonTextProblem('{"\\u0000":1}')).toBe('nul');
    expect(findJsonTextProblem('["\\\\u0000"]')).toBeNull(); // an escaped backslash, then text
    expect(findJsonTextProblem('["\\ud83d\\ude00"]')).toBeNull();
    expect(findJsonTextProblem('["\\ud83d"]')).toBe('lone_surrogate');
    expect(findJsonTextProblem('["\\ude00"]')).toBe('lone_surrogate');
    expect(findJsonTextProblem('["\\ud83dx"]')).toBe('lone_surrogate');
  });
});

describe('stored and foreign JSON', () => {
  it('an agent response that cannot be stored is kept out of the row, not the reply', () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    expect(parseStorableJson(bytes('{"ok":1}'))).toEqual({ ok: 1 });
    expect(parseStorableJson(bytes('['.repeat(5000) + ']'.repeat(5000)))).toBeNull();
    expect(parseStorableJson(bytes('{"t":"\\u0000"}'))).toBeNull();
    expect(parseStorableJson(bytes('not json'))).toBeNull();
    expect(parseStorableJson(new Uint8Array())).toBeNull();
  });

  it('a stored value past the limits reads back as a small marker', () => {
    expect(readStoredJson(null)).toBeNull();
    expect(readStoredJson('{"a":[1]}')).toEqual({ a: [1] });
    expect(readStoredJson('['.repeat(8000) + ']'.repeat(8000))).toBe(UNREADABLE_STORED_JSON);
  });
});
