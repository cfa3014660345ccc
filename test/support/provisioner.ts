// Every test's control of the provisioner goes through this module. Behind PROVISIONER_URL runs
// the real provisioner-agent on a Docker Engine double, behind a recording proxy with a control
// API (test/support/provisioner-control.ts, started in Node by the global setup): what was asked
// (op, backend, purge, instance id, the StartRequest with its token and inbound secret), what the
// engine holds (containers, labels, the /configs files), and failures injected at the daemon, so
// the agent itself classifies them. The Worker runs the docker backend (self-hosted); its ec2
// branch reaches the same agent server on an in-memory ec2 backend.
import { env } from 'cloudflare:test';
import type { AgentState, StartRequest, StartResult } from '../../src/provisioning/protocol';
import { callJson, sql, waitFor } from './api';

export type ProvisionerOp = 'start' | 'stop' | 'status' | 'console';
/** One request as the provisioner received it; `seq` orders calls across workspaces. */
export type ProvisionerCall = { seq: number; op: ProvisionerOp; backend: 'docker' | 'ec2'; purge?: boolean; instance_id?: string | null };

const control = (path: string, init?: RequestInit) => fetch(`${env.PROVISIONER_URL}/_control/${path}`, init);

type Recorded = { calls: ProvisionerCall[]; starts: StartRequest[]; started: StartResult[]; answers: Array<{ seq: number; status: number; body: string }> };

async function recorded(id: string): Promise<Recorded> {
  return (await (await control(`calls/${id}`)).json()) as Recorded;
}

/** Every call the provisioner received for the workspace, in order (signed ones only: others are refused). */
export async function provisionerCalls(id: string): Promise<ProvisionerCall[]> {
  return (await recorded(id)).calls;
}

/** The ops, in order, without `status` probes (what the lifecycle did, not what the proxy asked). */
export async function lifecycleOps(id: string): Promise<ProvisionerOp[]> {
  return (await provisionerCalls(id)).map((c) => c.op).filter((op) => op !== 'status');
}

/** The agent's answers to the workspace's calls (status and raw body), by call `seq`. */
export async function provisionerAnswers(id: string): Promise<Recorded['answers']> {
  return (await recorded(id)).answers;
}

/** The newest StartRequest the provisioner received for the workspace (token and inbound secret included). */
export async function startRequestOf(id: string): Promise<StartRequest | undefined> {
  return (await recorded(id)).starts.at(-1);
}

/**
 * Waits until the provisioner has answered the workspace's `count`-th start, and the Worker has
 * taken in its answer (the instance on file); the StartRequest it was sent.
 */
export async function waitForStart(id: string, count = 1, timeoutMs = 5000): Promise<StartRequest> {
  const { request, result } = await waitFor(async () => {
    const { starts, started } = await recorded(id);
    return started.length >= count ? { request: starts[count - 1]!, result: started[count - 1]! } : undefined;
  }, timeoutMs);
  // Taken in: the instance (ec2) or URL (docker) on file, or the workspace already moved on.
  if (result.instance_id || result.url) {
    await waitFor(
      async () =>
        (
          await sql(`SELECT 1 FROM workspaces WHERE id = $1 AND (instance_id = $2 OR url = $3 OR status <> 'provisioning')`, [id, result.instance_id, result.url])
        ).length > 0,
      timeoutMs,
    );
  }
  return request;
}

/**
 * What status answers for the workspace's agent from now on, made so in the engine: `stopped` —
 * its container exits; `not_found` — the container is removed; `running` — it runs.
 */
export async function setAgentState(id: string, state: AgentState): Promise<void> {
  await control(`state/${id}`, { method: 'POST', body: JSON.stringify({ state }) });
}

/**
 * The Docker daemon fails the engine call behind the workspace's next `op` (start → create,
 * stop → remove, status → inspect, console → logs) with this status and raw text; the real agent
 * classifies it (the text must stay in its log). `apply`: the call also takes effect (a removal
 * that raced another one).
 */
export async function failNext(id: string, op: ProvisionerOp, daemon: { status: number; message: string; apply?: boolean }): Promise<void> {
  await control(`fail/${id}`, { method: 'POST', body: JSON.stringify({ op, ...daemon }) });
}

/**
 * The workspace's next `op` is answered by the proxy in the agent's place: for answers no real
 * agent gives (a body off the protocol, an oversized one), to test the Worker's client against them.
 */
/** The daemon fails the next container listing (the agent then answers `unavailable`). */
export async function failNextList(daemon: { status: number; message: string }): Promise<void> {
  await control('fail-list', { method: 'POST', body: JSON.stringify(daemon) });
}

export async function answerNext(id: string, op: ProvisionerOp, answer: { status: number; body: unknown }): Promise<void> {
  await control(`answer/${id}`, { method: 'POST', body: JSON.stringify({ op, ...answer }) });
}

export type EngineContainer = {
  id: string;
  name: string;
  image: string;
  state: 'created' | 'running' | 'exited';
  labels: Record<string, string>;
  env: Record<string, string>;
  hostPort: number | null;
  binds: string[];
};
/** What the Docker double holds for the workspace: its container, its config volume and the files in it. */
export async function engineState(id: string): Promise<{ container: EngineContainer | null; volume: boolean; configs: Record<string, { content: string; mode: number }> | null }> {
  return (await (await control(`docker/${id}`)).json()) as never;
}

/** What the workspace's container has printed, i.e. what the console reads back. */
export async function containerPrints(id: string, text: string): Promise<void> {
  const res = await control(`logs/${id}`, { method: 'POST', body: JSON.stringify({ text }) });
  if (res.status !== 200) throw new Error(`no container for ${id}`);
}

/** The agent's log lines that mention the workspace (where raw daemon text belongs). */
export async function agentLog(id: string): Promise<string[]> {
  return ((await (await control(`agent-log/${id}`)).json()) as { lines: string[] }).lines;
}

/** Whether a real Docker-compatible engine is configured (PROVISIONER_TEST_DOCKER_HOST), else why not. */
export async function realEngine(): Promise<{ available: boolean; reason?: string }> {
  return (await (await control('engine')).json()) as never;
}

/** The workspace's container on the real engine (null: none). */
export async function realEngineContainer(id: string): Promise<{ state: string; running: boolean; labels: Record<string, string> } | null> {
  return ((await (await control(`engine/${id}`)).json()) as { container: never }).container;
}

/** A start whose env carries this key (a workspace secret) runs on the real engine. */
export const REAL_ENGINE_ENV = 'MOLECULE_TEST_REAL_ENGINE';

/**
 * The started agent comes up: it registers with the token the provisioner handed it (as the
 * runtime reads /configs/.auth_token), which takes the workspace from provisioning to online.
 */
export async function agentComesUp(id: string, opts: { url?: string; mode?: 'push' | 'poll'; startCount?: number } = {}) {
  const start = await waitForStart(id, opts.startCount ?? 1);
  const reg = await callJson('POST', '/registry/register', {
    token: start.auth_token,
    body: { id, agent_card: { name: 'test-agent' }, ...(opts.url ? { url: opts.url } : {}), ...(opts.mode ? { delivery_mode: opts.mode } : {}) },
  });
  if (reg.status !== 200) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`);
  return { token: start.auth_token, inboundSecret: start.platform_inbound_secret, register: reg.body };
}
