// Hostile-input generators and response checks for the property tests in
// test/integration/hostile-inputs.test.ts.
//
// A hostile value is carried as JSON *text* (not a JS value): deeply nested values are built as
// strings ('['.repeat(n) + ']'.repeat(n)) because JSON.stringify of a 10,000-deep object may
// overflow the stack in the test itself, and some texts (1e999, -0, duplicate keys) do not
// survive a parse/stringify round trip. `renderBody` splices those texts into a valid base body.
import fc from 'fast-check';
import { call } from './api';

/** Embedded in every generated string: it must never come back in an error body. */
export const MARKER = 'Qz9hostileMARK';

/** A hostile value as JSON text; `text` is set for strings (so it can be appended to a valid one). */
export type Hostile = { cls: string; json: string; text?: string };
export type Path = (string | number)[];
/** `append`: the hostile string goes after the field's valid value (keeps '/', 'http://' prefixes). */
export type Sub = { path: Path; value: Hostile; append?: boolean };

/** A hostile value from a JS value (strings also keep their text, to be appended). */
export const hv = (cls: string, value: unknown): Hostile => ({ cls, json: JSON.stringify(value), ...(typeof value === 'string' ? { text: value } : {}) });
const mark = (s: string) => `${MARKER}${s}`;
const utf8Bytes = (s: string) => new TextEncoder().encode(s).byteLength;

// ---------------------------------------------------------------------------------------------
// One arbitrary per hostile value class.

const depth = fc.oneof(fc.constantFrom(100, 1000, 5000, 10_000), fc.integer({ min: 100, max: 10_000 }));

/** Arrays / objects / mixed nested 100–10,000 deep, built as text. */
export const deepNesting: fc.Arbitrary<Hostile> = fc
  .tuple(fc.constantFrom('array', 'object', 'mixed'), depth)
  .map(([shape, n]) => {
    if (shape === 'array') return { cls: `deep-array(${n})`, json: '['.repeat(n) + ']'.repeat(n) };
    if (shape === 'object') return { cls: `deep-object(${n})`, json: '{"a":'.repeat(n) + '1' + '}'.repeat(n) };
    // 8 bytes a level: keep it under the 64 KiB body caps.
    const m = Math.min(n, 6000);
    return { cls: `deep-mixed(${m})`, json: '{"a":['.repeat(m) + `"${MARKER}"` + ']}'.repeat(m) };
  });

/** Strings up to ~48 KB of encoded JSON (so most bodies stay under the 64 KiB cap). */
export const largeString: fc.Arbitrary<Hostile> = fc
  .tuple(fc.integer({ min: 1024, max: 48 * 1024 }), fc.constantFrom('a', 'é', '😀', '"', '\\', ' ', '\u202e', '<'))
  .map(([bytes, ch]) => {
    const per = utf8Bytes(JSON.stringify(ch)) - 2;
    const s = mark(ch.repeat(Math.max(1, Math.floor(bytes / per))));
    return hv(`large-string(${bytes}B,${JSON.stringify(ch)})`, s);
  });

const CONTROL = ['\u0001', '\u0007', '\b', '\t', '\n', '\r', '\u000b', '\u000c', '\u001b', '\u001f', '\u007f', '\u0085', '\u2028', '\u2029'];

/** NUL on its own: Postgres text and jsonb both refuse it. */
export const nulChars: fc.Arbitrary<Hostile> = fc
  .constantFrom('\u0000', mark('\u0000'), mark('a\u0000b'), mark('\u0000'.repeat(64)))
  .map((s) => hv('nul', s));

/** Mixed C0/C1 control characters and line/paragraph separators. */
export const controlChars: fc.Arbitrary<Hostile> = fc
  .array(fc.constantFrom(...CONTROL), { minLength: 1, maxLength: 24 })
  .map((cs) => hv('control-chars', mark(cs.join(''))));

