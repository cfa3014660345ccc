import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SIGNATURE_WINDOW_SECONDS, signRequest } from '../../src/provisioning/protocol.ts';
import { NonceCache } from '../src/auth.ts';
import type { Backend } from '../src/backend.ts';
import { AgentError, TEXT } from '../src/errors.ts';
import { main } from '../src/main.ts';
import { createProvisionerServer, type Logger, REQUEST_TIMEOUT_MS } from '../src/server.ts';
import { signedFetch } from './support/signed.ts';

const SECRET = 'server-test-secret-0123456789abcdef';
const ID = '6f1c1a52-3f4e-4c7a-9a0e-2b8d7c6e5f41';
const START = {
  runtime: 'claude-code',
  tier: 2,
  env: { MODEL: 'sonnet' },
  auth_token: 'tok_0123456789abcdefghij',
  platform_inbound_secret: 'pis_0123456789abcdefghij',
  platform_url: 'https://platform.example.test',
};

const calls: Array<[string, ...unknown[]]> = [];
let failWith: unknown = null;
/** While set, a start waits for it (a start in flight). */
let startGate: Promise<void> | null = null;
const stub: Backend = {
  async start(id, req) {
    calls.push(['start', id, req]);
    if (startGate) await startGate;
    if (failWith) throw failWith;
    return { url: 'http://127.0.0.1:41000', instance_id: null };
  },
  async stop(id, req) {
    calls.push(['stop', id, req]);
    return { stopped: true, volume_removed: req.purge };
  },
  async status(id, instanceId) {
    calls.push(['status', id, instanceId]);
    if (failWith) throw failWith;
    return 'running';
  },
  async console(id, instanceId) {
    calls.push(['console', id, instanceId]);
    return 'boot ok';
  },
  async list() {
    calls.push(['list']);
    return [ID];
  },
};

const logged: Array<[string, Record<string, unknown> | undefined]> = [];
const log: Logger = (message, fields) => logged.push([message, fields]);
const server = createProvisionerServer({ secret: SECRET, backends: { docker: stub }, log });
let base = '';

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  calls.length = 0;
  logged.length = 0;
  failWith = null;
  startGate = null;
});

/**
 * A signed request whose target goes on the wire byte for byte (fetch would normalise it first),
 * signed over exactly that target, as a Worker bug or a proxy in between might produce it.
 */
