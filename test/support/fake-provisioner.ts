// A small stand-in for provisioner-agent, speaking src/provisioning/protocol.ts over real HTTP and
// refusing any request not signed with the shared secret. It runs no agents: it records what it
// was asked (so tests can read the StartRequest, token and inbound secret included) and answers
// status from a per-workspace state. Tests reach it only through test/support/provisioner.ts, so
// that module can later be re-pointed at the real provisioner-agent with a Docker Engine double.
// Started by the vitest global setup, in Node.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SIGNATURE_WINDOW_SECONDS, verifyRequest, type AgentState, type StartRequest, type StartResult } from '../../src/provisioning/protocol';

export const FAKE_PROVISIONER_SECRET = 'test-provisioner-secret';
/** A start takes this long, so overlapping restart requests have a cycle in flight to coalesce into. */
const START_MS = 250;

type Op = 'start' | 'stop' | 'status' | 'console';
/** `seq`: the order of receipt across all workspaces. */
type Call = { seq: number; op: Op; backend: string; purge?: boolean; instance_id?: string | null };
type Workspace = { state: AgentState; calls: Call[]; starts: StartRequest[]; started: StartResult[]; failNext: Partial<Record<Op, { status: number; body: unknown }>> };

export async function startFakeProvisioner(): Promise<{ port: number; close: () => Promise<void> }> {
  const workspaces = new Map<string, Workspace>();
  const seenNonces = new Map<string, number>();
  let seq = 0;
  const of = (id: string) => {
    let w = workspaces.get(id);
    if (!w) workspaces.set(id, (w = { state: 'not_found', calls: [], starts: [], started: [], failNext: {} }));
    return w;
  };

  const server = http.createServer(async (req, res) => {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://fake');
    const parts = url.pathname.split('/').filter(Boolean);
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(value));
    };

    // Test controls (unsigned; not part of the protocol): /_control/<what>/<id>
    if (parts[0] === '_control') {
      const w = of(parts[2]!);
      if (parts[1] === 'calls') return json(200, { calls: w.calls, starts: w.starts, started: w.started });
      const input = body ? JSON.parse(body) : {};
      if (parts[1] === 'state') w.state = input.state;
      if (parts[1] === 'fail') w.failNext[input.op as Op] = { status: input.status, body: input.body };
      return json(200, { ok: true });
    }

    const check = await verifyRequest(FAKE_PROVISIONER_SECRET, req.method ?? 'GET', url.pathname + url.search, body, (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    });
    const now = Date.now();
    for (const [nonce, at] of seenNonces) if (now - at > SIGNATURE_WINDOW_SECONDS * 1000) seenNonces.delete(nonce);
    if (!check.ok || seenNonces.has(check.nonce)) return json(401, { error: 'unauthorized', code: 'unauthorized' });
    seenNonces.set(check.nonce, now);

    // /v1/{backend}/workspaces[/{id}/{op}]
    const [version, backend, collection, id, op] = parts;
    if (version !== 'v1' || (backend !== 'docker' && backend !== 'ec2') || collection !== 'workspaces') return json(404, { error: 'not found', code: 'not_found' });
    if (!id) return json(200, { workspace_ids: [...workspaces].filter(([, w]) => w.state === 'running').map(([k]) => k) });
    const w = of(id);
    const input = body ? JSON.parse(body) : {};
    const call: Call = { seq: ++seq, op: op as Op, backend };
    if (op === 'stop') Object.assign(call, { purge: input.purge === true, instance_id: input.instance_id ?? null });
    if (op === 'status' || op === 'console') call.instance_id = url.searchParams.get('instance_id');
    w.calls.push(call);
    if (op === 'start') w.starts.push(input as StartRequest);

    const failure = w.failNext[op as Op];
    if (failure) {
      delete w.failNext[op as Op];
      return json(failure.status, failure.body);
    }
    switch (op) {
      case 'start':
        w.state = 'running';
        return setTimeout(() => {
          const result: StartResult = { url: null, instance_id: backend === 'ec2' ? `i-${id.slice(0, 17).replace(/-/g, '')}` : null };
          w.started.push(result);
          json(200, result);
        }, START_MS);
      case 'stop': {
        const existed = w.state !== 'not_found';
        w.state = existed ? 'stopped' : 'not_found';
        return json(200, { stopped: true, volume_removed: call.purge === true });
      }
      case 'status':
        return json(200, { state: w.state });
      case 'console':
        return json(200, { output: `[boot] workspace ${id} console` });
      default:
        return json(404, { error: 'not found', code: 'not_found' });
    }
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(''));
  });
}
