// The provisioner-agent's HTTP API: one definition shared by the Worker (the client, through
// src/provisioning/provisioner.ts) and provisioner-agent/ (the server). This file imports nothing
// and uses only Web Crypto, so both runtimes (workerd and Node 22) load it as is.
//
// Paths (backend = docker | ec2; id = workspace uuid):
//   POST /v1/{backend}/workspaces/{id}/start    StartRequest → 200 StartResult
//   POST /v1/{backend}/workspaces/{id}/stop     StopRequest  → 200 StopResult (idempotent)
//   GET  /v1/{backend}/workspaces/{id}/status[?instance_id=]  → 200 StatusResult
//   GET  /v1/{backend}/workspaces/{id}/console[?instance_id=] → 200 ConsoleResult
//   GET  /v1/{backend}/workspaces               → 200 ListResult (managed workspaces)
// Every non-2xx answer is a ProvisionerError with a fixed text; raw daemon/AWS text stays in the
// agent's log. A backend the agent does not have configured answers 503 `unavailable`.

export const PROVISIONER_BACKENDS = ['docker', 'ec2'] as const;
export type ProvisionerBackend = (typeof PROVISIONER_BACKENDS)[number];

export interface StartRequest {
  runtime: string;
  tier: number;
  /** Extra environment for the agent (decrypted secrets, model, role…). */
  env: Record<string, string>;
  /** The workspace's fresh bearer token (docker: /configs/.auth_token, mode 0600). */
  auth_token: string;
  /** Platform → workspace secret (docker: /configs/.platform_inbound_secret, mode 0600). */
  platform_inbound_secret: string;
  /** Where the agent reaches the platform (PLATFORM_URL / MOLECULE_URL). */
  platform_url: string;
}
/** `url`: where the platform reaches the agent, when the backend knows it before registration. */
export interface StartResult {
  url: string | null;
  instance_id: string | null;
}

export interface StopRequest {
  /** Also remove the workspace's config volume (docker) — DELETE ?purge=true. */
  purge: boolean;
  instance_id?: string | null;
}
export interface StopResult {
  stopped: true;
  volume_removed: boolean;
}

/** `stopped`/`not_found` only when the agent is definitely not running. */
export type AgentState = 'running' | 'stopped' | 'not_found';
export interface StatusResult {
  state: AgentState;
}
export interface ConsoleResult {
  /** At most the last CONSOLE_OUTPUT_MAX_BYTES of the agent's output (UTF-8). */
  output: string;
}
export const CONSOLE_OUTPUT_MAX_BYTES = 256 * 1024;
/**
 * The largest ConsoleResult body: JSON escapes a control byte as six (`\u001b` — terminal colour
 * codes are common in logs), so a full tail can be up to six times its byte size.
 */
export const CONSOLE_RESULT_MAX_BYTES = 6 * CONSOLE_OUTPUT_MAX_BYTES + 64;
export interface ListResult {
  workspace_ids: string[];
}

export const PROVISIONER_ERROR_STATUS = {
  invalid: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  /** The agent image is missing: the operator must pull/build it (an actionable, fixed text). */
  image_missing: 424,
  unavailable: 503,
} as const;
export type ProvisionerErrorCode = keyof typeof PROVISIONER_ERROR_STATUS;
export interface ProvisionerError {
  error: string;
  code: ProvisionerErrorCode;
}

// ---- Request signing -------------------------------------------------------------------------
// HMAC-SHA256 with the shared secret over method, path (with query), timestamp, nonce and the
// body's SHA-256. The agent refuses a request that is unsigned, signed with another secret, older
// or newer than SIGNATURE_WINDOW_SECONDS, or whose nonce it has already seen in that window.

export const SIGNATURE_HEADERS = {
  timestamp: 'x-molecule-timestamp',
  nonce: 'x-molecule-nonce',
  signature: 'x-molecule-signature',
} as const;
export const SIGNATURE_WINDOW_SECONDS = 300;

const encoder = new TextEncoder();
const hex = (bytes: ArrayBuffer | Uint8Array) =>
  Array.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');

async function signature(secret: string, method: string, path: string, timestamp: string, nonce: string, body: string): Promise<string> {
  const bodyHash = hex(await crypto.subtle.digest('SHA-256', encoder.encode(body)));
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const payload = [method.toUpperCase(), path, timestamp, nonce, bodyHash].join('\n');
  return hex(await crypto.subtle.sign('HMAC', key, encoder.encode(payload)));
}

/** Headers that sign one request. `path` includes the query string; `body` is '' for a GET. */
export async function signRequest(secret: string, method: string, path: string, body: string, now = Date.now()): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(now / 1000));
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  return {
    [SIGNATURE_HEADERS.timestamp]: timestamp,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: await signature(secret, method, path, timestamp, nonce, body),
  };
}

export type SignatureCheck = { ok: true; nonce: string; timestamp: number } | { ok: false };

/**
 * Verifies the signature and the freshness of one request (constant-time comparison). Replay
 * protection needs memory: the caller must also refuse a nonce it has seen within the window.
 */
export async function verifyRequest(
  secret: string,
  method: string,
  path: string,
  body: string,
  headers: (name: string) => string | null | undefined,
  now = Date.now(),
): Promise<SignatureCheck> {
  const timestamp = headers(SIGNATURE_HEADERS.timestamp);
  const nonce = headers(SIGNATURE_HEADERS.nonce);
  const given = headers(SIGNATURE_HEADERS.signature);
  if (!timestamp || !nonce || !given || !/^\d{1,12}$/.test(timestamp) || !/^[0-9a-f]{32}$/.test(nonce)) return { ok: false };
  const seconds = Number(timestamp);
  if (Math.abs(now / 1000 - seconds) > SIGNATURE_WINDOW_SECONDS) return { ok: false };
  const expected = await signature(secret, method, path, timestamp, nonce, body);
  if (given.length !== expected.length) return { ok: false };
  let diff = 0;
  for (let i = 0; i < expected.length; i += 1) diff |= expected.charCodeAt(i) ^ given.charCodeAt(i);
  return diff === 0 ? { ok: true, nonce, timestamp: seconds } : { ok: false };
}