async function rawSigned(method: 'GET' | 'POST', target: string, body = '', signedAt = Date.now()): Promise<{ status: number; text: string }> {
  const headers = await signRequest(SECRET, method, target, body, signedAt);
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const call = (method: 'GET' | 'POST', path: string, body?: unknown, mutate?: Parameters<typeof signedFetch>[5]) =>
  signedFetch(base, SECRET, method, path, body, mutate);

describe('request signing', () => {
  it('answers a validly signed request', async () => {
    const res = await call('GET', `/v1/docker/workspaces/${ID}/status`);
    expect(res).toMatchObject({ status: 200, json: { state: 'running' } });
    expect(calls).toEqual([['status', ID, null]]);
  });

  it('refuses an unsigned request before reading its body as JSON', async () => {
    const res = await fetch(`${base}/v1/docker/workspaces/${ID}/start`, { method: 'POST', body: '{not json' });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: 'unauthorized', error: TEXT.unauthorized });
    expect(calls).toEqual([]);
  });

  it('refuses a request signed with another secret', async () => {
    const path = `/v1/docker/workspaces/${ID}/status`;
    const headers = await signRequest('another-secret-0123456789abcdefghij', 'GET', path, '');
    const res = await fetch(`${base}${path}`, { headers });
    expect(res.status).toBe(401);
    expect(calls).toEqual([]);
  });

  it('refuses stale and future timestamps', async () => {
    const path = `/v1/docker/workspaces/${ID}/status`;
    for (const skew of [-(SIGNATURE_WINDOW_SECONDS + 5), SIGNATURE_WINDOW_SECONDS + 5]) {
      const headers = await signRequest(SECRET, 'GET', path, '', Date.now() + skew * 1000);
      const res = await fetch(`${base}${path}`, { headers });
      expect(res.status).toBe(401);
    }
    expect(calls).toEqual([]);
  });

  it('refuses a replayed nonce', async () => {
    const path = `/v1/docker/workspaces/${ID}/stop`;
    const body = JSON.stringify({ purge: false });
    const headers = await signRequest(SECRET, 'POST', path, body);
    const first = await fetch(`${base}${path}`, { method: 'POST', headers, body });
    const replay = await fetch(`${base}${path}`, { method: 'POST', headers, body });
    expect(first.status).toBe(200);
    expect(replay.status).toBe(401);
    expect(calls).toHaveLength(1);
  });

  it('refuses a tampered body, path or query', async () => {
    const tampered = [
      await call('POST', `/v1/docker/workspaces/${ID}/stop`, { purge: false }, (r) => {
        r.body = JSON.stringify({ purge: true });
      }),
      await call('GET', `/v1/docker/workspaces/${ID}/status`, undefined, (r) => {
        r.path = `/v1/docker/workspaces/${'0'.repeat(8)}-3f4e-4c7a-9a0e-2b8d7c6e5f41/status`;
      }),
      await call('GET', `/v1/docker/workspaces/${ID}/status`, undefined, (r) => {
        r.path += '?instance_id=i-0123456789abcdef0';
      }),
    ];
    expect(tampered.map((r) => r.status)).toEqual([401, 401, 401]);
    expect(calls).toEqual([]);
  });

  it('acts only on the exact target it verified: a target URL parsing would rewrite is refused', async () => {
    const stopBody = JSON.stringify({ purge: true });
    for (const target of [
      `/v1/docker/workspaces/x/%2e%2e/${ID}/stop`,
      `/v1/docker/workspaces/x/../${ID}/stop`,
      `/v1/docker/./workspaces/${ID}/stop`,
      `//evil.test/v1/docker/workspaces/${ID}/stop`,
      `http://evil.test/v1/docker/workspaces/${ID}/stop`,
      `/v1/docker\\workspaces/${ID}/stop`,
      `/v1/docker/workspaces/${ID.replace('6', '%36')}/stop`,
    ]) {
      const res = await rawSigned('POST', target, stopBody);
      expect({ target, status: res.status }).toEqual({ target, status: 400 });
      expect(JSON.parse(res.text)).toEqual({ code: 'invalid', error: TEXT.invalid });
    }
    expect(calls).toEqual([]);
    // The canonical form of the same request still works.
    expect((await rawSigned('POST', `/v1/docker/workspaces/${ID}/stop`, stopBody)).status).toBe(200);
  });

  it('refuses a request signed before this agent started, even inside the window (a restart empties the nonce cache)', async () => {
    const res = await rawSigned('GET', `/v1/docker/workspaces/${ID}/status`, '', Date.now() - 10_000);
    expect(res.status).toBe(401);
    expect(calls).toEqual([]);
  });

  it('refuses missing or malformed signature headers', async () => {
    const res = await call('GET', `/v1/docker/workspaces/${ID}/status`, undefined, (r) => {
      r.headers['x-molecule-nonce'] = 'not-hex';
    });
    expect(res.status).toBe(401);
  });
});