/** Lone / reversed UTF-16 surrogates (sent escaped, as JSON.stringify writes them). */
export const loneSurrogates: fc.Arbitrary<Hostile> = fc
  .constantFrom('\ud800', '\udbff', '\udc00', '\udfff', '\udc00\ud800', 'a\ud83d', '\ud83db', '\ud83d'.repeat(100))
  .map((s) => hv('lone-surrogate', mark(s)));

/** Emoji, ZWJ sequences, RTL overrides, combining marks, BOM, non-characters, astral planes. */
export const unicode: fc.Arbitrary<Hostile> = fc.oneof(
  fc
    .constantFrom('😀', '👩‍👩‍👧‍👦', 'مرحبا بالعالم', '\u202eevil\u202c', 'שלום', '\ufeff', 'e\u0301\u0301\u0301\u0301', '𝕳𝖔𝖘𝖙𝖎𝖑𝖊', '\uffff\ufffe', '\u{10ffff}', 'Z̷̡̛͓̈́a̸̗͝l̵̰̓g̶̱̈o̷͎͐')
    .map((s) => hv('unicode', mark(s))),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).map((s) => hv('unicode-random', mark(s))),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).map((s) => hv('binary-random', mark(s))),
);

/** Empty and whitespace-only strings (no marker: they are the whole value). */
export const emptyish: fc.Arbitrary<Hostile> = fc.constantFrom('', ' ', '   ', '\t\n', '\u00a0').map((s) => hv('empty-string', s));

/** Huge, negative, fractional, overflowing and non-round-trippable numbers (as JSON text). */
export const hugeNumbers: fc.Arbitrary<Hostile> = fc
  .constantFrom(
    '2147483647',
    '2147483648',
    '-2147483649',
    '4294967296',
    '9007199254740992',
    '9007199254740993',
    '123456789012345678901234567890',
    '1e308',
    '-1e308',
    '1e999',
    '-1',
    '-0',
    '1.5',
    '0.1',
    '5e-324',
    '0',
  )
  .map((n) => ({ cls: `number(${n})`, json: n }));

/** Arrays, objects, null, booleans and numeric strings where something else is expected. */
export const wrongTypes: fc.Arbitrary<Hostile> = fc
  .constantFrom('[]', 'null', 'true', 'false', '[1,"x"]', '{"a":1}', '"123"', `["${MARKER}"]`, `{"${MARKER}":"${MARKER}"}`)
  .map((json) => ({ cls: `wrong-type(${json.replaceAll(MARKER, 'M')})`, json }));

export const emptyObject: fc.Arbitrary<Hostile> = fc.constant({ cls: 'empty-object', json: '{}' });

/** Records with 5,000-char keys (plain, with NUL, with a lone surrogate) and prototype keys. */
export const longKeys: fc.Arbitrary<Hostile> = fc
  .tuple(fc.constantFrom('plain', 'nul', 'surrogate'), fc.constantFrom('"v"', 'true', '1', '{}'))
  .map(([kind, v]) => {
    const body = 'k'.repeat(5000);
    const key = kind === 'plain' ? mark(body) : kind === 'nul' ? mark(`\u0000${body}`) : mark(`\ud800${body}`);
    return { cls: `long-key(${kind},${v})`, json: `{${JSON.stringify(key)}:${v}}` };
  });

export const prototypeKeys: fc.Arbitrary<Hostile> = fc
  .constantFrom('{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"polluted":true}}}', '{"a":1,"a":{"b":[]}}')
  .map((json) => ({ cls: `proto-keys(${json})`, json }));

export const HOSTILE_CLASSES = {
  deepNesting,
  largeString,
  nulChars,
  controlChars,
  loneSurrogates,
  unicode,
  emptyish,
  hugeNumbers,
  wrongTypes,
  emptyObject,
  longKeys,
  prototypeKeys,
} satisfies Record<string, fc.Arbitrary<Hostile>>;

