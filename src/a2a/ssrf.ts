/**
 * SSRF guard for agent URLs: the control plane POSTs to these, so a caller must
 * not be able to point one at loopback, the private network or cloud metadata.
 *
 * Known gap: ordinary hostnames pass. Workers cannot resolve DNS before fetch,
 * so a name that resolves (or rebinds) to an internal address is not caught
 * here; this only stops literal addresses and the reserved name `localhost`.
 * Closing it needs resolve-then-recheck (e.g. DNS over HTTPS) or an egress
 * proxy, so treat this as a first layer, not the whole defence.
 */

export type UrlPolicy = {
  /** allow RFC1918 10/8, 172.16/12, 192.168/16 and IPv6 ULA fd00::/8 (a private-network deployment opted in) */
  allowPrivate: boolean;
  /** allow loopback 127/8, ::1 and the hostname `localhost` (explicit dev mode only) */
  allowLoopback: boolean;
};

export type UrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

// Fixed texts: a reason never carries any part of the caller's input.
export const REASONS = {
  invalid: 'url is not valid',
  scheme: 'scheme must be http or https',
  noHost: 'url must have a host',
  credentials: 'url must not contain credentials',
  unspecified: 'host is an unspecified address',
  loopback: 'host is a loopback address',
  private: 'host is a private address',
  linkLocal: 'host is link-local',
  multicast: 'host is a multicast address',
  reserved: 'host is in a reserved range',
} as const;

type Kind = 'unspecified' | 'loopback' | 'private' | 'linkLocal' | 'multicast' | 'reserved';

export function checkAgentUrl(raw: string, policy: UrlPolicy): UrlCheck {
  // The URL parser silently drops tabs and newlines, so what was checked and stored could differ
  // from what was sent; control characters have no business in an agent URL at all.
  if (/[\u0000-\u001f\u007f]/.test(raw)) return { ok: false, reason: REASONS.invalid };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: REASONS.invalid };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, reason: REASONS.scheme };
  }
  if (url.username !== '' || url.password !== '') {
    return { ok: false, reason: REASONS.credentials };
  }
  const reason = hostBlockReason(url.hostname, policy);
  // Callers must fetch `url` (the parsed form), never `raw`, so the checked
  // host is the one that is contacted.
  return reason === null ? { ok: true, url } : { ok: false, reason };
}

/**
 * Reason to refuse a URL hostname, or null if it may be contacted.
 * Does not trust the runtime to have canonicalised the host: workerd's legacy
 * URL class (compatibility dates before `url_standard`) leaves `0x7f.1`,
 * `2130706433` or `127.0.0.1.` as written and mangles bracketed IPv6.
 */
export function hostBlockReason(hostname: string, policy: UrlPolicy): string | null {
  const host = hostname.toLowerCase();
  let kind: Kind | null;
  if (host.startsWith('[')) {
    const v6 = host.endsWith(']') ? parseIPv6(host.slice(1, -1)) : null;
    if (v6 === null) return REASONS.invalid;
    kind = classifyIPv6(v6);
  } else {
    // Resolvers treat `localhost.` and `127.0.0.1.` as the unqualified name.
    const name = host.replace(/\.+$/, '');
    if (name === '') return REASONS.noHost;
    // Characters a WHATWG parser would have decoded or rejected; seeing one
    // means the host was not canonicalised and cannot be reasoned about.
    if (/[%:[\]\\/@\s]/.test(name)) return REASONS.invalid;
    const last = name.slice(name.lastIndexOf('.') + 1);
    if (/^(\d+|0x[0-9a-f]*)$/.test(last)) {
      // WHATWG: a host whose last label is numeric is an IPv4 address or invalid.
      const v4 = parseIPv4(name);
      if (v4 === null) return REASONS.invalid;
      kind = classifyIPv4(v4);
    } else {
      kind = name === 'localhost' || name.endsWith('.localhost') ? 'loopback' : null;
    }
  }
  if (kind === null) return null;
  if (kind === 'loopback' && policy.allowLoopback) return null;
  if (kind === 'private' && policy.allowPrivate) return null;
  return REASONS[kind];
}

// ---------------------------------------------------------------- IPv4

/** WHATWG IPv4 parser: 1-4 parts, each decimal, 0-octal or 0x-hex; the last part fills the remaining bytes. */
function parseIPv4(host: string): number | null {
  const parts = host.split('.');
  if (parts.length > 4) return null;
  const nums: number[] = [];
  for (const part of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/.test(part)) n = part.length === 2 ? 0 : parseInt(part.slice(2), 16);
    else if (/^0[0-7]+$/.test(part)) n = parseInt(part.slice(1), 8);
    else if (/^(0|[1-9]\d*)$/.test(part)) n = parseInt(part, 10);
    else return null;
    nums.push(n);
  }
  const last = nums.pop() as number;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return null;
  return nums.reduce((acc, n, i) => acc + n * 256 ** (3 - i), 0) + last;
}