describe('routing and backends', () => {
  it('answers 503 unavailable for a backend the agent does not have, and for an unknown one', async () => {
    for (const backend of ['ec2', 'k8s']) {
      const res = await call('GET', `/v1/${backend}/workspaces/${ID}/status`);
      expect(res).toMatchObject({ status: 503, json: { code: 'unavailable', error: TEXT.backendUnavailable } });
    }
    expect(calls).toEqual([]);
  });

  it('serves every operation with the validated arguments', async () => {
    expect(await call('POST', `/v1/docker/workspaces/${ID}/start`, START)).toMatchObject({
      status: 200,
      json: { url: 'http://127.0.0.1:41000', instance_id: null },
    });
    expect(await call('POST', `/v1/docker/workspaces/${ID}/stop`, { purge: true, instance_id: null })).toMatchObject({
      status: 200,
      json: { stopped: true, volume_removed: true },
    });
    expect(await call('GET', `/v1/docker/workspaces/${ID}/console?instance_id=i-0123456789abcdef0`)).toMatchObject({
      status: 200,
      json: { output: 'boot ok' },
    });
    expect(await call('GET', '/v1/docker/workspaces')).toMatchObject({ status: 200, json: { workspace_ids: [ID] } });
    expect(calls).toEqual([
      ['start', ID, START],
      ['stop', ID, { purge: true, instance_id: null }],
      ['console', ID, 'i-0123456789abcdef0'],
      ['list'],
    ]);
  });

  it('answers 404 for an unknown route or the wrong method', async () => {
    for (const [method, path] of [
      ['GET', `/v1/docker/workspaces/${ID}/start`],
      ['POST', `/v1/docker/workspaces/${ID}/status`],
      ['GET', `/v2/docker/workspaces`],
      ['GET', `/v1/docker/workspaces/${ID}/delete`],
    ] as const) {
      const res = await call(method, path, method === 'POST' ? {} : undefined);
      expect(res).toMatchObject({ status: 404, json: { code: 'not_found', error: TEXT.unknownRoute } });
    }
  });

  it('renders a classified backend failure with its code and fixed text', async () => {
    failWith = new AgentError('conflict', TEXT.conflict, new Error('RAW-BACKEND-TEXT'));
    const res = await call('GET', `/v1/docker/workspaces/${ID}/status`);
    expect(res).toMatchObject({ status: 409, json: { code: 'conflict', error: TEXT.conflict } });
    expect(res.text).not.toContain('RAW-BACKEND-TEXT');
  });

  it('turns an unclassified failure into 503 with a fixed text and logs the raw error', async () => {
    failWith = new Error('RAW-BACKEND-TEXT secret=hunter2');
    const res = await call('POST', `/v1/docker/workspaces/${ID}/start`, START);
    expect(res).toMatchObject({ status: 503, json: { code: 'unavailable', error: TEXT.backendFailed } });
    expect(res.text).not.toContain('RAW-BACKEND-TEXT');
    expect(JSON.stringify(logged)).toContain('RAW-BACKEND-TEXT');
  });
});

describe('input validation', () => {
  const invalid = { code: 'invalid', error: TEXT.invalid };
  const bad: Array<[string, unknown]> = [
    ['tier above 4', { ...START, tier: 5 }],
    ['fractional tier', { ...START, tier: 1.5 }],
    ['string tier', { ...START, tier: '2' }],
    ['env key starting with a digit', { ...START, env: { '1BAD': 'x' } }],
    ['env key with =', { ...START, env: { 'A=B': 'x' } }],
    ['env value with NUL', { ...START, env: { A: 'x\u0000y' } }],
    ['env value too long', { ...START, env: { A: 'x'.repeat(16 * 1024 + 1) } }],
    ['runtime with a slash', { ...START, runtime: 'evil/image' }],
    ['runtime with a tag', { ...START, runtime: 'x:latest' }],
    ['uppercase runtime', { ...START, runtime: 'Claude' }],
    ['short auth token', { ...START, auth_token: 'short' }],
    ['token with a newline', { ...START, auth_token: 'tok_0123456789\nabcdefghij' }],
    ['ftp platform url', { ...START, platform_url: 'ftp://platform.example.test' }],
    ['extra field', { ...START, privileged: true }],
    ['missing field', { ...START, auth_token: undefined }],
    ['array body', [START]],
    ['not JSON', '{"runtime":'],
  ];
  for (const [name, body] of bad) {
    it(`refuses a start with ${name}`, async () => {
      const res = await call('POST', `/v1/docker/workspaces/${ID}/start`, body);
      expect(res).toMatchObject({ status: 400, json: invalid });
      expect(calls).toEqual([]);
    });
  }

  it('refuses a workspace id that is not a uuid, without echoing it', async () => {
    const res = await call('GET', '/v1/docker/workspaces/..%2F..%2Fetc%2Fpasswd/status');
    expect(res).toMatchObject({ status: 400, json: invalid });
    expect(res.text).not.toContain('passwd');
  });

  it('refuses bad, unknown and duplicate query parameters', async () => {
    for (const query of ['?instance_id=i-XYZ', '?verbose=1', '?instance_id=i-0123456789abcdef0&instance_id=i-0123456789abcdef1']) {
      const res = await call('GET', `/v1/docker/workspaces/${ID}/status${query}`);
      expect(res).toMatchObject({ status: 400, json: invalid });
    }
    expect(await call('GET', '/v1/docker/workspaces?all=1')).toMatchObject({ status: 400, json: invalid });
    expect(calls).toEqual([]);
  });

  it('refuses a stop without purge or with a bad instance id', async () => {
    for (const body of [{}, { purge: 'yes' }, { purge: true, instance_id: 'vol-123' }]) {
      expect(await call('POST', `/v1/docker/workspaces/${ID}/stop`, body)).toMatchObject({ status: 400, json: invalid });
    }
  });

  it('refuses a body over the cap', async () => {
    const res = await call('POST', `/v1/docker/workspaces/${ID}/start`, { ...START, env: { A: 'x'.repeat(300 * 1024) } });
    expect(res).toMatchObject({ status: 400, json: { code: 'invalid', error: TEXT.tooLarge } });
    expect(calls).toEqual([]);
  });
});