/** Any hostile JSON value. */
export const hostileValue: fc.Arbitrary<Hostile> = fc.oneof(...Object.values(HOSTILE_CLASSES));

// ---------------------------------------------------------------------------------------------
// Substituting hostile values into a valid base body.

const key = (p: Path) => JSON.stringify(p);
const isPrefix = (a: Path, b: Path) => a.length < b.length && a.every((x, i) => x === b[i]);

function valueAt(base: unknown, path: Path): unknown {
  let v: unknown = base;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined;
  return v;
}

/** One substitution at `path`: replace the value, or (string field, string value) sometimes append to it. */
function substitution(base: unknown, path: Path, values: fc.Arbitrary<Hostile>): fc.Arbitrary<Sub> {
  const appendable = typeof valueAt(base, path) === 'string';
  return fc
    .tuple(values, appendable ? fc.boolean() : fc.constant(false))
    .map(([value, append]) => (append && value.text !== undefined ? { path, value, append: true } : { path, value }));
}

/**
 * Substitutions into the valid `base` body: mostly one field at a time, sometimes 2–4 fields at
 * once; `[]` (the whole body) when listed. In multi-field runs no chosen path contains another,
 * and `keepOne` (if given) is never fully covered, so a row written despite an error can still
 * be found by the tag those fields carry.
 */
export function substitutions(base: unknown, fields: Path[], opts: { values?: fc.Arbitrary<Hostile>; keepOne?: Path[] } = {}): fc.Arbitrary<Sub[]> {
  const { values = hostileValue, keepOne = [] } = opts;
  const one = fc.constantFrom(...fields).chain((path) => substitution(base, path, values).map((sub) => [sub]));
  const leaves = fields.filter((f) => f.length > 0);
  if (leaves.length < 2) return one;
  const several = fc
    .uniqueArray(fc.constantFrom(...leaves), { minLength: 2, maxLength: Math.min(4, leaves.length), selector: key })
    .filter((ps) => ps.every((a) => ps.every((b) => !isPrefix(a, b))))
    .filter((ps) => keepOne.length === 0 || keepOne.some((k) => !ps.some((p) => key(p) === key(k))))
    .chain((ps) => fc.tuple(...ps.map((p) => substitution(base, p, values))));
  return fc.oneof({ weight: 3, arbitrary: one }, { weight: 1, arbitrary: several });
}

/** JSON text of `base` with each substituted path replaced by (or appended with) its hostile value. */
export function renderBody(base: unknown, subs: Sub[]): string {
  const byPath = new Map(subs.map((s) => [key(s.path), s]));
  const render = (value: unknown, path: Path): string => {
    const sub = byPath.get(key(path));
    if (sub) return sub.append && typeof value === 'string' ? JSON.stringify(value + sub.value.text!) : sub.value.json;
    if (Array.isArray(value)) return `[${value.map((v, i) => render(v, [...path, i])).join(',')}]`;
    if (value !== null && typeof value === 'object') {
      return `{${Object.entries(value)
        .map(([k, v]) => `${JSON.stringify(k)}:${render(v, [...path, k])}`)
        .join(',')}}`;
    }
    return JSON.stringify(value);
  };
  return render(base, []);
}

export const describeSubs = (subs: Sub[]) =>
  subs.map((s) => `${s.path.length ? s.path.join('.') : '<body>'}${s.append ? '+=' : '='}${s.value.cls}`).join(', ');

// ---------------------------------------------------------------------------------------------
// Query-string hostility.

export type QHostile = { cls: string; render: (param: string) => string };

/** Percent-encodes UTF-8 and writes lone surrogates as their (invalid) WTF-8 bytes. */
export function pctEncode(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) {
      out += [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
    } else out += encodeURIComponent(ch);
  }
  return out;
}

const qValue = (h: Hostile): QHostile => ({ cls: h.cls, render: (p) => `${p}=${pctEncode(h.text ?? h.json)}` });