const v4 = (dotted: string, bits: number, kind: Kind) => {
  const base = parseIPv4(dotted) as number;
  const size = 2 ** (32 - bits);
  return { start: base, end: base + size - 1, kind };
};

// IANA special-purpose registry, minus the globally reachable entries.
const V4_RANGES = [
  v4('0.0.0.0', 8, 'unspecified'), // Linux connects 0.0.0.0 to the local host
  v4('10.0.0.0', 8, 'private'),
  v4('100.64.0.0', 10, 'reserved'), // CGNAT: the carrier's internal network
  v4('127.0.0.0', 8, 'loopback'),
  v4('169.254.0.0', 16, 'linkLocal'), // includes cloud metadata 169.254.169.254
  v4('172.16.0.0', 12, 'private'),
  v4('192.0.0.0', 24, 'reserved'), // IETF protocol assignments
  v4('192.0.2.0', 24, 'reserved'), // documentation
  v4('192.88.99.0', 24, 'reserved'), // deprecated 6to4 relay anycast
  v4('192.168.0.0', 16, 'private'),
  v4('198.18.0.0', 15, 'reserved'), // benchmarking
  v4('198.51.100.0', 24, 'reserved'), // documentation
  v4('203.0.113.0', 24, 'reserved'), // documentation
  v4('224.0.0.0', 4, 'multicast'),
  v4('240.0.0.0', 4, 'reserved'), // future use, includes broadcast 255.255.255.255
];

function classifyIPv4(ip: number): Kind | null {
  return V4_RANGES.find((r) => ip >= r.start && ip <= r.end)?.kind ?? null;
}

// ---------------------------------------------------------------- IPv6

/** Parses an unbracketed IPv6 literal (optional dotted-quad tail, optional zone id) into a 128-bit value. */
function parseIPv6(text: string): bigint | null {
  // A zone only picks the interface; the address is what gets classified.
  const addr = text.split('%')[0] as string;
  const [headText = '', tailText, extra] = addr.split('::');
  if (extra !== undefined) return null; // more than one '::'
  const compressed = tailText !== undefined;
  // A dotted-quad tail is only legal as the very last 32 bits.
  const groups = (s: string, dottedTail: boolean): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (const [i, p] of parts.entries()) {
      if (dottedTail && i === parts.length - 1 && p.includes('.')) {
        if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(p)) return null;
        const q = p.split('.').map(Number);
        if (q.some((n) => n > 255)) return null;
        out.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!);
      } else if (/^[0-9a-f]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else return null;
    }
    return out;
  };
  const head = groups(headText, !compressed);
  const tail = compressed ? groups(tailText, true) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (compressed ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

const v6 = (hex: string, bits: number) => ({
  base: parseIPv6(hex) as bigint,
  shift: BigInt(128 - bits),
});
const inV6 = (ip: bigint, r: { base: bigint; shift: bigint }) => ip >> r.shift === r.base >> r.shift;

// Prefixes whose low bits carry an IPv4 address that the packet is (or can be)
// delivered to, so `[::ffff:127.0.0.1]` must count as 127.0.0.1.
const EMBEDS_V4_LOW32 = [
  v6('::ffff:0:0', 96), // IPv4-mapped
  v6('::ffff:0:0:0', 96), // IPv4-translated (SIIT)
  v6('64:ff9b::', 96), // NAT64 well-known prefix
  v6('::', 96), // IPv4-compatible (deprecated, still parsed by stacks)
];
const SIX_TO_FOUR = v6('2002::', 16); // IPv4 in bits 16-48

const V6_RANGES: { range: { base: bigint; shift: bigint }; kind: Kind }[] = [
  { range: v6('fd00::', 8), kind: 'private' }, // ULA, locally assigned half only
  { range: v6('fe80::', 10), kind: 'linkLocal' },
  { range: v6('ff00::', 8), kind: 'multicast' },
  { range: v6('2001::', 23), kind: 'reserved' }, // IETF protocol assignments (Teredo, ORCHID...)
  { range: v6('2001:db8::', 32), kind: 'reserved' }, // documentation
  { range: v6('3fff::', 20), kind: 'reserved' }, // documentation (RFC 9637)
];
const GLOBAL_UNICAST = v6('2000::', 3);

function classifyIPv6(ip: bigint): Kind | null {
  // :: itself falls in the IPv4-compatible block as 0.0.0.0; ::1 must not.
  if (ip === 1n) return 'loopback';
  if (EMBEDS_V4_LOW32.some((r) => inV6(ip, r))) return classifyIPv4(Number(ip & 0xffffffffn));
  if (inV6(ip, SIX_TO_FOUR)) return classifyIPv4(Number((ip >> 80n) & 0xffffffffn));
  const hit = V6_RANGES.find((r) => inV6(ip, r.range));
  if (hit) return hit.kind;
  // Everything outside 2000::/3 is special-purpose or unallocated (fc00::/8
  // ULA, fec0::/10 site-local, 100::/64 discard, 64:ff9b:1::/48 local NAT64),
  // so default-deny there instead of listing ranges one by one.
  return inV6(ip, GLOBAL_UNICAST) ? null : 'reserved';
}