describe('connection limits', () => {
  it('bounds the time to receive a request, not the time to answer it', () => {
    expect(REQUEST_TIMEOUT_MS).toBeLessThanOrEqual(30_000);
    expect(server.requestTimeout).toBe(REQUEST_TIMEOUT_MS);
    expect(server.headersTimeout).toBeLessThanOrEqual(server.requestTimeout);
  });

  it('cuts off a client that dribbles its body (slow loris)', async () => {
    const slow = createProvisionerServer({ secret: SECRET, backends: { docker: stub }, log, requestTimeoutMs: 400, connectionsCheckingIntervalMs: 50 });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = slow.address() as AddressInfo;
      const started = Date.now();
      const outcome = await new Promise<string>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/v1/docker/workspaces/${ID}/stop`, headers: { 'content-length': '1000' } });
        req.on('response', (res) => {
          res.resume();
          resolve(`status ${res.statusCode}`);
        });
        req.on('error', () => resolve('closed'));
        req.write('{');
        const drip = setInterval(() => req.write(' '), 100);
        req.on('close', () => clearInterval(drip));
        setTimeout(() => {
          clearInterval(drip);
          resolve('still open');
          req.destroy();
        }, 3_000);
      });
      expect(outcome).toBe('status 408');
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(calls).toEqual([]);
    } finally {
      slow.closeAllConnections();
      await new Promise<void>((resolve) => slow.close(() => resolve()));
    }
  });
});

describe('concurrency', () => {
  it('does not answer a definite state while a start of the same workspace is in flight', async () => {
    let open!: () => void;
    startGate = new Promise<void>((resolve) => (open = resolve));
    const starting = call('POST', `/v1/docker/workspaces/${ID}/start`, START);
    while (!calls.some(([op]) => op === 'start')) await new Promise((r) => setTimeout(r, 5));
    const during = await call('GET', `/v1/docker/workspaces/${ID}/status`);
    expect(during).toMatchObject({ status: 409, json: { code: 'conflict', error: TEXT.changing } });
    open();
    expect((await starting).status).toBe(200);
    expect((await call('GET', `/v1/docker/workspaces/${ID}/status`)).json).toEqual({ state: 'running' });
  });

  it('treats an upper-case workspace id as the same workspace (one container name, one queue)', async () => {
    let open!: () => void;
    startGate = new Promise<void>((resolve) => (open = resolve));
    const upper = call('POST', `/v1/docker/workspaces/${ID.toUpperCase()}/start`, START);
    while (!calls.some(([op]) => op === 'start')) await new Promise((r) => setTimeout(r, 5));
    // The lower-case spelling waits behind the upper-case start instead of racing it.
    expect((await call('GET', `/v1/docker/workspaces/${ID}/status`)).status).toBe(409);
    open();
    await upper;
    expect(calls[0]).toEqual(['start', ID, START]);
  });
});

describe('nonce cache and startup', () => {
  it('remembers a nonce until its timestamp leaves the window, and refuses when full of live nonces', () => {
    const cache = new NonceCache(2, 0);
    const t = 1_700_000_000;
    const now = t * 1000;
    expect(cache.remember('a', t, now)).toBe('fresh');
    expect(cache.remember('a', t, now + (SIGNATURE_WINDOW_SECONDS - 1) * 1000)).toBe('replayed');
    expect(cache.remember('b', t, now)).toBe('fresh');
    expect(cache.remember('c', t, now)).toBe('full');
    // Both entries expire once their timestamp is out of the window; the sweep makes room.
    expect(cache.remember('c', t + 400, now + 400_000)).toBe('fresh');
    expect(cache.size).toBe(1);
  });

  it('refuses to start without a secret', async () => {
    expect(() => createProvisionerServer({ secret: '', backends: {} })).toThrow();
    await expect(main({})).rejects.toThrow(/PROVISIONER_SECRET/);
    await expect(main({ PROVISIONER_SECRET: 'too-short' })).rejects.toThrow(/PROVISIONER_SECRET/);
  });
});