/** Values for query parameters: the body classes as text, plus URL-level junk. */
export const hostileQueryValue: fc.Arbitrary<QHostile> = fc.oneof(
  fc.oneof(largeString, nulChars, controlChars, loneSurrogates, unicode, emptyish, hugeNumbers, wrongTypes, longKeys).map(qValue),
  depth.map((n) => ({ cls: `deep-text(${n})`, render: (p: string) => `${p}=${'%5B'.repeat(n)}${'%5D'.repeat(n)}` })),
  fc
    .constantFrom('%', '%ZZ', '%00', `${MARKER}%00`, '%ED%A0%80', '%C0%AF', '%FF%FE', '+', '%2B1', '%0A1', '1%00', ' 1', '1 ', '0x10', '1_000', '１２')
    .map((raw) => ({ cls: `raw-query(${raw.replace(MARKER, 'M')})`, render: (p: string) => `${p}=${raw}` })),
  fc.constantFrom('no-value', 'repeated', 'bracket').map((kind) => ({
    cls: `query-shape(${kind})`,
    render: (p: string) => (kind === 'no-value' ? p : kind === 'repeated' ? `${p}=1&${p}=${MARKER}&${p}=2` : `${p}[]=1&${p}[a]=${MARKER}`),
  })),
);

/**
 * Hostile values for one query parameter at a time (2–4 at once in about a quarter of the runs).
 * `extra` adds values that only make sense for one parameter (timestamps, id spellings, enum cases).
 */
export function querySubstitutions(params: string[], extra: Record<string, fc.Arbitrary<QHostile>> = {}): fc.Arbitrary<{ param: string; value: QHostile }[]> {
  const valueFor = (param: string) => (extra[param] ? fc.oneof(hostileQueryValue, extra[param]) : hostileQueryValue);
  const one = fc.constantFrom(...params).chain((param) => valueFor(param).map((value) => [{ param, value }]));
  if (params.length < 2) return one;
  const several = fc
    .uniqueArray(fc.constantFrom(...params), { minLength: 2, maxLength: 4 })
    .chain((ps) => fc.tuple(...ps.map(valueFor)).map((vs) => ps.map((param, i) => ({ param, value: vs[i]! }))));
  return fc.oneof({ weight: 3, arbitrary: one }, { weight: 1, arbitrary: several });
}

/** A query string: each param's hostile value where substituted, else its valid base value. */
export function renderQuery(base: Record<string, string>, subs: { param: string; value: QHostile }[]): string {
  return Object.keys(base)
    .map((p) => subs.find((s) => s.param === p)?.value.render(p) ?? `${p}=${encodeURIComponent(base[p]!)}`)
    .join('&');
}

export const describeQuery = (subs: { param: string; value: QHostile }[]) => subs.map((s) => `${s.param}=${s.value.cls}`).join(', ');

// ---------------------------------------------------------------------------------------------
// Ids, timestamps, path segments and headers.

