import http from 'node:http';
import { PROVISIONER_BACKENDS, type ProvisionerBackend } from '../../src/provisioning/protocol.ts';
import { authenticate, NonceCache } from './auth.ts';
import type { Backend } from './backend.ts';
import { AgentError, asAgentError, TEXT } from './errors.ts';
import { EmptyQuerySchema, InstanceQuerySchema, StartRequestSchema, StopRequestSchema, WorkspaceId } from './schemas.ts';

export type Logger = (message: string, fields?: Record<string, unknown>) => void;

export interface ProvisionerServerOptions {
  /** PROVISIONER_SECRET: the HMAC key shared with the Worker. */
  secret: string;
  backends: Partial<Record<ProvisionerBackend, Backend>>;
  log?: Logger;
  /** Request body cap; larger bodies are refused before they are read in full. */
  maxBodyBytes?: number;
  nonceCacheSize?: number;
  /** Time allowed to receive a whole request (headers and body); tests shorten it. */
  requestTimeoutMs?: number;
  /** How often Node enforces the request/headers timeouts (its default, 30 s, would let them overrun). */
  connectionsCheckingIntervalMs?: number;
}

export const MAX_BODY_BYTES = 256 * 1024;
/**
 * Receiving a request (not answering it: a 3 min start is not bounded by this) — a capped body
 * arrives in well under this, so a client that dribbles bytes is cut off instead of holding a
 * connection and a body buffer for minutes.
 */
export const REQUEST_TIMEOUT_MS = 20_000;
export const HEADERS_TIMEOUT_MS = 10_000;

/** One JSON line per event on stderr: the only place raw daemon/AWS text is ever written. */
export const stderrLog: Logger = (message, fields = {}) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), message, ...fields })}\n`);
};

/** A raw error as loggable fields (dockerode's status and daemon body, the AWS metadata). */
export function describeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const extra = err as Error & { statusCode?: unknown; json?: unknown; $metadata?: unknown };
  return {
    name: err.name,
    message: err.message,
    statusCode: extra.statusCode,
    json: Buffer.isBuffer(extra.json) ? extra.json.toString('utf8').slice(0, 2048) : extra.json,
    aws: extra.$metadata,
    cause: err.cause === undefined ? undefined : describeError(err.cause),
  };
}

type Route =
  | { op: 'start' | 'stop' | 'status' | 'console'; backend: string; id: string }
  | { op: 'list'; backend: string };

function matchRoute(method: string, pathname: string): Route | null {
  const one = /^\/v1\/([a-z0-9]{1,16})\/workspaces\/([^/]{1,64})\/(start|stop|status|console)$/.exec(pathname);
  if (one) {
    const [, backend, id, op] = one as unknown as [string, string, string, 'start' | 'stop' | 'status' | 'console'];
    const wanted = op === 'start' || op === 'stop' ? 'POST' : 'GET';
    return method === wanted ? { op, backend, id } : null;
  }
  const list = /^\/v1\/([a-z0-9]{1,16})\/workspaces$/.exec(pathname);
  return list && method === 'GET' ? { op: 'list', backend: list[1]! } : null;
}

/**
 * The signature covers the raw request target, so the router must act on exactly that string:
 * anything URL parsing would rewrite (`//host`, dot segments, `%2e`, `\\`, an absolute-form
 * target, a fragment) or any percent-escape is refused rather than normalised into another path.
 */
function canonicalTarget(raw: string): URL | null {
  if (!raw.startsWith('/') || raw.startsWith('//') || raw.includes('#') || /[%\\]/.test(raw.split('?')[0]!)) return null;
  let url: URL;
  try {
    url = new URL(raw, 'http://agent.invalid');
  } catch {
    return null;
  }
  return url.host === 'agent.invalid' && `${url.pathname}${url.search}` === raw ? url : null;
}

class TooLarge extends Error {}

function readBody(req: http.IncomingMessage, cap: number): Promise<string> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > cap) return reject(new TooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > cap) {
        req.removeAllListeners('data');
        req.pause();
        reject(new TooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function queryObject(search: URLSearchParams): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (const [key, value] of search) {
    if (Object.hasOwn(out, key)) return null;
    out[key] = value;
  }
  return out;
}

function parse<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new AgentError('invalid', TEXT.invalid);
  return result.data;
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new AgentError('invalid', TEXT.invalid);
  }
}

