// The REAL provisioner-agent for the Worker's tests, in Node (started by the vitest global setup):
// the agent's HTTP server with its docker backend on the Docker Engine double, behind a recording
// proxy, plus an unsigned control API the Worker's tests (in workerd, which cannot call the
// double's JS API) reach through test/support/provisioner.ts. The proxy forwards each request
// byte for byte, so the Worker's signatures stay valid and the agent checks them itself.
//
//   /v1/...                      → the agent (recorded: op, backend, purge, instance_id, StartRequest, answer)
//   GET  /_control/calls/:id     → { calls, starts, started, answers } for the workspace
//   POST /_control/state/:id     { state }: running | stopped (the container exits) | not_found (removed)
//   POST /_control/fail/:id      { op, status, message, apply? }: the daemon fails the op's engine call once
//   POST /_control/fail-list     { status, message }: the daemon fails the next container listing
//   POST /_control/logs/:id      { text }: what the workspace's container has printed (the console)
//   POST /_control/answer/:id    { op, status, body }: the proxy answers the op once in the agent's place
//   GET  /_control/docker/:id    → what the double holds: { container, configs, volume }
//   GET  /_control/agent-log/:id → the agent's log lines about the workspace (raw daemon text lives there)
//   GET  /_control/engine        → { available, reason? } for the real-engine test
//   GET  /_control/engine/:id    → { container: { state, labels } | null } on the real engine
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Docker from 'dockerode';
import type { Backend } from '../../provisioner-agent/src/backend.ts';
import { MANAGED_LABEL, WORKSPACE_LABEL } from '../../provisioner-agent/src/docker/driver.ts';
import { dockerOptions } from '../../provisioner-agent/src/main.ts';
import { startDockerDouble, type DockerOp } from '../../provisioner-agent/test/support/docker-double.ts';
import { startTestProvisioner, type TestProvisioner } from '../../provisioner-agent/test/support/test-provisioner.ts';
import type { AgentState, StartRequest, StartResult } from '../../src/provisioning/protocol.ts';

type Op = 'start' | 'stop' | 'status' | 'console';
/** `seq`: the order of receipt across all workspaces. */
type Call = { seq: number; op: Op; backend: string; purge?: boolean; instance_id?: string | null };
type Recorded = { calls: Call[]; starts: StartRequest[]; started: StartResult[]; answers: Array<{ seq: number; status: number; body: string }> };

/**
 * A successful start's answer is held this long, so overlapping restart requests have a cycle in
 * flight to coalesce into (an image pull or a slow daemon, as far as the Worker can tell).
 */
const START_HOLD_MS = 250;
/** What each protocol op asks of the engine first, i.e. where a daemon failure for it is injected. */
const ENGINE_OP: Record<Op, DockerOp> = { start: 'create', stop: 'remove', status: 'inspect', console: 'logs' };
/** A start whose env carries this key runs on the real engine (when one is configured). */
export const REAL_ENGINE_ENV = 'MOLECULE_TEST_REAL_ENGINE';
/** The image the real engine runs (provisioner-agent/scripts/podman-engine.sh builds it). */
const ENGINE_IMAGE = process.env.PROVISIONER_TEST_IMAGE ?? 'localhost/molecule-busybox:latest';