/** Near-miss spellings of a valid uuid `id`: each must be refused or read as exactly that id. */
export function uuidVariants(id: string): fc.Arbitrary<string> {
  const hex = id.replaceAll('-', '');
  return fc.constantFrom(
    id.toUpperCase(),
    `{${id}}`,
    `urn:uuid:${id}`,
    hex,
    ` ${id}`,
    `${id} `,
    `${id}\u0000`,
    `${id}${MARKER}`,
    id.slice(0, -1),
    `${id.slice(0, -1)}g`,
    `${id.slice(0, -1)}\uff10`,
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16)}`,
  );
}

/**
 * RFC 3339 texts at the edges of what a date parser and Postgres `timestamptz` accept: year 0
 * and 9999, ±23:59 offsets that move the instant out of range, leap days and seconds, lower-case
 * separators, nanoseconds, and the near misses around them.
 */
export const hostileTimestamp: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '0000-01-01T00:00:00Z',
    '0000-02-29T00:00:00Z',
    '0001-01-01T00:00:00Z',
    '0001-01-01T00:00:00+23:59',
    '0000-01-01T00:00:00-23:59',
    '9999-12-31T23:59:59Z',
    '9999-12-31T23:59:59-23:59',
    '9999-12-31T23:59:59.999999999Z',
    '1970-01-01T00:00:00Z',
    '1969-12-31T23:59:59.999Z',
    '2024-02-29T12:00:00+14:00',
    '2023-02-29T12:00:00Z',
    '2016-12-31T23:59:60Z',
    '2024-01-01t00:00:00z',
    '2024-01-01 00:00:00Z',
    '2024-01-01T00:00:00',
    '2024-01-01T00:00:00+2400',
    '2024-01-01T00:00:00+24:00',
    '2024-01-01T24:00:00Z',
    '+275760-09-13T00:00:00Z',
    '-000001-01-01T00:00:00Z',
    '2024-13-01T00:00:00Z',
    'infinity',
    '-infinity',
    'epoch',
    'now',
    '1700000000',
  ),
  fc
    .tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 31 }), fc.integer({ min: -1439, max: 1439 }))
    .map(([y, mo, d, off]) => {
      const pad = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0');
      const zone = `${off < 0 ? '-' : '+'}${pad(Math.trunc(off / 60))}:${pad(off % 60)}`;
      return `${pad(y, 4)}-${pad(mo)}-${pad(d)}T12:34:56.789${zone}`;
    }),
);

/** A raw text as a query value: pctEncode'd, the way a client would send it. */
export const queryText = (cls: string, text: string): QHostile => ({ cls, render: (p) => `${p}=${pctEncode(text)}` });

export type Segment = { cls: string; raw: string };

/**
 * Hostile path segments, already percent-encoded. Never empty and never a dot segment: the URL
 * parser would fold those into another path before the Worker sees it.
 */
export const hostilePathSegment: fc.Arbitrary<Segment> = fc
  .oneof(
    fc.oneof(largeString, nulChars, controlChars, loneSurrogates, unicode, hugeNumbers, wrongTypes, longKeys).map((h) => ({ cls: h.cls, raw: pctEncode(h.text ?? h.json) })),
    fc
      .constantFrom('%', '%ZZ', '%00', `${MARKER}%00`, '%ED%A0%80', '%C0%AF', '%FF%FE', '%2F', `${MARKER}%2Fx`, '%5C', ';x=1', '%3B', '%25', '%2525', '%3F%23', '~', '*', `${MARKER}%2E%2E%2F`)
      .map((raw) => ({ cls: `raw-path(${raw.replace(MARKER, 'M')})`, raw })),
  )
  .filter((s) => s.raw !== '' && !/^(\.|%2e){1,2}$/i.test(s.raw));

/**
 * A header value a fetch client can send: ASCII, with NUL, CR and LF (which no HTTP stack lets
 * through) written as `?`, and every non-ASCII byte of the UTF-8 text (lone surrogates as their
 * WTF-8 bytes) percent-escaped, as a client that encodes its headers would send them. (workerd
 * would UTF-8-encode non-ASCII values itself, warning on every request.) Leading and trailing
 * whitespace is trimmed by every fetch implementation, so it may vanish.
 */
export function headerValue(text: string): string {
  const bytes: number[] = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else bytes.push(...new TextEncoder().encode(ch));
  }
  return bytes.map((b) => (b === 0 || b === 10 || b === 13 ? '?' : b >= 0x80 ? `%${b.toString(16).toUpperCase()}` : String.fromCharCode(b))).join('');
}

/** Hostile header values (ASCII, see `headerValue`). */
export const hostileHeaderValue: fc.Arbitrary<{ cls: string; value: string }> = fc
  .oneof(largeString, nulChars, controlChars, loneSurrogates, unicode, emptyish, hugeNumbers, wrongTypes, longKeys)
  .map((h) => ({ cls: h.cls, value: headerValue(h.text ?? h.json) }));

// ---------------------------------------------------------------------------------------------
// Sending and judging responses.

export type Reply = { status: number; text: string; json: unknown };

export async function send(method: string, path: string, opts: { token?: string; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.raw !== undefined) headers['Content-Type'] = 'application/json';
  const res = await call(method, path, { token: opts.token, raw: opts.raw, headers });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

export const MAX_ERROR_BYTES = 2048;

/** Internal text that must never reach a caller: driver, parser, runtime and stack-trace wording. */
export const INTERNAL_TEXT: RegExp[] = [
  /violates/i,
  /syntax/i,
  /invalid input syntax/i,
  /maximum call stack/i,
  /stack depth/i,
  /unsupported unicode/i,
  /byte sequence/i,
  /surrogate must (not )?follow/i, // Postgres jsonb; our own fixed text names surrogates too
  /out of range/i,
  /\bat \S+ \(|\n\s+at \S|\bat \S+:\d+:\d+/,
  /\b[A-Za-z]*Error:/,
  /\brelation\b/i,
  /\bcolumn\b/i,
  /\bconstraint\b/i,
  /duplicate key/i,
  /failed query/i,
  /\b(select|insert into|update \w+ set|delete from)\b/i,
  /\bparams:/i,
  /unexpected (token|end|character|non-whitespace)/i,
  /not valid JSON/i,
  /JSON at position/i,
  /bad control character/i,
  /neon|drizzle|postgres|\bpg\b|node_modules|\.ts:\d|\.js:\d|workerd/i,
  /cannot read propert|undefined is not|is not a function|is not iterable/i,
];

/** Every string in a JSON value (keys and leaves), without recursion limits blowing up. */
function strings(value: unknown, out: string[] = [], depthLeft = 200): string[] {
  if (depthLeft === 0) return out;
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => strings(v, out, depthLeft - 1));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      strings(v, out, depthLeft - 1);
    }
  }
  return out;
}

/** Problems with a response to a hostile request; empty when it is acceptable. */
export function problemsOf(reply: Reply): string[] {
  const problems: string[] = [];
  if (reply.status >= 500) problems.push(`status ${reply.status} (must be < 500)`);
  if (reply.status < 400) return problems;
  const bytes = utf8Bytes(reply.text);
  if (bytes >= MAX_ERROR_BYTES) problems.push(`error body is ${bytes} bytes (must be < ${MAX_ERROR_BYTES})`);
  const body = reply.json as { error?: unknown } | undefined;
  if (!body || typeof body !== 'object' || Array.isArray(body) || typeof body.error !== 'string') {
    problems.push('error body is not a JSON object with a string `error`');
  }
  // A JSON-RPC error must carry the request's `id` (JSON-RPC 2.0 §5): the one echo that is allowed.
  const rpcError = body && typeof body === 'object' && (body as { jsonrpc?: unknown }).jsonrpc === '2.0';
  const echoable = rpcError ? JSON.stringify({ ...(body as object), id: null }) : reply.text;
  if (echoable.toLowerCase().includes(MARKER.toLowerCase())) problems.push('error body echoes the generated input (marker found)');
  const texts = body && typeof body === 'object' ? strings(body) : [reply.text];
  for (const re of INTERNAL_TEXT) {
    const hit = texts.find((t) => re.test(t));
    if (hit !== undefined) problems.push(`internal text ${re} in ${JSON.stringify(excerpt(hit, 160))}`);
  }
  return problems;
}

export function excerpt(text: string, max = 300): string {
  const clean = text.replaceAll(MARKER, '<MARKER>');
  return clean.length > max ? `${clean.slice(0, max)}…(${clean.length} chars)` : clean;
}

export function preview(h: Hostile, max = 80): string {
  return excerpt(h.json, max);
}
