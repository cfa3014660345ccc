// Bearer tokens: 32 random bytes, base64url, behind a kind prefix so the auth layer knows
// which table to look in without trying both. Only SHA-256 hashes are stored.

export type TokenKind = 'workspace' | 'org';
const KIND_PREFIX: Record<TokenKind, string> = { workspace: 'mws_', org: 'mog_' };
const DISPLAY_PREFIX_LENGTH = 12;

export type IssuedToken = { plaintext: string; hash: string; prefix: string };

export async function issueToken(kind: TokenKind): Promise<IssuedToken> {
  const plaintext = KIND_PREFIX[kind] + base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { plaintext, hash: await hashToken(plaintext), prefix: plaintext.slice(0, DISPLAY_PREFIX_LENGTH) };
}

export function tokenKind(plaintext: string): TokenKind | undefined {
  if (plaintext.startsWith(KIND_PREFIX.workspace)) return 'workspace';
  if (plaintext.startsWith(KIND_PREFIX.org)) return 'org';
  return undefined;
}

export async function hashToken(plaintext: string): Promise<string> {
  return hex(new Uint8Array(await sha256(plaintext)));
}

/**
 * What a presented bearer is, from ONE digest: equal to `secret` (constant time: digests always
 * have the same length), and its stored-hash form. The secret's digest is kept per isolate, so a
 * request pays for one SHA-256 instead of three.
 */
export async function digestBearer(bearer: string, secret: string | undefined): Promise<{ matchesSecret: boolean; hash: string }> {
  const digest = await sha256(bearer);
  const matchesSecret = secret ? crypto.subtle.timingSafeEqual(digest, await secretDigest(secret)) : false;
  return { matchesSecret, hash: hex(new Uint8Array(digest)) };
}

let cachedSecret: { secret: string; digest: Promise<ArrayBuffer> } | undefined;
function secretDigest(secret: string): Promise<ArrayBuffer> {
  if (cachedSecret?.secret !== secret) cachedSecret = { secret, digest: sha256(secret) };
  return cachedSecret.digest;
}

const utf8 = new TextEncoder();
function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest('SHA-256', utf8.encode(text));
}

/** `Authorization: Bearer <token>`; anything else is "no token". */
export function parseBearer(header: string | undefined | null): string | undefined {
  if (!header || !header.startsWith('Bearer ')) return undefined;
  const token = header.slice('Bearer '.length).trim();
  return token.length > 0 && token.length <= 512 ? token : undefined;
}

export function randomSecret(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

function base64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += HEX[b];
  return s;
}