export async function startProvisionerControl(secret: string): Promise<{ port: number; close: () => Promise<void> }> {
  const double = await startDockerDouble();
  const agent = await startTestProvisioner({ secret, docker: double, backends: { ec2: ec2StandIn() } });
  const engine = await startEngineAgent(secret);
  const engineIds = new Set<string>();
  const records = new Map<string, Recorded>();
  const answerNext = new Map<string, Partial<Record<Op, { status: number; body: unknown }>>>();
  let seq = 0;
  const of = (id: string) => {
    let r = records.get(id);
    if (!r) records.set(id, (r = { calls: [], starts: [], started: [], answers: [] }));
    return r;
  };

  async function control(method: string, parts: string[], body: string): Promise<[number, unknown]> {
    const [what, id = ''] = parts;
    const input = body ? (JSON.parse(body) as Record<string, any>) : {};
    if (what === 'calls') {
      const { calls, starts, started, answers } = of(id);
      return [200, { calls, starts, started, answers }];
    }
    if (what === 'state' && method === 'POST') {
      const state = input.state as AgentState;
      if (state === 'not_found') double.remove(id);
      else if (state === 'stopped') double.exit(id);
      else {
        const c = double.container(id) ?? double.addContainer({ name: `ws-${id}`, labels: { [MANAGED_LABEL]: 'true', [WORKSPACE_LABEL]: id } });
        c.state = 'running';
      }
      return [200, { ok: true }];
    }
    if (what === 'fail' && method === 'POST') {
      double.fail(ENGINE_OP[input.op as Op], { status: input.status, message: input.message, apply: input.apply === true, ref: id });
      return [200, { ok: true }];
    }
    if (what === 'fail-list' && method === 'POST') {
      double.fail('list', { status: input.status, message: input.message });
      return [200, { ok: true }];
    }
    if (what === 'logs' && method === 'POST') {
      const c = double.container(id);
      if (!c) return [404, { error: 'no container' }];
      c.logs = String(input.text);
      return [200, { ok: true }];
    }
    if (what === 'answer' && method === 'POST') {
      answerNext.set(id, { ...answerNext.get(id), [input.op]: { status: input.status, body: input.body } });
      return [200, { ok: true }];
    }
    if (what === 'docker') {
      const c = double.container(id);
      const volume = double.volume(`ws-${id}-configs`);
      const configs = volume ? Object.fromEntries([...volume.files].map(([name, f]) => [name, { content: f.content, mode: f.mode }])) : null;
      const container = c && { id: c.id, name: c.name, image: c.image, state: c.state, labels: c.labels, env: c.env, hostPort: c.hostPort, binds: c.create.HostConfig?.Binds ?? [] };
      return [200, { container: container ?? null, configs, volume: volume !== undefined }];
    }
    if (what === 'agent-log') {
      const lines = [...agent.logs, ...(engine.agent?.logs ?? [])].map((l) => JSON.stringify(l)).filter((l) => l.includes(id));
      return [200, { lines }];
    }
    if (what === 'engine' && !id) return [200, engine.agent ? { available: true } : { available: false, reason: engine.reason }];
    if (what === 'engine' && engine.docker) {
      try {
        const info = await engine.docker.getContainer(`ws-${id}`).inspect();
        return [200, { container: { state: info.State.Status, running: info.State.Running, labels: info.Config.Labels } }];
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return [200, { container: null }];
        throw err;
      }
    }
    return [404, { error: 'unknown control' }];
  }

  async function proxy(req: http.IncomingMessage, body: Buffer): Promise<[number, string, string]> {
    const target = req.url ?? '/';
    const route = /^\/v1\/(docker|ec2)\/workspaces\/([^/?]+)\/(start|stop|status|console)(?:\?|$)/.exec(target);
    let recorded: { r: Recorded; call: Call } | undefined;
    let upstream: TestProvisioner = agent;
    if (route) {
      const [, backend, id, op] = route as unknown as [string, string, string, Op];
      const input = op === 'start' || op === 'stop' ? safeJson(body) : {};
      const call: Call = { seq: ++seq, op, backend };
      if (op === 'stop') Object.assign(call, { purge: input.purge === true, instance_id: input.instance_id ?? null });
      if (op === 'status' || op === 'console') call.instance_id = new URL(target, 'http://x').searchParams.get('instance_id');
      const r = of(id);
      r.calls.push(call);
      if (op === 'start') r.starts.push(input as StartRequest);
      recorded = { r, call };
      if (op === 'start' && engine.agent && input.env?.[REAL_ENGINE_ENV]) engineIds.add(id);
      if (engineIds.has(id)) upstream = engine.agent!;

      const canned = answerNext.get(id)?.[op];
      if (canned) {
        delete answerNext.get(id)![op];
        const text = JSON.stringify(canned.body);
        r.answers.push({ seq: call.seq, status: canned.status, body: text });
        return [canned.status, 'application/json', text];
      }
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string' && (name.startsWith('x-molecule-') || name === 'content-type')) headers[name] = value;
    const res = await fetch(upstream.url + target, { method: req.method, headers, body: body.length ? body : undefined });
    const text = await res.text();
    if (recorded) {
      const { r, call } = recorded;
      // Refused as unsigned: the agent did nothing, so neither is it a call of the workspace's.
      if (res.status === 401) r.calls.splice(r.calls.indexOf(call), 1);
      else r.answers.push({ seq: call.seq, status: res.status, body: text });
      if (call.op === 'start' && res.status === 200) {
        await new Promise((resolve) => setTimeout(resolve, START_HOLD_MS));
        r.started.push(JSON.parse(text) as StartResult);
        // The test image's boot line, what the console reads back.
        const c = double.container(route![2]!);
        if (c && !c.logs) c.logs = `[boot] workspace ${route![2]} console\n`;
      }
    }
    return [res.status, res.headers.get('content-type') ?? 'application/json', text];
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const parts = (req.url ?? '/').split('?')[0]!.split('/').filter(Boolean);
      const answer: Promise<[number, string, string]> =
        parts[0] === '_control'
          ? control(req.method ?? 'GET', parts.slice(1), body.toString('utf8')).then(([status, value]) => [status, 'application/json', JSON.stringify(value)])
          : proxy(req, body);
      answer.then(
        ([status, type, text]) => {
          res.writeHead(status, { 'Content-Type': type });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ error: `provisioner control: ${String(err)}` }));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await agent.close();
      // Whatever a failed real-engine test left behind.
      for (const id of engineIds) {
        await engine.docker?.getContainer(`ws-${id}`).remove({ force: true }).catch(() => undefined);
        await engine.docker?.getVolume(`ws-${id}-configs`).remove().catch(() => undefined);
      }
      await engine.close();
      await double.close();
    },
  };
}

