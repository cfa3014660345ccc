// Test client for the real Worker (exports.default.fetch) and direct SQL through the same Neon
// driver production uses.
import { env } from 'cloudflare:test';
import { exports } from 'cloudflare:workers';
import { Pool, neonConfig } from '@neondatabase/serverless';

export const ADMIN = 'test-admin-token';
export const BASE = 'http://edge.test';

type CallOptions = { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> };

export async function call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  return (exports as unknown as { default: Fetcher }).default.fetch(new Request(`${BASE}${path}`, { method, headers, body }));
}

export async function callJson<T = any>(method: string, path: string, opts: CallOptions = {}): Promise<{ status: number; body: T; res: Response }> {
  const res = await call(method, path, opts);
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, res };
}

export async function sql<T = any>(query: string, params: unknown[] = []): Promise<T[]> {
  neonConfig.wsProxy = (host, port) => `${env.NEON_WS_PROXY}?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
  const pool = new Pool({ connectionString: env.DATABASE_URL });
  pool.on('error', () => {});
  try {
    return (await pool.query(query, params)).rows as T[];
  } finally {
    await pool.end();
  }
}

export async function waitFor<T>(probe: () => Promise<T | undefined | null | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('waitFor timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const loopback = (path: string) => `${env.LOOPBACK_URL}${path}`;

export type CreateOptions = Record<string, unknown>;

/** Creates a workspace as the operator; for external ones without URL the connection token comes back. */
export async function createWorkspace(opts: CreateOptions = {}): Promise<{ id: string; token?: string; body: any }> {
  const { status, body } = await callJson('POST', '/workspaces', { token: ADMIN, body: { name: `ws-${crypto.randomUUID().slice(0, 8)}`, ...opts } });
  if (status !== 201) throw new Error(`create failed: ${status} ${JSON.stringify(body)}`);
  return { id: body.id, token: body.connection?.auth_token, body };
}

/** A registered agent: external workspace + first register, returning its token. */
export async function registeredAgent(opts: { url?: string; mode?: 'push' | 'poll'; parentId?: string; runtime?: string } = {}) {
  const created = await createWorkspace({
    ...(opts.runtime && opts.runtime !== 'external' ? { runtime: opts.runtime } : { external: true }),
    delivery_mode: opts.mode ?? 'push',
    ...(opts.parentId ? { parent_id: opts.parentId } : {}),
  });
  let token = created.token;
  const reg = await callJson('POST', '/registry/register', {
    token,
    body: { id: created.id, agent_card: { name: 'test-agent' }, ...(opts.url ? { url: opts.url } : {}), ...(opts.mode ? { delivery_mode: opts.mode } : {}) },
  });
  if (reg.status !== 200) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`);
  token ??= reg.body.auth_token;
  return { id: created.id, token: token! };
}

/** What a loopback agent named `name` has received so far (see loopback-servers.ts). */
export const received = async (name: string) => (await (await fetch(loopback(`/_received/${name}`))).json()) as { body: string; headers: Record<string, string> }[];
