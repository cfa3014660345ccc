/**
 * The edge's one gate for JSON text, request bodies and agent responses alike.
 *
 * `JSON.parse` itself copes with any depth, but what follows does not: workerd's `JSON.stringify`
 * overflows its stack at a few thousand levels (so a stored value would break every later read of
 * its row), and Postgres refuses deep jsonb with a stack-depth error. Postgres also cannot store
 * U+0000 (in text or jsonb) nor an unpaired surrogate escape in jsonb. Anything that would fail
 * later is refused here, before it is parsed, recorded or dispatched.
 */

/** Stateless for whole-buffer decodes (invalid bytes become U+FFFD): one per isolate. */
export const utf8 = new TextDecoder();

/** Deepest array/object nesting accepted anywhere. Real A2A messages and agent cards use < 10. */
export const MAX_JSON_DEPTH = 64;

export type JsonTextProblem = 'too_deep' | 'nul' | 'lone_surrogate';

/** Fixed caller-facing texts for each problem (never the offending value). */
export const JSON_PROBLEM_TEXT: Record<JsonTextProblem, string> = {
  too_deep: `JSON nested too deeply (at most ${MAX_JSON_DEPTH} levels)`,
  nul: 'JSON strings must not contain NUL (\\u0000)',
  lone_surrogate: 'JSON strings must not contain unpaired UTF-16 surrogate escapes',
};

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const LOWER_U = 0x75;

/**
 * One linear pass over (possibly invalid) JSON text: nesting depth outside strings, and the
 * `\uXXXX` escapes Postgres cannot store inside them. Raw NULs and raw lone surrogates need no
 * check: the former are invalid JSON, the latter cannot survive UTF-8 decoding of a body.
 */
export function findJsonTextProblem(text: string, maxDepth = MAX_JSON_DEPTH): JsonTextProblem | null {
  const checkEscapes = text.includes('\\u');
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === QUOTE) inString = false;
      else if (ch === BACKSLASH) {
        if (checkEscapes && text.charCodeAt(i + 1) === LOWER_U) {
          const unit = hexUnit(text, i + 2);
          if (unit === 0) return 'nul';
          if (isLowSurrogate(unit)) return 'lone_surrogate';
          if (isHighSurrogate(unit)) {
            const pairsWith = text.charCodeAt(i + 6) === BACKSLASH && text.charCodeAt(i + 7) === LOWER_U ? hexUnit(text, i + 8) : -1;
            if (!isLowSurrogate(pairsWith)) return 'lone_surrogate';
            i += 6; // the low half is consumed with the high one
          }
        }
        i++; // the escaped character (a quote or backslash must not toggle anything)
      }
      continue;
    }
    if (ch === QUOTE) inString = true;
    else if (ch === OPEN_BRACE || ch === OPEN_BRACKET) {
      if (++depth > maxDepth) return 'too_deep';
    } else if (ch === CLOSE_BRACE || ch === CLOSE_BRACKET) depth--;
  }
  return null;
}

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number) => unit >= 0xdc00 && unit <= 0xdfff;

function hexUnit(text: string, at: number): number {
  const hex = text.slice(at, at + 4);
  return /^[0-9a-fA-F]{4}$/.test(hex) ? parseInt(hex, 16) : -1;
}

export type ParsedJson = { ok: true; value: unknown } | { ok: false; problem: JsonTextProblem | 'invalid' };

/** Parses JSON text that passes the gate; never throws. */
export function parseJsonText(text: string): ParsedJson {
  const problem = findJsonTextProblem(text);
  if (problem) return { ok: false, problem };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, problem: 'invalid' };
  }
}

/**
 * JSON we did not write ourselves but store (an agent's response): the parsed value, or null when
 * it is empty, not JSON, or not storable. The caller still receives the agent's bytes unchanged.
 */
export function parseStorableJson(bytes: Uint8Array): unknown {
  if (bytes.byteLength === 0) return null;
  const parsed = parseJsonText(utf8.decode(bytes));
  return parsed.ok ? parsed.value : null;
}

/** Stand-in for a stored value that predates the gate and would break a read if rendered. */
export const UNREADABLE_STORED_JSON = Object.freeze({ omitted: 'stored value exceeds the JSON limits' });

/**
 * Reads a jsonb column selected as text (see `storedJson` in db/json-columns.ts). A row stored
 * before the gate existed must never turn every read of its feed into a 500.
 */
export function readStoredJson(text: unknown): unknown {
  if (text === null || text === undefined) return null;
  if (typeof text !== 'string') return text;
  const parsed = parseJsonText(text);
  return parsed.ok ? parsed.value : UNREADABLE_STORED_JSON;
}