function safeJson(body: Buffer): Record<string, any> {
  try {
    const value = JSON.parse(body.toString('utf8'));
    return value && typeof value === 'object' ? value : {};
  } catch {
    return {};
  }
}

/**
 * The Worker's ec2 branch (MOLECULE_DEPLOY_MODE=saas) reaches the real agent's server through this
 * in-memory backend; the agent's EC2 driver itself is tested against the mocked AWS SDK in
 * provisioner-agent/test/ec2.test.ts.
 */
function ec2StandIn(): Backend {
  const instances = new Map<string, { workspaceId: string; running: boolean }>();
  const live = (id: string, instanceId: string | null) => {
    const i = instanceId ? instances.get(instanceId) : undefined;
    return i && i.workspaceId === id && i.running ? i : undefined;
  };
  return {
    async start(id) {
      const instanceId = `i-${randomBytes(9).toString('hex').slice(0, 17)}`;
      instances.set(instanceId, { workspaceId: id, running: true });
      return { url: null, instance_id: instanceId };
    },
    async stop(id) {
      for (const i of instances.values()) if (i.workspaceId === id) i.running = false;
      return { stopped: true, volume_removed: false };
    },
    async status(id, instanceId) {
      return live(id, instanceId) ? 'running' : 'not_found';
    },
    async console(id) {
      return `[boot] workspace ${id} console`;
    },
    async list() {
      return [...new Set([...instances.values()].filter((i) => i.running).map((i) => i.workspaceId))];
    },
  };
}

/**
 * A second agent on a real Docker-compatible engine, when PROVISIONER_TEST_DOCKER_HOST names one
 * that answers and has the test image (provisioner-agent/scripts/podman-engine.sh); else the
 * reason it is absent, which the real-engine test prints as its skip message.
 */
async function startEngineAgent(secret: string): Promise<{ agent?: TestProvisioner; docker?: Docker; reason?: string; close: () => Promise<void> }> {
  const none = (reason: string) => ({ reason, close: async () => undefined });
  const host = process.env.PROVISIONER_TEST_DOCKER_HOST;
  if (!host) return none('PROVISIONER_TEST_DOCKER_HOST is not set (see README "Run the provisioner-agent")');
  let options: Docker.DockerOptions | null;
  try {
    options = dockerOptions({ DOCKER_HOST: host });
  } catch (err) {
    return none(String(err));
  }
  if (!options) return none('PROVISIONER_TEST_DOCKER_HOST names no engine');
  const docker = new Docker({ ...options, timeout: 10_000 });
  try {
    await docker.ping();
    await docker.getImage(ENGINE_IMAGE).inspect();
  } catch {
    return none(`the engine at ${host} does not answer or has no ${ENGINE_IMAGE}`);
  }
  const agent = await startTestProvisioner({ secret, docker: { dockerOptions: options }, imageTemplate: ENGINE_IMAGE });
  return { agent, docker, close: () => agent.close() };
}
