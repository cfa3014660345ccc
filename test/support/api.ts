// Test client for the real Worker (exports.default.fetch) and direct SQL through the same Neon
// driver production uses.
//
// Every call goes through the typed client generated from the API document (openapi-fetch over
// openapi/schema.d.ts), with a contract check on each exchange: the route must be in the
// document, the answer's status must be one the route declares, and a JSON answer must parse
// with the route's declared zod schema. So every test exercises the contract, not just the route.
import { env } from 'cloudflare:test';
import { exports } from 'cloudflare:workers';
import { Pool, neonConfig } from '@neondatabase/serverless';
import type { z } from 'zod';
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from '../../openapi/schema';
import { contextCacheForTests } from '../../src/a2a/context-cache';
import { createApp } from '../../src/app';

export const ADMIN = 'test-admin-token';
export const BASE = 'http://edge.test';

const worker = (exports as unknown as { default: Fetcher }).default;

type DocumentedRoute = { method: string; template: string; pattern: RegExp; responses: Record<string, { content?: Record<string, { schema?: unknown }> }> };

/** The app's own contracts (zod schemas included), as registered with the OpenAPI registry. */
export const documentedRoutes: DocumentedRoute[] = createApp()
  .openAPIRegistry.definitions.flatMap((d) => (d.type === 'route' ? [d.route] : []))
  .map((r) => ({
    method: r.method.toUpperCase(),
    template: r.path,
    pattern: new RegExp(`^${r.path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    responses: r.responses as DocumentedRoute['responses'],
  }));

export function documentedRoute(method: string, pathname: string): DocumentedRoute | undefined {
  return documentedRoutes.find((r) => r.method === method.toUpperCase() && r.pattern.test(pathname));
}

/** Fails the test on any exchange the API document does not describe. */
const contractCheck: Middleware = {
  async onResponse({ request, response }) {
    const { pathname } = new URL(request.url);
    const route = documentedRoute(request.method, pathname);
    if (!route) throw new Error(`contract: ${request.method} ${pathname} is not in the API document`);
    const declared = route.responses[String(response.status)] ?? route.responses.default;
    if (!declared) throw new Error(`contract: ${request.method} ${route.template} answered ${response.status}, which it does not declare`);
    const schema = declared.content?.['application/json']?.schema as z.ZodType | undefined;
    if (!schema || response.status === 101 || response.headers.get('Content-Type')?.includes('json') !== true) return undefined;
    const text = await response.clone().text();
    const parsed = schema.safeParse(text === '' ? undefined : JSON.parse(text));
    if (!parsed.success) {
      throw new Error(`contract: ${request.method} ${route.template} ${response.status} does not match its schema: ${JSON.stringify(parsed.error.issues.slice(0, 3))}`);
    }
    return undefined;
  },
};

/** Straight to the Worker, outside the contract: only for what the document does not describe (itself, /docs). */
export const fetchUndocumented = (path: string, init?: RequestInit) => worker.fetch(new Request(`${BASE}${path}`, init));

/** The typed client of the API document, bound to the Worker under test. */
export const api = createClient<paths>({ baseUrl: BASE, fetch: (request) => worker.fetch(request) });
api.use(contractCheck);

type CallOptions = { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> };
type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';

/**
 * Untyped convenience for tests that build paths by hand: the same generated client and contract
 * checks as `api`, handing back the raw Response (openapi-fetch consumes the body of an error).
 */
export async function call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  let raw: Response | undefined;
  const client = createClient<paths>({
    baseUrl: BASE,
    fetch: async (request) => {
      const response = await worker.fetch(request);
      raw = response.clone();
      return response;
    },
  });
  client.use(contractCheck);
  const request = client.request as unknown as (method: Method, url: string, init: Record<string, unknown>) => Promise<unknown>;
  await request(method.toLowerCase() as Method, path, { headers, body, bodySerializer: (b: unknown) => b, parseAs: 'stream' });
  return raw!;
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

/**
 * Direct SQL, as a write made by this isolate: it forgets the proxy's cached contexts, as the
 * query modules do after their writes (tests of the hot path's cache bound use `sqlElsewhere`).
 */
export async function sql<T = any>(query: string, params: unknown[] = []): Promise<T[]> {
  try {
    return await sqlElsewhere<T>(query, params);
  } finally {
    contextCacheForTests.forgetAll();
  }
}

/** Direct SQL as another isolate's write: this isolate's cache learns of it only by expiry. */
export async function sqlElsewhere<T = any>(query: string, params: unknown[] = []): Promise<T[]> {
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
  if (opts.runtime && opts.runtime !== 'external') {
    // Ours: the provisioner started it with a fresh token, and the agent registers with that.
    const { agentComesUp } = await import('./provisioner');
    return { id: created.id, token: (await agentComesUp(created.id, { url: opts.url, mode: opts.mode })).token };
  }
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

/** An A2A v0.3 `message/send` request with one text part (`extra` is merged into the message). */
export const a2aMessage = (text = 'hello', extra: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id: 'req-1',
  method: 'message/send',
  params: { message: { role: 'user', messageId: crypto.randomUUID(), parts: [{ kind: 'text', text }], ...extra } },
});

export const uniq = () => crypto.randomUUID().slice(0, 8);
