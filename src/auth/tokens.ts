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
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(plaintext));
  return hex(new Uint8Array(digest));
}

/** Constant-time string comparison (both sides hashed first so lengths never differ). */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([a, b].map((s) => crypto.subtle.digest('SHA-256', new TextEncoder().encode(s))));
  return crypto.subtle.timingSafeEqual(ha!, hb!);
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

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
