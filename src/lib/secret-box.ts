import { ApiError } from '../errors';

// AES-256-GCM at rest. Stored form: base64(iv[12] || ciphertext+tag). Version 1 = this scheme.
export const ENCRYPTION_VERSION = 1;

export async function importSecretsKey(base64Key: string | undefined): Promise<CryptoKey> {
  const raw = base64Key ? decodeBase64(base64Key) : undefined;
  if (!raw || raw.byteLength !== 32) {
    console.error('SECRETS_ENCRYPTION_KEY missing or not base64 of 32 bytes');
    throw new ApiError(503, 'secrets encryption is not configured');
  }
  return crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
}

export async function encryptSecret(key: CryptoKey, plaintext: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, new TextEncoder().encode(plaintext)));
  const out = new Uint8Array(iv.byteLength + sealed.byteLength);
  out.set(iv);
  out.set(sealed, iv.byteLength);
  return encodeBase64(out);
}

export async function decryptSecret(key: CryptoKey, stored: string): Promise<string> {
  const bytes = decodeBase64(stored);
  if (!bytes || bytes.byteLength < 13) throw new Error('malformed ciphertext');
  const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.slice(0, 12) }, key, bytes.slice(12));
  return new TextDecoder().decode(plain);
}

function encodeBase64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function decodeBase64(value: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(value), (ch) => ch.charCodeAt(0));
  } catch {
    return undefined;
  }
}