/**
 * The provisioner HTTP API (src/provisioning/protocol.ts). Order per request: cap and read the
 * body, verify the signature and the nonce, then route, then validate, then call the backend.
 */
export function createProvisionerServer(options: ProvisionerServerOptions): http.Server {
  if (!options.secret) throw new Error('createProvisionerServer: a secret is required');
  const log = options.log ?? stderrLog;
  const cap = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const nonces = new NonceCache(options.nonceCacheSize);
  // Start and stop of one workspace run one at a time, so a restart cycle (stop then start) and a
  // duplicate start never interleave on the same container name.
  const inFlight = new Map<string, Promise<unknown>>();
  const serialize = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const previous = inFlight.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.catch(() => undefined);
    inFlight.set(key, settled);
    void settled.then(() => {
      if (inFlight.get(key) === settled) inFlight.delete(key);
    });
    return run;
  };

  async function dispatch(req: http.IncomingMessage, body: string): Promise<{ status: number; body: unknown }> {
    const method = req.method ?? 'GET';
    const pathWithQuery = req.url ?? '/';
    const auth = await authenticate(options.secret, nonces, {
      method,
      pathWithQuery,
      body,
      header: (name) => {
        const value = req.headers[name];
        return Array.isArray(value) ? undefined : value;
      },
    });
    if (auth === 'unauthorized') throw new AgentError('unauthorized', TEXT.unauthorized);
    if (auth === 'busy') throw new AgentError('unavailable', TEXT.busy);

    const url = canonicalTarget(pathWithQuery);
    if (!url) throw new AgentError('invalid', TEXT.invalid);
    const route = matchRoute(method, url.pathname);
    if (!route) throw new AgentError('not_found', TEXT.unknownRoute);
    const backend = (PROVISIONER_BACKENDS as readonly string[]).includes(route.backend)
      ? options.backends[route.backend as ProvisionerBackend]
      : undefined;
    if (!backend) throw new AgentError('unavailable', TEXT.backendUnavailable);
    const query = queryObject(url.searchParams);
    if (!query) throw new AgentError('invalid', TEXT.invalid);

    if (route.op === 'list') {
      parse(EmptyQuerySchema, query);
      return { status: 200, body: { workspace_ids: await backend.list() } };
    }
    const id = parse(WorkspaceId, route.id);
    const key = `${route.backend}:${id}`;
    switch (route.op) {
      case 'start': {
        parse(EmptyQuerySchema, query);
        const request = parse(StartRequestSchema, parseJson(body));
        return { status: 200, body: await serialize(key, () => backend.start(id, request)) };
      }
      case 'stop': {
        parse(EmptyQuerySchema, query);
        const request = parse(StopRequestSchema, parseJson(body));
        return { status: 200, body: await serialize(key, () => backend.stop(id, request)) };
      }
      case 'status': {
        const { instance_id } = parse(InstanceQuerySchema, query);
        // Mid-start the container exists but is not running yet, and mid-stop it may still run:
        // neither is a definite answer, and a "stopped" here would trigger a needless restart.
        if (inFlight.has(key)) throw new AgentError('conflict', TEXT.changing);
        return { status: 200, body: { state: await backend.status(id, instance_id ?? null) } };
      }
      case 'console': {
        const { instance_id } = parse(InstanceQuerySchema, query);
        return { status: 200, body: { output: await backend.console(id, instance_id ?? null) } };
      }
    }
  }

  const requestTimeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const serverOptions: http.ServerOptions = {
    requestTimeout,
    headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeout),
    connectionsCheckingInterval: options.connectionsCheckingIntervalMs ?? 1_000,
  };
  const server = http.createServer(serverOptions, async (req, res) => {
    const send = (status: number, payload: unknown) => {
      const text = JSON.stringify(payload);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
      res.end(text);
    };
    try {
      const body = await readBody(req, cap);
      const answer = await dispatch(req, body);
      send(answer.status, answer.body);
    } catch (err) {
      if (err instanceof TooLarge) {
        res.setHeader('Connection', 'close');
        return send(400, { code: 'invalid', error: TEXT.tooLarge });
      }
      const failure = asAgentError(err);
      if (failure.code !== 'invalid') {
        log('provisioner request failed', { method: req.method, path: req.url?.split('?')[0], code: failure.code, error: describeError(failure.cause ?? failure) });
      }
      send(failure.status, failure.body());
    }
  });
  return server;
}
